/**
 * Static shape and dtype inference for the ONNX ops the graph builder emits: one rule per op in
 * `SHAPE_RULES`, keyed by ONNX op type (opset 17 semantics). A dimension is a number or a symbol
 * (`"B"`, `"T"`, or a product such as `"B*T"` made by Reshape/flattening), so one inference graph
 * serves every batch size and sequence length while training graphs stay fully numeric.
 * Browser compatible: no Deno APIs.
 *
 * Adding an op: add a row to `SHAPE_RULES` (the autodiff engineer does so for ops their rules emit).
 * @module
 */
import type { DType, Tensor } from "../tensor.ts";
import type { Attr } from "./builder.ts";

/** A dimension: a number, or a symbol / product of symbols (`"T"`, `"B*T"`, `"4*T"`). */
export type Dim = number | string;

/** What inference knows about a value. */
export interface ValueInfo {
  dtype: DType;
  shape: Dim[];
}

/** Inputs of a rule: one info per node input (`null` for an omitted optional input). */
export type ShapeRule = (
  ins: (ValueInfo | null)[],
  attrs: Record<string, Attr>,
  consts: (Tensor | undefined)[],
) => ValueInfo[];

function fail(op: string, what: string): never {
  throw new RangeError(`Cannot infer the shape of ${op}: ${what}`);
}

/** Splits a dim into its numeric factor and sorted symbol factors. */
export function dimFactors(d: Dim): { n: number; s: string[] } {
  if (typeof d === "number") return { n: d, s: [] };
  let n = 1;
  const s: string[] = [];
  for (const part of d.split("*")) {
    if (/^\d+$/.test(part)) n *= Number(part);
    else s.push(part);
  }
  return { n, s: s.sort() };
}

/** Builds a dim from a numeric factor and symbols (inverse of `dimFactors`). */
export function makeDim(n: number, s: string[]): Dim {
  if (s.length === 0) return n;
  const syms = [...s].sort().join("*");
  return n === 1 ? syms : `${n}*${syms}`;
}

/** Product of dims (numbers multiply, symbols concatenate). */
export function dimProduct(dims: readonly Dim[]): Dim {
  let n = 1;
  const s: string[] = [];
  for (const d of dims) {
    const f = dimFactors(d);
    n *= f.n;
    s.push(...f.s);
  }
  return makeDim(n, s);
}

/** `a / b` for dims, or undefined when `b` does not divide `a`. */
function dimDivide(a: Dim, b: Dim): Dim | undefined {
  const fa = dimFactors(a), fb = dimFactors(b);
  if (fb.n === 0 || fa.n % fb.n !== 0) return undefined;
  const rest = [...fa.s];
  for (const s of fb.s) {
    const i = rest.indexOf(s);
    if (i < 0) return undefined;
    rest.splice(i, 1);
  }
  return makeDim(fa.n / fb.n, rest);
}

/** True when two dims are known to be equal. */
export function dimEqual(a: Dim, b: Dim): boolean {
  const fa = dimFactors(a), fb = dimFactors(b);
  return makeDim(fa.n, fa.s) === makeDim(fb.n, fb.s);
}

/** Numpy-style broadcast of shapes; throws when dims conflict. */
export function broadcastShapes(op: string, ...shapes: Dim[][]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      if (k < 0) continue;
      const e = s[k];
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (!dimEqual(d, e)) fail(op, `cannot broadcast [${shapes.map((x) => `[${x}]`).join(", ")}]`);
    }
    out.push(d);
  }
  return out;
}

function intsAttr(attrs: Record<string, Attr>, name: string): number[] | undefined {
  const a = attrs[name];
  return a && a.type === "ints" ? a.value : undefined;
}

function intAttr(attrs: Record<string, Attr>, name: string, dflt: number): number {
  const a = attrs[name];
  return a && a.type === "int" ? a.value : dflt;
}

/** The integer values of a constant input (I64/I32), or undefined if not constant. */
export function constInts(t: Tensor | undefined): number[] | undefined {
  if (!t) return undefined;
  if (t.data instanceof BigInt64Array) return Array.from(t.data, (v) => Number(v));
  if (t.data instanceof Int32Array) return Array.from(t.data);
  return undefined;
}

function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

function req(op: string, v: ValueInfo | null, i: number): ValueInfo {
  if (!v) fail(op, `input ${i} is required`);
  return v;
}

const unary: ShapeRule = (ins) => [{ dtype: ins[0]!.dtype, shape: [...ins[0]!.shape] }];
const binary = (op: string): ShapeRule => (ins) => {
  const a = req(op, ins[0], 0), b = req(op, ins[1], 1);
  if (a.dtype !== b.dtype) fail(op, `dtypes differ (${a.dtype} vs ${b.dtype})`);
  return [{ dtype: a.dtype, shape: broadcastShapes(op, a.shape, b.shape) }];
};
const compare = (op: string): ShapeRule => (ins) => {
  const [out] = binary(op)(ins, {}, []);
  return [{ dtype: "BOOL", shape: out.shape }];
};

function reduceShape(op: string, x: ValueInfo, axes: number[] | undefined, keepdims: number): Dim[] {
  const rank = x.shape.length;
  const all = axes === undefined || axes.length === 0;
  const set = new Set(all ? x.shape.map((_, i) => i) : axes!.map((a) => normAxis(op, a, rank)));
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

/** Output shape of a numpy-style matrix product (MatMul, MatMulInteger). */
function matmulShape(op: string, a: ValueInfo, b: ValueInfo): Dim[] {
  const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  const bs = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
  const k1 = as[as.length - 1], k2 = bs[bs.length - 2];
  if (!dimEqual(k1, k2)) fail(op, `inner dims differ: [${a.shape}] x [${b.shape}]`);
  const batch = broadcastShapes(op, as.slice(0, -2), bs.slice(0, -2));
  const out = [...batch, as[as.length - 2], bs[bs.length - 1]];
  if (a.shape.length === 1) out.splice(out.length - 2, 1);
  if (b.shape.length === 1) out.splice(out.length - 1, 1);
  return out;
}

/** ONNX TensorProto.DataType → our dtype (the inverse of `DTYPE_TO_ONNX`). */
export const ONNX_TO_DTYPE: Record<number, DType> = {
  1: "F32",
  2: "U8",
  3: "I8",
  5: "I16",
  6: "I32",
  7: "I64",
  9: "BOOL",
  10: "F16",
  11: "F64",
  16: "BF16",
};

/** ONNX TensorProto.DataType code of each dtype. */
export const DTYPE_TO_ONNX: Record<DType, number> = {
  F32: 1,
  U8: 2,
  I8: 3,
  I16: 5,
  I32: 6,
  I64: 7,
  BOOL: 9,
  F16: 10,
  F64: 11,
  BF16: 16,
};

/** Shape/dtype rule per ONNX op type (opset 17). */
export const SHAPE_RULES: Record<string, ShapeRule> = {
  Add: binary("Add"),
  Sub: binary("Sub"),
  Mul: binary("Mul"),
  Div: binary("Div"),
  Pow: (ins) => [{ dtype: ins[0]!.dtype, shape: broadcastShapes("Pow", ins[0]!.shape, ins[1]!.shape) }],
  Max: binary("Max"),
  Min: binary("Min"),
  Equal: compare("Equal"),
  Greater: compare("Greater"),
  Less: compare("Less"),
  GreaterOrEqual: compare("GreaterOrEqual"),
  LessOrEqual: compare("LessOrEqual"),
  Not: unary,
  And: compare("And"),
  Neg: unary,
  Abs: unary,
  Sqrt: unary,
  Exp: unary,
  Log: unary,
  Erf: unary,
  Tanh: unary,
  Relu: unary,
  Sigmoid: unary,
  Reciprocal: unary,
  Sign: unary,
  Floor: unary,
  Where: (ins) => {
    const c = req("Where", ins[0], 0), a = req("Where", ins[1], 1), b = req("Where", ins[2], 2);
    if (a.dtype !== b.dtype) fail("Where", `branch dtypes differ (${a.dtype} vs ${b.dtype})`);
    return [{ dtype: a.dtype, shape: broadcastShapes("Where", c.shape, a.shape, b.shape) }];
  },
  Cast: (ins, attrs) => {
    const to = intAttr(attrs, "to", -1);
    const dtype = ONNX_TO_DTYPE[to];
    if (!dtype) fail("Cast", `unknown target type ${to}`);
    return [{ dtype, shape: [...ins[0]!.shape] }];
  },
  MatMul: (ins) => {
    const a = req("MatMul", ins[0], 0), b = req("MatMul", ins[1], 1);
    if (a.dtype !== b.dtype) fail("MatMul", `dtypes differ (${a.dtype} vs ${b.dtype})`);
    return [{ dtype: a.dtype, shape: matmulShape("MatMul", a, b) }];
  },
  /** uint8/int8 matrix product with int32 accumulation (numpy matmul shapes). */
  MatMulInteger: (ins) => {
    const a = req("MatMulInteger", ins[0], 0), b = req("MatMulInteger", ins[1], 1);
    for (const v of [a, b]) if (v.dtype !== "U8" && v.dtype !== "I8") fail("MatMulInteger", `${v.dtype} is not 8-bit`);
    return [{ dtype: "I32", shape: matmulShape("MatMulInteger", a, b) }];
  },
  /** x → (uint8 x, float32 scale [], uint8 zero point []). */
  DynamicQuantizeLinear: (ins) => {
    const x = req("DynamicQuantizeLinear", ins[0], 0);
    if (x.dtype !== "F32") fail("DynamicQuantizeLinear", `input is ${x.dtype}, not F32`);
    return [{ dtype: "U8", shape: [...x.shape] }, { dtype: "F32", shape: [] }, { dtype: "U8", shape: [] }];
  },
  /** alpha·A'·B' + beta·C for 2-D A, B (transA/transB). */
  Gemm: (ins, attrs) => {
    const a = req("Gemm", ins[0], 0), b = req("Gemm", ins[1], 1);
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      fail("Gemm", `needs 2-D inputs, got [${a.shape}] and [${b.shape}]`);
    }
    const [m, k1] = intAttr(attrs, "transA", 0) ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = intAttr(attrs, "transB", 0) ? [b.shape[1], b.shape[0]] : b.shape;
    if (!dimEqual(k1, k2)) fail("Gemm", `inner dims differ: [${a.shape}] x [${b.shape}]`);
    return [{ dtype: a.dtype, shape: [m, n] }];
  },
  /** Y [x's shape], Mean and InvStdDev (x's shape with the normalised axes kept as 1). */
  LayerNormalization: (ins, attrs) => {
    const x = req("LayerNormalization", ins[0], 0);
    const axis = normAxis("LayerNormalization", intAttr(attrs, "axis", -1), x.shape.length);
    const stat = x.shape.map((d, i) => (i < axis ? d : 1));
    return [{ dtype: x.dtype, shape: [...x.shape] }, { dtype: "F32", shape: stat }, { dtype: "F32", shape: [...stat] }];
  },
  Softmax: unary,
  Transpose: (ins, attrs) => {
    const x = ins[0]!;
    const perm = intsAttr(attrs, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    if (perm.length !== x.shape.length) fail("Transpose", `perm [${perm}] does not fit rank ${x.shape.length}`);
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }];
  },
  Reshape: (ins, _attrs, consts) => {
    const x = ins[0]!;
    const target = constInts(consts[1]);
    if (!target) fail("Reshape", "the shape input must be a constant");
    const out: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i] : d));
    const minus = out.indexOf(-1);
    if (minus >= 0) {
      const known = dimProduct(out.filter((_, i) => i !== minus));
      const rest = dimDivide(dimProduct(x.shape), known);
      if (rest === undefined) fail("Reshape", `cannot reshape [${x.shape}] to [${target}]`);
      out[minus] = rest;
    } else if (!dimEqual(dimProduct(out), dimProduct(x.shape))) {
      fail("Reshape", `cannot reshape [${x.shape}] to [${target}]`);
    }
    return [{ dtype: x.dtype, shape: out }];
  },
  Unsqueeze: (ins, _attrs, consts) => {
    const x = ins[0]!;
    const axes = constInts(consts[1]);
    if (!axes) fail("Unsqueeze", "the axes input must be a constant");
    const rank = x.shape.length + axes.length;
    const set = new Set(axes.map((a) => normAxis("Unsqueeze", a, rank)));
    const out: Dim[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x.shape[k++]);
    return [{ dtype: x.dtype, shape: out }];
  },
  Squeeze: (ins, _attrs, consts) => {
    const x = ins[0]!;
    const axes = constInts(consts[1]);
    const set = new Set(
      axes ? axes.map((a) => normAxis("Squeeze", a, x.shape.length)) : x.shape.flatMap((d, i) => (d === 1 ? [i] : [])),
    );
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !set.has(i)) }];
  },
  ReduceSum: (ins, attrs, consts) => {
    const x = ins[0]!;
    const axes = constInts(consts[1]);
    if (ins[1] && !axes) fail("ReduceSum", "the axes input must be a constant");
    return [{ dtype: x.dtype, shape: reduceShape("ReduceSum", x, axes, intAttr(attrs, "keepdims", 1)) }];
  },
  ReduceMean: (ins, attrs) => [{
    dtype: ins[0]!.dtype,
    shape: reduceShape("ReduceMean", ins[0]!, intsAttr(attrs, "axes"), intAttr(attrs, "keepdims", 1)),
  }],
  ReduceMax: (ins, attrs) => [{
    dtype: ins[0]!.dtype,
    shape: reduceShape("ReduceMax", ins[0]!, intsAttr(attrs, "axes"), intAttr(attrs, "keepdims", 1)),
  }],
  ArgMax: (ins, attrs) => [{
    dtype: "I64",
    shape: reduceShape("ArgMax", ins[0]!, [intAttr(attrs, "axis", 0)], intAttr(attrs, "keepdims", 1)),
  }],
  Gather: (ins, attrs) => {
    const x = req("Gather", ins[0], 0), idx = req("Gather", ins[1], 1);
    if (idx.dtype !== "I64" && idx.dtype !== "I32") fail("Gather", `indices must be I64 or I32, got ${idx.dtype}`);
    const axis = normAxis("Gather", intAttr(attrs, "axis", 0), x.shape.length);
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
  },
  Slice: (ins, _attrs, consts) => {
    const x = ins[0]!;
    const starts = constInts(consts[1]), ends = constInts(consts[2]);
    const axes = constInts(consts[3]) ?? starts?.map((_, i) => i);
    const steps = constInts(consts[4]) ?? starts?.map(() => 1);
    if (!starts || !ends || !axes || !steps) fail("Slice", "starts/ends/axes/steps must be constants (or pass shape)");
    const out = [...x.shape];
    axes.forEach((a0, i) => {
      const a = normAxis("Slice", a0, x.shape.length);
      const d = x.shape[a];
      if (steps[i] !== 1) fail("Slice", "only step 1 is inferred (or pass shape)");
      if (typeof d !== "number") {
        if (starts[i] === 0 && ends[i] >= Number.MAX_SAFE_INTEGER / 2) return;
        fail("Slice", `cannot slice symbolic dim ${d} (pass shape)`);
      }
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
      out[a] = Math.max(0, clamp(ends[i]) - clamp(starts[i]));
    });
    return [{ dtype: x.dtype, shape: out }];
  },
  Shape: (ins, attrs) => {
    const r = ins[0]!.shape.length;
    const s = intAttr(attrs, "start", 0), e = intAttr(attrs, "end", r);
    const c = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    return [{ dtype: "I64", shape: [Math.max(0, c(e) - c(s))] }];
  },
  Concat: (ins, attrs) => {
    const xs = ins.map((v, i) => req("Concat", v, i));
    const axis = normAxis("Concat", intAttr(attrs, "axis", 0), xs[0].shape.length);
    const out = [...xs[0].shape];
    const parts = xs.map((x) => x.shape[axis]);
    out[axis] = parts.every((p) => typeof p === "number")
      ? (parts as number[]).reduce((a, b) => a + b, 0)
      : parts.join("+");
    return [{ dtype: xs[0].dtype, shape: out }];
  },
  Expand: (ins, _attrs, consts) => {
    const target = constInts(consts[1]);
    if (!target) fail("Expand", "the shape input must be a constant (or pass shape)");
    return [{ dtype: ins[0]!.dtype, shape: broadcastShapes("Expand", ins[0]!.shape, target) }];
  },
};

/** Runs the rule of `op`; throws naming the op when there is none. */
export function inferShapes(
  op: string,
  ins: (ValueInfo | null)[],
  attrs: Record<string, Attr>,
  consts: (Tensor | undefined)[],
): ValueInfo[] {
  const rule = SHAPE_RULES[op];
  if (!rule) {
    throw new TypeError(
      `Cannot infer the shape of ${op}: no rule in core/graph/shapes.ts\n  hint: add one to SHAPE_RULES or pass shapes`,
    );
  }
  return rule(ins, attrs, consts);
}
