/**
 * Lowers a graph of the IR (core/graph: the same ONNX-op graph the onnxruntime path runs, from
 * `inferenceGraph` or `trainingGraph`) to the executor's kernel list. Walking the nodes in order, each
 * value becomes a lazy `Expr` (core/webgpu/expr.ts); only matrix products (MatMul, Gemm), reductions
 * (ReduceSum/Mean/Max, Softmax, LayerNormalization) and materializations create or extend kernels:
 * - an expression a consumer needs in memory is appended to the latest kernel that produces one of its
 *   inputs when it fits that kernel's index space (a bias + activation epilogue on a product, the
 *   normalised output of a LayerNorm reduction, the Adam moments next to the parameter update), or
 *   written through the inverse of a view (a product writing its transposed result straight into a
 *   gradient slot), or added as one more range of an elementwise kernel; otherwise a new kernel;
 * - a reduction whose input uses the results of an earlier reduction over the same rows becomes one
 *   more phase of that kernel (mean → variance → normalise in one dispatch);
 * - `ones · X` (the bias gradients `reduceToShape` writes as products) is a column reduction, and a
 *   product with a one-hot matrix built from integer ids the host supplies (embedding gradients)
 *   is a scatter-add over ids sorted on the host;
 * - outputs nobody reads are dropped at the end, with the kernels left without outputs.
 * The result (`Program`) names every buffer; core/webgpu/plan.ts places the activations in memory.
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { Graph, Node, Value } from "../graph/builder.ts";
import { constInts } from "../graph/shapes.ts";
import type { Tensor } from "../tensor.ts";
import {
  acc,
  type Buf,
  concat,
  contiguous,
  contiguousFull,
  cost,
  type DT,
  expand,
  type Expr,
  gather,
  gatherElements,
  iota,
  konst,
  leaves,
  load,
  numel,
  op,
  pad,
  permute,
  reshape,
  rewrite,
  rowval,
  size,
  slice,
  usesAxis,
  walk,
} from "./expr.ts";
import {
  canEmit,
  type EwKernel,
  type Kernel,
  kernelExprs,
  kernelOuts,
  kernelSpace,
  type MmKernel,
  type Out,
  type ReduceKernel,
  type ScatterKernel,
} from "./kernels.ts";

/** Where a graph output goes: into an existing buffer (in place), or a fresh buffer read by the host. */
export type OutTarget = { kind: "buf"; buf: Buf } | { kind: "host" };

/** Ids a scatter kernel reads sorted: the host sorts `n` ids read from `source` at `offset + i·stride`. */
export interface DerivedIds {
  source: Buf;
  offset: number;
  stride: number;
  n: number;
  sortedIds: Buf;
  perm: Buf;
}

/** A lowered graph. */
export interface Program {
  kernels: Kernel[];
  /** Activation buffers (placed by the memory plan). */
  acts: Buf[];
  /** Constant buffers with their data. */
  consts: Buf[];
  /** Host-read outputs by graph output name. */
  hostOutputs: Map<string, Buf>;
  /** Sorted-id arrays the host computes from inputs. */
  derived: DerivedIds[];
}

/** Options of `lowerGraph`. */
export interface LowerOptions {
  /** Graph input name → the buffer holding it (parameters, moments, batch inputs, scalars). */
  inputs: Map<string, Buf>;
  /** Graph output name → where it goes (outputs not listed are not computed). */
  outputs: Map<string, OutTarget>;
  /** Makes a buffer for the derived sorted ids of a scatter (in the integer input arena). */
  derivedBuf: (name: string, n: number) => Buf;
  /** Sizes of symbolic dims (e.g. `{ masked: 3 }`). */
  dims?: Record<string, number>;
}

const ONNX_DT: Record<number, "f32" | "i32" | "bool"> = { 1: "f32", 6: "i32", 7: "i32", 9: "bool" };

function dtOf(v: Value): DT {
  switch (v.dtype) {
    case "F32":
      return "f32";
    case "I32":
    case "I64":
      return "i32";
    case "BOOL":
      return "bool";
    default:
      throw new TypeError(`Cannot run a ${v.dtype} value ("${v.name}") on the WebGPU executor`);
  }
}

/** The numeric shape of `v`, symbols (`"masked"`, `"2*seq"`) resolved through `dims`. */
function staticShape(v: Value, dims: Record<string, number> = {}): number[] {
  return v.shape.map((d) => {
    if (typeof d === "number") return d;
    let n = 1;
    for (const f of d.split("*")) {
      const k = /^\d+$/.test(f) ? Number(f) : dims[f];
      if (k === undefined) {
        throw new RangeError(
          `Cannot lower "${v.name}": dim "${f}" of [${v.shape}] is symbolic\n  hint: pass its size in dims`,
        );
      }
      n *= k;
    }
    return n;
  });
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Inline an operand of a matrix product up to this cost per element; beyond it, write it once. */
const MM_INLINE_COST = 8;
/** A value read by several nodes is written once when recomputing it costs more than this. */
const SHARED_COST = 10;
/** Expressions are written once they grow past this many nodes (bounds the generated code). */
const MAX_NODES = 160;

/** Ops that evaluate an input expression in a kernel of their own (possibly many times per element). */
const HEAVY = new Set([
  "MatMul",
  "Gemm",
  "ReduceSum",
  "ReduceMean",
  "ReduceMax",
  "Softmax",
  "LayerNormalization",
  "Gather",
  "GatherElements",
]);

class Fail extends Error {}

/**
 * Lowers `g` to kernels.
 *
 * @example
 * ```ts
 * const prog = lowerGraph(g, { inputs, outputs: new Map([["mlm_logits", { kind: "host" }]]), derivedBuf });
 * console.log(prog.kernels.length); // dispatches per run
 * ```
 */
export function lowerGraph(g: Graph, opts: LowerOptions): Program {
  return new Lowering(g, opts).run();
}

class Lowering {
  kernels: Kernel[] = [];
  #producer = new Map<Buf, number>();
  #lastRead = new Map<Buf, number>();
  #vals = new Map<Value, Expr>();
  #acts: Buf[] = [];
  #consts: Buf[] = [];
  #derived: DerivedIds[] = [];
  #uses = new Map<Value, number>();
  /** Values read by a product, a reduction or a gather (see `#set`). */
  #heavy = new Set<Value>();
  #nextBuf = 1_000_000;

  constructor(readonly g: Graph, readonly opts: LowerOptions) {}

  run(): Program {
    const outs = this.g.outputs().filter((v) => this.opts.outputs.has(v.name));
    for (const name of this.opts.outputs.keys()) {
      if (!outs.some((v) => v.name === name)) throw new RangeError(`Cannot lower: the graph has no output "${name}"`);
    }
    const nodes = this.g.ancestors(outs);
    for (const n of nodes) {
      for (const v of n.inputs) {
        if (!v) continue;
        this.#uses.set(v, (this.#uses.get(v) ?? 0) + 1);
        if (HEAVY.has(n.op)) this.#heavy.add(v);
      }
    }
    for (const n of nodes) this.#node(n);
    const host = new Map<string, Buf>();
    for (const v of outs) {
      const t = this.opts.outputs.get(v.name)!;
      const e = this.#val(v);
      if (t.kind === "host") host.set(v.name, this.materialize(e, undefined, true));
      else this.materialize(e, { buf: t.buf, offset: 0 });
    }
    const keep = new Set<Buf>([...host.values()]);
    for (const t of this.opts.outputs.values()) if (t.kind !== "host") keep.add(t.buf);
    this.#dropDead(keep);
    return { kernels: this.kernels, acts: this.#acts, consts: this.#consts, hostOutputs: host, derived: this.#derived };
  }

  // ---- buffers ----

  #act(n: number, dt: DT, name: string): Buf {
    const b: Buf = {
      id: this.#nextBuf++,
      dt: dt === "i32" ? "i32" : "f32",
      size: n,
      arena: "A",
      offset: -1,
      role: "act",
      name,
    };
    this.#acts.push(b);
    return b;
  }

  #val(v: Value): Expr {
    const hit = this.#vals.get(v);
    if (hit) return hit;
    const t = this.g.constantOf(v);
    let e: Expr;
    if (t) e = this.#const(v, t);
    else if (v.tags.has("input") || v.tags.has("param")) {
      const buf = this.opts.inputs.get(v.name);
      if (!buf) throw new RangeError(`Cannot lower: no buffer for graph input "${v.name}"`);
      e = load(buf, staticShape(v, this.opts.dims), dtOf(v));
    } else throw new RangeError(`Cannot lower: "${v.name}" is used before it is computed`);
    this.#vals.set(v, e);
    return e;
  }

  #const(v: Value, t: Tensor): Expr {
    const shape = t.shape;
    const dt = dtOf(v);
    const vals: number[] = t.data instanceof BigInt64Array
      ? Array.from(t.data, Number)
      : Array.from(t.data as ArrayLike<number>);
    if (vals.length === 1) return konst(vals[0], shape, dt);
    // An iota along one axis (class ids for one-hots, positions): an index expression, no memory.
    const nonUnit = shape.map((d, i) => [d, i]).filter(([d]) => d !== 1);
    if (nonUnit.length === 1 && vals.every((x, i) => x === i)) return iota(shape, nonUnit[0][1], dt);
    const data = dt === "f32"
      ? Float32Array.from(vals)
      : Int32Array.from(vals.map((x) => (dt === "bool" ? (x ? 1 : 0) : x)));
    const buf: Buf = {
      id: this.#nextBuf++,
      dt: dt === "i32" ? "i32" : "f32",
      size: vals.length,
      arena: dt === "i32" ? "CI" : "CF",
      offset: -1,
      role: "const",
      name: v.name,
      data: dt === "bool" ? Float32Array.from(vals.map((x) => (x ? 1 : 0))) : data,
    };
    this.#consts.push(buf);
    return load(buf, shape, dt);
  }

  #constInts(v: Value | null, what: string): number[] {
    const x = constInts(this.g.constantOf(v));
    if (!x) throw new RangeError(`Cannot lower: ${what} must be a constant`);
    return x;
  }

  // ---- nodes ----

  #set(v: Value, e: Expr): void {
    const shape = staticShape(v, this.opts.dims);
    if (!same(shape, e.shape)) {
      throw new Error(`internal: "${v.name}" lowered to shape [${e.shape}], graph says [${shape}]`);
    }
    const uses = this.#uses.get(v) ?? 0;
    // Shared by a product or a reduction (each evaluates it in its own kernel): write it once when
    // dear; shared only by elementwise nodes (which usually end in one kernel, where the values are
    // computed once): only when very dear.
    const limit = this.#heavy.has(v) ? SHARED_COST : 6 * SHARED_COST;
    if ((uses > 1 && cost(e) > limit) || size(e) > MAX_NODES) e = load(this.materialize(e), e.shape, e.dt);
    this.#vals.set(v, e);
  }

  #node(n: Node): void {
    const x = (i: number) => this.#val(n.inputs[i]!);
    const out = n.outputs[0];
    const outShape = () => staticShape(out, this.opts.dims);
    const attrInt = (name: string, d: number) => (n.attrs[name]?.type === "int" ? n.attrs[name].value as number : d);
    const attrInts = (name: string) => (n.attrs[name]?.type === "ints" ? n.attrs[name].value as number[] : undefined);
    const norm = (a: number, r: number) => (a < 0 ? a + r : a);
    switch (n.op) {
      case "Add":
      case "Sub":
      case "Mul":
      case "Div":
      case "Pow":
      case "Max":
      case "Min":
      case "Equal":
      case "Greater":
      case "Less":
      case "GreaterOrEqual":
      case "LessOrEqual":
      case "And":
      case "Or":
      case "Where":
        return this.#set(out, op(n.op, n.inputs.map((_, i) => x(i))));
      case "Neg":
      case "Sqrt":
      case "Exp":
      case "Log":
      case "Erf":
      case "Tanh":
      case "Relu":
      case "Sigmoid":
      case "Reciprocal":
      case "Abs":
      case "Not":
        return this.#set(out, op(n.op, [x(0)]));
      case "Identity":
        return this.#set(out, x(0));
      case "Cast": {
        const to = ONNX_DT[attrInt("to", 1)];
        if (!to) throw new TypeError(`Cannot lower Cast "${n.name}": target type ${attrInt("to", 1)}`);
        return this.#set(out, op("Cast", [x(0)], to === "f32" ? 1 : to === "bool" ? 9 : 6));
      }
      case "Clip": {
        const lo = n.inputs[1] ? x(1) : konst(-Infinity);
        const hi = n.inputs[2] ? x(2) : konst(Infinity);
        return this.#set(out, op("Clip", [x(0), lo, hi]));
      }
      case "Transpose": {
        const r = out.rank;
        const perm = attrInts("perm") ?? [...Array(r).keys()].reverse();
        return this.#set(out, permute(x(0), perm));
      }
      case "Reshape":
      case "Unsqueeze":
      case "Squeeze":
      case "Flatten":
        return this.#set(out, reshape(x(0), outShape()));
      case "Expand":
        return this.#set(out, expand(x(0), outShape()));
      case "Slice": {
        const src = x(0);
        const r = src.shape.length;
        const starts = this.#constInts(n.inputs[1], "Slice starts");
        const axes = n.inputs[3] ? this.#constInts(n.inputs[3], "Slice axes") : starts.map((_, i) => i);
        const steps = n.inputs[4] ? this.#constInts(n.inputs[4], "Slice steps") : starts.map(() => 1);
        if (steps.some((s) => s !== 1)) throw new RangeError(`Cannot lower Slice "${n.name}": step ≠ 1`);
        const st = new Array(r).fill(0);
        axes.forEach((a0, i) => {
          const a = norm(a0, r), d = src.shape[a];
          st[a] = Math.min(Math.max(starts[i] < 0 ? starts[i] + d : starts[i], 0), d);
        });
        return this.#set(out, slice(src, st, outShape()));
      }
      case "Pad": {
        const pads = this.#constInts(n.inputs[1], "Pad pads");
        const r = out.rank;
        if (pads.some((p) => p < 0)) throw new RangeError(`Cannot lower Pad "${n.name}": negative pads`);
        return this.#set(out, pad(x(0), pads.slice(0, r), outShape()));
      }
      case "Concat": {
        const axis = norm(attrInt("axis", 0), out.rank);
        return this.#set(out, concat(n.inputs.map((_, i) => x(i)), axis));
      }
      case "Split": {
        const src = x(0);
        const axis = norm(attrInt("axis", 0), src.shape.length);
        let at = 0;
        n.outputs.forEach((o) => {
          const sh = staticShape(o, this.opts.dims);
          const st = src.shape.map(() => 0);
          st[axis] = at;
          at += sh[axis];
          this.#set(o, slice(src, st, sh));
        });
        return;
      }
      case "Gather": {
        const axis = norm(attrInt("axis", 0), n.inputs[0]!.rank);
        return this.#set(out, gather(x(0), x(1), axis));
      }
      case "GatherElements": {
        const axis = norm(attrInt("axis", 0), n.inputs[0]!.rank);
        return this.#set(out, gatherElements(x(0), x(1), axis));
      }
      case "ReduceSum":
      case "ReduceMean":
      case "ReduceMax": {
        const src = x(0);
        const r = src.shape.length;
        const given = n.op === "ReduceSum"
          ? (n.inputs[1] ? this.#constInts(n.inputs[1], "ReduceSum axes") : undefined)
          : attrInts("axes");
        const axes = given && given.length ? given.map((a) => norm(a, r)) : [...Array(r).keys()];
        let e = this.reduce(src, axes, n.op === "ReduceMax" ? "max" : "sum", outShape());
        if (n.op === "ReduceMean") e = op("Div", [e, konst(axes.reduce((p, a) => p * src.shape[a], 1))]);
        return this.#set(out, e);
      }
      case "Softmax": {
        const src = x(0);
        const axis = norm(attrInt("axis", -1), src.shape.length);
        return this.#set(out, load(this.softmax(src, axis), src.shape));
      }
      case "LayerNormalization": {
        const src = x(0);
        const r = src.shape.length;
        const axis = norm(attrInt("axis", -1), r);
        const eps = n.attrs.epsilon?.type === "float" ? n.attrs.epsilon.value as number : 1e-5;
        const axes = [...Array(r - axis).keys()].map((i) => axis + i);
        const cnt = axes.reduce((p, a) => p * src.shape[a], 1);
        const kshape = src.shape.map((d, i) => (i >= axis ? 1 : d));
        const mean = op("Div", [this.reduce(src, axes, "sum", kshape), konst(cnt)]);
        const d = op("Sub", [src, mean]);
        const v = op("Div", [this.reduce(op("Mul", [d, d]), axes, "sum", kshape), konst(cnt)]);
        let y = op("Div", [d, op("Sqrt", [op("Add", [v, konst(eps)])])]);
        y = op("Mul", [y, x(1)]);
        if (n.inputs[2]) y = op("Add", [y, x(2)]);
        return this.#set(out, y);
      }
      case "MatMul":
        return this.#set(out, this.matmul(x(0), x(1)));
      case "Gemm": {
        let a = x(0), b = x(1);
        if (attrInt("transA", 0)) a = permute(a, [1, 0]);
        if (attrInt("transB", 0)) b = permute(b, [1, 0]);
        const alpha = n.attrs.alpha?.type === "float" ? n.attrs.alpha.value as number : 1;
        const beta = n.attrs.beta?.type === "float" ? n.attrs.beta.value as number : 1;
        let y = this.matmul(a, b);
        if (alpha !== 1) y = op("Mul", [y, konst(alpha)]);
        if (n.inputs[2]) y = op("Add", [y, beta === 1 ? x(2) : op("Mul", [x(2), konst(beta)])]);
        return this.#set(out, y);
      }
      default:
        throw new TypeError(
          `Cannot run op ${n.op} ("${n.name}") on the WebGPU executor\n  hint: add it to core/webgpu/lower.ts, or use --device cpu`,
        );
    }
  }

  // ---- reductions ----

  /** Reduces `src` over `axes`; the result has shape `outShape` (kept dims in order, reduced ones 1 or dropped). */
  reduce(src: Expr, axes: number[], opName: "sum" | "max", outShape: readonly number[]): Expr {
    const r = src.shape.length;
    const set = new Set(axes);
    const keepAxes = [...Array(r).keys()].filter((a) => !set.has(a));
    const keep = keepAxes.map((a) => src.shape[a]), red = axes.map((a) => src.shape[a]);
    const e = permute(src, [...keepAxes, ...axes]);
    const buf = this.#reducePhase(e, keep, red, opName);
    return load(buf, outShape);
  }

  /** Adds a reduction phase (to an existing kernel over the same rows when possible); returns its result buffer. */
  #reducePhase(e: Expr, keep: number[], red: number[], opName: "sum" | "max"): Buf {
    const sig = `${opName}:${signature(e)}`;
    const lo = this.#minKernel(e);
    for (let ki = this.kernels.length - 1; ki >= Math.max(lo, 0); ki--) {
      const k = this.kernels[ki];
      if (k.k !== "reduce" || !same(k.keep, keep) || !same(k.red, red)) continue;
      // The same reduction already computed here: reuse its result.
      const dup = k.phases.findIndex((p) => p.sig === sig);
      if (dup >= 0) {
        const o = k.outs.find((o) => o.space !== "full" && o.expr.k === "rowval" && o.expr.phase === dup);
        if (o) return o.buf;
      }
      const sub = this.#substitute(k, e);
      if (!sub) continue;
      const buf = this.#act(numel(keep), "f32", "reduce");
      const p = k.phases.length;
      k.phases.push({ op: opName, expr: sub, sig });
      k.outs.push({ expr: rowval(keep, p, keep.length), buf, strides: contiguous(keep), offset: 0, space: "keep" });
      if (!canEmit(k)) {
        k.phases.pop();
        k.outs.pop();
        continue;
      }
      this.#recordKernel(ki, [sub], buf);
      return buf;
    }
    const buf = this.#act(numel(keep), "f32", "reduce");
    const k: ReduceKernel = {
      k: "reduce",
      keep,
      red,
      phases: [{ op: opName, expr: e, sig }],
      outs: [{ expr: rowval(keep, 0, keep.length), buf, strides: contiguous(keep), offset: 0, space: "keep" }],
      lanes: lanesFor(e, keep, red),
    };
    this.#push(k, [e], buf);
    return buf;
  }

  /** Softmax over `axis` (max, sum of exp, normalised output) in one reduce kernel; returns the output buffer. */
  softmax(src: Expr, axis: number): Buf {
    const r = src.shape.length;
    const keepAxes = [...Array(r).keys()].filter((a) => a !== axis);
    const perm = [...keepAxes, axis];
    const e = permute(src, perm);
    const keep = keepAxes.map((a) => src.shape[a]), red = [src.shape[axis]];
    const mx = load(this.#reducePhase(e, keep, red, "max"), [...keep, 1]);
    const ex = op("Exp", [op("Sub", [e, mx])]);
    const sm = load(this.#reducePhase(ex, keep, red, "sum"), [...keep, 1]);
    const y = op("Div", [ex, sm]);
    // Written in the input's layout (the permuted index space maps to it through the inverse permutation).
    const outBuf = this.#act(numel(src.shape), "f32", "softmax");
    const st = contiguous(src.shape);
    const out = { buf: outBuf, offset: 0, strides: perm.map((p) => st[p]) };
    this.materialize(y, out);
    return outBuf;
  }

  // ---- matrix products ----

  matmul(a0: Expr, b0: Expr): Expr {
    if (a0.shape.length < 2 || b0.shape.length < 2) throw new RangeError("Cannot lower MatMul with a rank-1 operand");
    const batch = [...broadcastBatch(a0.shape.slice(0, -2), b0.shape.slice(0, -2))];
    const [M, K] = a0.shape.slice(-2), N = b0.shape[b0.shape.length - 1];
    let a = expand(a0, [...batch, M, K]), b = expand(b0, [...batch, K, N]);
    const nb = batch.length;
    // ones · X (bias gradients): a column sum.
    if (a.k === "const") {
      const s = this.reduce(b, [nb], "sum", [...batch, 1, N]);
      return expand(a.v === 1 ? s : op("Mul", [s, konst(a.v)]), [...batch, M, N]);
    }
    if (nb === 0) {
      const sc = this.#tryScatter(a, b);
      if (sc) return sc;
    }
    if (cost(a) > MM_INLINE_COST) a = load(this.materialize(a), a.shape);
    if (cost(b) > MM_INLINE_COST) b = load(this.materialize(b), b.shape);
    // Few output tiles over a long K (e.g. [K,V]·[V,E]): split K over workgroups, then sum the parts.
    const tiles = Math.ceil(M / 64) * Math.ceil(N / 64) * numel(batch);
    if (tiles < 32 && K >= 1024) {
      const kc = splitSize(K);
      const S = Math.ceil(K / kc);
      const parts = this.matmul(splitK(a, nb + 1, S, kc), splitK(b, nb, S, kc)); // [S, ...batch, M, N]
      return this.reduce(parts, [0], "sum", [...batch, M, N]);
    }
    const shape = [...batch, M, N];
    const buf = this.#act(numel(shape), "f32", "matmul");
    const k: MmKernel = {
      k: "mm",
      batch,
      M,
      N,
      K,
      a,
      b,
      outs: [{ expr: acc(shape), buf, strides: contiguous(shape), offset: 0 }],
    };
    this.#push(k, [a, b], buf);
    return load(buf, shape);
  }

  /**
   * A product `onehot(ids)ᵀ · rows` with `onehot[v, n] = (ids[n] == v)` and `ids` read from a host
   * input: a scatter-add of the rows of `b` by id (no [V, N] matrix).
   */
  #tryScatter(a: Expr, b: Expr): Expr | undefined {
    const [V, N] = a.shape;
    let eq = a;
    if (eq.k === "op" && eq.op === "Cast" && eq.args[0].dt === "bool") eq = eq.args[0];
    else return undefined;
    if (eq.k !== "op" || eq.op !== "Equal") return undefined;
    const [p, q] = eq.args;
    const isRowIota = (x: Expr) => x.k === "iota" && x.axis === 0 && x.start === 0;
    const other = isRowIota(p) ? q : isRowIota(q) ? p : undefined;
    if (!other || usesAxis(other, 0)) return undefined;
    let ids = reshape(slice(other, [0, 0], [1, N]), [N]);
    if (ids.k === "op" && ids.op === "Cast") ids = ids.args[0];
    if (ids.k !== "load" || ids.dt !== "i32" || ids.buf.role !== "input") return undefined;
    const src = ids;
    let d = this.#derived.find((x) =>
      x.source === src.buf && x.offset === src.offset && x.stride === src.strides[0] && x.n === N
    );
    if (!d) {
      d = {
        source: src.buf,
        offset: src.offset,
        stride: src.strides[0],
        n: N,
        sortedIds: this.opts.derivedBuf(`${src.buf.name}.sorted`, N),
        perm: this.opts.derivedBuf(`${src.buf.name}.perm`, N),
      };
      this.#derived.push(d);
    }
    const R = b.shape[1];
    let rows = b;
    if (cost(rows) > MM_INLINE_COST) rows = load(this.materialize(rows), rows.shape);
    const shape = [V, R];
    const buf = this.#act(V * R, "f32", "scatter");
    const k: ScatterKernel = {
      k: "scatter",
      V,
      R,
      N,
      rows,
      sortedIds: d.sortedIds,
      perm: d.perm,
      outs: [{ expr: acc(shape), buf, strides: contiguous(shape), offset: 0 }],
    };
    this.#push(k, [rows], buf);
    return load(buf, shape);
  }

  // ---- materialization ----

  /**
   * Writes `e` to memory (a fresh buffer, or `target`), fusing it into an existing kernel when it fits.
   * With `fresh`, a plain view of an existing buffer is still copied (host outputs own their buffer).
   */
  materialize(e: Expr, target?: { buf: Buf; offset: number; strides?: number[] }, fresh = false): Buf {
    if (
      !target && !fresh && e.k === "load" && e.offset === 0 && e.buf.size === numel(e.shape) &&
      same(e.strides, contiguous(e.shape))
    ) {
      return e.buf;
    }
    const buf = target?.buf ?? this.#act(numel(e.shape), e.dt, "value");
    const strides = target?.strides ?? contiguous(e.shape);
    const offset = target?.offset ?? 0;
    if (e.k === "concat") {
      // Each part straight into its place (e.g. every gradient into its slot of one flat buffer).
      let at = 0;
      for (const p of e.parts) {
        this.materialize(p, { buf, offset: offset + at * strides[e.axis], strides });
        at += p.shape[e.axis];
      }
      return buf;
    }
    const out: Out = { expr: e, buf, strides, offset };
    // In-place targets: after every kernel that reads or writes them so far.
    let lo = this.#minKernel(e);
    if (target) lo = Math.max(lo, this.#lastRead.get(buf) ?? -1, this.#producer.get(buf) ?? -1);
    for (let ki = this.kernels.length - 1; ki >= Math.max(lo, 0); ki--) {
      if (this.#append(ki, out, false)) return buf;
    }
    if (this.#retarget(e, out, lo)) return buf;
    // A new range of the last kernel when it is elementwise (so consecutive materializations, e.g. the
    // AdamW update of every parameter, share one dispatch).
    const last = this.kernels.length - 1;
    if (last >= Math.max(lo, 0) && this.kernels[last].k === "ew" && this.#append(last, out, true)) return buf;
    const k: EwKernel = { k: "ew", ranges: [{ shape: [...e.shape], outs: [out] }] };
    this.#push(k, [e], buf);
    return buf;
  }

  /** The first kernel index at which all of `e`'s inputs exist. */
  #minKernel(e: Expr): number {
    let lo = -1;
    for (const b of leaves(e)) lo = Math.max(lo, this.#producer.get(b) ?? -1);
    return lo;
  }

  /** Tries to add `out` to kernel `ki` (same index space, own outputs read only where held). */
  #append(ki: number, out: Out, newRange: boolean): boolean {
    const k = this.kernels[ki];
    const sp = kernelSpace(k);
    const shape = out.expr.shape;
    if (k.k === "ew") {
      for (const r of k.ranges) {
        if (!same(r.shape, shape)) continue;
        const sub = this.#substitute(k, out.expr, r.shape);
        if (!sub) continue;
        const o = { ...out, expr: sub };
        r.outs.push(o);
        if (canEmit(k)) return this.#recordKernel(ki, [sub], out.buf), true;
        r.outs.pop();
      }
      // A new range: independent of this kernel's outputs.
      if (!newRange || this.#readsOuts(k, out.expr)) return false;
      k.ranges.push({ shape: [...shape], outs: [out] });
      if (canEmit(k)) return this.#recordKernel(ki, [out.expr], out.buf), true;
      k.ranges.pop();
      return false;
    }
    let space: "full" | "keep";
    if (same(shape, sp.full)) space = "full";
    else if (sp.keep && same(shape, sp.keep)) space = "keep";
    else return false;
    const sub = this.#substitute(k, out.expr);
    if (!sub) return false;
    const o: Out = { ...out, expr: sub, ...(k.k === "reduce" ? { space } : {}) };
    (k.outs as Out[]).push(o);
    if (canEmit(k)) return this.#recordKernel(ki, [sub], out.buf), true;
    (k.outs as Out[]).pop();
    return false;
  }

  /**
   * Writes `out` from the kernel that produced the buffer `e` views, through the inverse of the view
   * (transposes and slices of a product's result go straight to their destination).
   */
  #retarget(e: Expr, out: Out, lo: number): boolean {
    if (e.k !== "load") return false;
    const ki = this.#producer.get(e.buf);
    if (ki === undefined || ki < lo) return false;
    const k = this.kernels[ki];
    const src = kernelOuts(k).find((o) => o.buf === e.buf && !o.guards);
    if (!src) return false;
    const sp = kernelSpace(k);
    const oshape = src.space === "keep"
      ? sp.keep!
      : k.k === "ew"
      ? k.ranges.find((r) => r.outs.includes(src))!.shape
      : sp.full;
    if (src.offset !== 0 || !same(src.strides, contiguous(oshape)) || e.buf.size !== numel(oshape)) return false;
    const cs = contiguousFull(oshape);
    const starts = oshape.map((d, q) => Math.floor(e.offset / cs[q]) % d);
    if (starts.reduce((a, s, q) => a + s * cs[q], 0) !== e.offset) return false;
    const strides = oshape.map(() => 0);
    const guards: { dim: number; lo: number; hi: number }[] = [];
    const used = new Set<number>();
    for (let d = 0; d < e.shape.length; d++) {
      if (e.shape[d] === 1) continue;
      const q = src.strides.findIndex((s, qq) => s === e.strides[d] && oshape[qq] > 1 && !used.has(qq));
      if (q < 0) return false;
      used.add(q);
      if (starts[q] + e.shape[d] > oshape[q]) return false;
      strides[q] = out.strides[d];
      if (starts[q] > 0 || e.shape[d] < oshape[q]) guards.push({ dim: q, lo: starts[q], hi: starts[q] + e.shape[d] });
    }
    oshape.forEach((d, q) => {
      if (!used.has(q) && d > 1) guards.push({ dim: q, lo: starts[q], hi: starts[q] + 1 });
    });
    const o: Out = { expr: src.expr, buf: out.buf, strides, offset: out.offset, ...(guards.length ? { guards } : {}) };
    if (k.k === "reduce") o.space = src.space;
    const list = k.k === "ew" ? k.ranges.find((r) => r.outs.includes(src))!.outs : k.outs;
    list.push(o);
    if (canEmit(k)) return this.#recordKernel(ki, [], out.buf), true;
    list.pop();
    return false;
  }

  /** True when `e` reads a buffer kernel `k` writes. */
  #readsOuts(k: Kernel, e: Expr): boolean {
    const mine = new Set(kernelOuts(k).map((o) => o.buf));
    for (const b of leaves(e)) if (mine.has(b)) return true;
    return false;
  }

  /**
   * Replaces reads of `k`'s own outputs in `e` by the values the kernel holds (the accumulator, a
   * reduction result, an output's expression), or returns undefined when `e` reads them elsewhere.
   * `rangeShape` selects the range of an elementwise kernel.
   */
  #substitute(k: Kernel, e: Expr, rangeShape?: number[]): Expr | undefined {
    const sp = kernelSpace(k);
    const outs = k.k === "ew" ? k.ranges.find((r) => same(r.shape, rangeShape!))?.outs ?? [] : k.outs;
    const others = new Set(kernelOuts(k).map((o) => o.buf));
    try {
      return rewrite(e, (x) => {
        if (x.k !== "load" || !others.has(x.buf)) return undefined;
        const o = outs.find((o) => o.buf === x.buf && !o.guards);
        if (!o) throw new Fail();
        const ospace = o.space === "keep" ? sp.keep! : k.k === "ew" ? rangeShape! : sp.full;
        if (x.offset !== o.offset) throw new Fail();
        if (same(x.shape, ospace) && same(x.strides, o.strides)) return o.expr;
        if (o.space === "keep" && same(x.shape, sp.full)) {
          const kr = sp.keep!.length;
          if (same(x.strides.slice(0, kr), o.strides) && x.strides.slice(kr).every((s) => s === 0)) {
            return expand(reshape(o.expr, [...sp.keep!, ...sp.full.slice(kr).map(() => 1)]), sp.full);
          }
        }
        throw new Fail();
      });
    } catch (err) {
      if (err instanceof Fail) return undefined;
      throw err;
    }
  }

  #push(k: Kernel, exprs: Expr[], out: Buf): void {
    this.kernels.push(k);
    this.#recordKernel(this.kernels.length - 1, exprs, out);
  }

  #recordKernel(ki: number, exprs: Expr[], out: Buf): void {
    this.#producer.set(out, Math.max(this.#producer.get(out) ?? -1, ki));
    for (const e of exprs) for (const b of leaves(e)) this.#lastRead.set(b, Math.max(this.#lastRead.get(b) ?? -1, ki));
  }

  /** Drops outputs nobody reads (and kernels left without outputs), until nothing changes. */
  #dropDead(keep: Set<Buf>): void {
    for (;;) {
      const read = new Set<Buf>();
      for (const k of this.kernels) {
        for (const e of kernelExprs(k)) walk(e, (x) => x.k === "load" && read.add(x.buf));
        if (k.k === "scatter") read.add(k.sortedIds).add(k.perm);
      }
      let changed = false;
      const live = (o: Out) => o.buf.role !== "act" || read.has(o.buf) || keep.has(o.buf);
      for (const k of this.kernels) {
        if (k.k === "ew") {
          for (const r of k.ranges) {
            const n = r.outs.length;
            r.outs = r.outs.filter(live);
            changed ||= r.outs.length !== n;
          }
          k.ranges = k.ranges.filter((r) => r.outs.length > 0);
        } else {
          const n = k.outs.length;
          k.outs = k.outs.filter(live);
          changed ||= k.outs.length !== n;
        }
      }
      const n = this.kernels.length;
      this.kernels = this.kernels.filter((k) => kernelOuts(k).length > 0);
      changed ||= this.kernels.length !== n;
      if (!changed) break;
    }
    const used = new Set<Buf>();
    for (const k of this.kernels) {
      for (const e of kernelExprs(k)) walk(e, (x) => x.k === "load" && used.add(x.buf));
      for (const o of kernelOuts(k)) used.add(o.buf);
    }
    this.#acts = this.#acts.filter((b) => used.has(b));
    this.#consts = this.#consts.filter((b) => used.has(b));
  }
}

/** A chunk of K near 512 that divides it when one exists (then the split is a plain reshape). */
function splitSize(K: number): number {
  let best = 0;
  for (let c = 256; c <= 2048; c++) if (K % c === 0 && (!best || Math.abs(c - 512) < Math.abs(best - 512))) best = c;
  return best || 512;
}

/** `e` with its `axis` (length K) cut into S chunks of `kc` (zero-padded), the chunk index moved to the front. */
function splitK(e: Expr, axis: number, S: number, kc: number): Expr {
  const K = e.shape[axis];
  let x = e;
  if (S * kc !== K) {
    const sh = [...e.shape];
    sh[axis] = S * kc;
    x = pad(e, e.shape.map(() => 0), sh);
  }
  x = reshape(x, [...x.shape.slice(0, axis), S, kc, ...x.shape.slice(axis + 1)]);
  const r = x.shape.length;
  return permute(x, [axis, ...[...Array(r).keys()].filter((d) => d !== axis)]);
}

function broadcastBatch(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== 1 && y !== 1 && x !== y) throw new RangeError(`Cannot broadcast MatMul batch dims [${a}] and [${b}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Lanes of a reduction: along the rows when the reduced dims are contiguous in memory, else columns. */
function lanesFor(e: Expr, keep: number[], red: number[]): { keep: number; red: number } {
  let rowMajor = false;
  const kr = keep.length;
  walk(e, (x) => {
    if (x.k === "load" && red.length && x.strides[kr + red.length - 1] === 1) rowMajor = true;
  });
  const nRed = red.reduce((a, b) => a * b, 1), nKeep = keep.reduce((a, b) => a * b, 1);
  if (rowMajor || nKeep === 1) {
    let t = 32;
    while (t < nRed && t < 256) t *= 2;
    return { keep: 1, red: t };
  }
  return { keep: 16, red: 16 };
}

/** A structural key of an expression (same key = same values). */
export function signature(e: Expr): string {
  const memo = new Map<number, string>();
  const s = (x: Expr): string => {
    const hit = memo.get(x.id);
    if (hit) return hit;
    let r: string;
    switch (x.k) {
      case "load":
        r = `L${x.buf.id}[${x.offset};${x.strides}]${x.dt}`;
        break;
      case "const":
        r = `C${x.v}${x.dt}`;
        break;
      case "iota":
        r = `I${x.axis}+${x.start}${x.dt}`;
        break;
      case "op":
        r = `${x.op}${x.extra ?? ""}(${x.args.map(s).join(",")})`;
        break;
      case "gather":
        r = `G${x.axis}(${s(x.table)},${s(x.ids)})`;
        break;
      case "gatherel":
        r = `E${x.axis}(${s(x.src)},${s(x.ids)})`;
        break;
      case "remap":
        r = `R${JSON.stringify(x.map)}(${s(x.src)})`;
        break;
      case "concat":
        r = `K${x.axis}(${x.parts.map(s).join(",")})`;
        break;
      case "pad":
        r = `P${x.before}(${s(x.src)})`;
        break;
      case "acc":
        r = "acc";
        break;
      case "rowval":
        r = `rv${x.phase}`;
        break;
    }
    r += `:${x.shape}`;
    memo.set(x.id, r);
    return r;
  };
  return s(e);
}
