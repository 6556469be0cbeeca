/**
 * Trainer and training-graph behaviour on a small config (onnxruntime-node CPU): gradient
 * accumulation as UER-py (`loss / accumulation_steps`, one optimizer step per window), padding of a
 * short last batch, the grad/update split equal to the fused graph, the WebGPU op rules, init.
 * The numbers against UER-py itself are in tests/train_trace_test.ts.
 */
import assert from "node:assert/strict";
import type { AlbertConfig } from "../config.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { BANNED_OPS, WEBGPU_OPS } from "../graph/webgpu_ops.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { adamwScalars, hasWeightDecay } from "./adamw.ts";
import { type Batch, initParams, Trainer } from "./trainer.ts";
import { names, paramShapes, trainingGraph } from "./training_graph.ts";

const CFG: AlbertConfig = {
  emb_size: 8,
  hidden_size: 12,
  feedforward_size: 16,
  heads_num: 2,
  layers_num: 2,
  hidden_act: "gelu",
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
const T = 6;

function batch(rows: number, salt: number): Batch {
  const src = new Int32Array(rows * T), seg = new Int32Array(rows * T), tgt = new Int32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const len = r % 2 ? T - 2 : T;
    for (let t = 0; t < len; t++) {
      const i = r * T + t;
      src[i] = t === 0 ? 1 : 5 + ((i * 7 + salt * 13) % 30);
      seg[i] = t < len / 2 ? 1 : 2;
      if (t === 2 || t === 3) tgt[i] = 6 + ((i + salt) % 30);
    }
  }
  return {
    src,
    seg,
    tgtMlm: tgt,
    tgtSop: Int32Array.from({ length: rows }, (_, r) => (r + salt) % 2),
    batchSize: rows,
    seqLength: T,
  };
}

function maxDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  let d = 0;
  for (const [n, t] of a) {
    const x = t.data as Float32Array, y = b.get(n)!.data as Float32Array;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d;
}

const params = initParams(CFG, 3);

Deno.test("Trainer.step() with accumulationSteps 2 on [b, b] equals one step on b (loss / 2 accumulated)", async () => {
  const b = batch(3, 1);
  const one = await Trainer.create({ config: CFG, params, device: "cpu" });
  const two = await Trainer.create({ config: CFG, params, device: "cpu", accumulationSteps: 2 });
  const s1 = await one.step(b, 1e-2);
  const a1 = await two.step(b, 1e-2);
  assert.equal(maxDiff(await two.params(), params), 0, "no update inside the window");
  const a2 = await two.step(b, 1e-2);
  assert.equal(a1.loss, s1.loss);
  assert.equal(a2.loss, s1.loss);
  assert.ok(maxDiff(await one.params(), params) > 1e-4, "the step moved the params");
  assert.ok(maxDiff(await one.params(), await two.params()) <= 1e-7);
  const m1 = await one.moments(), m2 = await two.moments();
  assert.ok(maxDiff(m1.m, m2.m) <= 1e-7 && maxDiff(m1.v, m2.v) <= 1e-9);
  // a second window reuses the accumulation graphs
  await two.step(batch(3, 2), 1e-2);
  await two.step(batch(3, 3), 1e-2);
  await one.step(batch(3, 2), 0);
  await one.dispose();
  await two.dispose();
});

Deno.test("Trainer.step() pads a short last batch with zero-weight rows without changing the numbers", async () => {
  const full = batch(4, 5), short = batch(3, 6);
  const a = await Trainer.create({ config: CFG, params, device: "cpu" });
  await a.step(full, 1e-2); // session built for 4 rows
  const sa = await a.step(short, 1e-2); // padded to 4 rows
  const b = await Trainer.create({ config: CFG, params, device: "cpu" });
  await b.step(full, 1e-2);
  const b2 = await Trainer.create({ config: CFG, params: await b.params(), moments: await b.moments(), device: "cpu" });
  const sb = await b2.step(short, 1e-2); // a 3-row session
  assert.equal(sa.batchSize, 3);
  assert.ok(Math.abs(sa.loss - sb.loss) <= 1e-6 && Math.abs(sa.lossSp - sb.lossSp) <= 1e-6);
  assert.equal(sa.correctSp, sb.correctSp);
  assert.equal(sa.nMasked, 6);
  assert.ok(maxDiff(await a.params(), await b2.params()) <= 1e-6);
  for (const t of [a, b, b2]) await t.dispose();
});

Deno.test("trainingGraph(): grad + update graphs equal the fused graph; params and moments are inputs", async () => {
  const B = 2, K = 8;
  const fused = trainingGraph(CFG, { kind: "fused", batch: B, seq: T, maskedSlots: K, scatter: "scatternd" });
  const gradG = trainingGraph(CFG, { kind: "grad", batch: B, seq: T, maskedSlots: K, scatter: "scatternd" });
  const upd = trainingGraph(CFG, { kind: "update", batch: B, seq: T, maskedSlots: K });
  const onnx = toOnnx(fused.graph).model;
  assert.ok(!fused.graph.constants.size || [...fused.graph.constants.keys()].every((v) => !v.tags.has("param")));
  const b = batch(B, 9);
  const pos = new Int32Array(K), lab = new Int32Array(K), w = new Float32Array(K);
  let k = 0;
  b.tgtMlm.forEach((id, i) => {
    if (id > 0) [pos[k], lab[k], w[k++]] = [i, id, 1];
  });
  const sc = adamwScalars(1e-2);
  const scalar = (x: number): Tensor => ({ dtype: "F32", shape: [], data: Float32Array.of(x) });
  const feeds: Record<string, Tensor> = {
    src: { dtype: "I32", shape: [B, T], data: b.src },
    seg: { dtype: "I32", shape: [B, T], data: b.seg },
    mlm_positions: { dtype: "I32", shape: [K], data: pos },
    mlm_labels: { dtype: "I32", shape: [K], data: lab },
    mlm_weights: { dtype: "F32", shape: [K], data: w },
    sop_labels: { dtype: "I32", shape: [B], data: b.tgtSop },
    sop_weights: { dtype: "F32", shape: [B], data: Float32Array.of(1, 1) },
    neg_lr: scalar(sc.negLr),
    neg_lr_wd: scalar(sc.negLrWd),
    loss_scale: scalar(1),
  };
  for (const { name, shape } of fused.params) {
    const p = params.get(name)!;
    feeds[name] = p;
    const v = Float32Array.from(p.data as Float32Array, (x) => x * x * 0.1);
    feeds[names.m(name)] = { dtype: "F32", shape, data: Float32Array.from(p.data as Float32Array, (x) => x * 0.3) };
    feeds[names.v(name)] = { dtype: "F32", shape, data: v };
  }
  const sf = await createSession(onnx, { device: "cpu", threads: 1 });
  const sg = await createSession(toOnnx(gradG.graph).model, { device: "cpu", threads: 1 });
  const su = await createSession(toOnnx(upd.graph).model, { device: "cpu", threads: 1 });
  for (const { name } of fused.params) {
    assert.ok(sf.inputNames.includes(name) && sf.inputNames.includes(names.m(name)));
    assert.ok(sf.outputNames.includes(names.updated(name)));
  }
  const pick = (s: typeof sf) => Object.fromEntries(s.inputNames.map((n) => [n, feeds[n]]));
  const of = await sf.run(pick(sf));
  const og = await sg.run(pick(sg));
  for (const { name } of fused.params) feeds[names.grad(name)] = og[names.grad(name)];
  const ou = await su.run(pick(su));
  assert.equal(of.loss.data[0], og.loss.data[0]);
  let d = 0;
  for (const k of su.outputNames) {
    const x = of[k].data as Float32Array, y = ou[k].data as Float32Array;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  assert.ok(d <= 1e-7, `fused vs split differ by ${d}`);
  // weight decay only outside the no_decay group
  assert.ok(hasWeightDecay("embedding.word.embedding.weight") && !hasWeightDecay("encoder.linear.bias"));
  assert.ok(!hasWeightDecay("target.mlm.layer_norm.gamma") && !hasWeightDecay("embedding.layer_norm.beta"));
  for (const s of [sf, sg, su]) await s.release();
});

Deno.test("trainingGraph() for WebGPU emits only ops of the WebGPU EP (none banned)", () => {
  for (const kind of ["fused", "grad", "update"] as const) {
    const { graph } = trainingGraph(CFG, { kind, batch: 2, seq: T, maskedSlots: 8, accumulate: kind !== "update" });
    for (const op of graph.opTypes(graph.outputs())) {
      assert.ok(WEBGPU_OPS.has(op) && !BANNED_OPS.has(op), `${kind}: ${op}`);
    }
  }
});

Deno.test("initParams() follows UER-py's init: N(0, 0.02) except gamma = 1 and beta = 0", () => {
  const p = initParams({ ...CFG, vocab_size: 3000 }, 11);
  assert.deepEqual([...p.keys()], paramShapes({ ...CFG, vocab_size: 3000 }).map((s) => s.name));
  assert.ok((p.get("target.mlm.layer_norm.gamma")!.data as Float32Array).every((x) => x === 1));
  assert.ok((p.get("embedding.layer_norm.beta")!.data as Float32Array).every((x) => x === 0));
  const w = p.get("embedding.word.embedding.weight")!.data as Float32Array;
  let s = 0, s2 = 0;
  for (const x of w) [s, s2] = [s + x, s2 + x * x];
  const mean = s / w.length, std = Math.sqrt(s2 / w.length - mean * mean);
  assert.ok(Math.abs(mean) < 1e-3 && Math.abs(std - 0.02) < 1e-3, `mean ${mean} std ${std}`);
  assert.ok((p.get("encoder.linear.bias")!.data as Float32Array).some((x) => x !== 0), "biases are drawn too");
  assert.deepEqual(initParams(CFG, 11).get("encoder.linear.weight"), initParams(CFG, 11).get("encoder.linear.weight"));
});

Deno.test("Trainer.create() names a missing parameter", async () => {
  const partial = new Map(params);
  partial.delete("target.sp.linear_2.bias");
  await assert.rejects(
    () => Trainer.create({ config: CFG, params: partial, device: "cpu" }),
    /parameter "target.sp.linear_2.bias" is missing/,
  );
});
