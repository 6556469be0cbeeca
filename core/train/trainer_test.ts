/**
 * Trainer and step-graph behaviour on a small config (onnxruntime-node CPU): gradient accumulation
 * as UER-py (`loss / accumulation_steps`, one optimizer step per window), padding of a short last
 * batch, the gradients/apply split (the data-parallel hook) equal to the update graph, statistics
 * summed on the device and read only when taken, the WebGPU op rules, init. The numbers against
 * UER-py itself are in tests/train_trace_test.ts.
 */
import assert from "node:assert/strict";
import type { AlbertConfig } from "../config.ts";
import { BANNED_OPS, WEBGPU_OPS } from "../graph/webgpu_ops.ts";
import type { Tensor } from "../tensor.ts";
import { hasWeightDecay } from "./adamw.ts";
import { initialiseAbsent, initParams, Trainer } from "./trainer.ts";
import { type Batch, paramShapes, pretrainStats, pretrainTask } from "./pretrain_task.ts";
import { flatLayout, stepGraph } from "./training_graph.ts";
import { OrtStateStore } from "./state_store.ts";
import { syntheticBatch } from "../../tests/webgpu_steps.ts";

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

const task = pretrainTask(CFG);
const params = initParams(paramShapes(CFG), 3);

/** One step and its statistics. */
async function stepStats(t: Trainer<Batch>, b: Batch, lr: number) {
  await t.step(b, lr);
  return pretrainStats((await t.takeStats()).sums);
}

Deno.test("Trainer.step() with accumulationSteps 2 on [b, b] equals one step on b (loss / 2 accumulated)", async () => {
  const b = batch(3, 1);
  const one = await Trainer.create({ task, params, device: "cpu" });
  const two = await Trainer.create({ task, params, device: "cpu", accumulationSteps: 2 });
  const s1 = await stepStats(one, b, 1e-2);
  const a1 = await stepStats(two, b, 1e-2);
  assert.equal(maxDiff(await two.params(), params), 0, "no update inside the window");
  const a2 = await stepStats(two, b, 1e-2);
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
  const a = await Trainer.create({ task, params, device: "cpu" });
  await a.step(full, 1e-2); // graphs built for 4 rows
  await a.takeStats();
  const sa = await stepStats(a, short, 1e-2); // padded to 4 rows
  const b = await Trainer.create({ task, params, device: "cpu" });
  await b.step(full, 1e-2);
  const b2 = await Trainer.create({ task, params: await b.params(), moments: await b.moments(), device: "cpu" });
  const sb = await stepStats(b2, short, 1e-2); // 3-row graphs
  assert.equal(sa.batchSize, 3);
  assert.ok(Math.abs(sa.loss - sb.loss) <= 1e-6 && Math.abs(sa.lossSp - sb.lossSp) <= 1e-6);
  assert.equal(sa.correctSp, sb.correctSp);
  assert.equal(sa.nMasked, 6);
  assert.ok(maxDiff(await a.params(), await b2.params()) <= 1e-6);
  for (const t of [a, b, b2]) await t.dispose();
});

Deno.test("Trainer.takeStats() sums the steps since the last take, with per-step rows when statSlots allow", async () => {
  const bs = [batch(3, 1), batch(3, 2), batch(3, 3)];
  const each = await Trainer.create({ task, params, device: "cpu" });
  const per = [];
  for (const b of bs) per.push(await stepStats(each, b, 1e-2));
  const rows = await Trainer.create({ task, params, device: "cpu", statSlots: 4 });
  for (const b of bs) await rows.step(b, 1e-2);
  const taken = await rows.takeStats();
  assert.equal(taken.steps, 3);
  assert.deepEqual(taken.rows!.map((r) => r.loss), per.map((s) => s.loss));
  assert.ok(Math.abs(taken.sums.loss - per.reduce((a, s) => a + s.loss, 0)) <= 1e-5);
  assert.equal(taken.sums.instances, 9);
  assert.equal(taken.sums.n_masked, per.reduce((a, s) => a + s.nMasked, 0));
  const again = await rows.takeStats(); // reset by the take
  assert.deepEqual([again.steps, again.sums.loss, again.rows], [0, 0, []]);
  const sums = await Trainer.create({ task, params, device: "cpu" }); // one slot: sums only
  for (const b of bs) await sums.step(b, 1e-2);
  const s = await sums.takeStats();
  assert.equal(s.rows, null);
  assert.ok(Math.abs(s.sums.loss - taken.sums.loss) <= 1e-5);
  for (const t of [each, rows, sums]) await t.dispose();
});

Deno.test("Trainer with a gradient hook: one flat buffer per step, then the same update as without", async () => {
  const plain = await Trainer.create({ task, params, device: "cpu", accumulationSteps: 2 });
  const seen: number[] = [];
  const { total } = flatLayout(task.params);
  const buffer = new Float32Array(total);
  const hook = Object.assign((g: Float32Array) => {
    assert.equal(g, buffer, "CPU: the gradient graph wrote into the hook's buffer");
    seen.push(g.length);
    return g;
  }, { buffer });
  const split = await Trainer.create({ task, params, device: "cpu", accumulationSteps: 2, averageGradients: hook });
  for (const [i, b] of [batch(2, 1), batch(2, 2), batch(2, 3), batch(2, 4)].entries()) {
    await plain.step(b, 1e-2 * (i + 1));
    await split.step(b, 1e-2 * (i + 1));
  }
  assert.deepEqual(seen, [total, total], "the hook runs once per optimizer step");
  const d = maxDiff(await plain.params(), await split.params());
  assert.ok(d <= 1e-7, `hooked vs plain params differ by ${d}`);
  assert.ok(maxDiff(await split.params(), params) > 1e-4);
  const dm = maxDiff((await plain.moments()).v, (await split.moments()).v);
  assert.ok(dm <= 1e-9, `moments differ by ${dm}`);
  await plain.dispose();
  await split.dispose();
});

Deno.test("stepGraph() takes params, moments and sums as inputs and names their updates", () => {
  const shape = { batch: 2, seq: T, slots: 8 };
  const g = stepGraph(task, shape, { kind: "update", scatter: "scatter" });
  const ins = new Set(g.inputs().map((v) => v.name)), outs = new Set(g.outputs().map((v) => v.name));
  for (const { name } of task.params) {
    assert.ok(ins.has(`adam_m.${name}`) && ins.has(`adam_v.${name}`) && g.paramByName(name));
    assert.ok(outs.has(`updated.${name}`) && outs.has(`updated.adam_m.${name}`) && outs.has(`updated.adam_v.${name}`));
  }
  assert.ok(ins.has("stats") && outs.has("updated.stats"));
  assert.ok(![...g.constants.keys()].some((v) => v.tags.has("param")), "no parameter is baked in");
  const acc = stepGraph(task, shape, { kind: "accumulate", accumulated: true, scaled: true });
  assert.ok(acc.inputs().some((v) => v.name === "loss_scale"));
  assert.ok(acc.outputs().some((v) => v.name === `updated.grad_acc.${task.params[0].name}`));
  assert.ok(hasWeightDecay("embedding.word.embedding.weight") && !hasWeightDecay("encoder.linear.bias"));
  assert.ok(!hasWeightDecay("target.mlm.layer_norm.gamma") && !hasWeightDecay("embedding.layer_norm.beta"));
});

Deno.test("stepGraph() for WebGPU emits only ops of the WebGPU EP (none banned)", () => {
  const shape = { batch: 2, seq: T, slots: 8 };
  for (const kind of ["update", "accumulate", "gradients", "apply"] as const) {
    const g = stepGraph(task, shape, { kind, accumulated: kind !== "apply", scaled: true, statSlots: 3, dropout: 0.1 });
    for (const op of g.opTypes(g.outputs())) {
      assert.ok(WEBGPU_OPS.has(op) && !BANNED_OPS.has(op), `${kind}: ${op}`);
    }
  }
});

Deno.test("initParams() follows UER-py's init: N(0, 0.02) except gamma = 1 and beta = 0", () => {
  const p = initParams(paramShapes({ ...CFG, vocab_size: 3000 }), 11);
  assert.deepEqual([...p.keys()], paramShapes({ ...CFG, vocab_size: 3000 }).map((s) => s.name));
  assert.ok((p.get("target.mlm.layer_norm.gamma")!.data as Float32Array).every((x) => x === 1));
  assert.ok((p.get("embedding.layer_norm.beta")!.data as Float32Array).every((x) => x === 0));
  const w = p.get("embedding.word.embedding.weight")!.data as Float32Array;
  let s = 0, s2 = 0;
  for (const x of w) [s, s2] = [s + x, s2 + x * x];
  const mean = s / w.length, std = Math.sqrt(s2 / w.length - mean * mean);
  assert.ok(Math.abs(mean) < 1e-3 && Math.abs(std - 0.02) < 1e-3, `mean ${mean} std ${std}`);
  assert.ok((p.get("encoder.linear.bias")!.data as Float32Array).some((x) => x !== 0), "biases are drawn too");
  const again = () => initParams(paramShapes(CFG), 11).get("encoder.linear.weight");
  assert.deepEqual(again(), again());
});

Deno.test("initialiseAbsent() leaves absent heads as UER-py's fresh modules: nn.Linear's U(±1/√fan_in), LayerNorm 1/0", () => {
  const specs = paramShapes({ ...CFG, vocab_size: 3000 });
  const absent = specs.map((s) => s.name).filter((n) => n.startsWith("target.mlm.") || n === "target.sp.linear_2.bias");
  const p = initialiseAbsent(specs, absent, 5);
  assert.deepEqual([...p.keys()], absent);
  assert.ok((p.get("target.mlm.layer_norm.gamma")!.data as Float32Array).every((x) => x === 1));
  assert.ok((p.get("target.mlm.layer_norm.beta")!.data as Float32Array).every((x) => x === 0));
  // fan_in: the weight's columns (emb_size for the decoder, hidden_size for linear_1 and the SOP layer)
  for (
    const [name, fanIn] of [
      ["target.mlm.linear_2.weight", CFG.emb_size],
      ["target.mlm.linear_2.bias", CFG.emb_size],
      ["target.mlm.linear_1.weight", CFG.hidden_size],
      ["target.sp.linear_2.bias", CFG.hidden_size],
    ] as const
  ) {
    const d = p.get(name)!.data as Float32Array, bound = 1 / Math.sqrt(fanIn);
    assert.ok(d.every((x) => Math.abs(x) <= bound), name);
    if (d.length > 100) assert.ok(Math.max(...d.map(Math.abs)) > 0.9 * bound, `${name} spans its bound`);
  }
  assert.deepEqual(p.get("target.mlm.linear_2.weight")!.shape, [3000, CFG.emb_size]);
  assert.deepEqual(initialiseAbsent(specs, absent, 5), p, "deterministic per seed");
  assert.notDeepEqual(
    initialiseAbsent(specs, absent, 6).get("target.mlm.linear_1.weight"),
    p.get("target.mlm.linear_1.weight"),
  );
  assert.throws(() => initialiseAbsent(specs, ["target.nope.weight"], 5), /Cannot initialise "target.nope.weight"/);
});

Deno.test("Trainer.create() names a missing parameter", async () => {
  const partial = new Map(params);
  partial.delete("target.sp.linear_2.bias");
  await assert.rejects(
    () => Trainer.create({ task, params: partial, device: "cpu" }),
    /parameter "target.sp.linear_2.bias" is missing/,
  );
});

Deno.test("CPU threadProbe: runs switching between 2 threads and 1 give the same bits as either alone", async () => {
  // Big enough that onnxruntime splits kernels over both threads (the [K,V] GEMMs, the attention).
  const cfg: AlbertConfig = {
    ...CFG,
    emb_size: 32,
    hidden_size: 64,
    feedforward_size: 128,
    heads_num: 4,
    vocab_size: 21128,
  };
  const t = pretrainTask({ ...cfg, max_seq_length: 64 });
  const init = initParams(t.params, 3);
  const batches = [0, 1, 2].map((s) => syntheticBatch(8, 64, 21128, s));
  const train = async (threads: number, probe: false | { every: number }) => {
    const store = new OrtStateStore("cpu", { threads, threadProbe: probe });
    const tr = await Trainer.create({ task: t, params: init, store });
    for (let i = 0; i < 36; i++) await tr.step(batches[i % 3], 1e-3);
    const out = { params: await tr.params(), runs: store.runsByThreads };
    await tr.dispose();
    await store.dispose();
    return out;
  };
  const probed = await train(2, { every: 1 });
  const [two, one] = probed.runs;
  // The first probe runs each 5 times; later probes run the setting not in use 4 times once the one in
  // use has 8 recent runs to compare with: by step 36 at least one more, whatever the timings decide.
  assert.ok(two.threads === 2 && two.runs >= 9 && one.threads === 1 && one.runs >= 9, JSON.stringify(probed.runs));
  for (const other of [await train(2, false), await train(1, false)]) {
    for (const [name, p] of probed.params) {
      assert.deepEqual(
        new Uint32Array((p.data as Float32Array).buffer),
        new Uint32Array((other.params.get(name)!.data as Float32Array).buffer),
        name,
      );
    }
  }
});

Deno.test("CPU host AdamW (WebAssembly, word-embedding rows scattered on the host) gives the bits of AdamW in the graph", async () => {
  // A vocabulary over 512 rows: the word embedding's gradient is a scatter-add, taken as rows + ids.
  const cfg: AlbertConfig = { ...CFG, emb_size: 16, hidden_size: 32, feedforward_size: 64, vocab_size: 700 };
  const t = pretrainTask({ ...cfg, max_seq_length: 32 });
  const init = initParams(t.params, 5);
  const batches = [0, 1, 2].map((s) => syntheticBatch(4, 32, 700, s));
  const word = "embedding.word.embedding.weight";
  const shape = t.shapeFor(batches[0], []);
  const sparse = stepGraph(t, shape, { kind: "gradients", eachGradient: true, sparseRows: true, scatter: "scatter" });
  const outs = sparse.outputs().map((v) => v.name);
  assert.ok(outs.includes(`grad_rows.${word}`) && outs.includes(`grad_ids.${word}`) && !outs.includes(`grad.${word}`));
  const train = async (host: boolean, accumulationSteps: number) => {
    const store = new OrtStateStore("cpu", { threads: 1, threadProbe: false, hostAdamw: host });
    const tr = await Trainer.create({ task: t, params: init, store, accumulationSteps });
    for (let i = 0; i < 6; i++) await tr.step(batches[i % 3], 1e-3 * (1 + i));
    const out = { params: await tr.params(), ...(await tr.moments()) };
    await tr.dispose();
    await store.dispose();
    return out;
  };
  for (const acc of [1, 2]) {
    const [a, b] = [await train(true, acc), await train(false, acc)];
    for (const part of ["params", "m", "v"] as const) {
      for (const [name, x] of a[part]) {
        const bits = (m: Map<string, Tensor>) => new Uint32Array((m.get(name)!.data as Float32Array).slice().buffer);
        assert.deepEqual(bits(a[part]), bits(b[part]), `accumulation ${acc}: ${part} ${name}`);
        if (part === "params") assert.ok(maxDiff(new Map([[name, x]]), new Map([[name, init.get(name)!]])) > 0, name);
      }
    }
  }
});
