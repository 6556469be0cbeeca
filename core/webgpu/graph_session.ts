/**
 * A graph of the IR as a reusable WebGPU program with host inputs and outputs — the executor's
 * counterpart of an onnxruntime session for inference graphs (core/model/pipeline.ts) and tests:
 * parameters live in their own arena, written when given (once, for inference), the other inputs in a
 * float and an int arena; `setInputs()` writes the arenas it touched (one `writeBuffer` each), `run()`
 * records the program into one command buffer and reads the requested outputs back in one readback.
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { Graph } from "../graph/builder.ts";
import type { Tensor } from "../tensor.ts";
import type { Buf } from "./expr.ts";
import { type ArenaSpec, gpuData, GpuRunner } from "./executor.ts";
import { lowerGraph, type OutTarget, type Program } from "./lower.ts";

const ALIGN = 64;
const up = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** Lays out named buffers back to back in one arena. */
export class ArenaLayout {
  readonly bufs = new Map<string, Buf>();
  size = 0;
  #id: number;
  constructor(readonly name: string, readonly dt: "f32" | "i32", readonly role: Buf["role"], idBase: number) {
    this.#id = idBase;
  }
  add(name: string, n: number): Buf {
    const b: Buf = { id: this.#id++, dt: this.dt, size: n, arena: this.name, offset: this.size, role: this.role, name };
    this.size += up(n);
    this.bufs.set(name, b);
    return b;
  }
  spec(slots = 1): ArenaSpec {
    return { name: this.name, dt: this.dt, size: Math.max(this.size, ALIGN), slots };
  }
}

function dimSize(d: string, dims: Record<string, number>): number {
  return d.split("*").reduce((a, f) => a * (/^\d+$/.test(f) ? Number(f) : dims[f] ?? NaN), 1);
}

/** Copies a tensor's values into a typed array of the arena's type (I64 ids as int32, BOOL as 0/1). */
export function toArena(t: Tensor, dt: "f32" | "i32"): Float32Array | Int32Array {
  const d = t.data;
  if (dt === "f32") return d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>, Number);
  if (d instanceof Int32Array) return d;
  if (d instanceof BigInt64Array) return Int32Array.from(d, (x) => Number(x));
  return Int32Array.from(d as ArrayLike<number>, Number);
}

/** Sorts ids (stable) for a scatter kernel: sorted values and the positions they came from. */
export function sortIds(ids: Int32Array): { sorted: Int32Array; perm: Int32Array } {
  const n = ids.length;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  perm.sort((a, b) => ids[a] - ids[b] || a - b);
  const sorted = new Int32Array(n);
  for (let i = 0; i < n; i++) sorted[i] = ids[perm[i]];
  return { sorted, perm };
}

/**
 * A graph lowered, planned and resident on a device.
 *
 * @example
 * ```ts
 * const s = await GraphSession.create(device, g, ["mlm_logits"]);
 * const { mlm_logits } = await s.run({ src, seg, ...params });
 * ```
 */
export class GraphSession {
  #layouts: { params: ArenaLayout; floats: ArenaLayout; ints: ArenaLayout };
  #host: Map<ArenaLayout, Float32Array | Int32Array>;

  private constructor(
    readonly device: GPUDevice,
    readonly program: Program,
    readonly runner: GpuRunner,
    layouts: { params: ArenaLayout; floats: ArenaLayout; ints: ArenaLayout },
  ) {
    this.#layouts = layouts;
    this.#host = new Map<ArenaLayout, Float32Array | Int32Array>();
    this.#host.set(layouts.params, new Float32Array(layouts.params.size));
    this.#host.set(layouts.floats, new Float32Array(layouts.floats.size));
    this.#host.set(layouts.ints, new Int32Array(layouts.ints.size));
  }

  /** Lowers `g` for the outputs named (symbolic dims sized by `dims`). */
  static async create(
    device: GPUDevice,
    g: Graph,
    outputs: string[],
    dims: Record<string, number> = {},
  ): Promise<GraphSession> {
    const params = new ArenaLayout("IP", "f32", "input", 1);
    const floats = new ArenaLayout("IF", "f32", "input", 300_000);
    const ints = new ArenaLayout("II", "i32", "input", 600_000);
    const inputs = new Map<string, Buf>();
    for (const v of g.values) {
      if (!v.tags.has("input") && !v.tags.has("param")) continue;
      const n = v.shape.reduce<number>((a, d) => a * (typeof d === "number" ? d : dimSize(d, dims)), 1);
      const L = v.dtype !== "F32" ? ints : v.tags.has("param") ? params : floats;
      inputs.set(v.name, L.add(v.name, n));
    }
    const outs = new Map<string, OutTarget>(outputs.map((o) => [o, { kind: "host" }]));
    const program = lowerGraph(g, { inputs, outputs: outs, derivedBuf: (name, n) => ints.add(name, n), dims });
    const runner = await GpuRunner.create(device, program, [params.spec(), floats.spec(), ints.spec()]);
    return new GraphSession(device, program, runner, { params, floats, ints });
  }

  /** Dispatches per run. */
  get dispatches(): number {
    return this.program.kernels.length;
  }

  /** Writes inputs (any subset; others keep their values), and the sorted ids derived from them. */
  setInputs(feeds: Record<string, Tensor>): void {
    const dirty = new Set<ArenaLayout>();
    const { ints } = this.#layouts;
    for (const [name, t] of Object.entries(feeds)) {
      for (const L of Object.values(this.#layouts)) {
        const b = L.bufs.get(name);
        if (!b) continue;
        this.#host.get(L)!.set(toArena(t, L.dt), b.offset);
        dirty.add(L);
      }
    }
    const hostI = this.#host.get(ints) as Int32Array;
    for (const d of this.program.derived) {
      if (!dirty.has(ints)) break;
      const ids = new Int32Array(d.n);
      for (let j = 0; j < d.n; j++) ids[j] = hostI[d.source.offset + d.offset + j * d.stride];
      const { sorted, perm } = sortIds(ids);
      hostI.set(sorted, d.sortedIds.offset);
      hostI.set(perm, d.perm.offset);
    }
    for (const L of dirty) this.device.queue.writeBuffer(this.runner.buffer(L.name), 0, gpuData(this.#host.get(L)!));
  }

  /** Writes `feeds`, runs the program and reads every output back. */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, Float32Array>> {
    this.setInputs(feeds);
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    this.runner.encode(pass, 0);
    pass.end();
    this.device.queue.submit([enc.finish()]);
    const names = [...this.program.hostOutputs.keys()];
    const bufs = names.map((n) => this.program.hostOutputs.get(n)!);
    const data = await this.runner.read(
      bufs.map((b) => ({ arena: b.arena, byteOffset: b.offset * 4, bytes: b.size * 4 })),
    );
    return Object.fromEntries(names.map((n, j) => [n, new Float32Array(data[j])]));
  }

  /** Frees the device memory of this session. */
  destroy(): void {
    this.runner.destroy();
  }
}
