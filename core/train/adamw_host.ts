/**
 * UER-py's AdamW (`uer/utils/optimizers.py`, `correct_bias=False`; adamw.ts has the graph form) run on
 * the host as one WebAssembly SIMD pass per parameter, over parameters, moments and gradients kept in
 * one `WebAssembly.Memory`. The CPU state store (state_store.ts) holds its training state there and
 * onnxruntime-node reads and writes it in place (zero-copy views), so a CPU step is the gradient graph
 * + this pass instead of ~14 onnxruntime elementwise kernels per parameter (DESIGN.md §6.8).
 *
 * Per element, in the graph's order and with the same float32 constants, each op IEEE-rounded (wasm has
 * no fused multiply-add): `m = 0.9 m + 0.1 g; v = 0.999 v + (0.001 g) g; p = p + (m · neg_lr) / (sqrt(v)
 * + 1e-6); p = p + p · neg_lr_wd` (neg_lr_wd = 0 for UER's no-decay names: `p + p · 0 = p` exactly, as
 * the grouped graph form does). So the numbers equal the graph's bit for bit (adamw_host_test.ts).
 *
 * The module is emitted here byte by byte (one function, ~300 bytes): nothing is loaded from disk.
 * Browser compatible: no Deno APIs.
 * @module
 */
import { ADAMW, adamwScalars, hasWeightDecay } from "./adamw.ts";
import type { ParamSpec } from "./task.ts";

/** Bytes a WebAssembly (memory32) memory can hold. */
const MAX_BYTES = 2 ** 32;
const PAGE = 65536;

/** The compiled pass: `adamw(p, g, m, v, bytes, neg_lr, neg_lr_wd)` over byte addresses of the memory. */
type Pass = (p: number, g: number, m: number, v: number, bytes: number, negLr: number, negLrWd: number) => void;

/** The views of one parameter's state in the memory (each padded to whole 16-byte vectors). */
export interface HostSlots {
  p: Float32Array;
  m: Float32Array;
  v: Float32Array;
  g: Float32Array;
}

/** Bytes of the memory `HostAdamw` would allocate for `specs` (4 padded tensors per parameter). */
export function hostAdamwBytes(specs: readonly ParamSpec[]): number {
  let bytes = 0;
  for (const s of specs) bytes += 4 * padded(numel(s.shape)) * 4;
  return Math.ceil(bytes / PAGE) * PAGE;
}

/**
 * Parameters, Adam moments and gradients of every parameter in one WebAssembly memory, and the AdamW
 * step over them.
 *
 * @example
 * ```ts
 * const host = HostAdamw.create(paramShapes(cfg));   // undefined when the state exceeds 4 GiB
 * host!.slots.get("encoder.linear.weight")!.p.set(w0);
 * // … a gradient graph writes into host.slots.get(name).g …
 * host!.step(1e-4, 0.01);
 * ```
 */
export class HostAdamw {
  readonly specs: readonly ParamSpec[];
  /** Views by parameter name (sized exactly; the padding after each stays zero). */
  readonly slots: ReadonlyMap<string, HostSlots>;
  #run: Pass;
  #at: { p: number; m: number; v: number; g: number; bytes: number; decay: boolean }[];

  private constructor(specs: readonly ParamSpec[], memory: WebAssembly.Memory, run: Pass) {
    this.specs = specs;
    this.#run = run;
    const slots = new Map<string, HostSlots>();
    this.#at = [];
    let at = 0;
    for (const { name, shape } of specs) {
      const n = numel(shape), len = padded(n) * 4;
      const view = (k: number) => new Float32Array(memory.buffer, at + k * len, n);
      slots.set(name, { p: view(0), m: view(1), v: view(2), g: view(3) });
      this.#at.push({ p: at, m: at + len, v: at + 2 * len, g: at + 3 * len, bytes: len, decay: hasWeightDecay(name) });
      at += 4 * len;
    }
    this.slots = slots;
  }

  /**
   * Allocates the memory for `specs` (zeros) and compiles the pass; undefined when the state does not
   * fit a 4 GiB WebAssembly memory or the engine refuses the allocation (the caller keeps AdamW in
   * the graph).
   */
  static create(specs: readonly ParamSpec[]): HostAdamw | undefined {
    const bytes = hostAdamwBytes(specs);
    if (bytes > MAX_BYTES || bytes === 0) return undefined;
    let memory: WebAssembly.Memory;
    try {
      // Never grown: growing would detach every view onnxruntime holds.
      memory = new WebAssembly.Memory({ initial: bytes / PAGE, maximum: bytes / PAGE });
    } catch {
      return undefined;
    }
    const module = new WebAssembly.Module(adamwModule());
    const instance = new WebAssembly.Instance(module, { e: { m: memory } });
    return new HostAdamw(specs, memory, instance.exports.adamw as Pass);
  }

  /**
   * Sets `name`'s gradient slot to the scatter-add of `rows` ([N, R], R = the table's row length) at
   * row `ids` ([N]): zeros, then `g[ids[i], :] += rows[i, :]` for i in order (the same float32 sums, in
   * the same order, as onnxruntime's ScatterElements in the graph: rules.ts `scatterAddRows`).
   */
  scatterRows(name: string, rows: Float32Array, ids: Int32Array): void {
    const spec = this.specs.find((s) => s.name === name);
    const slot = this.slots.get(name);
    if (!spec || !slot || spec.shape.length !== 2) {
      throw new RangeError(`Cannot scatter gradient rows into "${name}": not a 2-D parameter of this host AdamW`);
    }
    const [v, r] = spec.shape;
    if (rows.length !== ids.length * r) {
      throw new RangeError(
        `Cannot scatter gradient rows into "${name}": ${rows.length} values for ${ids.length} rows of ${r}`,
      );
    }
    const g = slot.g;
    g.fill(0);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < v)) {
        throw new RangeError(`Cannot scatter gradient rows into "${name}": row id ${id} of ${v}`);
      }
      const to = id * r, from = i * r;
      for (let j = 0; j < r; j++) g[to + j] += rows[from + j];
    }
  }

  /**
   * One AdamW step of every parameter with the gradients in its `g` slot (after `from`, a flat buffer
   * in `specs` order as training_graph.ts `flatLayout` lays it out, is copied there, when given).
   */
  step(lr: number, weightDecay: number = ADAMW.weightDecay, from?: Float32Array): void {
    const { negLr, negLrWd } = adamwScalars(lr, weightDecay);
    if (from) {
      const total = this.specs.reduce((a, s) => a + numel(s.shape), 0);
      if (from.length !== total) {
        throw new RangeError(`Cannot apply AdamW: the gradient buffer holds ${from.length} values, not ${total}`);
      }
      let off = 0;
      for (const { name, shape } of this.specs) {
        const n = numel(shape);
        this.slots.get(name)!.g.set(from.subarray(off, off + n));
        off += n;
      }
    }
    for (const a of this.#at) this.#run(a.p, a.g, a.m, a.v, a.bytes, negLr, weightDecay > 0 && a.decay ? negLrWd : 0);
  }
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Elements rounded up to whole 4-lane vectors. */
function padded(n: number): number {
  return Math.ceil(n / 4) * 4;
}

// --- The WebAssembly module: `adamw(p, g, m, v, bytes, neg_lr, neg_lr_wd)`, in place, 16 bytes a lane group.

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** The module's bytes: type, imported memory `e.m`, one exported function `adamw`. */
function adamwModule(): Uint8Array<ArrayBuffer> {
  const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
  const str = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
  const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
  const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
  const simd = (op: number) => [0xfd, ...uleb(op)];
  const f32 = (x: number) => [0x43, ...new Uint8Array(Float32Array.of(x).buffer)];
  const LOAD = [...simd(0x00), 2, 0], STORE = [...simd(0x0b), 2, 0]; // align 4, offset 0
  const SPLAT = simd(0x13), ADD = simd(0xe4), MUL = simd(0xe6), DIV = simd(0xe7), SQRT = simd(0xe3);
  const get = (i: number) => [0x20, ...uleb(i)], set = (i: number) => [0x21, ...uleb(i)];
  // Params 0–6: p g m v bytes neg_lr neg_lr_wd; locals: 7 i (i32), then v128s.
  const [p, g, m, v, bytes, nlr, nwd, i] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [G, M1, V1, P1, B1, C1, B2, C2, EPS, NLR, NWD] = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
  const at = (base: number) => [...get(base), ...get(i), 0x6a]; // base + i
  const { beta1, beta2, eps } = ADAMW;
  const splat = (x: number[], local: number) => [...x, ...SPLAT, ...set(local)];
  const body = [
    ...vec([[1, I32], [11, V128]]),
    // The constants as adamw.ts's graph rounds them: the JS double, then float32.
    ...splat(f32(beta1), B1),
    ...splat(f32(1 - beta1), C1),
    ...splat(f32(beta2), B2),
    ...splat(f32(1 - beta2), C2),
    ...splat(f32(eps), EPS),
    ...splat(get(nlr), NLR),
    ...splat(get(nwd), NWD),
    0x02,
    0x40,
    0x03,
    0x40, // block, loop
    ...get(i),
    ...get(bytes),
    0x4f,
    0x0d,
    1, // i >= bytes: break
    ...at(g),
    ...LOAD,
    ...set(G),
    // m1 = m·b1 + g·(1−b1)
    ...at(m),
    ...LOAD,
    ...get(B1),
    ...MUL,
    ...get(G),
    ...get(C1),
    ...MUL,
    ...ADD,
    ...set(M1),
    // v1 = v·b2 + (g·(1−b2))·g
    ...at(v),
    ...LOAD,
    ...get(B2),
    ...MUL,
    ...get(G),
    ...get(C2),
    ...MUL,
    ...get(G),
    ...MUL,
    ...ADD,
    ...set(V1),
    // p1 = p + (m1·neg_lr) / (sqrt(v1) + eps)
    ...at(p),
    ...LOAD,
    ...get(M1),
    ...get(NLR),
    ...MUL,
    ...get(V1),
    ...SQRT,
    ...get(EPS),
    ...ADD,
    ...DIV,
    ...ADD,
    ...set(P1),
    ...at(m),
    ...get(M1),
    ...STORE,
    ...at(v),
    ...get(V1),
    ...STORE,
    // p2 = p1 + p1·neg_lr_wd
    ...at(p),
    ...get(P1),
    ...get(P1),
    ...get(NWD),
    ...MUL,
    ...ADD,
    ...STORE,
    ...get(i),
    0x41,
    16,
    0x6a,
    ...set(i), // i += 16
    0x0c,
    0,
    0x0b,
    0x0b, // continue; end loop, end block
    0x0b,
  ];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [F32], [F32]]), 0]])),
    ...section(2, vec([[...str("e"), ...str("m"), 0x02, 0x00, 0x00]])), // memory, min 0 pages
    ...section(3, vec([[0]])),
    ...section(7, vec([[...str("adamw"), 0x00, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}
