/**
 * Derived parameters: tensors an inference graph reads that are computed from a checkpoint's own
 * (UER-named) parameters rather than stored in it — the int8 weights of `--dtype q8` and the packed
 * query/key/value projection of onnxruntime's `Attention` kernel. A graph names them
 * `<base>#<kind>` (`derivedName`); `deriveParams(graph, params)` computes every one the graph uses.
 *
 * int8 weights are what onnxruntime's `quantize_dynamic(per_channel=True, weight_type=QInt8)` (the
 * tool behind transformers.js' q8 files) writes for a MatMul: per output row r of `W [out, in]`,
 * `scale[r] = max|W[r,:]| / 127`, `q[r,k] = round(W[r,k] / scale[r])` in [-127, 127], zero point 0.
 * Word embedding, position/segment tables, LayerNorms and biases stay float32.
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { Graph } from "../graph/builder.ts";
import type { Tensor } from "../tensor.ts";

/** Kinds of derived parameters (the part after `#`). */
export type DerivedKind =
  | "int8"
  | "int8_scale"
  | "int8_zero"
  | "nbits8"
  | "nbits8_scale"
  | "qkv_weight"
  | "qkv_bias";

/** The graph name of a parameter derived from `base` (a UER parameter name, or a module prefix for `qkv_*`). */
export function derivedName(base: string, kind: DerivedKind): string {
  return `${base}#${kind}`;
}

/**
 * The block size `MatMulNBits` quantizes along the input dimension with: the largest power of two
 * (≥ 16, as the op requires) that divides `inSize`, at most 1024, so that one scale per output row
 * repeats over whole blocks (per-row quantization expressed as blocks).
 */
export function nbitsBlockSize(inSize: number): number {
  let b = 16;
  if (inSize % b !== 0) {
    throw new RangeError(
      `Cannot quantize a linear with ${inSize} inputs for MatMulNBits: it needs a multiple of 16\n  hint: use --dtype fp32`,
    );
  }
  while (b < 1024 && inSize % (b * 2) === 0) b *= 2;
  return b;
}

/** Symmetric int8 of each row of `w [out, in]`: q [out, in] in [-127, 127] and scale [out] (all-zero rows: scale 1). */
export function quantizeRows(w: Tensor): { q: Int8Array; scale: Float32Array } {
  const [out, inSize] = w.shape;
  const data = w.data as Float32Array;
  const q = new Int8Array(out * inSize), scale = new Float32Array(out);
  for (let r = 0; r < out; r++) {
    const row = data.subarray(r * inSize, (r + 1) * inSize);
    let m = 0;
    for (let k = 0; k < inSize; k++) m = Math.max(m, Math.abs(row[k]));
    const s = m > 0 ? Math.fround(m / 127) : 1;
    scale[r] = s;
    for (let k = 0; k < inSize; k++) q[r * inSize + k] = Math.max(-127, Math.min(127, Math.round(row[k] / s)));
  }
  return { q, scale };
}

function need(params: Map<string, Tensor>, name: string, derived: string): Tensor {
  const t = params.get(name);
  if (!t) {
    throw new RangeError(
      `Cannot compute "${derived}": the model has no "${name}"\n  hint: the checkpoint lacks a weight the graph needs`,
    );
  }
  if (t.dtype !== "F32") throw new TypeError(`Cannot compute "${derived}": "${name}" is ${t.dtype}, not F32`);
  return t;
}

/** The tensors of one derived parameter family, keyed by full derived name. */
function derive(params: Map<string, Tensor>, base: string, kind: DerivedKind): Map<string, Tensor> {
  const name = derivedName(base, kind);
  const out = new Map<string, Tensor>();
  if (kind === "qkv_weight" || kind === "qkv_bias") {
    // Attention's packed projection: weight [in, 3H] = [W_q^T | W_k^T | W_v^T], bias [3H].
    const ws = [0, 1, 2].map((i) => need(params, `${base}.linear_layers.${i}.weight`, name));
    const bs = [0, 1, 2].map((i) => need(params, `${base}.linear_layers.${i}.bias`, name));
    const [H, inSize] = ws[0].shape;
    const packed = new Float32Array(inSize * 3 * H);
    ws.forEach((w, i) => {
      const d = w.data as Float32Array;
      for (let r = 0; r < H; r++) for (let k = 0; k < inSize; k++) packed[k * 3 * H + i * H + r] = d[r * inSize + k];
    });
    const bias = new Float32Array(3 * H);
    bs.forEach((b, i) => bias.set(b.data as Float32Array, i * H));
    out.set(derivedName(base, "qkv_weight"), { dtype: "F32", shape: [inSize, 3 * H], data: packed });
    out.set(derivedName(base, "qkv_bias"), { dtype: "F32", shape: [3 * H], data: bias });
    return out;
  }
  const w = need(params, base, name);
  const [rows, inSize] = w.shape;
  const { q, scale } = quantizeRows(w);
  if (kind.startsWith("int8")) {
    // MatMulInteger's B is [in, out]: the transpose of the rows.
    const t = new Int8Array(inSize * rows);
    for (let r = 0; r < rows; r++) for (let k = 0; k < inSize; k++) t[k * rows + r] = q[r * inSize + k];
    out.set(derivedName(base, "int8"), { dtype: "I8", shape: [inSize, rows], data: t });
    out.set(derivedName(base, "int8_scale"), { dtype: "F32", shape: [rows], data: scale });
    out.set(derivedName(base, "int8_zero"), { dtype: "I8", shape: [rows], data: new Int8Array(rows) });
    return out;
  }
  // MatMulNBits, 8 bits: B [out, in/block, block] as uint8 with the default zero point 128; one
  // scale per (row, block), the row's scale repeated.
  const block = nbitsBlockSize(inSize), blocks = inSize / block;
  const u = new Uint8Array(rows * inSize);
  for (let i = 0; i < u.length; i++) u[i] = q[i] + 128;
  const scales = new Float32Array(rows * blocks);
  for (let r = 0; r < rows; r++) scales.fill(scale[r], r * blocks, (r + 1) * blocks);
  out.set(derivedName(base, "nbits8"), { dtype: "U8", shape: [rows, blocks, block], data: u });
  out.set(derivedName(base, "nbits8_scale"), { dtype: "F32", shape: [rows * blocks], data: scales });
  return out;
}

/**
 * `params` plus every derived parameter `graph` reads (computed once each). The result can be baked
 * in (`toOnnx(g, { initializers })`) or fed.
 *
 * @example
 * ```ts
 * const g = inferenceGraph(cfg, { semantics: "hf", quantize: "matmul-integer" });
 * const bytes = toOnnx(g, { initializers: deriveParams(g, params) }).model;
 * ```
 */
export function deriveParams(graph: Graph, params: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map(params);
  for (const p of graph.params()) {
    if (out.has(p.name)) continue;
    const hash = p.name.lastIndexOf("#");
    if (hash < 0) continue; // a missing checkpoint param: toOnnx leaves it a graph input
    const kind = p.name.slice(hash + 1) as DerivedKind;
    for (const [k, t] of derive(params, p.name.slice(0, hash), kind)) out.set(k, t);
  }
  return out;
}

/**
 * The inverse of the `int8` family: `tensors` (an ONNX file's initializers, e.g. `onnx/model_quantized.onnx`)
 * with every `<base>#int8` / `#int8_scale` / `#int8_zero` triple replaced by `<base>` = q × scale as
 * float32 `[out, in]` (B is `[in, out]`). Quantizing the result again (`quantizeRows`) gives the same int8
 * values, so a q8 run of it is the file's own model. Other tensors pass through; `count` is how many
 * weights were read back.
 *
 * @example
 * ```ts
 * const { params } = dequantizeInt8(parseOnnxWeights(bytes, "model_quantized.onnx").tensors, "model_quantized.onnx");
 * ```
 */
export function dequantizeInt8(
  tensors: Map<string, Tensor>,
  source: string,
): { params: Map<string, Tensor>; count: number } {
  const params = new Map<string, Tensor>();
  let count = 0;
  const fail = (what: string): never => {
    throw new TypeError(
      `Cannot read the int8 weights of "${source}": ${what}\n  hint: re-export it with convert --to onnx`,
    );
  };
  for (const [name, t] of tensors) {
    if (name.endsWith("#int8_scale") || name.endsWith("#int8_zero")) continue;
    if (!name.endsWith("#int8")) {
      params.set(name, t);
      continue;
    }
    const base = name.slice(0, -"#int8".length);
    const scale = tensors.get(derivedName(base, "int8_scale")), zero = tensors.get(derivedName(base, "int8_zero"));
    if (t.dtype !== "I8" || t.shape.length !== 2) fail(`"${name}" is ${t.dtype} [${t.shape}], not a 2-d int8 matrix`);
    const [inSize, rows] = t.shape;
    if (!scale || scale.dtype !== "F32" || scale.shape.join() !== `${rows}`) {
      fail(`"${base}#int8_scale" is not F32 [${rows}]`);
    }
    if (zero && (zero.data as Int8Array).some((z) => z !== 0)) fail(`"${base}#int8_zero" is not all 0 (asymmetric)`);
    const q = t.data as Int8Array, s = scale!.data as Float32Array;
    const w = new Float32Array(rows * inSize);
    for (let r = 0; r < rows; r++) for (let k = 0; k < inSize; k++) w[r * inSize + k] = q[k * rows + r] * s[r];
    params.set(base, { dtype: "F32", shape: [rows, inSize], data: w });
    count++;
  }
  return { params, count };
}
