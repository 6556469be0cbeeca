/**
 * The host AdamW pass (adamw_host.ts) against the graph form (adamw.ts `adamwUpdate`, run by
 * onnxruntime-node): the same float32 bits after several steps, for lengths that do and do not fill
 * whole 4-lane vectors, both decay groups, and gradients handed over as one flat buffer.
 */
import assert from "node:assert/strict";
import { Graph } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { adamwInputs, adamwScalars, adamwUpdate, hasWeightDecay } from "./adamw.ts";
import { HostAdamw, hostAdamwBytes } from "./adamw_host.ts";
import type { ParamSpec } from "./task.ts";

const specs: ParamSpec[] = [
  { name: "a.weight", shape: [3, 5] }, // 15: a partial last vector
  { name: "a.bias", shape: [2] },
  { name: "ln.gamma", shape: [7] },
  { name: "b.weight", shape: [64, 33] },
  { name: "c.weight", shape: [1] },
];

function source(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.2;
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** `steps` graph AdamW steps (onnxruntime, one session) from the same start. */
async function graphSteps(
  start: Map<string, { p: Float32Array; m: Float32Array; v: Float32Array }>,
  grads: Map<string, Float32Array>[],
  lrs: number[],
  wd: number,
): Promise<Map<string, { p: Float32Array; m: Float32Array; v: Float32Array }>> {
  const g = new Graph();
  const lr = adamwInputs(g);
  for (const { name, shape } of specs) {
    const u = adamwUpdate(
      g,
      name,
      g.input(`p.${name}`, "F32", shape),
      g.input(`g.${name}`, "F32", shape),
      g.input(`m.${name}`, "F32", shape),
      g.input(`v.${name}`, "F32", shape),
      lr,
      wd,
    );
    g.output(u.p, `out.p.${name}`);
    g.output(u.m, `out.m.${name}`);
    g.output(u.v, `out.v.${name}`);
  }
  const s = await createSession(toOnnx(g).model, { device: "cpu", threads: 1 });
  let state = start;
  for (const [k, lrK] of lrs.entries()) {
    const { negLr, negLrWd } = adamwScalars(lrK, wd);
    const feeds: Record<string, Tensor> = {
      neg_lr: { dtype: "F32", shape: [], data: Float32Array.of(negLr) },
      neg_lr_wd: { dtype: "F32", shape: [], data: Float32Array.of(negLrWd) },
    };
    for (const { name, shape } of specs) {
      const st = state.get(name)!;
      feeds[`p.${name}`] = { dtype: "F32", shape, data: st.p };
      feeds[`m.${name}`] = { dtype: "F32", shape, data: st.m };
      feeds[`v.${name}`] = { dtype: "F32", shape, data: st.v };
      feeds[`g.${name}`] = { dtype: "F32", shape, data: grads[k].get(name)! };
    }
    const out = await s.run(feeds);
    state = new Map(specs.map(({ name }) => [name, {
      p: out[`out.p.${name}`].data as Float32Array,
      m: out[`out.m.${name}`].data as Float32Array,
      v: out[`out.v.${name}`].data as Float32Array,
    }]));
  }
  await s.release();
  return state;
}

for (const flat of [false, true]) {
  Deno.test(`HostAdamw.step() equals the graph AdamW bit for bit (${flat ? "flat gradient buffer" : "gradient slots"})`, async () => {
    const rnd = source(flat ? 11 : 7);
    const start = new Map(specs.map(({ name, shape }) => {
      const n = numel(shape);
      const v = Float32Array.from({ length: n }, () => rnd() ** 2);
      return [name, { p: Float32Array.from({ length: n }, rnd), m: Float32Array.from({ length: n }, rnd), v }];
    }));
    const lrs = [3e-3, 1e-3, 2e-4];
    const grads = lrs.map(() =>
      new Map(specs.map(({ name, shape }) => [name, Float32Array.from({ length: numel(shape) }, rnd)]))
    );
    const want = await graphSteps(start, grads, lrs, 0.01);

    const host = HostAdamw.create(specs)!;
    assert.ok(host, "the state fits a WebAssembly memory");
    for (const { name } of specs) {
      const s = host.slots.get(name)!, st = start.get(name)!;
      s.p.set(st.p);
      s.m.set(st.m);
      s.v.set(st.v);
    }
    for (const [k, lr] of lrs.entries()) {
      if (flat) {
        const buf = new Float32Array(specs.reduce((a, s) => a + numel(s.shape), 0));
        let off = 0;
        for (const { name } of specs) {
          buf.set(grads[k].get(name)!, off);
          off += grads[k].get(name)!.length;
        }
        host.step(lr, 0.01, buf);
      } else {
        for (const { name } of specs) host.slots.get(name)!.g.set(grads[k].get(name)!);
        host.step(lr, 0.01);
      }
    }
    for (const { name } of specs) {
      for (const part of ["p", "m", "v"] as const) {
        const a = host.slots.get(name)![part], b = want.get(name)![part];
        const bad = a.findIndex((x, i) => !Object.is(x, b[i]));
        assert.equal(bad, -1, `${part}.${name}[${bad}]: host ${a[bad]} vs graph ${b[bad]}`);
      }
    }
    assert.ok(specs.some((s) => hasWeightDecay(s.name)) && specs.some((s) => !hasWeightDecay(s.name)));
    // The padding after a partial vector stays zero: the next parameter's values are its own.
    assert.notDeepEqual(host.slots.get("a.bias")!.p, start.get("a.bias")!.p, "a.bias moved");
  });
}

Deno.test("HostAdamw.create() refuses state beyond a 4 GiB WebAssembly memory; a wrong flat buffer is named", () => {
  const huge: ParamSpec[] = [{ name: "w", shape: [2 ** 28 + 4] }]; // 4 tensors × 1 GiB + 64 B
  assert.ok(hostAdamwBytes(huge) > 2 ** 32);
  assert.equal(HostAdamw.create(huge), undefined);
  const host = HostAdamw.create(specs)!;
  assert.throws(() => host.step(1e-3, 0.01, new Float32Array(3)), /gradient buffer holds 3 values, not 2137/);
});
