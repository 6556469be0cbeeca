/**
 * `preprocess` → `pretrain` end to end against UER-py's recorded run (reference/albert-tiny/train_trace):
 * our dataset of train_trace/corpus.txt, read by our loader, gives UER-py's buffer fills and batches;
 * `pretrain` from uer_model.bin reproduces the trace's per-step losses and lr with our own batches
 * (no recorded batch is fed), ends near final_params.safetensors, and writes a resumable zarr
 * checkpoint, a metrics JSONL and a loss-curve SVG. Also: start from an HF folder, stage 2 (a new run
 * at another seq_length from a zarr checkpoint), and the one-line errors for mismatched inputs.
 */
import assert from "node:assert/strict";
import { refJson, refPath } from "./reference.ts";
import { cli, cliOk, ownLines } from "./_cli.ts";
import { type HeadlessClass, headlessFolder } from "./hf_folders.ts";
import { openDataset } from "../core/data/dataset_zarr.ts";
import { AlbertLoader } from "../core/train/loader.ts";
import { readCheckpoint } from "../core/checkpoint/zarr.ts";
import { readSafetensors } from "../convert/safetensors.ts";
import { parseRecords } from "../core/train/metrics.ts";

interface TraceStep {
  step: number;
  instance_indices: number[];
  src: number[][];
  tgt_mlm: number[][];
  seg: number[][];
  tgt_sop: number[];
  loss: number;
  loss_mlm: number;
  loss_sp: number;
  correct_mlm: number;
  correct_sp: number;
  denominator: number;
  batch_size: number;
  lr: number[];
}
interface Trace {
  buffer_fills: { before_step: number; order: number[] }[];
  steps: TraceStep[];
}

const TINY = "albert-tiny";
const VOCAB = refPath("vocab/google_zh_vocab.txt");
const CONFIG = refPath(`${TINY}/uer_config.json`);
const dir = await Deno.makeTempDir({ prefix: "uer-ts-pretrain-" });
const dataset = `${dir}/dataset64`;
const out = `${dir}/run/albert`;
let prepared: Promise<void> | undefined;

/** preprocess train_trace/corpus.txt as UER-py did for the trace (shared by the tests below). */
function prepare(): Promise<void> {
  prepared ??= cliOk([
    "preprocess",
    "--corpus_path",
    refPath(`${TINY}/train_trace/corpus.txt`),
    "--vocab_path",
    VOCAB,
    "--dataset_path",
    dataset,
    "--seq_length",
    "64",
    "--seed",
    "7",
    "--dup_factor",
    "1",
    "--processes_num",
    "1",
    "--data_processor",
    "albert",
    "--quiet",
  ]).then(() => {});
  return prepared;
}

let mainRunning: Promise<{ stdout: string }> | undefined;
/** The trace's run: 30 steps from uer_model.bin, a report per step, one checkpoint at the end. */
function mainRun(): Promise<{ stdout: string }> {
  mainRunning ??= prepare().then(() =>
    cliOk(pretrainArgs([
      "--pretrained_model_path",
      refPath(`${TINY}/uer_model.bin`),
      "--output_model_path",
      out,
      "--total_steps",
      "30",
      "--report_steps",
      "1",
      "--save_checkpoint_steps",
      "30",
      "--json",
    ]))
  );
  return mainRunning;
}

function pretrainArgs(extra: string[]): string[] {
  return [
    "pretrain",
    "--dataset_path",
    dataset,
    "--vocab_path",
    VOCAB,
    "--config_path",
    CONFIG,
    "--batch_size",
    "8",
    "--learning_rate",
    "1e-3",
    "--seed",
    "7",
    "--device",
    "cpu",
    ...extra,
  ];
}

Deno.test("AlbertLoader on our preprocessed train_trace dataset gives UER-py's buffer fills and batches", async () => {
  await prepare();
  const trace = await refJson<Trace>(`${TINY}/train_trace/trace.json`);
  const ds = await openDataset(dataset);
  const fills: { before_step: number; order: number[] }[] = [];
  let step = 1;
  const loader = new AlbertLoader(ds, {
    batchSize: 8,
    instancesBufferSize: 25600,
    seed: 7,
    onFill: (o) => fills.push({ before_step: step, order: [...o] }),
  });
  for (const ref of trace.steps) {
    step = ref.step;
    const { batch, instanceIndices } = await loader.next();
    assert.deepEqual(instanceIndices, ref.instance_indices, `step ${ref.step}`);
    assert.deepEqual(Array.from(batch.src), ref.src.flat(), `src of step ${ref.step}`);
    assert.deepEqual(Array.from(batch.tgtMlm), ref.tgt_mlm.flat(), `tgt_mlm of step ${ref.step}`);
    assert.deepEqual(Array.from(batch.seg), ref.seg.flat(), `seg of step ${ref.step}`);
    assert.deepEqual(Array.from(batch.tgtSop), ref.tgt_sop, `tgt_sop of step ${ref.step}`);
  }
  assert.deepEqual(fills, trace.buffer_fills.map((f) => ({ before_step: f.before_step, order: f.order })));
});

Deno.test("pretrain from uer_model.bin reproduces UER-py's 30-step loss curve with its own batches", async () => {
  await prepare();
  const trace = await refJson<Trace>(`${TINY}/train_trace/trace.json`);
  const r = await mainRun();
  const printed = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(printed.length, 30);
  for (const ref of trace.steps) {
    const got = printed[ref.step - 1];
    assert.equal(got.step, ref.step);
    // Tolerances of reference/README.md §3 (float32, another summation order).
    for (const [k, want] of [["loss", ref.loss], ["loss_mlm", ref.loss_mlm], ["loss_sp", ref.loss_sp]] as const) {
      assert.ok(Math.abs(got[k] - want) <= 2e-5, `step ${ref.step} ${k}: ${got[k]} vs ${want}`);
    }
    assert.ok(Math.abs(got.lr - ref.lr[0]) <= 1e-12, `step ${ref.step} lr`);
    // Accuracies from counts: exact, ±1 for arg-max near-ties.
    assert.ok(Math.abs(got.acc_mlm * ref.denominator - ref.correct_mlm) <= 1 + 1e-3, `step ${ref.step} acc_mlm`);
    assert.ok(Math.abs(got.acc_sp * ref.batch_size - ref.correct_sp) <= 1 + 1e-9, `step ${ref.step} acc_sp`);
  }
  // The metrics file holds the same records; the SVG draws them.
  const jsonl = parseRecords(await Deno.readTextFile(`${out}.metrics.jsonl`));
  assert.deepEqual(jsonl, printed);
  const svg = await Deno.readTextFile(`${out}.loss.svg`);
  const pts = /<polyline[^>]*points="([^"]*)"/.exec(svg)![1].split(" ");
  assert.equal(pts.length, 30);
  // The checkpoint: final params close to UER-py's, plus everything needed to resume.
  const ckpt = await readCheckpoint(`${out}-30`);
  assert.equal(ckpt.step, 30);
  assert.ok(ckpt.moments);
  assert.ok((ckpt.extra as { loader?: unknown }).loader);
  const want = readSafetensors(await Deno.readFile(refPath(`${TINY}/train_trace/final_params.safetensors`)), "final");
  for (const [name, t] of want.tensors) {
    const got = ckpt.params.get(name)!;
    let worst = 0;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(Number(got.data[i]) - Number(t.data[i])));
    assert.ok(worst <= 5e-5, `${name}: ${worst}`);
  }
});

Deno.test("pretrain starts from an HF folder (UER LayerNorm in training) with UER-py's first losses", async () => {
  await prepare();
  const trace = await refJson<Trace>(`${TINY}/train_trace/trace.json`);
  const o = `${dir}/hf_run/albert`;
  const r = await cliOk(pretrainArgs([
    "--pretrained_model_path",
    refPath(`${TINY}/hf`),
    "--output_model_path",
    o,
    "--total_steps",
    "2",
    "--report_steps",
    "1",
    "--save_checkpoint_steps",
    "100",
  ]));
  assert.match(r.stderr, /starting a new run at step 1 from the weights of .*\(hf\)/);
  const lines = r.stdout.trim().split("\n");
  // UER-py's report line, e.g. "|        1/       2 steps|   123.45 tokens/s| loss   10.64| loss_mlm: 9.948| ..."
  const re =
    /^\| {8}(\d)\/ {7}2 steps\| +\d+\.\d\d tokens\/s\| loss +(\d+\.\d\d)\| loss_mlm: (\d+\.\d{3})\| loss_sp: (\d\.\d{3})\| acc_mlm: \d\.\d{3}\| acc_sp: \d\.\d{3}$/;
  assert.equal(lines.length, 2);
  // With 2 total steps the lr of step 1 is still 0, so both forwards see the initial weights as in the trace.
  lines.forEach((line, i) => {
    const m = re.exec(line);
    assert.ok(m, line);
    assert.equal(m[2], trace.steps[i].loss.toFixed(2));
    assert.equal(m[3], trace.steps[i].loss_mlm.toFixed(3));
  });
  assert.ok((await Deno.stat(`${o}-2`)).isDirectory, "the final step is saved");
});

Deno.test("pretrain starts from AlbertForMaskedLM and AlbertModel folders: the heads they lack are initialised, said in one line", async () => {
  await prepare();
  const trace = await refJson<Trace>(`${TINY}/train_trace/trace.json`);
  const run = async (cls: HeadlessClass) => {
    const folder = await headlessFolder(`${dir}/${cls}`, cls);
    const o = `${dir}/${cls}_run/albert`;
    const r = await cliOk(pretrainArgs([
      "--pretrained_model_path",
      folder,
      "--output_model_path",
      o,
      "--total_steps",
      "2",
      "--report_steps",
      "1",
      "--save_checkpoint_steps",
      "100",
      "--json",
      "--overwrite",
    ]));
    return { r, folder, records: r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>) };
  };
  // AlbertForMaskedLM: the MLM head is the file's (UER-py's first loss_mlm), the SOP head is new.
  const mlm = await run("AlbertForMaskedLM");
  const said = ownLines(mlm.r.stderr).filter((l) => l.includes("initialised"));
  assert.deepEqual(said, [
    `"${mlm.folder}" has no target.sp.linear_1, target.sp.linear_2: initialised as UER-py's ` +
    "load_state_dict(strict=False) leaves them (nn.Linear's uniform init, LayerNorm gamma 1 and beta 0), seed 7",
  ]);
  assert.equal(mlm.records[0].loss_mlm.toFixed(3), trace.steps[0].loss_mlm.toFixed(3));
  assert.notEqual(mlm.records[0].loss_sp.toFixed(3), trace.steps[0].loss_sp.toFixed(3));
  assert.ok(Math.abs(mlm.records[0].loss_sp - Math.log(2)) < 0.1, `a fresh SOP head: ${mlm.records[0].loss_sp}`);
  // AlbertModel: pooler → target.sp.linear_1; the MLM head and the SOP classifier are new, the same run to run.
  const base = await run("AlbertModel");
  assert.match(
    base.r.stderr,
    /has no target\.mlm\.linear_1, target\.mlm\.layer_norm, target\.mlm\.linear_2, target\.sp\.linear_2: initialised/,
  );
  assert.ok(base.records[0].loss_mlm > trace.steps[0].loss_mlm + 0.05, `a fresh MLM head: ${base.records[0].loss_mlm}`);
  assert.deepEqual((await run("AlbertModel")).records.map((x) => x.loss), base.records.map((x) => x.loss));
});

Deno.test("pretrain stage 2: a zarr checkpoint starts a new run on a seq 128 dataset; bad inputs name the flag", async () => {
  await prepare();
  const ds128 = `${dir}/dataset128`;
  await cliOk([
    "preprocess",
    "--corpus_path",
    refPath(`${TINY}/train_trace_docs/corpus.txt`),
    "--vocab_path",
    VOCAB,
    "--dataset_path",
    ds128,
    "--seq_length",
    "128",
    "--dup_factor",
    "1",
    "--target",
    "albert",
    "--quiet",
  ]);
  await mainRun(); // its checkpoint `${out}-30` was trained on seq 64
  const stage2 = `${dir}/s2/albert`;
  const base = pretrainArgs(["--output_model_path", stage2, "--total_steps", "2", "--save_checkpoint_steps", "2"]);
  base[base.indexOf(dataset)] = ds128;
  const r = await cliOk([...base, "--pretrained_model_path", `${out}-30`]);
  // UER-py semantics: the checkpoint's weights, a new run at step 1 (its moments, step and loader are not used).
  assert.match(r.stderr, /starting a new run at step 1 from the weights of "[^"]*-30" \(zarr\)/);
  const s2 = await readCheckpoint(`${stage2}-2`);
  assert.equal(s2.step, 2);
  const run = (s2.extra as { run: { identity: { dataset: { seq_length: number }; pretrained_model_path: string } } })
    .run;
  assert.equal(run.identity.dataset.seq_length, 128);
  assert.equal(run.identity.pretrained_model_path, `${out}-30`);

  // seq 128 needs max_seq_length >= 128.
  const short = await cli([...base, "--max_seq_length", "64"]);
  assert.equal(short.code, 1);
  assert.match(short.stderr, /^error: .*seq_length 128 exceeds max_seq_length 64.*\n {2}hint: .*--config_path/);
  // An HF folder of another embedding size than the config: the config, not the vocabulary (same 21128 rows).
  const wide = [...base, "--pretrained_model_path", refPath(`${TINY}/hf`)];
  wide[wide.indexOf(CONFIG)] = new URL("../configs/albert/base_config.json", import.meta.url).pathname;
  wide[wide.indexOf(stage2)] = `${dir}/x/emb`;
  const emb = await cli(wide);
  assert.equal(emb.code, 1);
  assert.deepEqual(ownLines(emb.stderr).slice(-2), [
    `error: Cannot start from "${refPath(`${TINY}/hf`)}": "embedding.word.embedding.weight" has shape ` +
    "[21128,32], the run's config needs [21128,128]",
    "  hint: check --config_path",
  ]);
  // Another vocabulary than the dataset's.
  const vocab = pretrainArgs(["--output_model_path", `${dir}/x/a`, "--total_steps", "1"]);
  vocab[vocab.indexOf(VOCAB)] = new URL("../fixtures/demo_vocab.txt", import.meta.url).pathname;
  const bad = await cli(vocab);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: .*another vocabulary.*--vocab_path/);
  // --gpu_ranks needs a hardware GPU with --device auto/webgpu (this CPU-only machine has none); the
  // data-parallel runs themselves are tested in tests/dist_test.ts.
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter || adapter.info.isFallbackAdapter) {
    const gpuFlags = ["--world_size", "2", "--gpu_ranks", "0", "1", "--device", "auto", "--total_steps", "1"];
    const dp = await cli(pretrainArgs(["--output_model_path", `${dir}/x/b`, ...gpuFlags]));
    assert.equal(dp.code, 1);
    const own = ownLines(dp.stderr);
    assert.match(
      own.join("\n"),
      /^error: Cannot use --gpu_ranks 0 1: no hardware GPU here .*\n {2}hint: pass --device cpu/,
    );
    assert.equal(own.length, 2);
  }
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
});
