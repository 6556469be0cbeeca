import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { A, Graph } from "./builder.ts";
import { toOnnx } from "./onnx_proto.ts";
import { SHAPE_RULES } from "./shapes.ts";

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol + tol * Math.abs(b[i]), `[${i}] ${a[i]} vs ${b[i]}`);
  }
}

Deno.test("Graph.node() infers static and symbolic shapes", () => {
  const g = new Graph();
  const x = g.input("x", "F32", ["B", "T", 8]);
  const h = g.reshape(x, [0, 0, 2, 4]); // [B,T,2,4]
  assert.deepEqual(h.shape, ["B", "T", 2, 4]);
  const t = g.transpose(h, [0, 2, 1, 3]);
  assert.deepEqual(t.shape, ["B", 2, "T", 4]);
  const s = g.matmul(t, g.transpose(t, [0, 1, 3, 2]));
  assert.deepEqual(s.shape, ["B", 2, "T", "T"]);
  assert.deepEqual(g.reshape(x, [-1, 8]).shape, ["B*T", 8]);
  assert.deepEqual(g.reduceSum(x, [-1], false).shape, ["B", "T"]);
  assert.deepEqual(g.reduceMean(x, [2]).shape, ["B", "T", 1]);
  assert.deepEqual(g.unsqueeze(g.reduceMax(x, [2], false), [1, 2]).shape, ["B", 1, 1, "T"]);
  assert.throws(() => g.add(x, g.input("y", "F32", [3])), /cannot broadcast/);
  assert.throws(() => g.op("NoSuchOp", [x]), /no rule in core\/graph\/shapes.ts/);
  assert.ok(Object.keys(SHAPE_RULES).length > 30);
});

Deno.test("Graph.param() returns the same value for the same name (weight sharing)", () => {
  const g = new Graph();
  const a = g.param("encoder.transformer.layer_norm_1.gamma", [4]);
  assert.equal(g.param("encoder.transformer.layer_norm_1.gamma", [4]), a);
  assert.throws(() => g.param("encoder.transformer.layer_norm_1.gamma", [5]), /differs/);
  assert.deepEqual(g.params(), [a]);
});

Deno.test("Graph.output() names outputs at the producing node and refuses inputs", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [2]);
  assert.throws(() => g.output(x, "y"), /Identity/);
  const y = g.output(g.relu(x), "y");
  assert.equal(y.name, "y");
  assert.deepEqual(g.outputs(), [y]);
  assert.equal(g.consumers().get(x)?.[0].op, "Relu");
});

Deno.test("toOnnx() writes a model onnxruntime-node runs: softmax, erf, gather, reshape, baked params", async () => {
  const g = new Graph();
  const ids = g.input("ids", "I64", ["B", 3]);
  const table = g.param("emb.weight", [5, 4]);
  const w = g.param("lin.weight", [2, 4]);
  const e = g.gather(table, ids); // [B,3,4]
  const lin = g.matmul(e, g.transpose(w, [1, 0])); // [B,3,2]
  const m = g.reduceMax(lin, [-1]);
  const ex = g.exp(g.sub(lin, m));
  const sm = g.div(ex, g.reduceSum(ex, [-1]));
  g.output(sm, "softmax");
  g.output(g.erf(g.reshape(e, [-1, 2])), "erf_flat"); // [B*6, 2]
  g.output(g.op("Cast", [g.greater(g.cast(ids, "F32"), 1)], { to: A.int(1) }), "gt1");
  const tableData = Float32Array.from({ length: 20 }, (_, i) => Math.sin(i));
  const wData = Float32Array.from({ length: 8 }, (_, i) => Math.cos(i));
  const idsData = BigInt64Array.from([0n, 4n, 2n, 1n, 1n, 3n]);

  const check = (out: Record<string, ort.Tensor>) => {
    const sm = out.softmax.data as Float32Array;
    assert.deepEqual(out.softmax.dims, [2, 3, 2]);
    for (let r = 0; r < 6; r++) {
      const id = Number(idsData[r]);
      const l = [0, 1].map((o) => {
        let s = 0;
        for (let k = 0; k < 4; k++) s += tableData[id * 4 + k] * wData[o * 4 + k];
        return s;
      });
      const mx = Math.max(...l);
      const z = l.reduce((a, v) => a + Math.exp(v - mx), 0);
      close([sm[r * 2], sm[r * 2 + 1]], l.map((v) => Math.exp(v - mx) / z));
    }
    assert.deepEqual(out.erf_flat.dims, [12, 2]);
    assert.deepEqual(Array.from(out.gt1.data as Float32Array), [0, 1, 1, 0, 0, 1]);
  };

  const s1 = await ort.InferenceSession.create(toOnnx(g).model);
  assert.deepEqual(s1.inputNames, ["ids", "emb.weight", "lin.weight"]);
  check(
    await s1.run({
      ids: new ort.Tensor("int64", idsData, [2, 3]),
      "emb.weight": new ort.Tensor("float32", tableData, [5, 4]),
      "lin.weight": new ort.Tensor("float32", wData, [2, 4]),
    }),
  );
  const baked = toOnnx(g, {
    initializers: new Map([["emb.weight", { dtype: "F32", shape: [5, 4], data: tableData }], [
      "lin.weight",
      { dtype: "F32", shape: [2, 4], data: wData },
    ]]),
  });
  const s2 = await ort.InferenceSession.create(baked.model);
  assert.deepEqual(s2.inputNames, ["ids"]);
  check(await s2.run({ ids: new ort.Tensor("int64", idsData, [2, 3]) }));
  await s1.release();
  await s2.release();
});

Deno.test("toOnnx() moves big tensors to external data when asked", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [4]);
  g.output(g.add(x, g.param("p", [4])), "y");
  const p = { dtype: "F32" as const, shape: [4], data: new Float32Array([1, 2, 3, 4]) };
  const r = toOnnx(g, {
    initializers: new Map([["p", p]]),
    externalData: { location: "m.onnx_data", minBytes: 16 },
  });
  assert.equal(r.external?.location, "m.onnx_data");
  assert.equal(r.external?.byteLength, 16);
  assert.ok(new TextDecoder().decode(r.model).includes("m.onnx_data"));
});
