/**
 * Reproduces UER-py's recorded fine-tuning run (../shared/reference/albert-tiny/finetune_trace, made by
 * UER-py's own `finetune/run_classifier.py`, README §2.6): from `classifier_init.bin` on the first
 * 160/80/80 rows of chnsenticorp (seq 64, batch 16, 3 epochs, lr 5e-4, seed 7, pooling first), every
 * step's lr (exact to 1e-12) and loss (2e-5), each epoch's CPython shuffle and the labels of every
 * batch, the dev accuracy and confusion of each epoch, the saved model (the first best epoch, within
 * 5e-5 of `finetuned_model.bin`) and the test evaluation. onnxruntime-node CPU for the whole run;
 * WebGPU (a software adapter here, slow) for one training step and the first epoch's dev evaluation.
 */
import assert from "node:assert/strict";
import { loadModel } from "../convert/mod.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/mod.ts";
import { countLabels, encodeRows, parseClassifierTsv } from "../core/data/classifier_data.ts";
import { PyRandom } from "../core/data/py_random.ts";
import { probeWebGpu } from "../core/runtime/mod.ts";
import { classifierTask } from "../core/train/classifier_task.ts";
import {
  type EvalResult,
  evaluate,
  finetune,
  finetuneStatSlots,
  type FinetuneStep,
  gatherRows,
} from "../core/train/finetune.ts";
import { makeSchedule } from "../core/train/schedule.ts";
import { Trainer } from "../core/train/trainer.ts";
import type { Tensor } from "../core/tensor.ts";
import { refJson, refPath } from "./reference.ts";

interface Trace {
  settings: { seq_length: number; batch_size: number; epochs_num: number; learning_rate: number; seed: number };
  labels_num: number;
  train_steps_for_scheduler: number;
  steps_per_epoch: number;
  shuffles: { before: number[]; after: number[] }[];
  steps: { step: number; loss: number; lr: number[]; batch_labels: number[] }[];
  dev: { acc: number; confusion: number[][]; n: number }[];
  test: { acc: number; confusion: number[][]; n: number };
  best_epoch: number;
}

const DIR = "albert-tiny/finetune_trace";
const trace = await refJson<Trace>(`${DIR}/trace.json`);
const init = await loadModel(refPath(`${DIR}/classifier_init.bin`), {
  configPath: refPath("albert-tiny/uer_config.json"),
});
const tok = new BertTokenizer(await readVocabFile(refPath("vocab/google_zh_vocab.txt"), "uer"), { mode: "uer" });
const S = trace.settings;
const read = async (name: string) => {
  const f = parseClassifierTsv(await Deno.readTextFile(refPath(`${DIR}/${name}`)), name);
  return { f, rows: encodeRows(f.rows, tok, S.seq_length) };
};
const train = await read("train.tsv"), dev = await read("dev.tsv"), test = await read("test.tsv");

interface Run {
  steps: FinetuneStep[];
  orders: number[][];
  evals: { split: string; epoch: number; r: EvalResult }[];
  best: { epoch: number; params: Map<string, Tensor> }[];
}

async function run(device: "cpu" | "webgpu", epochs: number): Promise<Run> {
  const labelsNum = countLabels(train.f);
  assert.equal(labelsNum, trace.labels_num);
  const trainer = await Trainer.create({
    task: classifierTask({ ...init.config }, { labelsNum, pooling: "first" }),
    params: init.params,
    device,
    threads: 2,
    statSlots: finetuneStatSlots(1, train.rows.count, S.batch_size),
  });
  const out: Run = { steps: [], orders: [], evals: [], best: [] };
  try {
    const r = await finetune({
      trainer,
      train: train.rows,
      dev: dev.rows,
      test: epochs === S.epochs_num ? test.rows : undefined,
      labelsNum,
      batchSize: S.batch_size,
      epochsNum: S.epochs_num,
      epochsToRun: epochs,
      learningRate: S.learning_rate,
      warmup: 0.1,
      scheduler: "linear",
      seed: S.seed,
      reportSteps: 1,
      onSteps: (s) => void out.steps.push(...s),
      onShuffle: (_e, order) => void out.orders.push([...order]),
      onEval: (split, epoch, r) => void out.evals.push({ split, epoch, r }),
      onBest: (epoch, params) => void out.best.push({ epoch, params }),
    });
    if (epochs === S.epochs_num) assert.equal(r.trainSteps, trace.train_steps_for_scheduler);
  } finally {
    await trainer.dispose();
  }
  return out;
}

/** Checks `got` against the trace's first `epochs` epochs; returns the worst loss difference. */
function check(got: Run, epochs: number): number {
  const n = trace.steps_per_epoch * epochs;
  assert.equal(got.steps.length, n);
  let worst = 0;
  for (const [i, ref] of trace.steps.slice(0, n).entries()) {
    const s = got.steps[i];
    assert.equal(s.step, ref.step);
    for (const lr of ref.lr) assert.ok(Math.abs(s.lr - lr) <= 1e-12, `step ${s.step}: lr ${s.lr} vs UER ${lr}`);
    const d = Math.abs(s.loss - ref.loss);
    worst = Math.max(worst, d);
    assert.ok(d <= 2e-5, `step ${s.step}: loss ${s.loss} vs UER ${ref.loss}`);
  }
  // Shuffles: each epoch re-shuffles the previous order (the trace records that relative permutation).
  const py = new PyRandom(trace.settings.seed);
  let prev = Array.from({ length: train.rows.count }, (_, i) => i);
  for (let e = 0; e < epochs; e++) {
    const perm = [...trace.shuffles[e].before];
    py.shuffle(perm);
    assert.deepEqual(perm, trace.shuffles[e].after, `CPython shuffle of epoch ${e + 1}`);
    const want = perm.map((p) => prev[p]);
    assert.deepEqual(got.orders[e], want, `training order of epoch ${e + 1}`);
    // and the batches' labels as UER-py's train_model saw them
    for (let b = 0; b < trace.steps_per_epoch; b++) {
      const ref = trace.steps[e * trace.steps_per_epoch + b].batch_labels;
      const rows = want.slice(b * S.batch_size, (b + 1) * S.batch_size);
      assert.deepEqual(rows.map((r) => train.rows.labels[r]), ref);
    }
    prev = want;
  }
  const devs = got.evals.filter((e) => e.split === "dev");
  assert.equal(devs.length, epochs);
  devs.forEach((e, i) => {
    assert.equal(e.r.acc, trace.dev[i].acc, `dev accuracy of epoch ${i + 1}`);
    assert.deepEqual(e.r.confusion, trace.dev[i].confusion, `dev confusion of epoch ${i + 1}`);
    assert.equal(e.r.n, trace.dev[i].n);
  });
  return worst;
}

Deno.test("finetune reproduces UER-py's run_classifier trace on CPU: lr, losses, shuffles, dev, saved model, test", async () => {
  const got = await run("cpu", S.epochs_num);
  const worst = check(got, S.epochs_num);
  // The saved model: the first epoch with the best dev accuracy (strictly greater), as UER-py saves.
  assert.deepEqual(got.best.map((b) => b.epoch), [1, 2]);
  assert.equal(got.best.at(-1)!.epoch, trace.best_epoch);
  const want = await loadModel(refPath(`${DIR}/finetuned_model.bin`), {
    configPath: refPath("albert-tiny/uer_config.json"),
  });
  let worstParam = 0;
  for (const [name, t] of want.params) {
    const a = got.best.at(-1)!.params.get(name)!.data as Float32Array, b = t.data as Float32Array;
    assert.equal(a.length, b.length, name);
    for (let i = 0; i < b.length; i++) worstParam = Math.max(worstParam, Math.abs(a[i] - b[i]));
  }
  assert.ok(worstParam <= 5e-5, `saved model differs from finetuned_model.bin by ${worstParam}`);
  const t = got.evals.find((e) => e.split === "test")!;
  assert.equal(t.epoch, trace.best_epoch);
  assert.equal(t.r.acc, trace.test.acc);
  assert.deepEqual(t.r.confusion, trace.test.confusion);
  console.log(
    `finetune_trace on cpu: worst loss diff ${worst.toExponential(2)}, saved params ${worstParam.toExponential(2)}`,
  );
});

const gpu = await probeWebGpu();
Deno.test({
  name: "finetune on WebGPU: step 10 from the CPU's first 9 steps, then the dev evaluation of epoch 1, as UER-py",
  ignore: !gpu.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // llvmpipe compiles a training graph in tens of seconds: one WebGPU training step (the epoch's last)
    // and the gradient-free evaluation, starting from the CPU run's state after step 9.
    const labelsNum = trace.labels_num;
    const task = classifierTask({ ...init.config }, { labelsNum, pooling: "first" });
    const order = Array.from({ length: train.rows.count }, (_, i) => i);
    new PyRandom(S.seed).shuffle(order);
    const batchOf = (i: number) => gatherRows(train.rows, order.slice(i * S.batch_size, (i + 1) * S.batch_size));
    const schedule = makeSchedule({
      scheduler: "linear",
      learningRate: S.learning_rate,
      totalSteps: trace.train_steps_for_scheduler,
      warmup: 0.1,
    });
    const cpu = await Trainer.create({ task, params: init.params, device: "cpu" });
    for (let i = 0; i < 9; i++) await cpu.step(batchOf(i), schedule.lrAt(i + 1));
    const web = await Trainer.create({
      task,
      params: await cpu.params(),
      moments: await cpu.moments(),
      device: "webgpu",
    });
    await cpu.dispose();
    try {
      await web.step(batchOf(9), schedule.lrAt(10));
      const loss = (await web.takeStats()).sums.loss;
      assert.ok(Math.abs(loss - trace.steps[9].loss) <= 2e-5, `step 10: loss ${loss} vs UER ${trace.steps[9].loss}`);
      const r = await evaluate(web, dev.rows, S.batch_size, labelsNum);
      assert.equal(r.acc, trace.dev[0].acc);
      assert.deepEqual(r.confusion, trace.dev[0].confusion);
      console.log(
        `finetune_trace on webgpu: step 10 loss diff ${Math.abs(loss - trace.steps[9].loss).toExponential(2)}`,
      );
    } finally {
      await web.dispose();
    }
  },
});
