import assert from "node:assert/strict";
import { Graph } from "../graph/builder.ts";
import type { Tensor } from "../tensor.ts";
import { weightMatmul } from "./layers.ts";
import { dequantizeInt8, derivedName, deriveParams, nbitsBlockSize, quantizeRows } from "./quantize.ts";

const f32 = (shape: number[], values: number[]): Tensor => ({ dtype: "F32", shape, data: Float32Array.from(values) });

Deno.test("quantizeRows() maps each row's largest |w| to ±127 and every weight to within half a step", () => {
  const w = f32([3, 4], [0.5, -1, 0.25, 0.1, 0, 0, 0, 0, 3, 2.9, -0.01, 1.5]);
  const { q, scale } = quantizeRows(w);
  assert.deepEqual(Array.from(scale), [Math.fround(1 / 127), 1, Math.fround(3 / 127)]);
  assert.deepEqual(Array.from(q.subarray(0, 4)), [64, -127, 32, 13]);
  assert.deepEqual(Array.from(q.subarray(4, 8)), [0, 0, 0, 0]); // an all-zero row stays zero
  const d = w.data as Float32Array;
  for (let i = 0; i < d.length; i++) {
    const s = scale[Math.floor(i / 4)];
    assert.ok(Math.abs(q[i] * s - d[i]) <= s / 2 + 1e-7, `element ${i}`);
  }
});

Deno.test("nbitsBlockSize() is the largest power of two ≤ 1024 dividing the input size, and refuses sizes MatMulNBits cannot take", () => {
  assert.equal(nbitsBlockSize(768), 256);
  assert.equal(nbitsBlockSize(3072), 1024);
  assert.equal(nbitsBlockSize(128), 128);
  assert.equal(nbitsBlockSize(48), 16);
  assert.throws(() => nbitsBlockSize(100), /needs a multiple of 16\n {2}hint: use --dtype fp32/);
});

Deno.test("deriveParams() lays out int8 weights for MatMulInteger ([in,out]), MatMulNBits (uint8 +128, scale per block) and Attention's packed q/k/v", () => {
  const inSize = 32, out = 3;
  const w = f32([out, inSize], Array.from({ length: out * inSize }, (_, i) => Math.sin(i) * (1 + (i % 5))));
  const params = new Map<string, Tensor>([["lin.weight", w]]);
  const g = new Graph();
  const x = g.input("x", "F32", [2, inSize]);
  g.output(weightMatmul(g, "lin", x, inSize, out, { semantics: "hf", quantize: "matmul-integer" }), "a");
  g.output(weightMatmul(g, "lin", x, inSize, out, { semantics: "hf", quantize: "matmul-nbits" }), "b");
  const d = deriveParams(g, params);
  const { q, scale } = quantizeRows(w);
  const t = d.get(derivedName("lin.weight", "int8"))!;
  assert.deepEqual(t.shape, [inSize, out]);
  for (let r = 0; r < out; r++) for (let k = 0; k < inSize; k++) assert.equal(t.data[k * out + r], q[r * inSize + k]);
  assert.deepEqual(Array.from(d.get(derivedName("lin.weight", "int8_scale"))!.data as Float32Array), Array.from(scale));
  assert.deepEqual(Array.from(d.get(derivedName("lin.weight", "int8_zero"))!.data as Int8Array), [0, 0, 0]);
  const nb = d.get(derivedName("lin.weight", "nbits8"))!;
  assert.deepEqual(nb.shape, [out, 1, 32]);
  assert.deepEqual(Array.from(nb.data as Uint8Array), Array.from(q, (v) => v + 128));
  assert.deepEqual(
    Array.from(d.get(derivedName("lin.weight", "nbits8_scale"))!.data as Float32Array),
    Array.from(scale),
  );

  // Attention's weight [in, 3H]: column i*H + r is row r of linear_layers.i.
  const H = 2;
  const qkv = new Map<string, Tensor>();
  for (let i = 0; i < 3; i++) {
    qkv.set(`att.linear_layers.${i}.weight`, f32([H, H], [i * 10 + 1, i * 10 + 2, i * 10 + 3, i * 10 + 4]));
    qkv.set(`att.linear_layers.${i}.bias`, f32([H], [i + 0.5, i + 0.25]));
  }
  const g2 = new Graph();
  g2.output(g2.add(g2.input("y", "F32", [H * 3]), g2.param(derivedName("att", "qkv_bias"), [H * 3])), "z");
  g2.param(derivedName("att", "qkv_weight"), [H, 3 * H]);
  const d2 = deriveParams(g2, qkv);
  assert.deepEqual(Array.from(d2.get(derivedName("att", "qkv_weight"))!.data as Float32Array), [
    1,
    3,
    11,
    13,
    21,
    23,
    2,
    4,
    12,
    14,
    22,
    24,
  ]);
  assert.deepEqual(Array.from(d2.get(derivedName("att", "qkv_bias"))!.data as Float32Array), [
    0.5,
    0.25,
    1.5,
    1.25,
    2.5,
    2.25,
  ]);
  assert.throws(
    () => deriveParams(g2, new Map()),
    /Cannot compute "att#qkv_\w+": the model has no "att.linear_layers.0.weight"/,
  );
});

Deno.test("dequantizeInt8() reads int8 families back as q × scale [out, in]; quantizing that again gives the same int8 and scales", () => {
  const inSize = 48, out = 5;
  const w = f32([out, inSize], Array.from({ length: out * inSize }, (_, i) => Math.cos(i * 0.7) * (0.01 + (i % 7))));
  const g = new Graph();
  const x = g.input("x", "F32", [1, inSize]);
  g.output(weightMatmul(g, "lin", x, inSize, out, { semantics: "hf", quantize: "matmul-integer" }), "y");
  const file = deriveParams(g, new Map([["lin.weight", w], ["lin.bias", f32([out], [1, 2, 3, 4, 5])]]));
  file.delete("lin.weight"); // what model_quantized.onnx holds: the int8 family, no float weight
  const { params, count } = dequantizeInt8(file, "m.onnx");
  assert.equal(count, 1);
  assert.deepEqual([...params.keys()].sort(), ["lin.bias", "lin.weight"]);
  const back = params.get("lin.weight")!;
  assert.deepEqual(back.shape, [out, inSize]);
  const a = quantizeRows(w), b = quantizeRows(back);
  assert.deepEqual(b.q, a.q);
  assert.deepEqual(b.scale, a.scale);
  const bad = new Map(file);
  bad.set(derivedName("lin.weight", "int8_zero"), { dtype: "I8", shape: [out], data: Int8Array.of(0, 1, 0, 0, 0) });
  assert.throws(
    () => dequantizeInt8(bad, "m.onnx"),
    /Cannot read the int8 weights of "m.onnx": .*asymmetric\)\n {2}hint: /,
  );
  bad.delete(derivedName("lin.weight", "int8_scale"));
  assert.throws(() => dequantizeInt8(bad, "m.onnx"), /"lin.weight#int8_scale" is not F32 \[5\]/);
});
