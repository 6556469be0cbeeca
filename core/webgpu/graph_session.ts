/**
 * A graph of the IR as a reusable WebGPU program with host inputs and outputs — the executor's
 * counterpart of an onnxruntime session for inference graphs (core/model/pipeline.ts) and tests:
 * every graph input lives in one of two input arenas (float, int), `setInputs()` writes them (one
 * `writeBuffer` per arena), `run()` records the program into one command buffer and reads the
 * requested outputs back in one readback. Parameters can be written once and kept (`setInputs` with
 * only them, then `run` with the batch). Browser compatible: no Deno APIs.
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
  #floats: ArenaLayout;
  #ints: ArenaLayout;
  #hostF: Float32Array;
  #hostI: Int32Array;

  private constructor(
    readonly device: GPUDevice,
    readonly program: Program,
    readonly runner: GpuRunner,
    floats: ArenaLayout,
    ints: ArenaLayout,
  ) {
    this.#floats = floats;
    this.#ints = ints;
    this.#hostF = new Float32Array(floats.size);
    this.#hostI = new Int32Array(ints.size);
  }

  /** Lowers `g` for the outputs named (symbolic dims sized by `dims`). */
  static async create(
    device: GPUDevice,
    g: Graph,
    outputs: string[],
    dims: Record<string, number> = {},
  ): Promise<GraphSession> {
    const floats = new ArenaLayout("IF", "f32", "input", 1);
    const ints = new ArenaLayout("II", "i32", "input", 500_000);
    const inputs = new Map<string, Buf>();
    for (const v of g.values) {
      if (!v.tags.has("input") && !v.tags.has("param")) continue;
      const n = v.shape.reduce<number>((a, d) => a * (typeof d === "number" ? d : dimSize(d, dims)), 1);
      inputs.set(v.name, (v.dtype === "F32" ? floats : ints).add(v.name, n));
    }
    const outs = new Map<string, OutTarget>(outputs.map((o) => [o, { kind: "host" }]));
    const program = lowerGraph(g, { inputs, outputs: outs, derivedBuf: (name, n) => ints.add(name, n), dims });
    const runner = await GpuRunner.create(device, program, [floats.spec(), ints.spec()]);
    return new GraphSession(device, program, runner, floats, ints);
  }

  /** Dispatches per run. */
  get dispatches(): number {
    return this.program.kernels.length;
  }

  /** Writes inputs (any subset; others keep their values), and the sorted ids derived from them. */
  setInputs(feeds: Record<string, Tensor>): void {
    let f = false, i = false;
    for (const [name, t] of Object.entries(feeds)) {
      const fb = this.#floats.bufs.get(name), ib = this.#ints.bufs.get(name);
      if (fb) {
        this.#hostF.set(toArena(t, "f32"), fb.offset);
        f = true;
      } else if (ib) {
        this.#hostI.set(toArena(t, "i32"), ib.offset);
        i = true;
      }
    }
    for (const d of this.program.derived) {
      const ids = new Int32Array(d.n);
      for (let j = 0; j < d.n; j++) ids[j] = this.#hostI[d.source.offset + d.offset + j * d.stride];
      const { sorted, perm } = sortIds(ids);
      this.#hostI.set(sorted, d.sortedIds.offset);
      this.#hostI.set(perm, d.perm.offset);
      i = true;
    }
    const q = this.device.queue;
    if (f) q.writeBuffer(this.runner.buffer("IF"), 0, gpuData(this.#hostF));
    if (i) q.writeBuffer(this.runner.buffer("II"), 0, gpuData(this.#hostI));
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
