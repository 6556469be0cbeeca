/**
 * The in-graph dropout generator (dropout.ts): kept fraction 1 − p, kept values scaled by exactly
 * float32 1/(1 − p), draws uncorrelated between neighbours, rows, sites and steps, the same mask for
 * the same key, and bit-identical masks on onnxruntime's CPU and WebGPU kernels (llvmpipe here). In a
 * trainer: the same `--seed` gives the same run, another seed another one, and the resumed micro-step
 * counter continues the stream.
 */
import assert from "node:assert/strict";
import { Graph } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession, probeWebGpu } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { Dropout, DROPOUT_KEY, DROPOUT_PRIME, dropoutKey } from "./dropout.ts";
import type { AlbertConfig } from "../config.ts";
import { initParams, Trainer } from "./trainer.ts";
import { type Batch, paramShapes, pretrainTask } from "./pretrain_task.ts";

const SHAPE = [4, 16, 96];
const N = SHAPE.reduce((a, b) => a * b, 1);

/** ones [4,16,96] through two dropout sites; returns both outputs. */
function maskGraph(p: number): Uint8Array {
  const g = new Graph();
  const x = g.input("x", "F32", SHAPE);
  const d = new Dropout(g, p);
  g.output(d.apply(x), "y1");
  g.output(d.apply(x), "y2");
  return toOnnx(g).model;
}

const ones: Tensor = { dtype: "F32", shape: SHAPE, data: new Float32Array(N).fill(1) };
const key = (k: number): Tensor => ({ dtype: "I32", shape: [], data: Int32Array.of(k) });

async function run(model: Uint8Array, k: number, device: "cpu" | "webgpu" = "cpu") {
  const s = await createSession(model, { device, threads: 1 });
  const out = await s.run({ x: ones, [DROPOUT_KEY]: key(k) });
  await s.release();
  return { y1: out.y1.data as Float32Array, y2: out.y2.data as Float32Array };
}

/** Pearson correlation of the keep indicators a[i] and b[i]. */
function corr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let sa = 0, sb = 0, sab = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i] ? 1 : 0, y = b[i] ? 1 : 0;
    sa += x;
    sb += y;
    sab += x * y;
  }
  const ma = sa / n, mb = sb / n;
  return (sab / n - ma * mb) / Math.sqrt(ma * (1 - ma) * mb * (1 - mb));
}

Deno.test("Dropout keeps 1 - p of the values, scales them by float32 1/(1-p) and zeroes the rest", async () => {
  for (const p of [0.1, 0.5]) {
    const { y1 } = await run(maskGraph(p), dropoutKey(7, 0));
    let kept = 0;
    const scale = Math.fround(1 / (1 - p));
    for (const v of y1) {
      assert.ok(v === 0 || v === scale, `value ${v} is neither 0 nor ${scale}`);
      if (v) kept++;
    }
    const sd = Math.sqrt((p * (1 - p)) / N);
    assert.ok(Math.abs(kept / N - (1 - p)) < 4 * sd + 1 / DROPOUT_PRIME, `p ${p}: kept ${kept / N}`);
  }
});

Deno.test("Dropout draws are the same for the same key and uncorrelated between neighbours, rows, sites and keys", async () => {
  const model = maskGraph(0.5);
  const a = await run(model, dropoutKey(7, 0));
  const again = await run(model, dropoutKey(7, 0));
  assert.deepEqual(again.y1, a.y1);
  const b = await run(model, dropoutKey(7, 1));
  const c = await run(model, dropoutKey(8, 0));
  const shift = (x: Float32Array, k: number) => [x.subarray(0, N - k), x.subarray(k)] as const;
  const bound = 4 / Math.sqrt(N); // 4 standard errors of a correlation of independent draws
  const cases: [string, number][] = [
    ["next element", corr(...shift(a.y1, 1))],
    ["next row", corr(...shift(a.y1, SHAPE[2]))],
    ["next batch row", corr(...shift(a.y1, SHAPE[1] * SHAPE[2]))],
    ["second site", corr(a.y1, a.y2)],
    ["next step", corr(a.y1, b.y1)],
    ["another seed", corr(a.y1, c.y1)],
  ];
  for (const [what, r] of cases) assert.ok(Math.abs(r) < bound, `${what}: correlation ${r}`);
});

const gpu = await probeWebGpu();
Deno.test({
  name: "Dropout masks are bit-identical on WebGPU and on the CPU",
  ignore: !gpu.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const model = maskGraph(0.1);
    for (const k of [dropoutKey(7, 0), dropoutKey(7, 123456), DROPOUT_PRIME - 1]) {
      const cpu = await run(model, k), web = await run(model, k, "webgpu");
      assert.deepEqual(web.y1, cpu.y1);
      assert.deepEqual(web.y2, cpu.y2);
    }
  },
});

const CFG: AlbertConfig = {
  emb_size: 8,
  hidden_size: 12,
  feedforward_size: 16,
  heads_num: 2,
  layers_num: 2,
  hidden_act: "relu",
  max_seq_length: 16,
  dropout: 0,
  vocab_size: 40,
  factorized_embedding_parameterization: true,
  parameter_sharing: true,
  embedding: ["word", "pos", "seg"],
  encoder: "transformer",
  mask: "fully_visible",
  target: ["mlm", "sp"],
  data_processor: "albert",
};

function batch(salt: number): Batch {
  const T = 6, rows = 2;
  const src = new Int32Array(rows * T), seg = new Int32Array(rows * T), tgt = new Int32Array(rows * T);
  for (let i = 0; i < src.length; i++) {
    src[i] = 5 + ((i * 7 + salt) % 30);
    seg[i] = (i % T) < 3 ? 1 : 2;
    if (i % T === 2) tgt[i] = 6 + ((i + salt) % 30);
  }
  return { src, seg, tgtMlm: tgt, tgtSop: Int32Array.of(0, 1), batchSize: rows, seqLength: T };
}

async function losses(opts: { dropout: number; seed: number }, steps: number[]) {
  const t = await Trainer.create({
    task: pretrainTask(CFG),
    params: initParams(paramShapes(CFG), 3),
    device: "cpu",
    ...opts,
  });
  const out: number[] = [];
  for (const s of steps) {
    await t.step(batch(s), 1e-3);
    out.push((await t.takeStats()).sums.loss);
  }
  await t.dispose();
  return out;
}

Deno.test("Trainer --dropout: deterministic for a --seed, another seed draws other masks", async () => {
  const a = await losses({ dropout: 0.3, seed: 7 }, [1, 2]);
  const again = await losses({ dropout: 0.3, seed: 7 }, [1, 2]);
  const other = await losses({ dropout: 0.3, seed: 8 }, [1, 2]);
  assert.deepEqual(again, a);
  assert.ok(a.every((l, i) => l !== other[i]), "another seed, other masks, other losses");
});

Deno.test("Trainer --dropout: a run resumed after 2 steps (params, moments, micro-step 2) draws step 3's masks", async () => {
  const task = pretrainTask(CFG);
  const whole = await Trainer.create({ task, params: initParams(paramShapes(CFG), 3), device: "cpu", dropout: 0.3 });
  await whole.step(batch(1), 1e-3);
  await whole.step(batch(2), 1e-3);
  const params = await whole.params(), moments = await whole.moments();
  await whole.takeStats();
  await whole.step(batch(3), 1e-3);
  const want = (await whole.takeStats()).sums.loss;
  const resumed = await Trainer.create({ task, params, moments, device: "cpu", dropout: 0.3, startMicroStep: 2 });
  await resumed.step(batch(3), 1e-3);
  assert.equal((await resumed.takeStats()).sums.loss, want);
  assert.ok(maxDiff(await resumed.params(), await whole.params()) === 0);
  const restarted = await Trainer.create({ task, params, moments, device: "cpu", dropout: 0.3 }); // counter at 0
  await restarted.step(batch(3), 1e-3);
  assert.notEqual((await restarted.takeStats()).sums.loss, want, "the micro-step counter selects the masks");
  for (const t of [whole, resumed, restarted]) await t.dispose();
});

function maxDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  let d = 0;
  for (const [n, t] of a) {
    const x = t.data as Float32Array, y = b.get(n)!.data as Float32Array;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d;
}
