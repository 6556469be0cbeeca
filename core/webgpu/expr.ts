/**
 * The executor's value model: an elementwise expression over an index space (`Expr`), built lazily
 * from the graph's ONNX nodes (core/webgpu/lower.ts) and turned into WGSL by `Emitter`. Every node of
 * the graph that is not a matrix product, a reduction or a softmax becomes an `Expr` instead of a
 * kernel: arithmetic (`op`), strided views of a buffer (`load`: Transpose/Reshape/Slice/Expand/
 * Unsqueeze fold into its strides), indexed reads (`gather`, `gatherel`: ONNX Gather and
 * GatherElements), `concat`, `pad` and index remaps the strides cannot express (`remap`). A value is
 * written to memory (materialized) only when a consumer needs a buffer; everything else is
 * recomputed inside the kernel that reads it, the way tinygrad's scheduler fuses elementwise work.
 * Inside a kernel, `acc` (a matrix product's accumulator) and `rowval` (a reduction's result for the
 * current row) stand for values the kernel itself computes. Browser compatible: no Deno APIs.
 *
 * Index spaces are row-major shapes; an `Expr` of shape S is a function of an index vector over S.
 * @module
 */

/** Element types inside kernels (I64 graph values are carried as i32; BOOL as bool, stored as f32 0/1). */
export type DT = "f32" | "i32" | "bool";

/** A tensor in GPU memory: an activation, a parameter slot, an input, a constant or a statistic. */
export interface Buf {
  readonly id: number;
  /** Storage element type (bool values are stored as f32 0/1). */
  readonly dt: "f32" | "i32";
  /** Elements. */
  readonly size: number;
  /** Where it lives (filled by the memory plan for activations, fixed for the others). */
  arena: string;
  offset: number;
  /** What it is, for names and the plan. */
  readonly role: "act" | "state" | "input" | "const" | "stat";
  readonly name: string;
  /** Host data of a constant. */
  readonly data?: Float32Array | Int32Array;
}

interface Base {
  readonly id: number;
  readonly shape: readonly number[];
  readonly dt: DT;
}

/** `buf[offset + Σ idx[d] · strides[d]]` (stride 0 = broadcast). */
export interface Load extends Base {
  readonly k: "load";
  readonly buf: Buf;
  readonly strides: readonly number[];
  readonly offset: number;
}
/** A constant broadcast over the shape. */
export interface Const extends Base {
  readonly k: "const";
  readonly v: number;
}
/** `start + idx[axis]` (iota tensors of the graph, e.g. the one-hot class ids). */
export interface Iota extends Base {
  readonly k: "iota";
  readonly axis: number;
  readonly start: number;
}
/** An elementwise op over arguments of the same shape. */
export interface OpE extends Base {
  readonly k: "op";
  readonly op: string;
  readonly args: readonly Expr[];
  /** Attribute-like extras (e.g. Cast target). */
  readonly extra?: number;
}
/** ONNX Gather: `table[..., ids[j...], ...]` along `axis`. */
export interface GatherE extends Base {
  readonly k: "gather";
  readonly table: Expr;
  readonly ids: Expr;
  readonly axis: number;
}
/** ONNX GatherElements: `src[idx with idx[axis] replaced by ids[idx]]`. */
export interface GatherElE extends Base {
  readonly k: "gatherel";
  readonly src: Expr;
  readonly ids: Expr;
  readonly axis: number;
}
/** An index transform the strides cannot express. */
export interface RemapE extends Base {
  readonly k: "remap";
  readonly src: Expr;
  readonly map: Remap;
}
/** Concatenation along `axis`. */
export interface ConcatE extends Base {
  readonly k: "concat";
  readonly parts: readonly Expr[];
  readonly axis: number;
}
/** Zero padding: `src[idx - before]` inside, 0 outside. */
export interface PadE extends Base {
  readonly k: "pad";
  readonly src: Expr;
  readonly before: readonly number[];
}
/** A matrix product's accumulator at the current output index (inside its own kernel). */
export interface AccE extends Base {
  readonly k: "acc";
}
/** A reduction phase's result for the current row (inside its own kernel); broadcast over the row. */
export interface RowValE extends Base {
  readonly k: "rowval";
  readonly phase: number;
  /** Rank of the kernel's kept (row) index. */
  readonly keepRank: number;
}

/** Index remaps: `reshape` (through the linear index), `perm`, `expand` (numpy broadcast), `slice`. */
export type Remap =
  | { t: "reshape" }
  | { t: "perm"; perm: readonly number[] }
  | { t: "expand" }
  | { t: "slice"; starts: readonly number[] };

export type Expr = Load | Const | Iota | OpE | GatherE | GatherElE | RemapE | ConcatE | PadE | AccE | RowValE;

let nextId = 1;
const id = () => nextId++;

export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Row-major strides of a shape. */
export function contiguous(shape: readonly number[]): number[] {
  const st = new Array(shape.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = shape[i] === 1 ? 0 : s;
    s *= shape[i];
  }
  return st;
}

// ---- constructors ----

/** A contiguous view of a whole buffer. */
export function load(buf: Buf, shape: readonly number[], dt: DT = buf.dt): Load {
  return { k: "load", id: id(), shape: [...shape], dt, buf, strides: contiguous(shape), offset: 0 };
}
export function strided(buf: Buf, shape: readonly number[], strides: readonly number[], offset: number, dt: DT): Load {
  const st = strides.map((s, i) => (shape[i] === 1 ? 0 : s));
  return { k: "load", id: id(), shape: [...shape], dt, buf, strides: st, offset };
}
export function konst(v: number, shape: readonly number[] = [], dt: DT = "f32"): Const {
  return { k: "const", id: id(), shape: [...shape], dt, v };
}
export function iota(shape: readonly number[], axis: number, dt: DT, start = 0): Iota {
  return { k: "iota", id: id(), shape: [...shape], dt, axis, start };
}
export function acc(shape: readonly number[]): AccE {
  return { k: "acc", id: id(), shape: [...shape], dt: "f32" };
}
export function rowval(shape: readonly number[], phase: number, keepRank: number): RowValE {
  return { k: "rowval", id: id(), shape: [...shape], dt: "f32", phase, keepRank };
}

const COMPARE = new Set(["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Not"]);

/** The result type of an elementwise op. */
function opType(op: string, args: readonly Expr[], extra?: number): DT {
  if (COMPARE.has(op)) return "bool";
  if (op === "Cast") return extra === 1 ? "f32" : extra === 9 ? "bool" : "i32";
  if (op === "Where") return args[1].dt;
  return args[0].dt;
}

/** An elementwise op; arguments are broadcast to a common shape (numpy rules). */
export function op(name: string, args: Expr[], extra?: number): Expr {
  const shape = broadcast(args.map((a) => a.shape));
  const xs = args.map((a) => expand(a, shape));
  const folded = foldConst(name, xs, extra, shape);
  if (folded) return folded;
  return {
    k: "op",
    id: id(),
    shape,
    dt: opType(name, xs, extra),
    op: name,
    args: xs,
    ...(extra !== undefined ? { extra } : {}),
  };
}

function foldConst(name: string, xs: Expr[], extra: number | undefined, shape: number[]): Expr | undefined {
  if (!xs.every((x) => x.k === "const")) {
    // x * 1, x + 0 as the identity keep graphs of constant seeds small.
    if (name === "Mul" && xs[1].k === "const" && xs[1].v === 1 && xs[0].dt === "f32") return xs[0];
    if (name === "Mul" && xs[0].k === "const" && xs[0].v === 1 && xs[1].dt === "f32") return xs[1];
    return undefined;
  }
  const v = xs.map((x) => (x as Const).v);
  const f = Math.fround;
  let r: number | undefined;
  switch (name) {
    case "Add":
      r = f(v[0] + v[1]);
      break;
    case "Sub":
      r = f(v[0] - v[1]);
      break;
    case "Mul":
      r = f(v[0] * v[1]);
      break;
    case "Div":
      r = f(v[0] / v[1]);
      break;
    case "Neg":
      r = -v[0];
      break;
    case "Cast":
      r = v[0];
      break;
  }
  if (r === undefined) return undefined;
  return konst(r, shape, opType(name, xs, extra));
}

/** Numpy broadcast of shapes. */
export function broadcast(shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      if (k < 0) continue;
      if (s[k] !== 1) {
        if (d !== 1 && d !== s[k]) throw new RangeError(`Cannot broadcast [${shapes.map((x) => `[${x}]`)}]`);
        d = s[k];
      }
    }
    out.push(d);
  }
  return out;
}

// ---- view operations (pushed into loads and ops where possible) ----

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Numpy broadcast of `e` to `shape` (rank may grow). */
export function expand(e: Expr, shape: readonly number[]): Expr {
  if (same(e.shape, shape)) return e;
  const lead = shape.length - e.shape.length;
  if (lead < 0) throw new RangeError(`Cannot expand [${e.shape}] to [${shape}]`);
  e.shape.forEach((d, i) => {
    if (d !== 1 && d !== shape[lead + i]) throw new RangeError(`Cannot expand [${e.shape}] to [${shape}]`);
  });
  switch (e.k) {
    case "load":
      return strided(
        e.buf,
        shape,
        shape.map((_, i) => (i < lead || e.shape[i - lead] === 1 ? 0 : e.strides[i - lead])),
        e.offset,
        e.dt,
      );
    case "const":
      return konst(e.v, shape, e.dt);
    case "iota":
      return e.shape[e.axis] === 1 ? konst(e.start, shape, e.dt) : iota(shape, e.axis + lead, e.dt, e.start);
    case "op":
      return { ...e, id: id(), shape: [...shape], args: e.args.map((a) => expand(a, shape)) };
    default:
      return { k: "remap", id: id(), shape: [...shape], dt: e.dt, src: e, map: { t: "expand" } };
  }
}

/** `out[i] = e[i[perm[0]], …]`, i.e. ONNX Transpose: out dim d is input dim perm[d]. */
export function permute(e: Expr, perm: readonly number[]): Expr {
  if (perm.every((p, i) => p === i)) return e;
  const shape = perm.map((p) => e.shape[p]);
  switch (e.k) {
    case "load":
      return strided(e.buf, shape, perm.map((p) => e.strides[p]), e.offset, e.dt);
    case "const":
      return konst(e.v, shape, e.dt);
    case "iota":
      return iota(shape, perm.indexOf(e.axis), e.dt, e.start);
    case "op":
      return { ...e, id: id(), shape, args: e.args.map((a) => permute(a, perm)) };
    default:
      return { k: "remap", id: id(), shape, dt: e.dt, src: e, map: { t: "perm", perm: [...perm] } };
  }
}

/** A static slice: `out[i] = e[i + starts]` with the given sizes. */
export function slice(e: Expr, starts: readonly number[], sizes: readonly number[]): Expr {
  if (starts.every((s) => s === 0) && same(sizes, e.shape)) return e;
  switch (e.k) {
    case "load": {
      const off = e.offset + starts.reduce((a, s, i) => a + s * e.strides[i], 0);
      return strided(e.buf, sizes, e.strides, off, e.dt);
    }
    case "const":
      return konst(e.v, sizes, e.dt);
    case "iota":
      return iota(sizes, e.axis, e.dt, e.start + starts[e.axis]);
    case "op":
      return { ...e, id: id(), shape: [...sizes], args: e.args.map((a) => slice(a, starts, sizes)) };
    case "concat": {
      // A slice inside one part is a slice of that part.
      let at = 0;
      const a = e.axis;
      const parts: Expr[] = [];
      for (const p of e.parts) {
        const lo = Math.max(at, starts[a]), hi = Math.min(at + p.shape[a], starts[a] + sizes[a]);
        if (hi > lo) {
          const st = [...starts], sz = [...sizes];
          st[a] = lo - at;
          sz[a] = hi - lo;
          parts.push(slice(p, st, sz));
        }
        at += p.shape[a];
      }
      return parts.length === 1 ? parts[0] : concat(parts, a);
    }
    default:
      return { k: "remap", id: id(), shape: [...sizes], dt: e.dt, src: e, map: { t: "slice", starts: [...starts] } };
  }
}

/** Tries to express a reshape of strided dims as strides (merging/splitting dims); undefined if impossible. */
export function reshapeStrides(
  shape: readonly number[],
  strides: readonly number[],
  to: readonly number[],
): number[] | undefined {
  // Drop size-1 dims, then walk both shapes grouping dims with equal products.
  const src = shape.map((d, i) => [d, strides[i]] as [number, number]).filter(([d]) => d !== 1);
  const out: number[] = new Array(to.length).fill(0);
  let i = 0;
  let j = 0;
  while (j < to.length || i < src.length) {
    while (j < to.length && to[j] === 1) j++;
    if (j >= to.length && i >= src.length) break;
    if (j >= to.length || i >= src.length) return undefined;
    // Group source dims [i, i2) and target dims [j, j2) with equal products.
    let ps = src[i][0], pt = to[j];
    let i2 = i + 1, j2 = j + 1;
    while (ps !== pt) {
      if (ps < pt) {
        if (i2 >= src.length) return undefined;
        ps *= src[i2++][0];
      } else {
        while (j2 < to.length && to[j2] === 1) j2++;
        if (j2 >= to.length) return undefined;
        pt *= to[j2++];
      }
    }
    // The source group must be contiguous in itself (each stride = next stride * next size).
    for (let k = i; k + 1 < i2; k++) if (src[k][1] !== src[k + 1][1] * src[k + 1][0]) return undefined;
    let s = src[i2 - 1][1];
    for (let k = j2 - 1; k >= j; k--) {
      if (to[k] === 1) continue;
      out[k] = s;
      s *= to[k];
    }
    i = i2;
    j = j2;
  }
  return out;
}

/** Row-major reshape. */
export function reshape(e: Expr, to: readonly number[]): Expr {
  if (same(e.shape, to)) return e;
  if (numel(e.shape) !== numel(to)) throw new RangeError(`Cannot reshape [${e.shape}] to [${to}]`);
  switch (e.k) {
    case "load": {
      const st = reshapeStrides(e.shape, e.strides, to);
      if (st) return strided(e.buf, to, st, e.offset, e.dt);
      break;
    }
    case "const":
      return konst(e.v, to, e.dt);
    case "op":
      return { ...e, id: id(), shape: [...to], args: e.args.map((a) => reshape(a, to)) };
  }
  return { k: "remap", id: id(), shape: [...to], dt: e.dt, src: e, map: { t: "reshape" } };
}

/** Concatenation along `axis` (contiguous neighbouring views of one buffer merge into one view). */
export function concat(parts: Expr[], axis: number): Expr {
  const shape = [...parts[0].shape];
  shape[axis] = parts.reduce((a, p) => a + p.shape[axis], 0);
  const merged: Expr[] = [];
  for (const p of parts) {
    const last = merged.at(-1);
    if (
      last?.k === "load" && p.k === "load" && last.buf === p.buf && same(last.strides, p.strides) && last.dt === p.dt
    ) {
      const st = last.strides[axis];
      if (st > 0 && p.offset === last.offset + st * last.shape[axis]) {
        const sh = [...last.shape];
        sh[axis] += p.shape[axis];
        merged[merged.length - 1] = strided(last.buf, sh, last.strides, last.offset, last.dt);
        continue;
      }
    }
    merged.push(p);
  }
  if (merged.length === 1) return merged[0];
  return { k: "concat", id: id(), shape, dt: parts[0].dt, parts: merged, axis };
}

/** Zero padding (ONNX Pad, constant mode, non-negative pads). */
export function pad(e: Expr, before: readonly number[], shape: readonly number[]): Expr {
  if (same(e.shape, shape)) return e;
  return { k: "pad", id: id(), shape: [...shape], dt: e.dt, src: e, before: [...before] };
}

export function gather(table: Expr, ids: Expr, axis: number): Expr {
  const shape = [...table.shape.slice(0, axis), ...ids.shape, ...table.shape.slice(axis + 1)];
  return { k: "gather", id: id(), shape, dt: table.dt, table, ids, axis };
}

export function gatherElements(src: Expr, ids: Expr, axis: number): Expr {
  return { k: "gatherel", id: id(), shape: [...ids.shape], dt: src.dt, src, ids, axis };
}

// ---- analysis ----

/** Visits every node of an expression tree once. */
export function walk(e: Expr, f: (e: Expr) => void, seen = new Set<number>()): void {
  if (seen.has(e.id)) return;
  seen.add(e.id);
  f(e);
  for (const c of children(e)) walk(c, f, seen);
}

export function children(e: Expr): readonly Expr[] {
  switch (e.k) {
    case "op":
      return e.args;
    case "gather":
      return [e.table, e.ids];
    case "gatherel":
      return [e.src, e.ids];
    case "remap":
    case "pad":
      return [e.src];
    case "concat":
      return e.parts;
    default:
      return [];
  }
}

/** Buffers an expression reads. */
export function leaves(e: Expr): Set<Buf> {
  const out = new Set<Buf>();
  walk(e, (x) => {
    if (x.k === "load") out.add(x.buf);
  });
  return out;
}

const EXPENSIVE = new Set(["Exp", "Log", "Erf", "Tanh", "Sigmoid", "Pow", "Sqrt", "Div", "Reciprocal"]);

/**
 * A rough per-element cost, to decide between recomputing an expression and writing it once
 * (a concat costs its dearest part: each element evaluates one part).
 */
export function cost(e: Expr, memo = new Map<number, number>()): number {
  const hit = memo.get(e.id);
  if (hit !== undefined) return hit;
  let c = 0;
  switch (e.k) {
    case "load":
      c = 1;
      break;
    case "op":
      c = (EXPENSIVE.has(e.op) ? 4 : 1) + e.args.reduce((a, x) => a + cost(x, memo), 0);
      break;
    case "gather":
    case "gatherel":
      c = 2 + children(e).reduce((a, x) => a + cost(x, memo), 0);
      break;
    case "remap":
      c = (e.map.t === "reshape" ? 3 : 1) + cost(e.src, memo);
      break;
    case "concat":
      c = 2 + Math.max(...e.parts.map((x) => cost(x, memo)));
      break;
    case "pad":
      c = 2 + cost(e.src, memo);
      break;
  }
  memo.set(e.id, c);
  return c;
}

/** Number of distinct nodes. */
export function size(e: Expr): number {
  let n = 0;
  walk(e, () => n++);
  return n;
}

/** True when the value varies along `axis` of its index space (conservative: true when unsure). */
export function usesAxis(e: Expr, axis: number): boolean {
  if (e.shape[axis] === 1) return false;
  switch (e.k) {
    case "load":
      return e.strides[axis] !== 0;
    case "const":
    case "acc":
    case "rowval":
      return e.k === "acc";
    case "iota":
      return e.axis === axis;
    case "op":
      return e.args.some((a) => usesAxis(a, axis));
    default:
      return true;
  }
}

/** Replaces nodes bottom-up; `f` returns a replacement or undefined to keep (children rewritten). */
export function rewrite(e: Expr, f: (e: Expr) => Expr | undefined, memo = new Map<number, Expr>()): Expr {
  const m = memo.get(e.id);
  if (m) return m;
  const r = f(e);
  if (r) {
    memo.set(e.id, r);
    return r;
  }
  let out: Expr = e;
  switch (e.k) {
    case "op": {
      const args = e.args.map((a) => rewrite(a, f, memo));
      if (args.some((a, i) => a !== e.args[i])) out = { ...e, id: id(), args };
      break;
    }
    case "gather": {
      const t = rewrite(e.table, f, memo), i = rewrite(e.ids, f, memo);
      if (t !== e.table || i !== e.ids) out = { ...e, id: id(), table: t, ids: i };
      break;
    }
    case "gatherel": {
      const s = rewrite(e.src, f, memo), i = rewrite(e.ids, f, memo);
      if (s !== e.src || i !== e.ids) out = { ...e, id: id(), src: s, ids: i };
      break;
    }
    case "remap":
    case "pad": {
      const s = rewrite(e.src, f, memo);
      if (s !== e.src) out = { ...e, id: id(), src: s } as Expr;
      break;
    }
    case "concat": {
      const parts = e.parts.map((p) => rewrite(p, f, memo));
      if (parts.some((p, i) => p !== e.parts[i])) out = { ...e, id: id(), parts };
      break;
    }
  }
  memo.set(e.id, out);
  return out;
}

// ---- WGSL emission ----

/** How an emitter reaches buffers and kernel-internal values. */
export interface EmitContext {
  /** WGSL expression of a buffer's element `addr` (u32 expression relative to the buffer start). */
  read(buf: Buf, addr: string): string;
  /** The accumulator at an output index (matrix-product kernels). */
  acc?(idx: readonly string[]): string;
  /** A reduction result at a (kept) index; throws `RowMismatch` when not the kernel's current row. */
  rowval?(phase: number, keepIdx: readonly string[]): string;
}

/** Thrown when an expression reads a kernel-internal value at an index the kernel does not hold. */
export class RowMismatch extends Error {}

/** The exact WGSL literal of a float32 number. */
export function f32Lit(v: number): string {
  const x = Math.fround(v);
  if (Number.isInteger(x) && Math.abs(x) < 1e7) return `${x}.0`;
  if (!Number.isFinite(x)) {
    const b = new Uint32Array(Float32Array.of(x).buffer)[0];
    return `bitcast<f32>(0x${b.toString(16)}u)`;
  }
  const s = x.toPrecision(9);
  return Math.fround(Number(s)) === x ? (s.includes("e") || s.includes(".") ? s : `${s}.0`) : x.toString();
}

function lit(v: number, dt: DT): string {
  if (dt === "bool") return v ? "true" : "false";
  if (dt === "i32") return `${Math.trunc(v)}i`;
  return f32Lit(v);
}

/** A u32 index expression `a + b` etc. with constants folded. */
export const ix = {
  add(a: string, b: number | string): string {
    if (b === 0 || b === "0u") return a;
    if (a === "0u") return typeof b === "number" ? `${b}u` : b;
    return typeof b === "number" ? `(${a} + ${b}u)` : `(${a} + ${b})`;
  },
  mul(a: string, b: number): string {
    if (b === 0 || a === "0u") return "0u";
    if (b === 1) return a;
    return `(${a} * ${b}u)`;
  },
};

/**
 * Emits WGSL statements computing expressions at index vectors, sharing work between them (each
 * (node, index) pair is computed once per scope). Nested scopes (`child()`) serve branches.
 */
export class Emitter {
  readonly lines: string[] = [];
  #cache = new Map<string, string>();
  #parent?: Emitter;
  #counter: { n: number };

  constructor(readonly ctx: EmitContext, readonly indent = "  ", parent?: Emitter) {
    this.#parent = parent;
    this.#counter = parent ? parent.#counter : { n: 0 };
  }

  /** A fresh variable name. */
  fresh(prefix = "v"): string {
    return `${prefix}${this.#counter.n++}`;
  }

  /** A nested scope (its lines are appended by the caller, e.g. inside an `if`). */
  child(): Emitter {
    return new Emitter(this.ctx, this.indent + "  ", this);
  }

  line(s: string): void {
    this.lines.push(this.indent + s);
  }

  #lookup(key: string): string | undefined {
    const hit = this.#cache.get(key);
    if (hit !== undefined || !this.#parent) return hit;
    return this.#parent.#lookup(key);
  }

  /** Binds `code` to a new `let` (returns the name), or returns short code as is. */
  bind(code: string, key?: string, type?: string): string {
    if (key) {
      const hit = this.#lookup(key);
      if (hit) return hit;
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(code) || /^-?[0-9.]+[ui]?$/.test(code)) {
      if (key) this.#cache.set(key, code);
      return code;
    }
    const v = this.fresh();
    this.line(`let ${v}${type ? `: ${type}` : ""} = ${code};`);
    if (key) this.#cache.set(key, v);
    return v;
  }

  /** The value of `e` at index `idx` (u32 expressions, one per dim). */
  emit(e: Expr, idx: readonly string[]): string {
    const key = `${e.id}@${idx.join(",")}`;
    const hit = this.#lookup(key);
    if (hit) return hit;
    return this.bind(this.#code(e, idx), key);
  }

  #code(e: Expr, idx: readonly string[]): string {
    switch (e.k) {
      case "load": {
        let addr = `${e.offset}u`;
        e.strides.forEach((s, d) => (addr = ix.add(addr, ix.mul(idx[d], s))));
        if (addr.startsWith("(") && e.offset === 0) addr = addr.replace(/^\(0u \+ /, "(");
        const v = this.ctx.read(e.buf, addr);
        return e.dt === "bool" ? `(${v} != 0.0)` : v;
      }
      case "const":
        return lit(e.v, e.dt);
      case "iota": {
        const i = ix.add(idx[e.axis], e.start);
        return e.dt === "f32" ? `f32(${i})` : e.dt === "i32" ? `i32(${i})` : `(${i} != 0u)`;
      }
      case "acc":
        if (!this.ctx.acc) throw new RowMismatch("no accumulator here");
        return this.ctx.acc(idx);
      case "rowval":
        if (!this.ctx.rowval) throw new RowMismatch("no reduction here");
        return this.ctx.rowval(e.phase, idx.slice(0, e.keepRank));
      case "op":
        return this.#op(e, idx);
      case "gather": {
        const r = e.ids.shape.length;
        const idv = this.emit(e.ids, idx.slice(e.axis, e.axis + r));
        const at = this.bind(`u32(${e.ids.dt === "f32" ? `i32(${idv})` : idv})`);
        return this.emit(e.table, [...idx.slice(0, e.axis), at, ...idx.slice(e.axis + r)]);
      }
      case "gatherel": {
        const idv = this.emit(e.ids, idx);
        const at = this.bind(`u32(${idv})`);
        const j = [...idx];
        j[e.axis] = at;
        return this.emit(e.src, j);
      }
      case "remap":
        return this.emit(e.src, this.#remap(e, idx));
      case "concat":
        return this.#concat(e, idx);
      case "pad": {
        const inner = e.src.shape;
        const conds: string[] = [];
        const j = idx.map((x, d) => {
          if (e.before[d] === 0 && inner[d] === e.shape[d]) return x;
          if (e.before[d] > 0) conds.push(`${x} >= ${e.before[d]}u`);
          conds.push(`${x} < ${e.before[d] + inner[d]}u`);
          return e.before[d] > 0 ? `(${x} - ${e.before[d]}u)` : x;
        });
        return this.#branch(e.dt, conds.join(" && "), (c) => c.emit(e.src, j), () => lit(0, e.dt));
      }
    }
  }

  /** `if (cond) { v = then } else { v = else }` with each side in its own scope. */
  #branch(dt: DT, cond: string, then: (c: Emitter) => string, other: (c: Emitter) => string): string {
    const v = this.fresh();
    const ty = dt === "bool" ? "bool" : dt;
    this.line(`var ${v}: ${ty};`);
    const a = this.child(), b = this.child();
    const va = then(a), vb = other(b);
    this.line(`if (${cond}) {`);
    this.lines.push(...a.lines);
    this.line(`  ${v} = ${va};`);
    this.line(`} else {`);
    this.lines.push(...b.lines);
    this.line(`  ${v} = ${vb};`);
    this.line(`}`);
    return v;
  }

  #concat(e: ConcatE, idx: readonly string[]): string {
    const a = e.axis;
    const ends: number[] = [];
    let at = 0;
    for (const p of e.parts) ends.push(at += p.shape[a]);
    const part = (i: number, c: Emitter) => {
      const start = i === 0 ? 0 : ends[i - 1];
      const j = [...idx];
      j[a] = start === 0 ? idx[a] : c.bind(`(${idx[a]} - ${start}u)`);
      return c.emit(e.parts[i], j);
    };
    const chain = (i: number, c: Emitter): string =>
      i === e.parts.length - 1
        ? part(i, c)
        : c.#branch(e.dt, `${idx[a]} < ${ends[i]}u`, (x) => part(i, x), (x) => chain(i + 1, x));
    return chain(0, this);
  }

  #remap(e: RemapE, idx: readonly string[]): string[] {
    const src = e.src.shape;
    switch (e.map.t) {
      case "perm": {
        const j = new Array<string>(src.length);
        e.map.perm.forEach((p, d) => (j[p] = idx[d]));
        return j;
      }
      case "expand": {
        const lead = e.shape.length - src.length;
        return src.map((d, i) => (d === 1 ? "0u" : idx[lead + i]));
      }
      case "slice": {
        const st = e.map.starts;
        return idx.map((x, d) => ix.add(x, st[d]));
      }
      case "reshape": {
        // Only inserted/removed size-1 dims: map dims directly.
        const a = e.shape.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
        const b = src.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
        if (a.length === b.length && a.every(([d], i) => d === b[i][0])) {
          const j = src.map(() => "0u");
          b.forEach(([, si], k) => (j[si] = idx[a[k][1]]));
          return j;
        }
        let lin = "0u";
        const cs = contiguousFull(e.shape);
        e.shape.forEach((_, d) => (lin = ix.add(lin, ix.mul(idx[d], cs[d]))));
        const l = this.bind(lin);
        const ss = contiguousFull(src);
        return src.map((d, i) => {
          if (d === 1) return "0u";
          const q = ss[i] === 1 ? l : `(${l} / ${ss[i]}u)`;
          return this.bind(i === 0 ? q : `(${q} % ${d}u)`);
        });
      }
    }
  }

  #op(e: OpE, idx: readonly string[]): string {
    const a = e.args.map((x) => this.emit(x, idx));
    const t = e.dt;
    switch (e.op) {
      case "Add":
        return `(${a[0]} + ${a[1]})`;
      case "Sub":
        return `(${a[0]} - ${a[1]})`;
      case "Mul":
        return `(${a[0]} * ${a[1]})`;
      case "Div":
        return `(${a[0]} / ${a[1]})`;
      case "Neg":
        return `(-${a[0]})`;
      case "Sqrt":
        return `sqrt(${a[0]})`;
      case "Exp":
        return `exp(${a[0]})`;
      case "Log":
        return `log(${a[0]})`;
      case "Abs":
        return `abs(${a[0]})`;
      case "Reciprocal":
        return `(1.0 / ${a[0]})`;
      case "Relu":
        return `max(${a[0]}, 0.0)`;
      case "Sigmoid":
        return `(1.0 / (1.0 + exp(-${a[0]})))`;
      case "Tanh":
        return `tanh_s(${a[0]})`;
      case "Erf":
        return `erf_s(${a[0]})`;
      case "Pow": {
        const ex = e.args[1];
        if (ex.k === "const" && ex.v === 2) return `(${a[0]} * ${a[0]})`;
        if (ex.k === "const" && ex.v === 1) return a[0];
        if (ex.k === "const" && ex.v === 0.5) return `sqrt(${a[0]})`;
        if (ex.k === "const" && ex.v === 3) return `(${a[0]} * ${a[0]} * ${a[0]})`;
        return `pow(${a[0]}, ${a[1]})`;
      }
      case "Max":
        return `max(${a[0]}, ${a[1]})`;
      case "Min":
        return `min(${a[0]}, ${a[1]})`;
      case "Clip": {
        let x = a[0];
        if (e.args[1] && !(e.args[1].k === "const" && e.args[1].v === -Infinity)) x = `max(${x}, ${a[1]})`;
        if (e.args[2] && !(e.args[2].k === "const" && e.args[2].v === Infinity)) x = `min(${x}, ${a[2]})`;
        return x;
      }
      case "Where":
        return `select(${a[2]}, ${a[1]}, ${a[0]})`;
      case "Equal":
        return `(${a[0]} == ${a[1]})`;
      case "Greater":
        return `(${a[0]} > ${a[1]})`;
      case "Less":
        return `(${a[0]} < ${a[1]})`;
      case "GreaterOrEqual":
        return `(${a[0]} >= ${a[1]})`;
      case "LessOrEqual":
        return `(${a[0]} <= ${a[1]})`;
      case "And":
        return `(${a[0]} && ${a[1]})`;
      case "Or":
        return `(${a[0]} || ${a[1]})`;
      case "Not":
        return `(!${a[0]})`;
      case "Cast": {
        const from = e.args[0].dt;
        if (from === t) return a[0];
        if (from === "bool") return t === "f32" ? `select(0.0, 1.0, ${a[0]})` : `select(0i, 1i, ${a[0]})`;
        if (t === "bool") return from === "f32" ? `(${a[0]} != 0.0)` : `(${a[0]} != 0i)`;
        return `${t}(${a[0]})`;
      }
    }
    throw new TypeError(`Cannot emit op ${e.op}`);
  }
}

/** Row-major strides including size-1 dims. */
export function contiguousFull(shape: readonly number[]): number[] {
  const st = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

/** WGSL helpers every kernel may call: overflow-safe tanh and erf (|error| < 1.2e-7, float32 level). */
export const WGSL_HELPERS = `
fn tanh_s(x: f32) -> f32 {
  let t = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - t) / (1.0 + t);
}
fn erf_s(x: f32) -> f32 {
  // erfc Chebyshev fit (Numerical Recipes erfcc), fractional error < 1.2e-7.
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
`;
