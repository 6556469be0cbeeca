/**
 * The one table of gradient rules: for each ONNX op the model (and the training losses) emit, how
 * the gradient of the output (`dy`) maps to one gradient per input (`null` where an input has none
 * or is not needed). Rules may return gradients of the broadcast (output) shape: `grad.ts` reduces
 * them back to each input's shape, adds up fan-out and decides which nodes are visited. GELU and
 * LayerNorm are built from primitives by the model (core/model/layers.ts), so they need no rows
 * here; Softmax has a row (training graphs emit the fused op for the attention, for speed), and so do
 * the fused loss ops of losses.ts (`Graph.fused`: softmax cross-entropy, and the same behind a linear
 * output layer). Everything a rule emits is on the WebGPU EP's op list (DESIGN.md §3): no OneHot, no
 * int64 arithmetic; the scatter-add of an embedding gradient is either `MatMul(onehotᵀ, dy)` with
 * the one-hot built as `Equal(float ids, float iota)` (WebGPU) or `ScatterElements` with reduction add
 * (CPU, where it avoids the [N,V] one-hot; not `ScatterND`, whose CPU kernel races, see `scatterAddRows`). Mirrors tinygrad's `gradient.py` (one pattern per op).
 * Browser compatible: no Deno APIs.
 * @module
 */
import { A, type Graph, makeTensor, type Node, type Value } from "../graph/builder.ts";
import { constInts } from "../graph/shapes.ts";

/** How scatter-adds (Gather gradients) are written. */
export type ScatterMode = "matmul" | "scatter";

/** What a rule knows besides `dy` and the inputs. */
export interface GradContext {
  /** The node being differentiated. */
  node: Node;
  /** Its (first) output. */
  out: Value;
  /** Which inputs need a gradient (others may be returned as null). */
  need: boolean[];
  /** Scatter-add flavour for Gather gradients (default "matmul": runs everywhere). */
  scatter: ScatterMode;
}

/** One row of the table: gradient of each input given `dy` (same shape as the output). */
export type GradRule = (g: Graph, dy: Value, inputs: (Value | null)[], ctx: GradContext) => (Value | null)[];

function numShape(v: Value, what: string): number[] {
  if (v.shape.some((d) => typeof d !== "number")) {
    throw new RangeError(`Cannot differentiate ${what}: "${v.name}" has a symbolic shape [${v.shape}]`);
  }
  return v.shape as number[];
}

function attrInt(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  return a && a.type === "int" ? a.value : dflt;
}

function attrInts(n: Node, name: string): number[] | undefined {
  const a = n.attrs[name];
  return a && a.type === "ints" ? a.value : undefined;
}

function norm(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Gradient of a reduction: `dy` (with the reduced dims) broadcast back over `x`. */
function unreduce(g: Graph, dy: Value, x: Value, axes: number[] | undefined, keepdims: number): Value {
  const xs = numShape(x, "a reduction");
  const all = axes === undefined || axes.length === 0;
  const set = new Set(all ? xs.map((_, i) => i) : axes!.map((a) => norm(a, xs.length)));
  const kept = xs.map((d, i) => (set.has(i) ? 1 : d));
  const dyk = keepdims ? dy : g.reshape(dy, kept);
  return g.op("Expand", [dyk, g.ints(xs)]);
}

function reduceAxes(g: Graph, n: Node): number[] | undefined {
  if (n.op === "ReduceSum") {
    return n.inputs[1] ? constInts(g.constantOf(n.inputs[1])) : undefined;
  }
  return attrInts(n, "axes");
}

/** A float iota [1, n] constant (row ids as floats; exact below 2^24). */
function iota(g: Graph, n: number, dtype: Value["dtype"]): Value {
  return g.constant(makeTensor(dtype, [1, n], Array.from({ length: n }, (_, i) => i)));
}

/** The fused op (`Graph.fused`) around a "scatter" scatter-add: inputs [rows, ids], output the table. */
export const SCATTER_ADD_ROWS = "ScatterAddRows";

/**
 * Scatter-add of rows: `out[ids[i], :] += rows[i, :]` for a table of `rowsOut` rows.
 * `ids` [N] (any int dtype), `rows` [N, R] → [rowsOut, R]. Repeated ids add up in the order of `i`.
 * The "scatter" form is recorded as the fused op `SCATTER_ADD_ROWS`, so that a CPU trainer can take
 * the rows and ids instead of the table (training_graph.ts `eachGradient`).
 */
export function scatterAddRows(g: Graph, rows: Value, ids: Value, rowsOut: number, mode: ScatterMode): Value {
  const [n, r] = numShape(rows, "a scatter-add");
  if (mode === "scatter") {
    return g.fused(SCATTER_ADD_ROWS, [rows, ids], {}, () => {
      // NOTE: ScatterElements over the ids expanded to [N,R], not ScatterND [N,1]: onnxruntime's CPU
      // ScatterND splits the N updates over its threads with no care for repeated ids, so two threads
      // add into one row at once (lost updates: gradients off by whole rows, different every run;
      // DESIGN.md §6). Its ScatterElements splits the R columns and walks the ids in order in each.
      const id64 = ids.dtype === "I64" ? ids : g.cast(ids, "I64");
      const idx = g.op("Expand", [g.reshape(id64, [n, 1]), g.ints([n, r])]); // [N,1] -> [N,R]
      const zeros = g.op("Expand", [g.scalar(0, rows.dtype), g.ints([rowsOut, r])]); // [V,R]
      return [
        g.op("ScatterElements", [zeros, idx, rows], { axis: A.int(0), reduction: A.string("add") }, {
          shapes: [{ dtype: rows.dtype, shape: [rowsOut, r] }],
        }),
      ];
    })[0];
  }
  // NOTE: one-hot as Equal(float ids, float iota) — no OneHot / int64 arithmetic on WebGPU.
  const idsF = g.reshape(g.cast(ids, rows.dtype), [n, 1]); // [N,1]
  const onehot = g.cast(g.equal(idsF, iota(g, rowsOut, rows.dtype)), rows.dtype); // [N,V]
  return g.matmul(g.transpose(onehot, [1, 0]), rows); // [V,N] x [N,R] -> [V,R]
}

function gatherGrad(g: Graph, dy: Value, [table, ids]: (Value | null)[], ctx: GradContext): (Value | null)[] {
  if (!ctx.need[0]) return [null, null];
  const ts = numShape(table!, "Gather");
  const axis = norm(attrInt(ctx.node, "axis", 0), ts.length);
  const idShape = numShape(ids!, "Gather");
  if (axis === 0) {
    const rest = ts.slice(1);
    const r = rest.reduce((a, b) => a * b, 1);
    const nIds = idShape.reduce((a, b) => a * b, 1);
    const rows = g.reshape(dy, [nIds, r]); // [N,R]
    const flatIds = g.reshape(ids!, [nIds]);
    // Small tables (segment/position rows) take the one-hot product everywhere: it is cheap.
    const mode = ts[0] <= 512 ? "matmul" : ctx.scatter;
    const table2 = scatterAddRows(g, rows, flatIds, ts[0], mode); // [V,R]
    // A 2-D table needs no Reshape: a CPU step writes the gradient straight into its output buffer.
    return [ts.length === 2 ? table2 : g.reshape(table2, ts), null];
  }
  if (idShape.length === 0) {
    // Scalar index on axis > 0 (e.g. h[:, 0]): dy lacks that axis; put it back, masked to the index.
    const idsF = g.cast(ids!, dy.dtype);
    const maskShape = ts.map((d, i) => (i === axis ? d : 1));
    const pos = g.constant(makeTensor(dy.dtype, maskShape, Array.from({ length: ts[axis] }, (_, i) => i)));
    const mask = g.cast(g.equal(pos, idsF), dy.dtype); // [1,..,T,..,1]
    return [g.mul(g.unsqueeze(dy, [axis]), mask), null];
  }
  throw new RangeError(
    `Cannot differentiate Gather "${ctx.node.name}": axis ${axis} with non-scalar indices\n  hint: extend the Gather rule in core/autodiff/rules.ts`,
  );
}

function matmulGrad(g: Graph, dy: Value, [a, b]: (Value | null)[], ctx: GradContext): (Value | null)[] {
  const ar = a!.rank, br = b!.rank;
  if (ar < 2 || br < 2) {
    throw new RangeError(`Cannot differentiate MatMul "${ctx.node.name}": rank-1 operands are not supported`);
  }
  const swap = (v: Value) => g.transpose(v, [...Array(v.rank - 2).keys(), v.rank - 1, v.rank - 2]);
  // `x @ Wᵀ` (nn.Linear): use W itself, so the forward Transpose keeps one consumer and the
  // runtime folds it into the GEMM (transB) instead of materialising Wᵀ.
  const bp = b!.producer;
  const wT = br === 2 && bp?.op === "Transpose" && bp.inputs[0]!.rank === 2 ? bp.inputs[0]! : null;
  let da: Value | null = null, db: Value | null = null;
  if (ctx.need[0]) da = g.matmul(dy, wT ?? swap(b!)); // [...,M,N] x [...,N,K]
  if (ctx.need[1]) {
    if (br === 2 && ar > 2) {
      // A weight shared over the batch dims: flatten them so one GEMM computes the sum.
      const k = a!.shape[ar - 1], n = dy.shape[dy.rank - 1];
      const a2 = g.reshape(a!, [-1, k as number]); // [B*T,K]
      const dy2 = g.reshape(dy, [-1, n as number]); // [B*T,N]
      // dWᵀ written as (dyᵀ a)ᵀ: the Transpose rule's transpose then cancels against this one.
      db = wT ? g.transpose(g.matmul(g.transpose(dy2, [1, 0]), a2), [1, 0]) : g.matmul(g.transpose(a2, [1, 0]), dy2);
    } else if (wT) {
      db = g.transpose(g.matmul(g.transpose(dy, [1, 0]), a!), [1, 0]); // [K,N]
    } else {
      db = g.matmul(swap(a!), dy);
    }
  }
  return [da, db];
}

function gemmGrad(g: Graph, dy: Value, [a, b, c]: (Value | null)[], ctx: GradContext): (Value | null)[] {
  const n = ctx.node;
  const ta = attrInt(n, "transA", 0), tb = attrInt(n, "transB", 0);
  const alpha = n.attrs.alpha?.type === "float" ? n.attrs.alpha.value : 1;
  const beta = n.attrs.beta?.type === "float" ? n.attrs.beta.value : 1;
  const T = (v: Value) => g.transpose(v, [1, 0]);
  const scale = (v: Value, s: number) => (s === 1 ? v : g.mul(v, s));
  let da: Value | null = null, db: Value | null = null, dc: Value | null = null;
  // Y = alpha * op(A) op(B) + beta * C
  if (ctx.need[0]) da = scale(ta ? g.matmul(tb ? T(b!) : b!, T(dy)) : g.matmul(dy, tb ? b! : T(b!)), alpha);
  if (ctx.need[1]) db = scale(tb ? g.matmul(T(dy), ta ? T(a!) : a!) : g.matmul(ta ? a! : T(a!), dy), alpha);
  if (c && ctx.need[2]) dc = scale(dy, beta);
  return [da, db, dc];
}

function sliceGrad(g: Graph, dy: Value, inputs: (Value | null)[], ctx: GradContext): (Value | null)[] {
  const x = inputs[0]!;
  const xs = numShape(x, "Slice");
  const starts = constInts(g.constantOf(inputs[1]));
  const axes = constInts(g.constantOf(inputs[3])) ?? starts?.map((_, i) => i);
  const steps = constInts(g.constantOf(inputs[4] ?? null)) ?? starts?.map(() => 1);
  if (!starts || !axes || !steps || steps.some((s) => s !== 1)) {
    throw new RangeError(`Cannot differentiate Slice "${ctx.node.name}": needs constant starts/axes and step 1`);
  }
  const ys = numShape(ctx.out, "Slice");
  const before = xs.map(() => 0), after = xs.map(() => 0);
  axes.forEach((a0, i) => {
    const a = norm(a0, xs.length);
    const d = xs[a];
    const s = Math.min(Math.max(starts[i] < 0 ? starts[i] + d : starts[i], 0), d);
    before[a] = s;
    after[a] = d - s - ys[a];
  });
  const pad = g.op("Pad", [dy, g.ints([...before, ...after])], { mode: A.string("constant") }, {
    shapes: [{ dtype: dy.dtype, shape: xs }],
  });
  return [pad, null, null, null, null];
}

function concatGrad(g: Graph, dy: Value, inputs: (Value | null)[], ctx: GradContext): (Value | null)[] {
  const axis = norm(attrInt(ctx.node, "axis", 0), dy.rank);
  let at = 0;
  return inputs.map((x, i) => {
    const d = numShape(x!, "Concat")[axis];
    const s = at;
    at += d;
    return ctx.need[i] ? g.slice(dy, [s], [s + d], [axis]) : null;
  });
}

/**
 * `d logits` of a softmax cross-entropy given `d nll` [N] and the softmax `p` [N,C]: `dnll · (p − onehot)`.
 * CPU ("scatter"): subtract `dnll` at each label in place of a [N,C] one-hot (ScatterElements has no
 * WebGPU kernel); elsewhere the one-hot is `Equal(float labels, float iota)` (no OneHot / int64).
 */
function crossEntropyLogitsGrad(g: Graph, dnll: Value, p: Value, labels: Value, mode: ScatterMode): Value {
  const [n, classes] = numShape(p, "a softmax cross-entropy");
  const lab = g.unsqueeze(labels, [1]); // [N,1]
  const ck = g.unsqueeze(dnll, [1]); // [N,1]
  const pc = g.mul(p, ck);
  if (mode === "scatter") {
    return g.op("ScatterElements", [pc, lab, g.neg(ck)], { axis: A.int(1), reduction: A.string("add") }, {
      shapes: [{ dtype: p.dtype, shape: [n, classes] }],
    });
  }
  const onehot = g.cast(g.equal(g.cast(lab, p.dtype), iota(g, classes, p.dtype)), p.dtype); // [N,C]
  return g.sub(pc, g.mul(onehot, ck));
}

/**
 * `LinearSoftmaxCrossEntropy` (losses.ts): with `c = d nll` [K] and `G = softmax − onehot` [K,V],
 * `dW`, `db` come from one GEMM `[c·x, c]ᵀ G` ([E+1,K] × [K,V]) and `dx = c · (G W)`. On CPU the
 * one-hot part is subtracted from the small results (`−[c·x, c]` at the label columns, `−W[label]`)
 * instead of from the [K,V] softmax, which then stays untouched.
 */
function linearCrossEntropyGrad(g: Graph, dy: Value, [x, w, _b, labels]: (Value | null)[], ctx: GradContext) {
  const [k, e] = numShape(x!, "LinearSoftmaxCrossEntropy");
  const vocab = numShape(w!, "LinearSoftmaxCrossEntropy")[0];
  const p = ctx.node.outputs[2]; // softmax [K,V]
  const lab = g.unsqueeze(labels!, [1]); // [K,1]
  const ck = g.unsqueeze(dy, [1]); // [K,1]
  const cpu = ctx.scatter === "scatter";
  const gm = cpu ? p : g.sub(p, g.cast(g.equal(g.cast(lab, p.dtype), iota(g, vocab, p.dtype)), p.dtype)); // [K,V]
  let dx: Value | null = null, dW: Value | null = null, db: Value | null = null;
  if (ctx.need[0]) {
    const tw = cpu ? g.sub(g.matmul(p, w!), g.gather(w!, labels!)) : g.matmul(gm, w!); // [K,E] = G W
    dx = g.mul(tw, ck);
  }
  if (ctx.need[1] || ctx.need[2]) {
    const augT = g.transpose(g.concat([g.mul(x!, ck), ck], 1), [1, 0]); // [E+1,K]
    const dWbT = cpu
      ? g.op("ScatterElements", [
        g.matmul(augT, p),
        g.op("Expand", [g.transpose(lab, [1, 0]), g.ints([e + 1, k])]),
        g.neg(augT),
      ], {
        axis: A.int(1),
        reduction: A.string("add"),
      }, { shapes: [{ dtype: p.dtype, shape: [e + 1, vocab] }] })
      : g.matmul(augT, gm); // [E+1,V]
    dW = g.transpose(g.slice(dWbT, [0], [e], [0]), [1, 0]); // [E,V] -> [V,E]
    db = g.reshape(g.slice(dWbT, [e], [e + 1], [0]), [vocab]); // [1,V] -> [V]
  }
  return [dx, dW, db, null];
}

const reshapeBack: GradRule = (g, dy, [x]) => [g.reshape(dy, numShape(x!, "a reshape")), null];
const FLOATS = new Set(["F32", "F64", "F16", "BF16"]);

/**
 * UER-py's LayerNorm as a fused op (model/layers.ts `layerNorm`): `y = γ·d / (s + ε) + β` with
 * `d = x − mean(x)`, `s = sqrt(Σd² / (n−1))` over the last axis, outputs `[y, d, s]`. In closed form from
 * `d` and `s` alone, so a backward keeps one [...,n] tensor per LayerNorm (`d`) where the node-by-node
 * walk kept two (`d` and `γ·d/(s+ε)`): with `r = 1/(s+ε)` and `gγ = dy·γ`,
 * `dd = gγ·r − (Σ gγ·d)·r²·d / ((n−1)·s)`, `dx = dd − mean(dd)`, `dγ = dy·r·d`, `dβ = dy`.
 */
function uerLayerNormGrad(g: Graph, dy: Value, [x, gamma]: (Value | null)[], ctx: GradContext): (Value | null)[] {
  const [, d, s] = ctx.node.outputs;
  const n = numShape(x!, "UerLayerNorm").at(-1)!;
  const den = g.add(s, 1e-6); // [...,1], the forward's s + ε
  let dx: Value | null = null;
  if (ctx.need[0]) {
    const gg = g.mul(dy, gamma!);
    const coef = g.div(g.reduceSum(g.mul(gg, d), [-1]), g.mul(g.mul(den, den), g.mul(s, n - 1))); // [...,1]
    const dd = g.sub(g.div(gg, den), g.mul(d, coef));
    dx = g.sub(dd, g.reduceMean(dd, [-1]));
  }
  return [dx, ctx.need[1] ? g.mul(g.div(dy, den), d) : null, ctx.need[2] ? dy : null];
}

/**
 * Attention's `o = softmax(s) · v` as one fused op (model/layers.ts `attend`, outputs [o, p]). With
 * `dp = do·vᵀ`, softmax's backward needs each row's `Σ_T dp·p`, which equals `Σ_d do·o` (the sum over
 * the row's T·d products taken the other way round): a [...,S,d] product and reduction instead of a
 * [...,S,T] one. `ds = p·(dp − Σ_d do·o)`, `dv = pᵀ·do`.
 */
function softmaxMatMulGrad(g: Graph, dy: Value, [_s, v]: (Value | null)[], ctx: GradContext): (Value | null)[] {
  const [o, p] = ctx.node.outputs;
  const swap = (x: Value) => g.transpose(x, [...Array(x.rank - 2).keys(), x.rank - 1, x.rank - 2]);
  const ds = ctx.need[0] ? g.mul(p, g.sub(g.matmul(dy, swap(v!)), g.reduceSum(g.mul(dy, o), [-1], true))) : null;
  return [ds, ctx.need[1] ? g.matmul(swap(p), dy) : null];
}

/** Gradient rules, one row per ONNX op type; one gradient per input, null if none. */
export const GRAD_RULES: Record<string, GradRule> = {
  Add: (_g, dy) => [dy, dy],
  Sub: (g, dy, _x, c) => [dy, c.need[1] ? g.neg(dy) : null],
  Mul: (g, dy, [x, y], c) => [c.need[0] ? g.mul(dy, y!) : null, c.need[1] ? g.mul(dy, x!) : null],
  Div: (g, dy, [_x, y], c) => [
    c.need[0] ? g.div(dy, y!) : null,
    c.need[1] ? g.neg(g.div(g.mul(dy, c.out), y!)) : null, // d(x/y)/dy = -out/y
  ],
  Neg: (g, dy) => [g.neg(dy)],
  Pow: (g, dy, [x, e], c) => {
    const k = g.constantOf(e);
    if (k && k.shape.length === 0) {
      const p = Number(k.data[0]);
      const dx = p === 2 ? g.mul(g.mul(dy, x!), 2) : g.mul(g.mul(dy, g.pow(x!, p - 1)), p);
      return [dx, null];
    }
    return [
      c.need[0] ? g.mul(g.mul(dy, e!), g.div(c.out, x!)) : null,
      c.need[1] ? g.mul(g.mul(dy, c.out), g.log(x!)) : null,
    ];
  },
  Max: (g, dy, [x, y], c) => {
    const xWins = g.op("GreaterOrEqual", [x!, y!]);
    return [c.need[0] ? g.where(xWins, dy, 0) : null, c.need[1] ? g.where(xWins, 0, dy) : null];
  },
  Min: (g, dy, [x, y], c) => {
    const xWins = g.op("LessOrEqual", [x!, y!]);
    return [c.need[0] ? g.where(xWins, dy, 0) : null, c.need[1] ? g.where(xWins, 0, dy) : null];
  },
  // sign(x) from comparisons (Sign has no WebGPU kernel); 0 at 0 as torch
  Abs: (g, dy, [x]) => [g.mul(dy, g.sub(g.cast(g.greater(x!, 0), dy.dtype), g.cast(g.less(x!, 0), dy.dtype)))],
  Sqrt: (g, dy, _x, c) => [g.div(g.mul(dy, 0.5), c.out)],
  Exp: (g, dy, _x, c) => [g.mul(dy, c.out)],
  Log: (g, dy, [x]) => [g.div(dy, x!)],
  Reciprocal: (g, dy, _x, c) => [g.neg(g.mul(dy, g.mul(c.out, c.out)))],
  Tanh: (g, dy, _x, c) => [g.mul(dy, g.sub(1, g.mul(c.out, c.out)))],
  Sigmoid: (g, dy, _x, c) => [g.mul(dy, g.mul(c.out, g.sub(1, c.out)))],
  // From the output (y > 0 exactly where x > 0): the backward then keeps no pre-activation, one [B,T,F]
  // tensor per feed-forward application fewer (DESIGN.md §6). dy · float(y > 0), not Where(y > 0, dy, 0):
  // the same values (× 1 and × 0 are exact; −0 where dy < 0 is masked), and onnxruntime's CPU Where
  // takes 3× the time of Cast + Mul.
  Relu: (g, dy, _x, c) => [g.mul(dy, g.cast(g.greater(c.out, 0), dy.dtype))],
  // d erf(x) = 2/sqrt(pi) * exp(-x^2)
  Erf: (g, dy, [x]) => [g.mul(dy, g.mul(g.exp(g.neg(g.mul(x!, x!))), 2 / Math.sqrt(Math.PI)))],
  Where: (g, dy, _x, c) => [
    null,
    c.need[1] ? g.where(c.node.inputs[0]!, dy, 0) : null,
    c.need[2] ? g.where(c.node.inputs[0]!, 0, dy) : null,
  ],
  Cast: (g, dy, [x]) => [FLOATS.has(x!.dtype) ? (x!.dtype === dy.dtype ? dy : g.cast(dy, x!.dtype)) : null],
  MatMul: matmulGrad,
  Gemm: gemmGrad,
  Transpose: (g, dy, [x], c) => {
    const perm = attrInts(c.node, "perm") ?? x!.shape.map((_, i) => x!.rank - 1 - i);
    const inv = perm.map((_, i) => perm.indexOf(i));
    // Transpose of a Transpose that undoes it: pass the original through (no node).
    const p = dy.producer;
    if (p?.op === "Transpose") {
      const pp = attrInts(p, "perm") ?? dy.shape.map((_, i) => dy.rank - 1 - i);
      if (inv.every((j, i) => pp[j] === i)) return [p.inputs[0]!];
    }
    return [g.transpose(dy, inv)];
  },
  Reshape: reshapeBack,
  Unsqueeze: reshapeBack,
  Squeeze: reshapeBack,
  Flatten: reshapeBack,
  Expand: (_g, dy) => [dy, null], // grad.ts sums the broadcast dims
  ReduceSum: (g, dy, [x], c) => [unreduce(g, dy, x!, reduceAxes(g, c.node), attrInt(c.node, "keepdims", 1)), null],
  ReduceMean: (g, dy, [x], c) => {
    const xs = numShape(x!, "ReduceMean");
    const axes = reduceAxes(g, c.node);
    const all = axes === undefined || axes.length === 0;
    const count = all ? xs.reduce((a, b) => a * b, 1) : axes!.reduce((p, a) => p * xs[norm(a, xs.length)], 1);
    return [unreduce(g, g.div(dy, count), x!, axes, attrInt(c.node, "keepdims", 1))];
  },
  ReduceMax: (g, dy, [x], c) => {
    // Ties share the gradient equally (tinygrad); the softmax shift never reaches here (grad.ts detaches it).
    const axes = reduceAxes(g, c.node);
    const keep = attrInt(c.node, "keepdims", 1);
    const outK = unreduce(g, c.out, x!, axes, keep); // max broadcast over x
    const mask = g.cast(g.equal(x!, outK), x!.dtype);
    const count = g.reduceSum(mask, axes ?? x!.shape.map((_, i) => i), true);
    return [g.div(g.mul(mask, unreduce(g, dy, x!, axes, keep)), count)];
  },
  // NOTE: torch's softmax backward: dx = y ⊙ (dy − Σ_axis dy ⊙ y). A row of its own (STYLE asks for
  // primitives) because the fused op is several passes cheaper than max/sub/exp/sum/div and their rules.
  Softmax: (g, dy, _x, c) => {
    const y = c.out;
    return [g.mul(y, g.sub(dy, g.reduceSum(g.mul(dy, y), [attrInt(c.node, "axis", -1)], true)))];
  },
  Gather: gatherGrad,
  Slice: sliceGrad,
  Concat: concatGrad,
  // Fused ops (losses.ts): softmax cross-entropy, optionally behind a linear output layer.
  SoftmaxCrossEntropy: (g, dy, [_logits, labels], c) => [
    crossEntropyLogitsGrad(g, dy, c.node.outputs[1], labels!, c.scatter),
    null,
  ],
  LinearSoftmaxCrossEntropy: linearCrossEntropyGrad,
  SoftmaxMatMul: softmaxMatMulGrad,
  UerLayerNorm: uerLayerNormGrad,
};

/** Shape of a value as numbers, for rules and tests. */
export function staticShape(v: Value): number[] {
  return numShape(v, "a value");
}
