/**
 * The model card's two stages with the shipped tiny config and no extra flags: stage 1 pretrains on a
 * seq 128 dataset, stage 2 starts from its checkpoint on a seq 512 dataset (`--pretrained_model_path`,
 * same `--config_path`). This works because the shipped configs carry `max_seq_length` 512, as UER-py's
 * `models/albert/*_config.json` do: the position table has 512 rows from stage 1 on.
 */
import assert from "node:assert/strict";
import { refPath } from "./reference.ts";
import { cliOk } from "./_cli.ts";
import { readCheckpoint } from "../core/checkpoint/zarr.ts";

const VOCAB = refPath("vocab/google_zh_vocab.txt");
const CONFIG = new URL("../configs/albert/tiny_config.json", import.meta.url).pathname;

Deno.test("shipped configs carry max_seq_length 512, as UER-py's ALBERT configs", async () => {
  for (const name of ["tiny", "demo", "base", "large"]) {
    const cfg = JSON.parse(await Deno.readTextFile(new URL(`../configs/albert/${name}_config.json`, import.meta.url)));
    assert.equal(cfg.max_seq_length, 512, name);
  }
});

Deno.test("stage 1 at seq 128 then stage 2 at seq 512 from its checkpoint, with the shipped tiny config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uer-ts-stage2-" });
  try {
    const preprocess = (seq: number) =>
      cliOk([
        "preprocess",
        "--corpus_path",
        refPath("albert-tiny/train_trace_docs/corpus.txt"),
        "--vocab_path",
        VOCAB,
        "--dataset_path",
        `${dir}/dataset${seq}`,
        "--seq_length",
        String(seq),
        "--target",
        "albert",
        "--quiet",
      ]);
    await preprocess(128);
    await preprocess(512);
    const pretrain = (seq: number, out: string, steps: number, extra: string[] = []) =>
      cliOk([
        "pretrain",
        "--dataset_path",
        `${dir}/dataset${seq}`,
        "--vocab_path",
        VOCAB,
        "--config_path",
        CONFIG,
        "--output_model_path",
        out,
        "--total_steps",
        String(steps),
        "--save_checkpoint_steps",
        String(steps),
        "--report_steps",
        "1",
        "--batch_size",
        "4",
        "--learning_rate",
        "1e-3",
        "--device",
        "cpu",
        ...extra,
      ]);
    await pretrain(128, `${dir}/s1/albert`, 3);
    const s1 = await readCheckpoint(`${dir}/s1/albert-3`);
    assert.deepEqual(s1.params.get("embedding.pos.embedding.weight")!.shape, [512, 32]); // tiny: emb_size 32

    // Stage 2: one step, whose lr is 0 (linear warmup from 0, as UER-py), so its weights are stage 1's.
    const r = await pretrain(512, `${dir}/s2/albert`, 1, ["--pretrained_model_path", `${dir}/s1/albert-3`]);
    assert.match(r.stderr, /seq_length 512/);
    const s2 = await readCheckpoint(`${dir}/s2/albert-1`);
    const run = (s2.extra as { run: { identity: { dataset: { seq_length: number } } } }).run;
    assert.equal(run.identity.dataset.seq_length, 512);
    assert.deepEqual([...s2.params.keys()].sort(), [...s1.params.keys()].sort());
    for (const [name, t] of s1.params) assert.deepEqual(s2.params.get(name)!.data, t.data, name);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
