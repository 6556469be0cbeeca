/**
 * Bit-reproducible training on CPU: the same `pretrain` command run twice (same flags, seed and thread
 * count) writes byte-identical checkpoints and the same losses and accuracies. The model is small but
 * its embedding gradient has the shape where onnxruntime's ScatterND add used to race between its 2
 * threads (emb_size 128, 16 × 128 ids per step; DESIGN.md §6): checked before that fix, two runs of this
 * test differed in the word embeddings from the first step. The same on the WebGPU executor (a software
 * adapter here, so fewer and smaller steps): its kernels have no atomics and a fixed reduction order.
 */
import assert from "node:assert/strict";
import { refPath } from "./reference.ts";
import { cliOk } from "./_cli.ts";
import { parseRecords } from "../core/train/metrics.ts";
import { probeWebGpu } from "../core/runtime/mod.ts";

const VOCAB = refPath("vocab/google_zh_vocab.txt");

/** Every file under `dir` (relative path → bytes). */
async function tree(dir: string, at = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(`${dir}/${at}`)) {
    const rel = at ? `${at}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await tree(dir, rel)) out.set(k, v); }
    else out.set(rel, await Deno.readFile(`${dir}/${rel}`));
  }
  return out;
}

/** Runs the same `pretrain` twice on `device` and compares metrics and checkpoint bytes. */
async function twoRuns(device: "cpu" | "webgpu", batch: number, steps: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uer-ts-repro-" });
  try {
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        emb_size: 128,
        hidden_size: 64,
        feedforward_size: 128,
        heads_num: 2,
        layers_num: 1,
        hidden_act: "relu",
        max_seq_length: 128,
        dropout: 0.0,
        data_processor: "albert",
        embedding: ["word", "pos", "seg"],
        encoder: "transformer",
        mask: "fully_visible",
        target: ["mlm", "sp"],
        factorized_embedding_parameterization: true,
        parameter_sharing: true,
      }),
    );
    const dataset = `${dir}/dataset`;
    await cliOk([
      "preprocess",
      "--corpus_path",
      refPath("albert-tiny/train_trace/corpus.txt"),
      "--vocab_path",
      VOCAB,
      "--dataset_path",
      dataset,
      "--seq_length",
      "128",
      "--dynamic_masking",
      "--target",
      "albert",
      "--quiet",
    ]);
    const run = (out: string) =>
      cliOk([
        "pretrain",
        "--dataset_path",
        dataset,
        "--vocab_path",
        VOCAB,
        "--config_path",
        config,
        "--output_model_path",
        out,
        "--total_steps",
        String(steps),
        "--batch_size",
        String(batch),
        "--report_steps",
        "1",
        "--save_checkpoint_steps",
        String(steps),
        "--learning_rate",
        "1e-3",
        "--seed",
        "3",
        "--device",
        device,
        "--quiet",
      ]);
    await run(`${dir}/a/albert`);
    await run(`${dir}/b/albert`);
    const numbers = async (out: string) =>
      parseRecords(await Deno.readTextFile(`${out}.metrics.jsonl`)).map((
        r,
      ) => [r.step, r.loss, r.loss_mlm, r.loss_sp, r.acc_mlm, r.acc_sp, r.lr]);
    assert.deepEqual(await numbers(`${dir}/b/albert`), await numbers(`${dir}/a/albert`));
    assert.equal((await numbers(`${dir}/a/albert`)).length, steps);
    const [a, b] = [await tree(`${dir}/a/albert-${steps}`), await tree(`${dir}/b/albert-${steps}`)];
    assert.ok(a.has("embedding.word.embedding.weight/c/0/0"), [...a.keys()].join(" "));
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [file, bytes] of a) {
      if (file === "zarr.json") continue; // compared below: it records the run's wall time
      assert.ok(equalBytes(b.get(file)!, bytes), `${file} differs between the two runs`);
    }
    // The group attributes are equal but for `elapsed_s` (seconds the run took, which reports carry on).
    const attrs = (m: Map<string, Uint8Array>) => {
      const z = JSON.parse(new TextDecoder().decode(m.get("zarr.json")!));
      assert.equal(typeof z.attributes.extra.elapsed_s, "number");
      delete z.attributes.extra.elapsed_s;
      return z;
    };
    assert.deepEqual(attrs(b), attrs(a));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("pretrain run twice with the same flags and seed writes byte-identical checkpoints (2 threads)", async () => {
  await twoRuns("cpu", 16, 3);
});

Deno.test({
  name: "pretrain run twice on the WebGPU executor writes byte-identical checkpoints",
  ignore: !(await probeWebGpu()).available,
  async fn() {
    await twoRuns("webgpu", 2, 2);
  },
});

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
