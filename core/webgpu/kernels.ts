/**
 * The executor's kernels and their WGSL: every dispatch of a step is one of four kinds, each with its
 * own outputs (`Out`: an expression written through a strided view, optionally guarded or accumulated).
 * - `ew`: elementwise over one or more index ranges (independent materializations share one dispatch);
 * - `mm`: a tiled batched matrix product (64×64 tiles, 4×4 per thread) whose operands are expressions
 *   (transposes, bias adds, concats and cheap arithmetic are read straight from their sources) and whose
 *   outputs are epilogues over the accumulator (`acc`);
 * - `reduce`: reductions over trailing dims of a kept×reduced index space, in phases that may use the
 *   earlier phases' results (`rowval`): one dispatch computes a LayerNorm, a softmax or a cross-entropy
 *   with everything written from them; lanes are laid out for rows (reduced dims contiguous) or columns;
 * - `scatter`: a deterministic scatter-add of rows by integer ids (embedding gradients), reading ids
 *   sorted on the host.
 * Buffer base offsets come from a uniform written once when the program is built, so kernels that differ
 * only in where their tensors live (the shared ALBERT layer applied L times) share one pipeline.
 * Browser compatible: no Deno APIs.
 * @module
 */
import {
  type Buf,
  contiguousFull,
  type DT,
  type EmitContext,
  Emitter,
  type Expr,
  RowMismatch,
  WGSL_HELPERS,
} from "./expr.ts";

/** One write of a kernel: `buf[offset + Σ (idx[d] - lo_d) · strides[d]] = expr(idx)`. */
export interface Out {
  expr: Expr;
  buf: Buf;
  /** One stride per dim of the out's index space (0 = the dim does not move the address). */
  strides: number[];
  offset: number;
  /** Write only where `lo <= idx[dim] < hi`; the address uses `idx[dim] - lo`. */
  guards?: { dim: number; lo: number; hi: number }[];
  /** Reduce kernels: over the kept dims only (`keep`) or the whole kept×reduced space (`full`). */
  space?: "keep" | "full";
}

/** Elementwise materializations; each range is its own index space, all in one dispatch. */
export interface EwKernel {
  k: "ew";
  ranges: { shape: number[]; outs: Out[] }[];
}

/** `acc[b, m, n] = Σ_k a[b, m, k] · b[b, k, n]`, then the outputs. */
export interface MmKernel {
  k: "mm";
  batch: number[];
  M: number;
  N: number;
  K: number;
  a: Expr;
  b: Expr;
  outs: Out[];
}

/** One reduction over the reduced dims of an expression over [...keep, ...red]. */
export interface Phase {
  op: "sum" | "max";
  expr: Expr;
  sig: string;
}

/** Phased reductions with their outputs (over `keep` or the full space). */
export interface ReduceKernel {
  k: "reduce";
  keep: number[];
  red: number[];
  phases: Phase[];
  outs: Out[];
  /** Threads per workgroup along the kept dims and along the reduced dims. */
  lanes: { keep: number; red: number };
}

/** `acc[v, r] = Σ_{n: ids[n] = v} rows[n, r]` for v < V, with ids sorted on the host (`sortedIds`, `perm`). */
export interface ScatterKernel {
  k: "scatter";
  V: number;
  R: number;
  N: number;
  rows: Expr;
  sortedIds: Buf;
  perm: Buf;
  outs: Out[];
}

export type Kernel = EwKernel | MmKernel | ReduceKernel | ScatterKernel;

/** The outputs of a kernel, whatever its kind. */
export function kernelOuts(k: Kernel): Out[] {
  return k.k === "ew" ? k.ranges.flatMap((r) => r.outs) : k.outs;
}

/** The index space of a kernel's outputs (`full`), and for reductions the kept part. */
export function kernelSpace(k: Kernel): { full: number[]; keep?: number[] } {
  switch (k.k) {
    case "mm":
      return { full: [...k.batch, k.M, k.N] };
    case "reduce":
      return { full: [...k.keep, ...k.red], keep: k.keep };
    case "scatter":
      return { full: [k.V, k.R] };
    case "ew":
      return { full: k.ranges[0].shape };
  }
}

/** Every expression a kernel evaluates (operands, phases, outputs). */
export function kernelExprs(k: Kernel): Expr[] {
  switch (k.k) {
    case "ew":
      return k.ranges.flatMap((r) => r.outs.map((o) => o.expr));
    case "mm":
      return [k.a, k.b, ...k.outs.map((o) => o.expr)];
    case "reduce":
      return [...k.phases.map((p) => p.expr), ...k.outs.map((o) => o.expr)];
    case "scatter":
      return [k.rows, ...k.outs.map((o) => o.expr)];
  }
}

/** The WGSL of a kernel, the buffers whose base offsets its uniform holds (in order), its arenas and its grid. */
export interface KernelCode {
  code: string;
  /** Buffers in uniform-slot order. */
  bufs: Buf[];
  /** Arenas in binding order (binding 1, 2, …), with whether the kernel writes them. */
  arenas: { name: string; dt: "f32" | "i32"; write: boolean }[];
  /** Workgroups to dispatch (x, y, z). */
  grid: [number, number, number];
}

const MAX_GRID = 65535;

/** Splits a workgroup count over x and y when it exceeds the per-dimension limit. */
function grid2(n: number): [number, number] {
  if (n <= MAX_GRID) return [Math.max(1, n), 1];
  const y = Math.ceil(n / MAX_GRID);
  return [Math.ceil(n / y), y];
}

/** Collects buffers/arenas while a kernel's body is emitted. */
class Bindings {
  bufs: Buf[] = [];
  #slot = new Map<Buf, number>();
  arenas: { name: string; dt: "f32" | "i32"; write: boolean }[] = [];
  #arena = new Map<string, number>();

  arenaOf(buf: Buf, write: boolean): string {
    let a = this.#arena.get(buf.arena);
    if (a === undefined) {
      a = this.arenas.length;
      this.#arena.set(buf.arena, a);
      this.arenas.push({ name: buf.arena, dt: buf.dt, write });
    } else if (write) this.arenas[a].write = true;
    return `A${a}`;
  }
  base(buf: Buf): string {
    let s = this.#slot.get(buf);
    if (s === undefined) {
      s = this.bufs.length;
      this.#slot.set(buf, s);
      this.bufs.push(buf);
    }
    return `b${s}`;
  }
  read(buf: Buf, addr: string): string {
    return `${this.arenaOf(buf, false)}[${this.base(buf)} + ${addr}]`;
  }
  header(body: string[]): string[] {
    const n = Math.max(1, Math.ceil(this.bufs.length / 4));
    const out = [`struct Offsets { o: array<vec4<u32>, ${n}> }`, `@group(0) @binding(0) var<uniform> U: Offsets;`];
    this.arenas.forEach((a, i) => {
      out.push(`@group(0) @binding(${i + 1}) var<storage, ${a.write ? "read_write" : "read"}> A${i}: array<${a.dt}>;`);
    });
    out.push(WGSL_HELPERS);
    void body;
    return out;
  }
  bases(indent: string): string[] {
    return this.bufs.map((_, s) => `${indent}let b${s} = U.o[${s >> 2}][${s & 3}];`);
  }
}

/** Unravels a linear u32 index into per-dim index names (declared as lets). */
function unravel(e: Emitter, lin: string, shape: readonly number[], prefix: string): string[] {
  const st = contiguousFull(shape);
  return shape.map((d, i) => {
    if (d === 1) return "0u";
    const q = st[i] === 1 ? lin : `(${lin} / ${st[i]}u)`;
    const v = `${prefix}${i}`;
    e.line(`let ${v} = ${i === 0 ? q : `${q} % ${d}u`};`);
    return v;
  });
}

/** Emits the stores of `outs` at `idx` (all values first, then the stores: in-place updates read before writing). */
function emitOuts(e: Emitter, b: Bindings, outs: readonly Out[], idx: readonly string[], when?: string): void {
  const vals = outs.map((o) => {
    const v = e.emit(o.expr, idx);
    return o.expr.dt === "bool" ? `select(0.0, 1.0, ${v})` : v;
  });
  outs.forEach((o, i) => {
    let addr = `${o.offset}u`;
    const conds: string[] = when ? [when] : [];
    const guard = new Map((o.guards ?? []).map((g) => [g.dim, g]));
    o.strides.forEach((s, d) => {
      const g = guard.get(d);
      if (g) {
        if (g.lo > 0) conds.push(`${idx[d]} >= ${g.lo}u`);
        conds.push(`${idx[d]} < ${g.hi}u`);
      }
      if (s === 0) return;
      const j = g && g.lo > 0 ? `(${idx[d]} - ${g.lo}u)` : idx[d];
      addr = addr === "0u" ? `${j} * ${s}u` : `${addr} + ${j} * ${s}u`;
    });
    const arena = b.arenaOf(o.buf, true);
    const at = `${b.base(o.buf)} + ${addr}`;
    const stmt = `${arena}[${at}] = ${o.buf.dt === "i32" && o.expr.dt !== "i32" ? `i32(${vals[i]})` : vals[i]};`;
    e.line(conds.length ? `if (${conds.join(" && ")}) { ${stmt} }` : stmt);
  });
}

function finish(b: Bindings, wg: string, decls: string[], body: string[], grid: [number, number, number]): KernelCode {
  const code = [
    ...b.header(body),
    ...decls,
    `@compute @workgroup_size(${wg})`,
    `fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {`,
    ...b.bases("  "),
    ...body,
    `}`,
  ].join("\n");
  return { code, bufs: b.bufs, arenas: b.arenas, grid };
}

// ---- elementwise ----

function ewCode(k: EwKernel): KernelCode {
  const b = new Bindings();
  const ctx: EmitContext = { read: (buf, addr) => b.read(buf, addr) };
  const WG = 256;
  const total = k.ranges.reduce((a, r) => a + r.shape.reduce((x, y) => x * y, 1), 0);
  const [gx, gy] = grid2(Math.ceil(total / WG));
  const body: string[] = [`  let i = gid.x + gid.y * ${gx * WG}u;`];
  let start = 0;
  k.ranges.forEach((r, ri) => {
    const n = r.shape.reduce((x, y) => x * y, 1);
    const e = new Emitter(ctx, "    ");
    const lin = start === 0 ? "i" : `(i - ${start}u)`;
    const idx = unravel(e, lin, r.shape, `d${ri}_`);
    emitOuts(e, b, r.outs, idx);
    const cond = k.ranges.length === 1
      ? `i < ${n}u`
      : ri === 0
      ? `i < ${start + n}u`
      : `i >= ${start}u && i < ${start + n}u`;
    body.push(`  if (${cond}) {`, ...e.lines, `  }`);
    start += n;
  });
  return finish(b, `${WG}`, [], body, [gx, gy, 1]);
}

// ---- matrix product ----

const BK = 16;

/**
 * Matrix-product tiles: 16 × 16 threads, each `tm` × `tn` outputs (64 × 64 tiles at 4 × 4, 128 × 128 at
 * 8 × 8). `auto` takes larger tiles for products big enough to keep every multiprocessor busy with them
 * (more arithmetic per loaded element); a fixed choice is for benchmarks and tests.
 */
export const tuning: { tile: "auto" | "4x4" | "8x4" | "4x8" | "8x8" } = { tile: "auto" };

function tileOf(k: MmKernel): { tm: number; tn: number } {
  if (tuning.tile !== "auto") {
    const [tm, tn] = tuning.tile.split("x").map(Number);
    return { tm, tn };
  }
  const nb = k.batch.reduce((a, x) => a * x, 1);
  const groups = (tm: number, tn: number) => Math.ceil(k.M / (16 * tm)) * Math.ceil(k.N / (16 * tn)) * nb;
  for (const [tm, tn] of [[8, 8], [8, 4], [4, 8]]) {
    if (k.M >= 16 * tm && k.N >= 16 * tn && k.K >= 64 && groups(tm, tn) >= 256) return { tm, tn };
  }
  return { tm: 4, tn: 4 };
}

/** True when `e` reads its main buffer contiguously along index dim `d` (for coalesced tile loads). */
function fastDim(e: Expr, d: number): boolean {
  let best: { size: number; stride: number } | undefined;
  const visit = (x: Expr) => {
    if (x.k === "load" && (!best || x.buf.size > best.size)) best = { size: x.buf.size, stride: x.strides[d] };
    if (x.k === "op") x.args.forEach(visit);
    if (x.k === "concat") x.parts.forEach(visit);
  };
  visit(e);
  return best?.stride === 1;
}

function mmCode(k: MmKernel): KernelCode {
  const b = new Bindings();
  const { tm: TM, tn: TN } = tileOf(k);
  const BM = 16 * TM, BN = 16 * TN;
  const nb = k.batch.length;
  const body: string[] = [];
  const pre = new Emitter({ read: (buf, addr) => b.read(buf, addr) }, "  ");
  const zs = unravel(pre, "wid.z", k.batch, "z");
  body.push(...pre.lines);
  const tile = (accVar: (i: number, j: number) => string) => {
    const ctx: EmitContext = {
      read: (buf, addr) => b.read(buf, addr),
      acc: (idx) => {
        // The accumulator exists only at this thread's own (m, n) and batch index.
        for (let d = 0; d < nb; d++) if (idx[d] !== zs[d]) throw new RowMismatch("acc at another batch index");
        const mi = /^m(\d)$/.exec(idx[nb]), nj = /^n(\d)$/.exec(idx[nb + 1]);
        if (!mi || !nj) throw new RowMismatch("acc at another output index");
        return accVar(Number(mi[1]), Number(nj[1]));
      },
    };
    return ctx;
  };
  body.push(`  let tm0 = wid.y * ${BM}u;`, `  let tn0 = wid.x * ${BN}u;`, `  let tid = lid.y * 16u + lid.x;`);
  for (let i = 0; i < TM * TN; i++) body.push(`  var acc${i} = 0.0;`);
  body.push(`  for (var k0 = 0u; k0 < ${k.K}u; k0 += ${BK}u) {`);
  // A tile [BM x BK] and B tile [BK x BN]: TM and TN elements per thread.
  const aFastK = fastDim(k.a, nb + 1), bFastN = fastDim(k.b, nb + 1);
  for (
    const [name, expr, rows, cols, fastCol, rowVar, colVar, rowLim, colLim] of [
      ["As", k.a, BM, BK, aFastK, "tm0", "k0", k.M, k.K],
      ["Bs", k.b, BK, BN, bFastN, "k0", "tn0", k.K, k.N],
    ] as const
  ) {
    body.push(`    for (var t = 0u; t < ${(rows * cols) / 256}u; t++) {`, `      let e = tid + t * 256u;`);
    // Consecutive threads walk the operand's contiguous dim.
    if (fastCol) body.push(`      let rr = e / ${cols}u;`, `      let cc = e % ${cols}u;`);
    else body.push(`      let rr = e % ${rows}u;`, `      let cc = e / ${rows}u;`);
    body.push(`      let gr = ${rowVar} + rr;`, `      let gc = ${colVar} + cc;`, `      var x = 0.0;`);
    body.push(`      if (gr < ${rowLim}u && gc < ${colLim}u) {`);
    const em = new Emitter({ read: (buf, addr) => b.read(buf, addr) }, "        ");
    const v = em.emit(expr, [...zs, "gr", "gc"]);
    body.push(...em.lines, `        x = ${expr.dt === "f32" ? v : `f32(${v})`};`, `      }`);
    // Shared layout: As[k][m], Bs[k][n].
    body.push(name === "As" ? `      As[cc * ${BM}u + rr] = x;` : `      Bs[rr * ${BN}u + cc] = x;`, `    }`);
  }
  body.push(`    workgroupBarrier();`);
  body.push(`    for (var kk = 0u; kk < ${BK}u; kk++) {`);
  for (let i = 0; i < TM; i++) body.push(`      let ra${i} = As[kk * ${BM}u + lid.y * ${TM}u + ${i}u];`);
  for (let j = 0; j < TN; j++) body.push(`      let rb${j} = Bs[kk * ${BN}u + lid.x * ${TN}u + ${j}u];`);
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) body.push(`      acc${i * TN + j} = fma(ra${i}, rb${j}, acc${i * TN + j});`);
  }
  body.push(`    }`, `    workgroupBarrier();`, `  }`);
  // Epilogue: each of the thread's TM x TN outputs.
  for (let i = 0; i < TM; i++) body.push(`  let m${i} = tm0 + lid.y * ${TM}u + ${i}u;`);
  for (let j = 0; j < TN; j++) body.push(`  let n${j} = tn0 + lid.x * ${TN}u + ${j}u;`);
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) {
      const e = new Emitter(tile((ii, jj) => `acc${ii * TN + jj}`), "    ");
      emitOuts(e, b, k.outs, [...zs, `m${i}`, `n${j}`]);
      body.push(`  if (m${i} < ${k.M}u && n${j} < ${k.N}u) {`, ...e.lines, `  }`);
    }
  }
  const decls = [`var<workgroup> As: array<f32, ${BM * BK}>;`, `var<workgroup> Bs: array<f32, ${BK * BN}>;`];
  const nz = k.batch.reduce((a, x) => a * x, 1);
  if (nz > MAX_GRID) throw new RangeError(`Cannot run a batched matrix product of ${nz} matrices (limit ${MAX_GRID})`);
  return finish(b, "16, 16, 1", decls, body, [Math.ceil(k.N / BN), Math.ceil(k.M / BM), nz]);
}

// ---- reductions ----

function reduceCode(k: ReduceKernel): KernelCode {
  const b = new Bindings();
  const KL = k.lanes.keep, RL = k.lanes.red, WG = KL * RL;
  const nKeep = k.keep.reduce((a, x) => a * x, 1), nRed = k.red.reduce((a, x) => a * x, 1);
  const [gx, gy] = grid2(Math.ceil(nKeep / KL));
  const body: string[] = [
    `  let kl = lid.x % ${KL}u;`,
    `  let rl = lid.x / ${KL}u;`,
    `  let row = (wid.x + wid.y * ${gx}u) * ${KL}u + kl;`,
    `  let valid = row < ${nKeep}u;`,
  ];
  const top = new Emitter({ read: (buf, addr) => b.read(buf, addr) }, "  ");
  const keepIdx = unravel(top, "row", k.keep, "k");
  body.push(...top.lines);
  const rowvals: string[] = [];
  const ctx: EmitContext = {
    read: (buf, addr) => b.read(buf, addr),
    rowval: (phase, idx) => {
      if (phase >= rowvals.length) throw new RowMismatch(`phase ${phase} is not computed yet`);
      if (idx.some((x, d) => x !== keepIdx[d])) throw new RowMismatch("reduction result of another row");
      return rowvals[phase];
    },
  };
  const loop = (emit: (e: Emitter, idx: string[]) => void) => {
    const e = new Emitter(ctx, "      ");
    const redIdx = unravel(e, "c", k.red, "r");
    emit(e, [...keepIdx, ...redIdx]);
    return [`    for (var c = rl; c < ${nRed}u; c += ${RL}u) {`, ...e.lines, `    }`];
  };
  k.phases.forEach((p, pi) => {
    const init = p.op === "sum" ? "0.0" : "bitcast<f32>(0xff800000u)";
    const comb = (a: string, x: string) => (p.op === "sum" ? `${a} + ${x}` : `max(${a}, ${x})`);
    body.push(`  var s${pi} = ${init};`, `  if (valid) {`);
    body.push(...loop((e, idx) => e.line(`s${pi} = ${comb(`s${pi}`, e.emit(p.expr, idx))};`)));
    body.push(`  }`, `  red[lid.x] = s${pi};`, `  workgroupBarrier();`);
    for (let s = RL >> 1; s > 0; s >>= 1) {
      body.push(`  if (rl < ${s}u) { red[lid.x] = ${comb("red[lid.x]", `red[lid.x + ${s * KL}u]`)}; }`);
      body.push(`  workgroupBarrier();`);
    }
    body.push(`  let rv${pi} = red[kl];`, `  workgroupBarrier();`);
    rowvals.push(`rv${pi}`);
  });
  const full = k.outs.filter((o) => o.space === "full"), keep = k.outs.filter((o) => o.space !== "full");
  if (full.length) {
    body.push(`  if (valid) {`, ...loop((e, idx) => emitOuts(e, b, full, idx)), `  }`);
  }
  if (keep.length) {
    const e = new Emitter(ctx, "    ");
    emitOuts(e, b, keep, keepIdx);
    body.push(`  if (valid && rl == 0u) {`, ...e.lines, `  }`);
  }
  return finish(b, `${WG}`, [`var<workgroup> red: array<f32, ${WG}>;`], body, [gx, gy, 1]);
}

// ---- scatter-add ----

function scatterCode(k: ScatterKernel): KernelCode {
  const b = new Bindings();
  const WG = 256;
  const total = k.V * k.R;
  const [gx, gy] = grid2(Math.ceil(total / WG));
  // One thread per (v, r), v-major: neighbouring threads share v (same search) and read neighbouring r.
  const body: string[] = [
    `  let t = gid.x + gid.y * ${gx * WG}u;`,
    `  if (t >= ${total}u) { return; }`,
    `  let v = t / ${k.R}u;`,
    `  let r = t % ${k.R}u;`,
  ];
  const ids = (i: string) => b.read(k.sortedIds, i);
  body.push(`  var lo = 0u;`, `  var hi = ${k.N}u;`);
  body.push(
    `  loop { if (lo >= hi) { break; } let mid = (lo + hi) / 2u; if (${
      ids("mid")
    } < i32(v)) { lo = mid + 1u; } else { hi = mid; } }`,
  );
  body.push(`  var s = 0.0;`, `  for (var j = lo; j < ${k.N}u; j++) {`);
  body.push(`    if (${ids("j")} != i32(v)) { break; }`, `    let n = u32(${b.read(k.perm, "j")});`);
  const e = new Emitter({ read: (buf, addr) => b.read(buf, addr) }, "    ");
  const x = e.emit(k.rows, ["n", "r"]);
  body.push(...e.lines, `    s = s + ${x};`, `  }`);
  const ctx: EmitContext = {
    read: (buf, addr) => b.read(buf, addr),
    acc: (idx) => {
      if (idx[0] !== "v" || idx[1] !== "r") throw new RowMismatch("acc at another index");
      return "s";
    },
  };
  const o = new Emitter(ctx, "  ");
  emitOuts(o, b, k.outs, ["v", "r"]);
  body.push(...o.lines);
  return finish(b, `${WG}`, [], body, [gx, gy, 1]);
}

/** The WGSL and dispatch grid of a kernel. */
export function kernelCode(k: Kernel): KernelCode {
  switch (k.k) {
    case "ew":
      return ewCode(k);
    case "mm":
      return mmCode(k);
    case "reduce":
      return reduceCode(k);
    case "scatter":
      return scatterCode(k);
  }
}

/**
 * Whether `k` could compute `outs` (already in its index space): emits its code and reports a
 * `RowMismatch` (a value the kernel would need at an index it does not hold) as false.
 */
export function canEmit(k: Kernel): boolean {
  try {
    kernelCode(k);
    return true;
  } catch (e) {
    if (e instanceof RowMismatch) return false;
    throw e;
  }
}

export type { DT };
