/**
 * Reproduces UER-py's recorded training runs (../shared/reference/albert-tiny/train_trace*, made by
 * UER-py's own `pretrain.main()`): start from `uer_model.bin`, feed the recorded batches in order at
 * the `linear` schedule's lr, and compare every step's lr, losses, correct counts and per-tensor
 * parameter statistics, then the final parameters (reference README §3 tolerances: losses 2e-5 abs,
 * counts exact (±1 on arg-max near-ties), final params 5e-5 abs, param_stats 1e-5 relative).
 * onnxruntime-node CPU for the whole runs; WebGPU (a software adapter here, slow) for the first steps.
 */
import assert from "node:assert/strict";
import { loadModel } from "../convert/mod.ts";
import { readSafetensors } from "../convert/safetensors.ts";
import type { AlbertConfig } from "../core/config.ts";
import { probeWebGpu } from "../core/runtime/mod.ts";
import { makeSchedule } from "../core/train/schedule.ts";
import { Trainer } from "../core/train/trainer.ts";
import { type Batch, pretrainStats, pretrainTask } from "../core/train/pretrain_task.ts";
import type { Tensor } from "../core/tensor.ts";
import { refPath } from "./reference.ts";

interface Stats {
  sum: number;
  l2: number;
  samples: [number, number][];
}
interface TraceStep {
  step: number;
  src: number[][];
  tgt_mlm: number[][];
  seg: number[][];
  tgt_sop: number[];
  batch_size: number;
  seq_length: number;
  n_masked: number;
  lr: number[];
  loss: number;
  loss_mlm: number;
  loss_sp: number;
  correct_mlm: number;
  denominator: number;
  correct_sp: number;
  param_stats: Record<string, Stats>;
}
interface Trace {
  resolved_args: { total_steps: number; learning_rate: number; warmup: number; accumulation_steps: number };
  steps: TraceStep[];
}

function toBatch(s: TraceStep): Batch {
  return {
    src: Int32Array.from(s.src.flat()),
    tgtMlm: Int32Array.from(s.tgt_mlm.flat()),
    seg: Int32Array.from(s.seg.flat()),
    tgtSop: Int32Array.from(s.tgt_sop),
    batchSize: s.batch_size,
    seqLength: s.seq_length,
  };
}

function stats(t: Tensor): { sum: number; l2: number } {
  let sum = 0, sq = 0;
  for (const x of t.data as Float32Array) {
    sum += x;
    sq += x * x;
  }
  return { sum, l2: Math.sqrt(sq) };
}

const model = await loadModel(refPath("albert-tiny/uer_model.bin"));
const config: AlbertConfig = {
  ...model.config,
  vocab_size: model.params.get("embedding.word.embedding.weight")!.shape[0],
};
const traces = new Map<string, Trace>();
async function trace(name: string): Promise<Trace> {
  if (!traces.has(name)) {
    traces.set(name, JSON.parse(await Deno.readTextFile(refPath(`albert-tiny/${name}/trace.json`))));
  }
  return traces.get(name)!;
}

/** Runs `steps` recorded steps on `device`, checking each against the trace; returns the trainer. */
async function replay(name: string, device: "cpu" | "webgpu", steps?: number): Promise<Trainer<Batch>> {
  const tr = await trace(name);
  const a = tr.resolved_args;
  const schedule = makeSchedule({
    scheduler: "linear",
    learningRate: a.learning_rate,
    totalSteps: a.total_steps,
    warmup: a.warmup,
    accumulationSteps: a.accumulation_steps,
  });
  const trainer = await Trainer.create({ task: pretrainTask(config), params: model.params, device, threads: 2 });
  let worstLoss = 0, worstStat = 0, nearTies = 0;
  for (const s of tr.steps.slice(0, steps ?? tr.steps.length)) {
    const lr = schedule.lrAt(s.step);
    for (const l of s.lr) assert.ok(Math.abs(lr - l) <= 1e-12, `step ${s.step}: lr ${lr} vs UER ${l}`);
    await trainer.step(toBatch(s), lr);
    const taken = await trainer.takeStats();
    assert.equal(taken.steps, 1);
    const st = pretrainStats(taken.sums);
    for (const [k, ref] of [["loss", s.loss], ["lossMlm", s.loss_mlm], ["lossSp", s.loss_sp]] as const) {
      const d = Math.abs(st[k] - ref);
      worstLoss = Math.max(worstLoss, d);
      assert.ok(d <= 2e-5, `${name} step ${s.step}: ${k} ${st[k]} vs UER ${ref}`);
    }
    assert.equal(st.nMasked, s.n_masked);
    assert.equal(st.denominator, s.denominator);
    assert.equal(st.batchSize, s.batch_size);
    for (const [k, ref] of [["correctMlm", s.correct_mlm], ["correctSp", s.correct_sp]] as const) {
      assert.ok(Math.abs(st[k] - ref) <= 1, `${name} step ${s.step}: ${k} ${st[k]} vs UER ${ref}`);
      if (st[k] !== ref) nearTies++;
    }
    const params = await trainer.params();
    for (const [n, ref] of Object.entries(s.param_stats)) {
      const got = stats(params.get(n)!);
      // relative 1e-5, with a floor of 1e-5 of the l2 norm for sums near zero
      const scale = Math.max(Math.abs(ref.sum), ref.l2, 1e-30);
      const dSum = Math.abs(got.sum - ref.sum) / scale;
      const dL2 = Math.abs(got.l2 - ref.l2) / Math.max(ref.l2, 1e-30);
      worstStat = Math.max(worstStat, dSum, dL2);
      assert.ok(
        dSum <= 1e-5 && dL2 <= 1e-5,
        `${name} step ${s.step} ${n}: sum ${got.sum}/${ref.sum} l2 ${got.l2}/${ref.l2}`,
      );
      const d = params.get(n)!.data as Float32Array;
      for (const [i, v] of ref.samples) assert.ok(Math.abs(d[i] - v) <= 5e-5, `${n}[${i}] ${d[i]} vs UER ${v}`);
    }
  }
  console.log(
    `${name} on ${trainer.deviceName}: worst loss diff ${worstLoss.toExponential(2)}, worst param_stats rel ${
      worstStat.toExponential(2)
    }, count mismatches ${nearTies}`,
  );
  return trainer;
}

Deno.test("Trainer reproduces UER-py's train_trace (30 steps, CPU): losses, counts, param stats, final params", async () => {
  const trainer = await replay("train_trace", "cpu");
  const ref = readSafetensors(
    await Deno.readFile(refPath("albert-tiny/train_trace/final_params.safetensors")),
    "final_params.safetensors",
  );
  const params = await trainer.params();
  let worst = 0;
  for (const [n, t] of ref.tensors) {
    const got = params.get(n)!.data as Float32Array, want = t.data as Float32Array;
    assert.deepEqual(params.get(n)!.shape, t.shape);
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  console.log(`final params: worst abs diff ${worst.toExponential(2)} over ${ref.tensors.size} tensors`);
  assert.ok(worst <= 5e-5, `final params differ by ${worst}`);
  await trainer.dispose();
});

Deno.test("Trainer reproduces UER-py's train_trace_docs (12 steps, padded rows, warmup 1.2, CPU)", async () => {
  const trainer = await replay("train_trace_docs", "cpu");
  await trainer.dispose();
});

const gpu = await probeWebGpu();
Deno.test({
  name: "Trainer reproduces the first steps of train_trace on WebGPU",
  ignore: !gpu.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const trainer = await replay("train_trace", "webgpu", 2);
    await trainer.dispose();
  },
});
