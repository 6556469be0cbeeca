/**
 * Resume: a `pretrain` run killed with SIGKILL right after a checkpoint appears, restarted with the same
 * command (which finds its checkpoints in --output_model_path and resumes from the last one), continues
 * with exactly the losses, accuracies and lr of an uninterrupted run and ends with bit-identical weights and
 * Adam moments (2 threads, the trainer's default). The dataset uses dynamic masking and a small instance
 * buffer, so the restored loader position, buffer and python-random state all matter; checkpoints fall
 * between report steps, so the carried report sums matter too.
 */
import assert from "node:assert/strict";
import { refPath } from "./reference.ts";
import { checkpoints, cliOk, MAIN } from "./_cli.ts";
import { readCheckpoint } from "../core/checkpoint/zarr.ts";
import { parseRecords, type ReportRecord } from "../core/train/metrics.ts";

const TINY = "albert-tiny";
const VOCAB = refPath("vocab/google_zh_vocab.txt");

function args(dataset: string, out: string, extra: string[] = []): string[] {
  return [
    "pretrain",
    "--dataset_path",
    dataset,
    "--vocab_path",
    VOCAB,
    "--config_path",
    refPath(`${TINY}/uer_config.json`),
    "--pretrained_model_path",
    refPath(`${TINY}/uer_model.bin`),
    "--output_model_path",
    out,
    "--total_steps",
    "24",
    "--batch_size",
    "8",
    "--instances_buffer_size",
    "30",
    "--report_steps",
    "3",
    "--save_checkpoint_steps",
    "5",
    "--learning_rate",
    "1e-3",
    "--seed",
    "11",
    "--device",
    "cpu",
    "--quiet",
    ...extra,
  ];
}

const pick = (rs: ReportRecord[]) => rs.map((r) => [r.step, r.loss, r.loss_mlm, r.loss_sp, r.acc_mlm, r.acc_sp, r.lr]);

Deno.test("pretrain killed with SIGKILL and resumed from its last checkpoint continues the uninterrupted run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uer-ts-resume-" });
  try {
    const dataset = `${dir}/dataset`;
    await cliOk([
      "preprocess",
      "--corpus_path",
      refPath(`${TINY}/train_trace_docs/corpus.txt`),
      "--vocab_path",
      VOCAB,
      "--dataset_path",
      dataset,
      "--seq_length",
      "48",
      "--dynamic_masking",
      "--target",
      "albert",
      "--quiet",
    ]);
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);

    // The uninterrupted run.
    const a = `${dir}/a/albert`;
    await cliOk(args(dataset, a));
    const full = parseRecords(await Deno.readTextFile(`${a}.metrics.jsonl`));
    assert.deepEqual(full.map((r) => r.step), [3, 6, 9, 12, 15, 18, 21, 24]);

    // The same run, killed as soon as its first checkpoint is on disk.
    const b = `${dir}/b/albert`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args(dataset, b)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    let done = false;
    const status = child.status.finally(() => (done = true));
    while (!done && (await checkpoints(b)).length === 0) await new Promise((r) => setTimeout(r, 10));
    if (!done) child.kill("SIGKILL");
    const st = await status;
    assert.equal(st.signal, "SIGKILL", "the run finished before it could be killed");
    const saved = await checkpoints(b);
    const last = saved[saved.length - 1];
    assert.ok(last >= 5 && last < 24, `last checkpoint ${last}`);

    // Restart: the same command resumes from the last checkpoint it finds in --output_model_path.
    const r = await cliOk(args(dataset, b).filter((x) => x !== "--quiet"));
    assert.match(r.stderr, new RegExp(`resuming the run in "${b}" from ${b}-${last} \\(step ${last}\\)\n`));

    const resumed = parseRecords(await Deno.readTextFile(`${b}.metrics.jsonl`));
    assert.deepEqual(pick(resumed), pick(full), `resumed from step ${last}`);
    const [pa, pb] = [await readCheckpoint(`${a}-24`), await readCheckpoint(`${b}-24`)];
    for (const [name, t] of pa.params) {
      assert.deepEqual(pb.params.get(name)!.data, t.data, name);
      assert.deepEqual(pb.moments!.m.get(name)!.data, pa.moments!.m.get(name)!.data, `m of ${name}`);
      assert.deepEqual(pb.moments!.v.get(name)!.data, pa.moments!.v.get(name)!.data, `v of ${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
