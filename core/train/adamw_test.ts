/**
 * UER-py's AdamW as graph nodes: the grouped update (`adamwUpdateAll`, small params as flat vectors)
 * gives bit-identical float32 results to one `adamwUpdate` per parameter, decay and no-decay groups
 * alike, on onnxruntime-node CPU. (Its numbers against UER-py are in tests/train_trace_test.ts.)
 */
import assert from "node:assert/strict";
import { Graph } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import {
  adamwInputs,
  adamwScalars,
  adamwUpdate,
  adamwUpdateAll,
  GROUP_BELOW,
  GROUP_SIZE,
  hasWeightDecay,
} from "./adamw.ts";

Deno.test("adamwUpdateAll() equals adamwUpdate() per parameter bit for bit (grouped small params, decay mask)", async () => {
  // More small params than one group holds, both decay groups, and one param above GROUP_BELOW.
  const specs: { name: string; shape: number[] }[] = [];
  for (let i = 0; i < GROUP_SIZE + 3; i++) {
    specs.push({ name: i % 3 === 0 ? `l${i}.bias` : i % 3 === 1 ? `l${i}.gamma` : `l${i}.weight`, shape: [3, i + 1] });
  }
  specs.push({ name: "big.weight", shape: [GROUP_BELOW / 64 + 1, 64] });
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.2;
  const feeds: Record<string, Tensor> = {};
  const { negLr, negLrWd } = adamwScalars(3e-3, 0.01);
  feeds.neg_lr = { dtype: "F32", shape: [], data: Float32Array.of(negLr) };
  feeds.neg_lr_wd = { dtype: "F32", shape: [], data: Float32Array.of(negLrWd) };
  const outputs = async (grouped: boolean) => {
    const g = new Graph();
    const lr = adamwInputs(g);
    const entries = specs.map(({ name, shape }) => ({
      name,
      p: g.input(`p.${name}`, "F32", shape),
      grad: g.input(`g.${name}`, "F32", shape),
      m: g.input(`m.${name}`, "F32", shape),
      v: g.input(`v.${name}`, "F32", shape),
    }));
    const ups = grouped
      ? adamwUpdateAll(g, entries, lr, 0.01)
      : entries.map((e) => adamwUpdate(g, e.name, e.p, e.grad, e.m, e.v, lr, 0.01));
    ups.forEach((u, i) => {
      g.output(u.p, `out.p.${specs[i].name}`);
      g.output(u.m, `out.m.${specs[i].name}`);
      g.output(u.v, `out.v.${specs[i].name}`);
    });
    if (grouped) assert.ok(g.nodes.filter((n) => n.op === "Split").length >= 2, "small params are grouped");
    for (const v of g.inputs()) {
      if (feeds[v.name]) continue;
      const n = (v.shape as number[]).reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, () => rnd());
      if (v.name.startsWith("v.")) data.forEach((x, i) => (data[i] = x * x)); // second moments ≥ 0
      feeds[v.name] = { dtype: "F32", shape: v.shape as number[], data };
    }
    const s = await createSession(toOnnx(g).model, { device: "cpu", threads: 1 });
    const out = await s.run(feeds);
    await s.release();
    return out;
  };
  const want = await outputs(false), got = await outputs(true);
  for (const k of Object.keys(want)) {
    assert.deepEqual(got[k].shape, want[k].shape, k);
    const a = got[k].data as Float32Array, b = want[k].data as Float32Array;
    const bad = a.findIndex((x, i) => !Object.is(x, b[i]));
    assert.equal(bad, -1, `${k}[${bad}]: grouped ${a[bad]} vs per-parameter ${b[bad]}`);
  }
  const small = specs.filter((s) => s.shape.reduce((a, b) => a * b, 1) < GROUP_BELOW);
  assert.ok(small.some((s) => hasWeightDecay(s.name)) && small.some((s) => !hasWeightDecay(s.name)));
});
