/**
 * Data parallelism as UER-py runs it with torch DDP (`uer/trainer.py` `worker` + `DistributedDataParallel`),
 * on top of the communicator in `mpi.ts`: every rank runs the gradient half of the training graph on its
 * own shard of instances (instance i → rank i mod world_size, done by `core/train/loader.ts`), the
 * gradients are packed into one flat float32 buffer and averaged across ranks in a single all-reduce
 * (sum, then × 1/N: DDP's averaging), and every rank then runs the update half with the same averaged
 * gradient, so parameters stay identical everywhere. Parameters are broadcast from rank 0 once at the
 * start (DDP does the same when it wraps the model). Also here: report statistics summed over ranks,
 * a parameter checksum for the "same on every rank" check, the `--gpu_ranks` → device mapping, and
 * `startDistributed()`, the one call `cli/pretrain.ts` makes before training.
 * Not browser compatible: it opens MPI and may spawn `mpirun` (worker/process glue under `core/`).
 * @module
 */

import type { Tensor } from "../tensor.ts";
import type { TakenStats } from "../train/trainer.ts";
import { describeGpu, gpuSelection, type VkInventory, vulkanInventory } from "./gpu_select.ts";
import { type Comm, mpiEnv, openComm } from "./mpi.ts";
import { launchRanks, type LaunchResult } from "./launch.ts";

/** Name and shape of one parameter (or its gradient) in the flat buffer. */
export interface TensorSpec {
  name: string;
  shape: number[];
}

/**
 * One flat float32 buffer holding every gradient back to back, in a fixed name order shared by all
 * ranks, so that one all-reduce per step carries them all (DDP buckets; here a single bucket).
 *
 * @example
 * ```ts
 * const flat = new FlatBuffer([{ name: "w", shape: [2, 3] }, { name: "b", shape: [3] }]);
 * flat.pack(grads);              // copy each gradient into its slot
 * comm.allreduceMean(flat.data); // average over ranks
 * const avg = flat.views();      // Map name -> Tensor viewing the averaged slots (no copy)
 * ```
 */
export class FlatBuffer {
  /** Tensor names in buffer order. */
  readonly specs: TensorSpec[];
  /** Element offset of each tensor, same order as `specs`. */
  readonly offsets: number[];
  /** The packed values. */
  readonly data: Float32Array;

  constructor(specs: TensorSpec[]) {
    this.specs = specs.map((s) => ({ name: s.name, shape: [...s.shape] }));
    this.offsets = [];
    let n = 0;
    for (const s of this.specs) {
      this.offsets.push(n);
      n += s.shape.reduce((a, b) => a * b, 1);
    }
    this.data = new Float32Array(n);
  }

  /** Specs of a tensor map, in the map's order. */
  static specsOf(tensors: Map<string, Tensor>): TensorSpec[] {
    return [...tensors].map(([name, t]) => ({ name, shape: t.shape }));
  }

  /**
   * Copies each named tensor into its slot (a tensor that already views its slot is left as is); a
   * missing or wrongly sized tensor is an error naming it.
   */
  pack(tensors: Map<string, Tensor | Float32Array>): Float32Array {
    this.specs.forEach((s, i) => {
      const t = tensors.get(s.name);
      if (t === undefined) throw new RangeError(`Cannot pack gradients: "${s.name}" is missing`);
      const src = t instanceof Float32Array ? t : t.data;
      const n = (this.offsets[i + 1] ?? this.data.length) - this.offsets[i];
      if (!(src instanceof Float32Array) || src.length !== n) {
        throw new RangeError(`Cannot pack gradients: "${s.name}" has ${src.length} values, expected ${n} float32`);
      }
      // Already in its slot (a gradient graph that wrote into `views()`): nothing to copy.
      if (src.buffer === this.data.buffer && src.byteOffset === this.data.byteOffset + 4 * this.offsets[i]) return;
      this.data.set(src, this.offsets[i]);
    });
    return this.data;
  }

  /** Tensors viewing the buffer's slots (no copy): they change when the buffer does. */
  views(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.specs.forEach((s, i) => {
      const end = this.offsets[i + 1] ?? this.data.length;
      out.set(s.name, { dtype: "F32", shape: s.shape, data: this.data.subarray(this.offsets[i], end) });
    });
    return out;
  }

  /** Copies the slots back into the given tensors' own arrays (in place). */
  unpackInto(tensors: Map<string, Tensor>): void {
    for (const [name, view] of this.views()) {
      const t = tensors.get(name);
      if (t === undefined) throw new RangeError(`Cannot unpack: "${name}" is missing`);
      (t.data as Float32Array).set(view.data as Float32Array);
    }
  }

  /** A short fingerprint of the names and shapes, to check that all ranks agree on the layout. */
  layoutHash(): number {
    return fnv1a(new TextEncoder().encode(this.specs.map((s) => `${s.name}:${s.shape.join("x")}`).join(";")));
  }
}

/**
 * Averages gradients over all ranks in one all-reduce: packs them into `flat`, sums across ranks and
 * scales by 1/size (DDP), and returns views of the averaged values. With one rank it only packs.
 */
export function averageGradients(
  comm: Comm,
  flat: FlatBuffer,
  grads: Map<string, Tensor | Float32Array>,
): Map<string, Tensor> {
  flat.pack(grads);
  if (comm.size > 1) comm.allreduceMean(flat.data);
  return flat.views();
}

/**
 * Makes every rank start from rank 0's parameters (as DDP does when it wraps the model): checks that
 * all ranks hold the same names and shapes, then broadcasts the values and writes them in place.
 */
export function syncParams(comm: Comm, params: Map<string, Tensor>): void {
  if (comm.size === 1) return;
  const flat = new FlatBuffer(FlatBuffer.specsOf(params));
  checkSameLayout(comm, flat, "parameters");
  flat.pack(params as Map<string, Tensor>);
  comm.broadcast(flat.data, 0);
  flat.unpackInto(params);
}

/** Throws on every rank when the ranks disagree on the buffer layout (names/shapes/order). */
export function checkSameLayout(comm: Comm, flat: FlatBuffer, what: string): void {
  if (comm.size === 1) return;
  const mine = flat.layoutHash();
  const root = new Float64Array([mine, flat.data.length]);
  comm.broadcast(root, 0);
  const same = new Float64Array([root[0] === mine && root[1] === flat.data.length ? 0 : 1]);
  comm.allreduceSum(same);
  if (same[0] !== 0) {
    throw new RangeError(
      `Cannot start data-parallel training: the ranks disagree on the ${what} (names, shapes or order)` +
        `\n  hint: every rank must use the same --config_path and flags`,
    );
  }
}

/**
 * Sums report statistics over all ranks (float64, keys in sorted order so that every rank sends the
 * same layout). UER-py itself prints rank 0's own figures only; uer-ts reports the whole job's.
 *
 * @example
 * ```ts
 * const all = reduceStats(comm, { loss: 12.5, correctMlm: 3, denominator: 40 });
 * ```
 */
export function reduceStats(comm: Comm, stats: Record<string, number>): Record<string, number> {
  if (comm.size === 1) return { ...stats };
  const keys = Object.keys(stats).sort();
  const buf = Float64Array.from(keys, (k) => stats[k]);
  comm.allreduceSum(buf);
  return Object.fromEntries(keys.map((k, i) => [k, buf[i]]));
}

/**
 * True on every rank when `flag` is true on any rank (one 8-byte all-reduce): how the ranks agree to
 * stop at the same step when only some of them were interrupted.
 *
 * @example
 * ```ts
 * if (anyRank(comm, signal.aborted)) break; // every rank leaves the loop at this step
 * ```
 */
export function anyRank(comm: Comm, flag: boolean): boolean {
  if (comm.size === 1) return flag;
  const buf = Float64Array.of(flag ? 1 : 0);
  comm.allreduceSum(buf);
  return buf[0] > 0;
}

/** FNV-1a (32-bit) over bytes. */
function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * A checksum of parameter values (FNV-1a over names and raw bytes, names sorted), as 8 hex digits:
 * equal on every rank exactly when the parameters are bit-identical.
 */
export function paramChecksum(params: Map<string, Tensor>): string {
  let h = 0x811c9dc5;
  for (const name of [...params.keys()].sort()) {
    const t = params.get(name)!;
    h = fnv1a(new TextEncoder().encode(name), h);
    h = fnv1a(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), h);
  }
  return h.toString(16).padStart(8, "0");
}

/** Where one rank runs its graphs. */
export interface RankDevice {
  /** The `--device` value the rank passes to `createSession`. */
  device: "auto" | "cpu" | "webgpu" | "wasm";
  /** The GPU index `--gpu_ranks` gives this rank, when the rank runs on WebGPU. */
  gpu?: number;
  /**
   * Environment that makes this process's WebGPU adapter that GPU (Mesa's device-select layer,
   * core/parallel/gpu_select.ts); `startDistributed` sets it before anything asks for an adapter.
   */
  env?: Record<string, string>;
  /** The GPU as the user recognises it (`1: NVIDIA H100 … (10de:2330, pci …)`). */
  gpuName?: string;
  /** A line for rank 0 to print when the mapping needs saying (e.g. `--gpu_ranks` ignored on CPU). */
  note?: string;
}

/** What `navigator.gpu` offers (core/runtime/mod.ts `probeWebGpu`). */
export interface GpuProbe {
  available: boolean;
  fallback: boolean;
  description: string;
}

/**
 * Maps `--gpu_ranks` to this rank's device, as UER-py's `gpu_ranks[local_rank]`. Without `--gpu_ranks`
 * the `--device` choice stands. With `--device cpu`/`wasm` ranks run there and `--gpu_ranks` is noted
 * as unused. With `webgpu`/`auto` a hardware WebGPU adapter must exist, else a one-line error names
 * the flag (no silent CPU fallback).
 */
export async function rankDevice(
  opts: { device: "auto" | "cpu" | "webgpu" | "wasm"; gpuRanks: number[]; localRank: number; localSize: number },
  probe: () => Promise<GpuProbe>,
  inventory: () => VkInventory | undefined = vulkanInventory,
): Promise<RankDevice> {
  const { device, gpuRanks, localRank, localSize } = opts;
  if (gpuRanks.length === 0) return { device };
  const list = gpuRanks.join(" ");
  if (gpuRanks.length < localSize) {
    throw new RangeError(
      `Cannot map --gpu_ranks ${list} to ${localSize} ranks on this machine: one device index per rank is needed` +
        `\n  hint: pass ${localSize} indexes, e.g. --gpu_ranks ${[...Array(localSize).keys()].join(" ")}`,
    );
  }
  if (device === "cpu" || device === "wasm") {
    return { device, note: `--gpu_ranks ${list} unused: --device ${device} runs every rank on the CPU` };
  }
  const p = await probe();
  if (!p.available || p.fallback) {
    const why = p.available ? `the only WebGPU adapter, "${p.description}", is a software fallback` : p.description;
    throw new RangeError(
      `Cannot use --gpu_ranks ${list}: no hardware GPU here (${why})\n  hint: pass --device cpu to run the ranks on the CPU`,
    );
  }
  const gpu = gpuRanks[localRank];
  const inv = inventory();
  if (!inv) {
    // No Vulkan loader to choose with (e.g. Metal, D3D12): the default adapter, and say so when it matters.
    const distinct = new Set(gpuRanks.slice(0, localSize)).size;
    return {
      device: "webgpu",
      gpu,
      note: distinct > 1
        ? `--gpu_ranks ${list}: no Vulkan loader to choose GPUs with; every rank uses the default adapter ("${p.description}")`
        : undefined,
    };
  }
  for (const g of gpuRanks.slice(0, localSize)) gpuSelection(inv, g, `--gpu_ranks ${list}`); // every rank's index exists
  const sel = gpuSelection(inv, gpu, `--gpu_ranks ${list}`);
  return { device: "webgpu", gpu, env: sel.env, gpuName: describeGpu(sel.device, gpu) };
}

/** What `startDistributed` decided for this process. */
export type DistStart =
  /** This process launched the ranks under `mpirun` and they have finished (`result.code` 0 = success). */
  | { kind: "launched"; result: LaunchResult }
  /** This process is a rank (or the only one): train with `comm` on `device`. */
  | { kind: "rank"; comm: Comm; device: RankDevice };

/**
 * The single entry `cli/pretrain.ts` calls before training. Outside `mpirun` with `--world_size N > 1`
 * it starts N ranks of the same command through `mpirun` and returns how they ended
 * (`launchFailure()` turns a failure into the one-line error to throw). Under `mpirun`
 * (or with `--world_size 1`) it opens the communicator, checks `--world_size` against it, and maps
 * `--gpu_ranks` to this rank's device.
 *
 * @example
 * ```ts
 * const start = await startDistributed({ worldSize: 2, gpuRanks: [], device: "cpu" });
 * if (start.kind === "launched") Deno.exit(start.result.code);
 * ```
 */
export async function startDistributed(
  opts: { worldSize: number; gpuRanks: number[]; device: "auto" | "cpu" | "webgpu" | "wasm"; signal?: AbortSignal },
  probe?: () => Promise<GpuProbe>,
): Promise<DistStart> {
  const env = mpiEnv(Deno.env.toObject());
  if (env === null && opts.worldSize > 1) {
    // Validate --gpu_ranks before starting N processes that would all fail the same way.
    await rankDevice({ ...opts, localRank: 0, localSize: opts.worldSize }, probe ?? defaultProbe);
    return { kind: "launched", result: await launchRanks(opts.worldSize, { signal: opts.signal }) };
  }
  if (env !== null && opts.worldSize > 1 && opts.worldSize !== env.size) {
    throw new RangeError(
      `Cannot train with --world_size ${opts.worldSize}: mpirun started ${env.size} ranks` +
        `\n  hint: pass -np ${opts.worldSize} to mpirun, or leave --world_size out under mpirun`,
    );
  }
  const comm = openComm();
  try {
    const device = await rankDevice(
      { ...opts, localRank: comm.localRank, localSize: comm.localSize },
      probe ?? defaultProbe,
    );
    // This rank's GPU: the device-select layer reads these at every device enumeration, so setting them
    // before the trainer asks for its adapter is enough.
    for (const [k, v] of Object.entries(device.env ?? {})) Deno.env.set(k, v);
    return { kind: "rank", comm, device };
  } catch (e) {
    comm.finalize();
    throw e;
  }
}

async function defaultProbe(): Promise<GpuProbe> {
  const { probeWebGpu } = await import("../runtime/mod.ts");
  return probeWebGpu();
}

/**
 * The one-line error for a launched job that failed, naming the rank `mpirun` reported; null on success.
 *
 * @example
 * ```ts
 * const err = launchFailure({ code: 1, failedRank: 1, how: "signal 9 (Killed)" }, 2);
 * // err.message: "Data-parallel job stopped: rank 1 of 2 ended with signal 9 (Killed); mpirun ended the other ranks ..."
 * ```
 */
export function launchFailure(result: LaunchResult, worldSize: number): Error | null {
  if (result.code === 0) return null;
  if (result.terminated) {
    return new Error(
      `Data-parallel job stopped by SIGTERM: mpirun ended its ${worldSize} ranks` +
        `\n  hint: resume with --pretrained_model_path <output_model_path>-<last saved step>`,
    );
  }
  const who = result.failedRank === undefined ? "a rank failed" : `rank ${result.failedRank} of ${worldSize} ended` +
    (result.how ? ` with ${result.how}` : "");
  return new Error(
    `Data-parallel job stopped: ${who}; mpirun ended the other ranks (exit code ${result.code})` +
      `\n  hint: resume with --pretrained_model_path <output_model_path>-<last saved step>`,
  );
}

/**
 * The gradient hook for the trainer's split step (`TrainerOptions.averageGradients`): the window's
 * gradients arrive as one flat buffer (parameters back to back in the trainer's order, which `specs`
 * must follow), are all-reduced in place (sum, × 1/N) and handed back. The hook's `buffer` is that
 * flat buffer: a CPU trainer has its gradient graph write straight into it, so nothing is packed or
 * copied. `separateWait` (benchmarks) adds a barrier before the all-reduce so that the time spent
 * waiting for the slowest rank is measured apart.
 *
 * @example
 * ```ts
 * const trainer = await Trainer.create({ task: pretrainTask(config), params, device: "cpu",
 *   averageGradients: gradientAverager(comm, paramShapes(config)) });
 * ```
 */
export function gradientAverager(
  comm: Comm,
  specs: TensorSpec[],
  opts: { separateWait?: boolean } = {},
): ((grads: Float32Array) => Float32Array) & { buffer: Float32Array } {
  const flat = new FlatBuffer(specs);
  checkSameLayout(comm, flat, "gradients");
  const hook = (grads: Float32Array) => {
    if (grads.length !== flat.data.length) {
      throw new RangeError(`Cannot average gradients: ${grads.length} values, the layout holds ${flat.data.length}`);
    }
    if (grads !== flat.data) flat.data.set(grads);
    // For timing only: a barrier first, so that waiting for a slower rank is not counted as all-reduce.
    if (opts.separateWait) comm.barrier();
    if (comm.size > 1) comm.allreduceMean(flat.data);
    return flat.data;
  };
  return Object.assign(hook, { buffer: flat.data });
}

/**
 * Job-wide statistics of the steps since the last take: losses (names starting with `loss`) averaged
 * over ranks (each rank's loss is already a mean over its own batch, as DDP's gradient is the mean of
 * the ranks' gradients), every other statistic (counts, instances) summed. UER-py's rank 0 prints only
 * its own figures; summing here makes the report describe every instance of the job. Per-step rows are
 * rank-local and dropped.
 */
export function jobStats(comm: Comm, s: TakenStats): TakenStats {
  if (comm.size === 1) return s;
  const summed = reduceStats(comm, s.sums);
  const sums: Record<string, number> = {};
  for (const [k, v] of Object.entries(summed)) sums[k] = k.startsWith("loss") ? v / comm.size : v;
  return { steps: s.steps, sums, rows: null };
}

/** What `DataParallelTrainer` wraps (the trainer fits). */
export interface RankTrainer<B> {
  step(batch: B, lr: number): Promise<void>;
  takeStats(): Promise<TakenStats>;
}

/**
 * Wraps a trainer whose gradients are averaged by `gradientAverager` so that its statistics are the
 * job's (`jobStats`, one small all-reduce when they are taken); what `core/train/loop.ts` gets as its
 * `trainer` on every rank.
 */
export class DataParallelTrainer<B> implements RankTrainer<B> {
  #inner: RankTrainer<B>;
  #comm: Comm;
  constructor(inner: RankTrainer<B>, comm: Comm) {
    this.#inner = inner;
    this.#comm = comm;
  }
  /** One step on this rank's batch (the gradients are averaged inside, by the hook). */
  step(batch: B, lr: number): Promise<void> {
    return this.#inner.step(batch, lr);
  }
  /** The job's statistics since the last take (every rank must call it at the same step). */
  async takeStats(): Promise<TakenStats> {
    return jobStats(this.#comm, await this.#inner.takeStats());
  }
}

/**
 * Every rank's JSON-serializable value, in rank order, on every rank (an all-gather by one broadcast
 * per rank). Used to save each rank's loader position in rank 0's checkpoint, so a resumed run gives
 * every rank its own shard position back.
 *
 * @example
 * ```ts
 * const states = allgatherJson(comm, loader.state()); // states[r] is rank r's
 * ```
 */
export function allgatherJson<T>(comm: Comm, value: T): T[] {
  if (comm.size === 1) return [value];
  const mine = new TextEncoder().encode(JSON.stringify(value));
  const out: T[] = [];
  for (let r = 0; r < comm.size; r++) {
    const len = new Float64Array([r === comm.rank ? mine.length : 0]);
    comm.broadcast(len, r);
    const bytes = r === comm.rank ? mine : new Uint8Array(len[0]);
    comm.broadcast(bytes, r);
    out.push(JSON.parse(new TextDecoder().decode(bytes)));
  }
  return out;
}
