/**
 * Where the training state lives and how step graphs run over it. The state is a set of named tensors
 * (parameters, Adam moments, gradient accumulators, statistics' running sums: training_graph.ts names
 * them); a step graph's input named like a piece of state is fed from the store and its output
 * `updated.<name>` becomes that state, so between steps nothing is read back unless asked (`read`).
 * The trainer (trainer.ts) runs every step through this interface, whatever the engine.
 *
 * `OrtStateStore` runs the graphs with onnxruntime: on the CPU (onnxruntime-node) the state is host
 * buffers, two per tensor used in turn (a step reads one and writes the other in place, so a step
 * allocates and copies no state; onnxruntime-node would otherwise copy every output into a fresh
 * buffer); on WebGPU (onnxruntime-web) every `updated.*` output stays a GPU buffer fed back as the next
 * step's input, so a step uploads only the batch and reads nothing back. Another engine (e.g. one
 * keeping everything in its own GPU buffers and encoding a step as one command buffer) implements
 * `StateStore` and plugs into the same trainer.
 *
 * Browser compatible apart from the CPU backend (onnxruntime-node, loaded by core/runtime only when asked).
 * @module
 */
import type { Graph } from "../graph/builder.ts";
import { memoryPlan } from "../graph/memory_plan.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession, type DeviceTensor, pickBackend, type Session } from "../runtime/mod.ts";
import type { Backend, Device } from "../runtime/types.ts";
import type { DType, Tensor } from "../tensor.ts";
import { HostAdamw } from "./adamw_host.ts";
import type { ParamSpec } from "./task.ts";
import { names, UPDATED } from "./training_graph.ts";

/** A graph prepared to run over a store (an onnxruntime session, or another engine's program). */
export interface StepProgram {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Static dtype and shape of each output. */
  readonly outputs: ReadonlyMap<string, { dtype: DType; shape: number[] }>;
}

/** Options of `StateStore.run`. */
export interface RunOptions {
  /**
   * Host tensors that receive outputs which are not state, in place (e.g. the all-reduce buffer for
   * `grad_flat`); they must not share memory with the feeds or the state.
   */
  into?: Record<string, Tensor>;
}

/**
 * The training state and the engine that runs step graphs over it.
 *
 * @example
 * ```ts
 * const store = await createStateStore({ device: "cpu" });
 * store.write("w", w0);
 * const p = await store.compile(graph);           // inputs: w, x; outputs: updated.w, loss
 * const { loss } = await store.run(p, { x });     // w <- updated.w, loss read back
 * const w = (await store.read(["w"])).get("w");
 * ```
 */
export interface StateStore {
  readonly backend: Backend;
  /** Where the graphs run, for messages. */
  readonly deviceName: string;
  /**
   * True when the store refuses, with its own message, a step whose tensors exceed the device's limits
   * (the WebGPU executor places its own tensors, which are not the graph's: no [B·T,V] one-hot exists
   * there); the trainer's preflight (device_limits.ts) is then skipped.
   */
  readonly checksLimits?: boolean;
  /** Prepares `graph` (its ONNX ops, static shapes) to run over the store. */
  compile(graph: Graph): Promise<StepProgram>;
  /**
   * Runs `program`: inputs named like state come from the store, the rest from `feeds`; each output
   * `updated.<name>` becomes state `<name>`; other outputs are written into `opts.into` or returned as
   * host tensors.
   */
  run(program: StepProgram, feeds: Record<string, Tensor>, opts?: RunOptions): Promise<Record<string, Tensor>>;
  /** True when state `name` exists. */
  has(name: string): boolean;
  /** Host copies of state tensors (one readback on a device). */
  read(names: readonly string[]): Promise<Map<string, Tensor>>;
  /** Sets state `name` (the store never writes into `value`). */
  write(name: string, value: Tensor): void;
  /** Drops state `name` (frees device memory). */
  delete(name: string): void;
  /**
   * A store whose state is host memory may keep the parameters and Adam moments of `params` (with a
   * slot for each gradient) in a host AdamW's memory (adamw_host.ts): the trainer then runs the
   * `gradients` graph into those slots and `HostAdamw.step` instead of the graph's AdamW. Undefined
   * when the store does not (a device store, or state too large for it). Call before writing them.
   */
  hostAdamw?(params: readonly ParamSpec[]): HostAdamw | undefined;
  /** Frees everything. */
  dispose(): Promise<void>;
}

/** Options of `createStateStore`. */
export interface StateStoreOptions {
  device: Device;
  /** CPU intra-op threads (default 2). */
  threads?: number;
  /** CPU: onnxruntime's worker threads spin between ops (default true; see TrainerOptions.spinning). */
  spinning?: boolean;
  /** Where `auto` reports its device choice (default console.error). */
  log?: (line: string) => void;
  /**
   * CPU with `threads` > 1: how a small step graph (planned intermediates ≤ 256 MiB) picks its intra-op
   * threads. From its third run it is timed on `threads` and on one thread, alternately, and the faster
   * runs on; then every `every` runs the other setting runs a few times and takes over when its median
   * beats the median of the current one's recent runs, and a switch is checked again after 16 runs (the
   * numbers are the same bit for bit: DESIGN.md §6.1, §6.5). A tiny model's step is ~1,000 short kernels, each a fork-join over the threads: on a
   * loaded machine one thread can be a third faster, on a quiet one `threads` is, and a shared machine
   * moves between the two. `false`: always `threads`. Default `{ every: 100 }`.
   */
  threadProbe?: false | { every: number };
  /**
   * CPU: keep parameters and moments in a host AdamW's memory when a trainer asks (`hostAdamw`; default
   * true). false keeps AdamW in the step graph (a baseline for tests and benchmarks).
   */
  hostAdamw?: boolean;
  /**
   * WebGPU: the project's executor (`executor`, core/webgpu: one command buffer per step, default) or
   * onnxruntime-web's WebGPU EP (`ort`, kept as a baseline for bench/webgpu_step_bench.ts).
   */
  engine?: "executor" | "ort";
}

type Held = Tensor | DeviceTensor;

function isDevice(t: Held): t is DeviceTensor {
  return (t as DeviceTensor).kind === "device";
}

/** Planned intermediates up to which a CPU step graph is also timed on one thread (`threadProbe`). */
const PROBE_MAX_BYTES = 256 * 2 ** 20;
/** Runs per session in the first probe, alternating (the first of each is not timed: it may grow the arena). */
const PROBE_RUNS = 5;
/** Runs of the other session in a later probe (the first not timed: its caches are cold). */
const REPROBE_RUNS = 4;
/** Recent runs of the session in use that a later probe compares with. */
const RECENT_RUNS = 8;
/** Runs after a probe that switched settings until the next probe checks the switch (not `every`). */
const RECHECK_RUNS = 2 * RECENT_RUNS;

/** A CPU program's choice between `threads` and one intra-op thread (`threadProbe`). */
interface ThreadProbe {
  /** The one-thread twin, created at the first probe. */
  single?: Session;
  model: Uint8Array;
  /** Runs so far, and the run where the next probe starts. */
  runs: number;
  next: number;
  /** Whether a probe has been completed (the first alternates both; later ones run the other only). */
  decided: boolean;
  /** Wall ms of the current probe's timed runs: [threads, one]. */
  times: [number[], number[]];
  /** Wall ms of the last `RECENT_RUNS` runs of the session in use, outside probes. */
  recent: number[];
  /** The session used outside probes: 0 = `threads`, 1 = one thread. */
  use: 0 | 1;
}

interface OrtProgram extends StepProgram {
  readonly session: Session;
  readonly probe?: ThreadProbe;
  /** Outputs that replace state: output name, state name, dtype and shape (built once). */
  readonly updates: readonly { output: string; name: string; dtype: DType; shape: number[] }[];
  /** Other outputs. */
  readonly plain: readonly string[];
}

/** The onnxruntime state store: host buffers on the CPU, GPU buffers on WebGPU. */
export class OrtStateStore implements StateStore {
  readonly backend: Backend;
  readonly deviceName: string;
  #threads: number;
  #spinning: boolean;
  #state = new Map<string, Held>();
  /** CPU: the two owned buffers per state tensor (one holds the current value, a step writes the other). */
  #pairs = new Map<string, [Tensor, Tensor]>();
  #sessions: Session[] = [];
  #probeEvery: number;
  /** CPU: runs done on `threads` and on one thread. */
  #runsOn: [number, number] = [0, 0];
  /** CPU: the host AdamW (`hostAdamw`), and the state it holds: name → the tensor viewing its memory. */
  #host: HostAdamw | undefined;
  #hostViews = new Map<string, Tensor>();
  #hostAllowed: boolean;

  constructor(
    backend: Backend,
    opts: { threads?: number; spinning?: boolean; threadProbe?: false | { every: number }; hostAdamw?: boolean } = {},
  ) {
    this.#hostAllowed = opts.hostAdamw ?? true;
    this.backend = backend;
    this.#threads = opts.threads ?? 2;
    this.#spinning = opts.spinning ?? true;
    const every = opts.threadProbe === false ? 0 : opts.threadProbe?.every ?? 100;
    if (!(Number.isInteger(every) && every >= 0)) throw new RangeError(`Invalid threadProbe.every ${every}`);
    this.#probeEvery = backend === "cpu" && this.#threads > 1 ? every : 0;
    this.deviceName = backend === "cpu" ? `cpu (onnxruntime-node, ${this.#threads} threads)` : backend;
  }

  /**
   * CPU: how many runs went to `threads` intra-op threads and how many to one (`threadProbe`), e.g.
   * for a benchmark's report.
   */
  get runsByThreads(): { threads: number; runs: number }[] {
    return [{ threads: this.#threads, runs: this.#runsOn[0] }, { threads: 1, runs: this.#runsOn[1] }];
  }

  #createSession(model: Uint8Array, threads: number, gpuOutputs?: string[]): Promise<Session> {
    return createSession(model, {
      device: this.backend,
      threads,
      spinning: this.#spinning,
      memPattern: false, // one block per run would hold the live set twice (runtime/types.ts)
      gpuOutputs,
    });
  }

  async compile(graph: Graph): Promise<StepProgram> {
    const outs = graph.outputs();
    const keep = outs.map((v) => v.name).filter((n) => n.startsWith(UPDATED));
    const model = toOnnx(graph).model;
    const session = await this.#createSession(model, this.#threads, this.backend === "webgpu" ? keep : undefined);
    this.#sessions.push(session);
    const probe: ThreadProbe | undefined = this.#probeEvery > 0 && plannedBytes(graph) <= PROBE_MAX_BYTES
      ? { model, runs: 0, next: 2, decided: false, times: [[], []], recent: [], use: 0 }
      : undefined;
    const outputs = new Map(outs.map((v) => [v.name, { dtype: v.dtype, shape: v.shape as number[] }]));
    const updates = session.outputNames.filter((o) => o.startsWith(UPDATED)).map((o) => ({
      output: o,
      name: o.slice(UPDATED.length),
      ...outputs.get(o)!,
    }));
    const program: OrtProgram = {
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      outputs,
      session,
      probe,
      updates,
      plain: session.outputNames.filter((o) => !o.startsWith(UPDATED)),
    };
    return program;
  }

  /**
   * The session of this run (`threadProbe`): outside a probe the faster one; in the first probe
   * `threads` and one thread alternately, in later ones the other session against the recent runs
   * of the one in use; `done(ms)` records the run's wall time.
   */
  async #pick(p: OrtProgram): Promise<{ session: Session; done: (ms: number) => void }> {
    const probe = p.probe;
    if (!probe) return { session: p.session, done: () => this.#runsOn[0]++ };
    const k = probe.runs++ - probe.next; // index within the probe
    const length = probe.decided ? REPROBE_RUNS : 2 * PROBE_RUNS;
    // A later probe waits until the session in use has recent runs to compare with.
    const probing = k >= 0 && k < length && (!probe.decided || probe.recent.length >= RECENT_RUNS);
    const other = (1 - probe.use) as 0 | 1;
    const on: 0 | 1 = !probing ? probe.use : probe.decided ? other : (k % 2) as 0 | 1;
    if (on === 1 && !probe.single) {
      probe.single = await this.#createSession(probe.model, 1);
      this.#sessions.push(probe.single);
    }
    const done = (ms: number) => {
      this.#runsOn[on]++;
      if (!probing) {
        probe.recent.push(ms);
        if (probe.recent.length > RECENT_RUNS) probe.recent.shift();
        if (k >= 0) probe.next = probe.runs; // a probe due but deferred starts with the next run
        return;
      }
      // Each session's first run of a probe is not timed (arena growth, cold caches).
      if (probe.decided ? k >= 1 : k >= 2) probe.times[on].push(ms);
      if (k === length - 1) {
        const [a, b] = probe.decided
          ? (on === 1 ? [median(probe.recent), median(probe.times[1])] : [median(probe.times[0]), median(probe.recent)])
          : probe.times.map(median);
        const use: 0 | 1 = b < a ? 1 : 0;
        // A switch made in a noisy minute is checked again soon instead of holding for `every` runs.
        const switched = probe.decided && use !== probe.use;
        if (use !== probe.use) probe.recent = [];
        probe.use = use;
        probe.decided = true;
        probe.times = [[], []];
        probe.next = probe.runs + (switched ? Math.min(RECHECK_RUNS, this.#probeEvery) : this.#probeEvery);
      }
    };
    return { session: on === 1 ? probe.single! : p.session, done };
  }

  async run(
    program: StepProgram,
    feeds: Record<string, Tensor>,
    opts: RunOptions = {},
  ): Promise<Record<string, Tensor>> {
    const { inputNames, updates, plain } = program as OrtProgram;
    const { session, done } = await this.#pick(program as OrtProgram);
    const all: Record<string, Held> = { ...feeds };
    for (const n of inputNames) {
      if (n in all) continue;
      const s = this.#state.get(n);
      if (!s) throw new RangeError(`Cannot run the step: no feed and no state named "${n}"`);
      all[n] = s;
    }
    if (session.runInto) {
      const into: Record<string, Tensor> = { ...opts.into };
      const fetch = plain.filter((o) => !(o in into));
      const commit: Tensor[] = [];
      for (const { output, name, dtype, shape } of updates) {
        let pair = this.#pairs.get(name);
        if (!pair || pair[0].shape.length !== shape.length || pair[0].shape.some((d, i) => d !== shape[i])) {
          const z = () => ({ dtype, shape: [...shape], data: new Float32Array(numel(shape)) });
          this.#pairs.set(name, pair = [z(), z()]);
        }
        const t = this.#state.get(name) === pair[0] ? pair[1] : pair[0];
        into[output] = t;
        commit.push(t);
      }
      const t = performance.now();
      const res = await session.runInto(all, into, fetch);
      done(performance.now() - t);
      // State held in the host AdamW's memory stays there: a graph's update of it is copied in.
      updates.forEach(({ name }, i) =>
        this.#hostViews.has(name) ? this.write(name, commit[i]) : this.#set(name, commit[i])
      );
      return res;
    }
    const out = await session.runDevice(all);
    const res: Record<string, Tensor> = {};
    for (const [o, t] of Object.entries(out)) {
      if (o.startsWith(UPDATED)) {
        this.#set(o.slice(UPDATED.length), t);
        continue;
      }
      const host = await t.download();
      if (t.location !== "cpu") t.dispose();
      const target = opts.into?.[o];
      if (target) (target.data as Float32Array).set(host.data as Float32Array);
      else res[o] = host;
    }
    return res;
  }

  #set(name: string, t: Held): void {
    const old = this.#state.get(name);
    this.#state.set(name, t);
    if (old && old !== t && isDevice(old)) old.dispose();
  }

  has(name: string): boolean {
    return this.#state.has(name);
  }

  /**
   * CPU (onnxruntime-node): parameters and moments of `params` move into one WebAssembly memory,
   * which onnxruntime reads in place, and AdamW runs there (adamw_host.ts; DESIGN.md §6.8). One host
   * AdamW per store.
   */
  hostAdamw(params: readonly ParamSpec[]): HostAdamw | undefined {
    if (this.backend !== "cpu" || !this.#hostAllowed) return undefined;
    if (this.#host) {
      const same = this.#host.specs.length === params.length &&
        params.every((p, i) =>
          p.name === this.#host!.specs[i].name && p.shape.join() === this.#host!.specs[i].shape.join()
        );
      if (!same) throw new RangeError("Cannot keep a second set of parameters in this store's host AdamW");
      return this.#host;
    }
    const host = HostAdamw.create(params);
    if (!host) return undefined;
    this.#host = host;
    for (const { name, shape } of params) {
      const s = host.slots.get(name)!;
      for (const [state, data] of [[name, s.p], [names.m(name), s.m], [names.v(name), s.v]] as const) {
        const view: Tensor = { dtype: "F32", shape: [...shape], data };
        this.#hostViews.set(state, view);
        const old = this.#state.get(state);
        if (old && !isDevice(old)) this.write(state, old);
      }
    }
    return host;
  }

  async read(names: readonly string[]): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const n of names) {
      const t = this.#state.get(n);
      if (!t) throw new RangeError(`Cannot read state "${n}": it does not exist`);
      // Copies: the store's own buffers are overwritten two steps later.
      out.set(n, isDevice(t) ? await t.download() : { ...t, shape: [...t.shape], data: t.data.slice() });
    }
    return out;
  }

  write(name: string, value: Tensor): void {
    const view = this.#hostViews.get(name);
    if (view) {
      if (value.dtype !== "F32" || value.shape.join() !== view.shape.join()) {
        throw new RangeError(
          `Cannot write state "${name}": ${value.dtype} [${value.shape}], expected F32 [${view.shape}]`,
        );
      }
      if (value.data !== view.data) (view.data as Float32Array).set(value.data as Float32Array);
      this.#set(name, view);
      return;
    }
    this.#set(name, value);
  }

  delete(name: string): void {
    const old = this.#state.get(name);
    if (old && isDevice(old)) old.dispose();
    this.#state.delete(name);
  }

  async dispose(): Promise<void> {
    // Buffers first: a WebGPU session must outlive the outputs it produced.
    for (const t of this.#state.values()) if (isDevice(t)) t.dispose();
    this.#state.clear();
    this.#pairs.clear();
    this.#hostViews.clear();
    this.#host = undefined;
    for (const s of this.#sessions) await s.release();
    this.#sessions = [];
  }
}

/** The graph's planned intermediates (memory_plan.ts); Infinity where it cannot be planned. */
function plannedBytes(graph: Graph): number {
  try {
    return memoryPlan(graph).peakBytes;
  } catch {
    return Infinity;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : Infinity;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The state store for `--device` (`auto` picks WebGPU on a hardware adapter, else the CPU, and says so
 * through `log`): onnxruntime-node on the CPU, the project's WebGPU executor (core/webgpu) on WebGPU
 * (or onnxruntime-web's WebGPU EP with `engine: "ort"`), onnxruntime-web's wasm for `wasm`.
 */
export async function createStateStore(opts: StateStoreOptions): Promise<StateStore> {
  const backend = await pickBackend(opts.device, opts.log);
  if (backend === "webgpu" && (opts.engine ?? "executor") === "executor") {
    const { WebGpuStateStore } = await import("../webgpu/state_store.ts");
    return await WebGpuStateStore.create();
  }
  return new OrtStateStore(backend, opts);
}
