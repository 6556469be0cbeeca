/**
 * The training state on one WebGPU device, run by the project's own executor (lower.ts → kernels.ts →
 * executor.ts) instead of onnxruntime. It follows the step graphs' naming convention (an input named
 * like a piece of state is read from the store, an output `updated.<name>` replaces it; everything else
 * is a per-step host input or a host output), so any step graph runs on it: parameters, Adam moments and
 * gradient accumulators each live in one flat arena (`P`, `M`, `V`, `G`, parameters back to back in the
 * order first written; a moment or accumulator at its parameter's offset), other state (the statistics'
 * running sums) in `X`. Each arena has two copies: a step reads the current one and writes the other
 * (then they swap), so no kernel ever reads a value another kernel of the same step has already
 * replaced, whatever order the fusions chose (state a step does not replace is copied across on the
 * device). A step writes only its host inputs (two `writeBuffer`s:
 * int and float arenas, double-buffered so step n+1's upload is queued while step n runs), records
 * every kernel into one compute pass of one command buffer, submits once, and reads back only the host
 * outputs it has (none for an optimizer step whose statistics stay state). Browser compatible.
 * @module
 */
import type { Graph } from "../graph/builder.ts";
import type { DType, Tensor } from "../tensor.ts";
import type { StateStore, StepProgram } from "../train/state_store.ts";
import type { Buf } from "./expr.ts";
import { type ArenaSpec, gpuData, GpuRunner, MAP_READ, openDevice, USAGE } from "./executor.ts";
import { ArenaLayout, sortIds, toArena } from "./graph_session.ts";
import { lowerGraph, type OutTarget, type Program } from "./lower.ts";

/** Prefix of the outputs that replace training state. */
const UPDATED = "updated.";

/** State name prefixes with an arena of their own, laid out like the parameters. */
const MIRRORS: [string, string][] = [["adam_m.", "M"], ["adam_v.", "V"], ["grad_acc.", "G"]];

/** A step graph compiled for the store. */
export interface GpuStepProgram extends StepProgram {
  /** Dispatches per run. */
  readonly dispatches: number;
  /** The program on the device (for profiles: `runner.describe(i)`). */
  readonly runner: GpuRunner;
  /** Distinct pipelines. */
  readonly pipelines: number;
}

interface Compiled extends GpuStepProgram {
  program: Program;
  runner: GpuRunner;
  floats: ArenaLayout;
  ints: ArenaLayout;
  hostF: Float32Array;
  hostI: Int32Array;
  /** Batch inputs (not state) by name. */
  feeds: Set<string>;
  /** State arenas the program writes, with the state names it replaces in each. */
  written: Map<string, Set<string>>;
}

/** Options of `WebGpuStateStore.create`. */
export interface WebGpuStoreOptions {
  /** A device to use (default: `openDevice()`'s). */
  device?: GPUDevice;
  /** Where the store reports its adapter (default console.error). */
  log?: (line: string) => void;
  /**
   * Wait for the GPU after this many unobserved submits, so the host never queues unbounded work
   * (default 32; every readback also waits).
   */
  maxInFlight?: number;
}

/**
 * The executor's state store.
 *
 * @example
 * ```ts
 * const store = await WebGpuStateStore.create();
 * for (const [n, t] of params) store.write(n, t);
 * const prog = await store.compile(stepGraph);
 * await store.run(prog, batchFeeds);             // nothing read back
 * const w = (await store.read(["encoder.linear.weight"])).get("encoder.linear.weight");
 * ```
 */
export class WebGpuStateStore implements StateStore {
  readonly backend = "webgpu" as const;
  readonly deviceName: string;
  /** The memory plan refuses a tensor over the device's largest binding (plan.ts), naming it. */
  readonly checksLimits = true;
  /** Record each kernel in its own compute pass (per-kernel GPU times with `WebGpuRecorder`). */
  profile = false;
  /** Host time of the last `run`: packing the inputs, encoding the command buffer, submitting it (ms). */
  lastRun = { feedMs: 0, encodeMs: 0, submitMs: 0 };
  #device: GPUDevice;
  /** Values written before the arenas exist, or shapes of state whose arena slot is reserved. */
  #pending = new Map<string, Tensor>();
  #shapes = new Map<string, number[]>();
  #live = new Set<string>();
  /** Read side (arena `P`, …) and write side (arena `P'`, same offsets) of each state arena. */
  #layouts = new Map<string, ArenaLayout>();
  #next = new Map<string, ArenaLayout>();
  /** The two copies of each state arena, and which one is current. */
  #phys = new Map<string, [GPUBuffer, GPUBuffer]>();
  #cur = new Map<string, number>();
  #programs: Compiled[] = [];
  #runs = 0;
  #unobserved = 0;
  #maxInFlight: number;
  #nextId = 2_000_000;

  private constructor(device: GPUDevice, name: string, maxInFlight: number) {
    this.#device = device;
    this.deviceName = name;
    this.#maxInFlight = maxInFlight;
  }

  static async create(opts: WebGpuStoreOptions = {}): Promise<WebGpuStateStore> {
    let device = opts.device, name = "webgpu";
    if (!device) {
      const d = await openDevice();
      device = d.device;
      const i = d.adapter.info;
      name = `webgpu (${[i.vendor, i.architecture, i.description].filter((s) => s).join(" ") || "adapter"})`;
    }
    return new WebGpuStateStore(device, name, opts.maxInFlight ?? 32);
  }

  /** The device the state lives on. */
  get device(): GPUDevice {
    return this.#device;
  }

  // ---- state layout ----

  /** Places every state tensor known so far (first compile); later state must fit the reserved slots. */
  #placeState(extra: Map<string, number[]>): void {
    for (const [n, s] of extra) if (!this.#shapes.has(n)) this.#shapes.set(n, s);
    if (this.#layouts.size > 0) {
      for (const n of extra.keys()) this.#slot(n); // must already be reserved
      return;
    }
    const P = new ArenaLayout("P", "f32", "state", this.#nextId);
    const X = new ArenaLayout("X", "f32", "state", this.#nextId + 100_000);
    this.#nextId += 200_000;
    // Parameters (and names of unknown kind) first, in the order they were written.
    const mirrored = new Set<string>();
    for (const n of this.#shapes.keys()) {
      const m = MIRRORS.find(([p]) => n.startsWith(p));
      if (m) mirrored.add(n.slice(m[0].length));
    }
    for (const [n, s] of this.#shapes) {
      if (MIRRORS.some(([p]) => n.startsWith(p))) continue;
      const size = s.reduce((a, b) => a * b, 1);
      if (n.includes(".") || mirrored.has(n)) P.add(n, size);
      else X.add(n, size);
    }
    this.#layouts.set("P", P);
    this.#layouts.set("X", X);
    for (const [prefix, arena] of MIRRORS) {
      const L = new ArenaLayout(arena, "f32", "state", this.#nextId);
      this.#nextId += 100_000;
      for (const [n, b] of P.bufs) L.add(prefix + n, b.size);
      this.#layouts.set(arena, L);
    }
    for (const [name, L] of this.#layouts) {
      const W = new ArenaLayout(`${name}'`, "f32", "state", this.#nextId);
      this.#nextId += 100_000;
      for (const [n, b] of L.bufs) W.add(n, b.size);
      this.#next.set(name, W);
      const make = (i: number) =>
        this.#device.createBuffer({
          label: `uer:state:${name}#${i}`,
          size: Math.max(L.size, 64) * 4,
          usage: USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC,
        });
      this.#phys.set(name, [make(0), make(1)]);
      this.#cur.set(name, 0);
    }
    for (const [n, t] of this.#pending) this.#upload(n, t);
    this.#pending.clear();
  }

  /** The current copy of a state arena. */
  #current(arena: string): GPUBuffer {
    return this.#phys.get(arena)![this.#cur.get(arena)!];
  }

  /** Where state `name` lives: its read-side buffer, or with `write` its write-side one. */
  #slot(name: string, write = false): Buf {
    for (const [arena, L] of this.#layouts) {
      const b = L.bufs.get(name);
      if (b) return write ? this.#next.get(arena)!.bufs.get(name)! : b;
    }
    throw new RangeError(
      `Cannot place state "${name}": the store's layout was fixed by the first compiled graph\n  hint: write every parameter before compiling`,
    );
  }

  #upload(name: string, t: Tensor): void {
    const b = this.#slot(name);
    if (t.data.length !== b.size) {
      throw new RangeError(`Cannot write state "${name}": ${t.data.length} values, slot holds ${b.size}`);
    }
    this.#device.queue.writeBuffer(this.#current(b.arena), b.offset * 4, gpuData(toArena(t, "f32")));
  }

  // ---- StateStore ----

  has(name: string): boolean {
    return this.#live.has(name);
  }

  write(name: string, value: Tensor): void {
    if (value.dtype !== "F32") throw new TypeError(`Cannot write state "${name}": ${value.dtype}, the store holds F32`);
    if (!this.#shapes.has(name)) this.#shapes.set(name, [...value.shape]);
    this.#live.add(name);
    if (this.#layouts.size === 0) this.#pending.set(name, { ...value, data: value.data.slice() });
    else this.#upload(name, value);
  }

  delete(name: string): void {
    this.#live.delete(name);
    this.#pending.delete(name);
  }

  /**
   * Lowers `graph` (inputs named like state read the store; `updated.<name>` outputs replace state);
   * `opts.outputs` limits the outputs computed (default all).
   */
  async compile(graph: Graph, opts: { outputs?: string[] } = {}): Promise<GpuStepProgram> {
    const wanted = (n: string) => !opts.outputs || opts.outputs.includes(n);
    const isState = (n: string) => this.#shapes.has(n) || MIRRORS.some(([p]) => n.startsWith(p));
    const extra = new Map<string, number[]>();
    for (const v of graph.values) {
      if ((v.tags.has("input") || v.tags.has("param")) && isState(v.name)) extra.set(v.name, v.shape as number[]);
    }
    for (const v of graph.outputs()) {
      if (v.name.startsWith(UPDATED) && wanted(v.name)) extra.set(v.name.slice(UPDATED.length), v.shape as number[]);
    }
    this.#placeState(extra);
    const id = this.#nextId;
    this.#nextId += 200_000;
    const floats = new ArenaLayout("IF", "f32", "input", id),
      ints = new ArenaLayout("II", "i32", "input", id + 100_000);
    const inputs = new Map<string, Buf>();
    const feeds = new Set<string>();
    const inputNames: string[] = [];
    for (const v of graph.values) {
      if (!v.tags.has("input") && !v.tags.has("param")) continue;
      inputNames.push(v.name);
      if (extra.has(v.name)) inputs.set(v.name, this.#slot(v.name));
      else {
        const n = v.shape.reduce<number>((a, d) => a * Number(d), 1);
        inputs.set(v.name, (v.dtype === "F32" ? floats : ints).add(v.name, n));
        feeds.add(v.name);
      }
    }
    const outputs = new Map<string, OutTarget>();
    const infos = new Map<string, { dtype: DType; shape: number[] }>();
    for (const v of graph.outputs()) {
      if (!wanted(v.name)) continue;
      infos.set(v.name, { dtype: v.dtype, shape: v.shape as number[] });
      const state = v.name.startsWith(UPDATED) ? v.name.slice(UPDATED.length) : undefined;
      outputs.set(v.name, state ? { kind: "buf", buf: this.#slot(state, true) } : { kind: "host" });
    }
    const program = lowerGraph(graph, { inputs, outputs, derivedBuf: (name, n) => ints.add(name, n) });
    const fixed: ArenaSpec[] = [floats.spec(2), ints.spec(2)];
    const external = [...this.#layouts.values(), ...this.#next.values()].map((L) => L.spec());
    const runner = await GpuRunner.create(this.#device, program, fixed, { external });
    const written = new Map<string, Set<string>>();
    for (const n of infos.keys()) {
      if (!n.startsWith(UPDATED)) continue;
      const b = this.#slot(n.slice(UPDATED.length));
      if (!written.has(b.arena)) written.set(b.arena, new Set());
      written.get(b.arena)!.add(n.slice(UPDATED.length));
    }
    const c: Compiled = {
      inputNames,
      outputNames: [...infos.keys()],
      outputs: infos,
      dispatches: program.kernels.length,
      pipelines: runner.pipelines,
      program,
      runner,
      floats,
      ints,
      hostF: new Float32Array(floats.size),
      hostI: new Int32Array(ints.size),
      feeds,
      written,
    };
    this.#programs.push(c);
    return c;
  }

  /**
   * Runs a compiled step: host inputs from `feeds`, state from the store; `updated.*` outputs replace
   * state on the device; other outputs are read back (one readback) into `opts.into` or returned.
   */
  async run(
    program: StepProgram,
    feeds: Record<string, Tensor>,
    opts: { into?: Record<string, Tensor> } = {},
  ): Promise<Record<string, Tensor>> {
    const c = program as Compiled;
    for (const n of c.inputNames) {
      if (!c.feeds.has(n) && !this.#live.has(n) && !n.startsWith("grad_acc.")) {
        throw new RangeError(`Cannot run the step: no state named "${n}"`);
      }
    }
    const t0 = performance.now();
    const slot = this.#runs++ % 2;
    this.#writeFeeds(c, feeds, slot);
    const t1 = performance.now();
    const enc = this.#device.createCommandEncoder();
    // State buffers: read the current copy, write the other; carry across what this step does not replace.
    const ext = new Map<string, GPUBuffer>();
    for (const [arena, [b0, b1]] of this.#phys) {
      const cur = this.#cur.get(arena)!;
      ext.set(arena, cur ? b1 : b0);
      ext.set(`${arena}'`, cur ? b0 : b1);
    }
    for (const [arena, names] of c.written) {
      for (const [n, b] of this.#layouts.get(arena)!.bufs) {
        if (names.has(n) || !this.#live.has(n)) continue;
        enc.copyBufferToBuffer(ext.get(arena)!, b.offset * 4, ext.get(`${arena}'`)!, b.offset * 4, b.size * 4);
      }
    }
    if (this.profile) c.runner.encodeEach(enc, slot, ext);
    else {
      const pass = enc.beginComputePass();
      c.runner.encode(pass, slot, ext);
      pass.end();
    }
    const host = [...c.program.hostOutputs];
    let staging: GPUBuffer | undefined;
    let total = 0;
    if (host.length) {
      total = host.reduce((a, [, b]) => a + b.size * 4, 0);
      staging = this.#device.createBuffer({ size: total, usage: USAGE.MAP_READ | USAGE.COPY_DST });
      let at = 0;
      for (const [, b] of host) {
        enc.copyBufferToBuffer(c.runner.buffer(b.arena), c.runner.byteOffset(b), staging, at, b.size * 4);
        at += b.size * 4;
      }
    }
    const cb = enc.finish();
    const t2 = performance.now();
    this.#device.queue.submit([cb]);
    this.lastRun = { feedMs: t1 - t0, encodeMs: t2 - t1, submitMs: performance.now() - t2 };
    for (const [arena, names] of c.written) {
      this.#cur.set(arena, 1 - this.#cur.get(arena)!);
      for (const n of names) this.#live.add(n);
    }
    if (!staging) {
      if (++this.#unobserved >= this.#maxInFlight) await this.sync();
      return {};
    }
    await staging.mapAsync(MAP_READ);
    this.#unobserved = 0;
    const all = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    const res: Record<string, Tensor> = {};
    let at = 0;
    for (const [name, b] of host) {
      const data = all.subarray(at, at + b.size);
      at += b.size;
      const info = c.outputs.get(name)!;
      const into = opts.into?.[name];
      if (into) (into.data as Float32Array).set(data);
      else res[name] = { dtype: "F32", shape: [...info.shape], data: data.slice() };
    }
    return res;
  }

  #writeFeeds(c: Compiled, feeds: Record<string, Tensor>, slot: number): void {
    for (const n of c.feeds) {
      const t = feeds[n];
      if (!t) throw new RangeError(`Cannot run the step: input "${n}" is not fed`);
      const fb = c.floats.bufs.get(n);
      if (fb) c.hostF.set(toArena(t, "f32"), fb.offset);
      else c.hostI.set(toArena(t, "i32"), c.ints.bufs.get(n)!.offset);
    }
    for (const d of c.program.derived) {
      const ids = new Int32Array(d.n);
      for (let j = 0; j < d.n; j++) ids[j] = c.hostI[d.source.offset + d.offset + j * d.stride];
      const { sorted, perm } = sortIds(ids);
      c.hostI.set(sorted, d.sortedIds.offset);
      c.hostI.set(perm, d.perm.offset);
    }
    const q = this.#device.queue;
    if (c.floats.size) q.writeBuffer(c.runner.buffer("IF"), slot * c.runner.slotBytes("IF"), gpuData(c.hostF));
    if (c.ints.size) q.writeBuffer(c.runner.buffer("II"), slot * c.runner.slotBytes("II"), gpuData(c.hostI));
  }

  /** Waits until the device has finished everything submitted. */
  async sync(): Promise<void> {
    await this.#device.queue.onSubmittedWorkDone();
    this.#unobserved = 0;
  }

  /** Host copies of state tensors, in one readback. */
  async read(names: readonly string[]): Promise<Map<string, Tensor>> {
    if (this.#layouts.size === 0) {
      return new Map(names.map((n) => {
        const t = this.#pending.get(n);
        if (!t) throw new RangeError(`Cannot read state "${n}": it does not exist`);
        return [n, { ...t, shape: [...t.shape], data: t.data.slice() }];
      }));
    }
    const bufs = names.map((n) => {
      if (!this.#live.has(n)) throw new RangeError(`Cannot read state "${n}": it does not exist`);
      return this.#slot(n);
    });
    const total = bufs.reduce((a, b) => a + b.size * 4, 0);
    const staging = this.#device.createBuffer({
      size: Math.max(total, 4),
      usage: USAGE.MAP_READ | USAGE.COPY_DST,
    });
    const enc = this.#device.createCommandEncoder();
    let at = 0;
    for (const b of bufs) {
      enc.copyBufferToBuffer(this.#current(b.arena), b.offset * 4, staging, at, b.size * 4);
      at += b.size * 4;
    }
    this.#device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ);
    this.#unobserved = 0;
    const all = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    const out = new Map<string, Tensor>();
    at = 0;
    names.forEach((n, i) => {
      out.set(n, { dtype: "F32", shape: [...this.#shapes.get(n)!], data: all.slice(at, at + bufs[i].size) });
      at += bufs[i].size;
    });
    return out;
  }

  /** Frees the device memory (the device itself stays). */
  // deno-lint-ignore require-await
  async dispose(): Promise<void> {
    for (const c of this.#programs) c.runner.destroy();
    for (const [b0, b1] of this.#phys.values()) {
      b0.destroy();
      b1.destroy();
    }
    this.#programs = [];
    this.#phys.clear();
    this.#layouts.clear();
    this.#next.clear();
    this.#live.clear();
  }
}
