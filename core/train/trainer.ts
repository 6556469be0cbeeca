/**
 * One training step at a time for any task (task.ts: pretraining, classification), as UER-py's
 * trainers do it: forward + `loss.backward()` + (every `accumulation_steps`) `optimizer.step()`
 * (`uer/trainer.py`, `finetune/run_classifier.py` `train_model`), run as the step graphs of
 * training_graph.ts over a state store (state_store.ts) holding the parameters, Adam moments, the
 * window's gradient accumulators and the statistics' running sums. There is one step path: a
 * micro-step runs one graph — `accumulate` inside an accumulation window, `update` (gradients +
 * AdamW) at its end — or, with a data-parallel gradient hook, `gradients` (one flat buffer handed to
 * the hook, e.g. an all-reduce) then `apply`. On the CPU the window's end is `gradients` written into
 * the store's host AdamW memory, then its WebAssembly pass (adamw_host.ts), hook or not. Statistics
 * are summed inside the graph and read only when asked (`takeStats`), so a device step needs no
 * readback on steps that do not report.
 *
 * Shapes are static per task shape (`TrainTask.shapeFor`): a smaller last batch is padded with
 * zero-weight rows, which gives the same numbers, so one set of graphs serves every batch of a
 * sequence length.
 *
 * Browser compatible apart from the CPU backend (onnxruntime-node, loaded by core/runtime only when asked).
 * @module
 */
import type { Device } from "../runtime/types.ts";
import type { Tensor } from "../tensor.ts";
import { ADAMW, adamwScalars } from "./adamw.ts";
import type { HostAdamw } from "./adamw_host.ts";
import { DROPOUT_KEY, dropoutKey } from "./dropout.ts";
import { checkDeviceLimits, largestTensor } from "./device_limits.ts";
import { createStateStore, type StateStore, type StepProgram } from "./state_store.ts";
import { evalGraph, flatLayout, names, stepGraph, type StepKind } from "./training_graph.ts";
import { type ParamSpec, scalarF32, type StepShape, type TrainTask, zerosF32 } from "./task.ts";

/** Options of `Trainer.create`. */
export interface TrainerOptions<B> {
  /** What is trained (pretrainTask, classifierTask). */
  task: TrainTask<B>;
  /** Initial parameters, UER names (every one of `task.params`). */
  params: Map<string, Tensor>;
  /** Adam moments (resume); zeros when absent. */
  moments?: { m: Map<string, Tensor>; v: Map<string, Tensor> };
  /** Where to run (ignored when `store` is given). */
  device?: Device;
  /** A state store to run on (another engine); default an onnxruntime store for `device`. */
  store?: StateStore;
  /** `--accumulation_steps` (default 1). */
  accumulationSteps?: number;
  /** Weight decay of the decayed group (default 0.01). */
  weightDecay?: number;
  /** CPU intra-op threads (default 2). */
  threads?: number;
  /**
   * CPU: let onnxruntime's worker threads spin between ops (default true, onnxruntime's own
   * default). A training step is ~1,000 kernels back to back, and waking a sleeping worker for each
   * cost ~25% of a small model's step in bench/pretrain_bench.ts; pass false on a shared machine.
   */
  spinning?: boolean;
  /**
   * CPU: time a small step graph on `threads` and on one thread now and then and run the faster
   * (state_store.ts `StateStoreOptions.threadProbe`; default every 100 runs; false: always `threads`).
   */
  threadProbe?: false | { every: number };
  /** Where `auto` reports its device choice (default console.error). */
  log?: (line: string) => void;
  /**
   * Data-parallel runs (core/parallel `gradientAverager`): averages the window's gradients over the ranks.
   * When set, the window's last micro-step runs the `gradients` graph, hands its gradients (one flat
   * float32 buffer in `task.params` order) to this hook and applies AdamW with the `apply` graph to
   * what the hook returns, so every rank applies the same update.
   */
  averageGradients?: GradientHook;
  /**
   * Per-step rows of statistics kept on the device between two `takeStats` calls (default 1: sums
   * only). With R rows, `takeStats` after at most R steps returns each step's values too.
   */
  statSlots?: number;
  /** `--dropout` probability (default 0: no dropout nodes). */
  dropout?: number;
  /** `--seed`: the dropout generator's seed (default 7). */
  seed?: number;
  /** Micro-steps already done (a resumed run), so dropout draws continue where they stopped. */
  startMicroStep?: number;
  /** `--recompute_activations`: recompute each layer application in the backward (training_graph.ts). */
  recompute?: boolean;
}

/**
 * The data-parallel gradient hook (`TrainerOptions.averageGradients`): gets the window's gradients as
 * one flat float32 buffer (parameters back to back in `task.params` order, training_graph.ts
 * `flatLayout`) and returns the averaged buffer (it may be the same array). When it carries `buffer`,
 * a CPU trainer has the gradient graph write straight into it (no copy, no allocation per step).
 */
export type GradientHook =
  & ((grads: Float32Array) => Float32Array | Promise<Float32Array>)
  & { buffer?: Float32Array };

/** Statistics taken from a trainer (`takeStats`). */
export interface TakenStats {
  /** Micro-steps since the previous take. */
  steps: number;
  /** Sums over those steps, by statistic name (the task's graph and host statistics). */
  sums: Record<string, number>;
  /** Each step's values, in order, when `steps` ≤ `statSlots` (else null). */
  rows: Record<string, number>[] | null;
}

interface ShapeEntry {
  shape: StepShape;
  programs: Map<string, StepProgram>;
}

/**
 * The step runner.
 *
 * @example
 * ```ts
 * const t = await Trainer.create({ task: pretrainTask(config), params, device: "cpu" });
 * await t.step(batch, schedule.lrAt(1));
 * const { sums } = await t.takeStats(); // sums.loss, sums.correct_mlm, …
 * const params = await t.params();
 * ```
 */
export class Trainer<B> {
  readonly task: TrainTask<B>;
  #store: StateStore;
  #ownStore: boolean;
  #acc: number;
  #wd: number;
  #hook: GradientHook | undefined;
  #slots: number;
  #dropout: number;
  #seed: number;
  #micro: number;
  #recompute: boolean;
  #shapes = new Map<number, ShapeEntry>();
  #evalShapes = new Map<number, ShapeEntry>();
  #apply: StepProgram | undefined;
  /** CPU: AdamW on the host over the store's memory (adamw_host.ts), with the gradient slots as outputs. */
  #host: HostAdamw | undefined;
  /** Per `gradients` program: its outputs' buffers, and the tables whose gradient comes as rows + ids. */
  #hostInto = new Map<StepProgram, { into: Record<string, Tensor>; rows: [string, Float32Array, Int32Array][] }>();
  /** The flat buffer's slices as `grad.<p>` outputs (data-parallel on the CPU), for one buffer. */
  #sliceInto: { buf: Float32Array; into: Record<string, Tensor> } | undefined;
  /** Host statistics of the steps since the last take. */
  #hostRows: Record<string, number>[] = [];
  #flatSize: number;
  #log: (line: string) => void;
  /** Shapes checked against the WebGPU adapter's storage limits. */
  #limitsChecked = new Set<StepShape>();

  private constructor(task: TrainTask<B>, store: StateStore, own: boolean, opts: TrainerOptions<B>) {
    this.task = task;
    this.#store = store;
    this.#log = opts.log ?? ((line) => console.error(line));
    this.#ownStore = own;
    this.#acc = opts.accumulationSteps ?? 1;
    this.#wd = opts.weightDecay ?? ADAMW.weightDecay;
    this.#hook = opts.averageGradients;
    this.#slots = opts.statSlots ?? 1;
    this.#dropout = opts.dropout ?? 0;
    this.#seed = opts.seed ?? 7;
    this.#micro = opts.startMicroStep ?? 0;
    this.#recompute = opts.recompute ?? false;
    this.#flatSize = flatLayout(task.params).total;
  }

  /** Where the graphs run, for messages. */
  get deviceName(): string {
    return this.#store.deviceName;
  }

  /** Checks the parameters against the task, picks the device and loads the state. */
  static async create<B>(opts: TrainerOptions<B>): Promise<Trainer<B>> {
    const acc = opts.accumulationSteps ?? 1;
    if (!(Number.isInteger(acc) && acc >= 1)) {
      throw new RangeError(`Invalid --accumulation_steps ${acc}: must be a positive integer`);
    }
    const p = opts.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new RangeError(`Invalid --dropout ${p}: must be in [0, 1)`);
    const slots = opts.statSlots ?? 1;
    if (!(Number.isInteger(slots) && slots >= 1)) throw new RangeError(`Invalid statSlots ${slots}`);
    for (const { name, shape } of opts.task.params) {
      const t = opts.params.get(name);
      if (!t) {
        throw new RangeError(`Cannot train: parameter "${name}" is missing\n  hint: initialise with initParams()`);
      }
      if (t.dtype !== "F32" || t.shape.join() !== shape.join()) {
        throw new RangeError(`Cannot train: parameter "${name}" is ${t.dtype} [${t.shape}], expected F32 [${shape}]`);
      }
    }
    const own = !opts.store;
    const store = opts.store ?? await createStateStore({
      device: opts.device ?? "auto",
      threads: opts.threads,
      spinning: opts.spinning,
      threadProbe: opts.threadProbe,
      log: opts.log,
    });
    const t = new Trainer(opts.task, store, own, opts);
    // Before the state is written: the store may hold it in the host AdamW's memory.
    t.#host = store.hostAdamw?.(opts.task.params);
    for (const { name, shape } of opts.task.params) {
      store.write(name, opts.params.get(name)!);
      store.write(names.m(name), opts.moments?.m.get(name) ?? zerosF32(shape));
      store.write(names.v(name), opts.moments?.v.get(name) ?? zerosF32(shape));
    }
    store.write(names.stats, zerosF32([slots, opts.task.graphStats.length]));
    return t;
  }

  /** The graphs' shape for `batch` (new graphs when it does not fit the known ones). */
  #entry(batch: B, cache: Map<number, ShapeEntry>): ShapeEntry {
    const known = [...cache.values()].map((e) => e.shape);
    const shape = this.task.shapeFor(batch, known);
    const hit = [...cache.values()].find((e) => e.shape === shape);
    if (hit) return hit;
    // Programs of a replaced shape stay compiled until dispose(): their outputs may still be alive.
    const e = { shape, programs: new Map<string, StepProgram>() };
    cache.set(shape.seq, e);
    return e;
  }

  /**
   * WebGPU: before a shape's first step, its largest tensor against the storage limits the adapter offers
   * (engines request them at their maximum); says both, and refuses a step that cannot run (device_limits.ts).
   */
  async #checkLimits(shape: StepShape): Promise<void> {
    if (this.#store.backend !== "webgpu" || this.#store.checksLimits || this.#limitsChecked.has(shape)) return;
    this.#limitsChecked.add(shape);
    const gpu = (globalThis.navigator as Navigator & { gpu?: GPU }).gpu;
    const adapter = await gpu?.requestAdapter();
    if (!adapter) return;
    const build = (s: StepShape) => stepGraph(this.task, s, { kind: "update", weightDecay: this.#wd });
    const err = checkDeviceLimits(build, shape, adapter.limits);
    if (err) throw new RangeError(err);
    const mib = (b: number) => `${Math.floor(b / 2 ** 20)} MiB`;
    const l = adapter.limits;
    this.#log(
      `WebGPU storage limits offered: maxStorageBufferBindingSize ${mib(l.maxStorageBufferBindingSize)}, ` +
        `maxBufferSize ${mib(l.maxBufferSize)}; largest tensor of a ${shape.batch} × ${shape.seq} step ` +
        `${mib(largestTensor(build(shape)).bytes)}`,
    );
  }

  async #program(e: ShapeEntry, kind: StepKind, accumulated: boolean): Promise<StepProgram> {
    const key = `${kind}/${accumulated}`;
    let p = e.programs.get(key);
    if (!p) {
      await this.#checkLimits(e.shape);
      p = await this.#store.compile(stepGraph(this.task, e.shape, {
        kind,
        accumulated,
        scaled: this.#acc > 1,
        scatter: this.#store.backend === "cpu" ? "scatter" : "matmul",
        weightDecay: this.#wd,
        statSlots: this.#slots,
        dropout: this.#dropout,
        recompute: this.#recompute,
        eachGradient: kind === "gradients" && this.#host !== undefined,
        sparseRows: kind === "gradients" && this.#host !== undefined && !this.#hook,
      }));
      e.programs.set(key, p);
    }
    return p;
  }

  /** The lr feeds of an AdamW graph. */
  #lrFeeds(lr: number): Record<string, Tensor> {
    const { negLr, negLrWd } = adamwScalars(lr, this.#wd);
    return { neg_lr: scalarF32(negLr), neg_lr_wd: scalarF32(negLrWd) };
  }

  /**
   * One micro-batch; when the accumulation window completes, AdamW with `lr` (UER's `optimizer.step()`).
   * Nothing is read back (see `takeStats`).
   */
  async step(batch: B, lr: number): Promise<void> {
    const micro = this.#micro++;
    const first = micro % this.#acc === 0, last = (micro + 1) % this.#acc === 0;
    const kind: StepKind = !last ? "accumulate" : this.#hook || this.#host ? "gradients" : "update";
    const e = this.#entry(batch, this.#shapes);
    const program = await this.#program(e, kind, !first);
    const feeds = this.task.feeds(batch, e.shape);
    if (this.#acc > 1) feeds[names.lossScale] = scalarF32(Math.fround(1 / this.#acc));
    if (kind === "update") Object.assign(feeds, this.#lrFeeds(lr));
    if (this.#slots > 1) {
      const slot = zerosF32([this.#slots, 1]);
      slot.data[this.#hostRows.length % this.#slots] = 1;
      feeds[names.statSlot] = slot;
    }
    if (this.#dropout > 0) {
      feeds[DROPOUT_KEY] = { dtype: "I32", shape: [], data: Int32Array.of(dropoutKey(this.#seed, micro)) };
    }
    if (kind === "gradients" && this.#host) {
      // CPU: the gradients go straight into the host AdamW's slots (or the all-reduce buffer's slices).
      if (this.#hook) {
        const buf = this.#flatBuffer();
        await this.#store.run(program, feeds, { into: this.#slices(buf) });
        this.#host.step(lr, this.#wd, await this.#hook(buf));
      } else {
        const { into, rows } = this.#hostOutputs(program);
        await this.#store.run(program, feeds, { into });
        for (const [name, r, ids] of rows) this.#host.scatterRows(name, r, ids);
        this.#host.step(lr, this.#wd);
      }
    } else if (kind === "gradients") {
      const buf = this.#flatBuffer();
      await this.#store.run(program, feeds, { into: { [names.gradFlat]: tensor1(buf) } });
      const avg = await this.#hook!(buf);
      this.#apply ??= await this.#store.compile(
        stepGraph(this.task, e.shape, { kind: "apply", weightDecay: this.#wd }),
      );
      await this.#store.run(this.#apply, { ...this.#lrFeeds(lr), [names.gradFlat]: tensor1(avg) });
    } else {
      await this.#store.run(program, feeds);
    }
    if (last && this.#acc > 1) { for (const { name } of this.task.params) this.#store.delete(names.gradAcc(name)); }
    this.#hostRows.push(this.task.hostStats(batch));
  }

  /**
   * A `gradients` program's outputs on the host AdamW: each `grad.<p>` is the parameter's gradient
   * slot; a table's `grad_rows.<p>` / `grad_ids.<p>` get buffers of their own, scattered after the run.
   */
  #hostOutputs(program: StepProgram) {
    let o = this.#hostInto.get(program);
    if (!o) {
      const into: Record<string, Tensor> = {};
      const rows: [string, Float32Array, Int32Array][] = [];
      for (const { name, shape } of this.task.params) {
        const r = program.outputs.get(names.gradRows(name)), ids = program.outputs.get(names.gradIds(name));
        if (r && ids) {
          const t = { dtype: "F32" as const, shape: r.shape, data: new Float32Array(numel(r.shape)) };
          const i = { dtype: "I32" as const, shape: ids.shape, data: new Int32Array(numel(ids.shape)) };
          into[names.gradRows(name)] = t;
          into[names.gradIds(name)] = i;
          rows.push([name, t.data, i.data]);
        } else {
          into[names.grad(name)] = { dtype: "F32", shape: [...shape], data: this.#host!.slots.get(name)!.g };
        }
      }
      this.#hostInto.set(program, o = { into, rows });
    }
    return o;
  }

  /** The gradient hook's buffer (or a new one) for the flat gradients, checked against the layout. */
  #flatBuffer(): Float32Array {
    const buf = this.#hook!.buffer ?? new Float32Array(this.#flatSize);
    if (buf.length !== this.#flatSize) {
      throw new RangeError(`Cannot hand gradients over: the hook's buffer holds ${buf.length}, not ${this.#flatSize}`);
    }
    return buf;
  }

  /** `grad.<p>` outputs viewing `buf` at each parameter's offset (training_graph.ts `flatLayout`). */
  #slices(buf: Float32Array): Record<string, Tensor> {
    if (this.#sliceInto?.buf !== buf) {
      const { offsets } = flatLayout(this.task.params);
      const into = Object.fromEntries(this.task.params.map(({ name, shape }, i) => {
        const data = buf.subarray(offsets[i], offsets[i] + numel(shape));
        return [names.grad(name), { dtype: "F32", shape: [...shape], data }];
      }));
      this.#sliceInto = { buf, into: into as Record<string, Tensor> };
    }
    return this.#sliceInto.into;
  }

  /**
   * The statistics of the micro-steps since the previous take (one readback on a device), and resets
   * them: sums by name and, when they fit the `statSlots`, each step's values.
   */
  async takeStats(): Promise<TakenStats> {
    const steps = this.#hostRows.length;
    const names_ = this.task.graphStats;
    const m = (await this.#store.read([names.stats])).get(names.stats)!.data as Float32Array; // [R,S]
    const S = names_.length;
    const sums: Record<string, number> = {};
    names_.forEach((n, j) => {
      let s = 0;
      for (let r = 0; r < this.#slots; r++) s += m[r * S + j];
      sums[n] = s;
    });
    for (const row of this.#hostRows) for (const [k, v] of Object.entries(row)) sums[k] = (sums[k] ?? 0) + v;
    let rows: Record<string, number>[] | null = null;
    if (steps <= this.#slots) {
      rows = this.#hostRows.map((h, r) => {
        const row: Record<string, number> = {};
        names_.forEach((n, j) => (row[n] = m[r * S + j]));
        return { ...row, ...h };
      });
    }
    this.#hostRows = [];
    this.#store.write(names.stats, zerosF32([this.#slots, S]));
    return { steps, sums, rows };
  }

  /**
   * The task's evaluation graph on `batch` with the current parameters (no gradients, no dropout):
   * its named outputs as host tensors (rows of the real batch only are meaningful).
   */
  async evaluate(batch: B): Promise<Record<string, Tensor>> {
    const e = this.#entry(batch, this.#evalShapes);
    let p = e.programs.get("eval");
    if (!p) e.programs.set("eval", p = await this.#store.compile(evalGraph(this.task, e.shape)));
    const feeds = (this.task.evalFeeds ?? this.task.feeds).call(this.task, batch, e.shape);
    return await this.#store.run(p, feeds);
  }

  /** Micro-steps done (including those before a resume). */
  get microSteps(): number {
    return this.#micro;
  }

  /** The current parameters (host copies, UER names). */
  params(): Promise<Map<string, Tensor>> {
    return this.#store.read(this.task.params.map((p) => p.name));
  }

  /** Replaces the parameters (e.g. to evaluate a saved epoch); the moments stay. */
  setParams(params: Map<string, Tensor>): void {
    for (const { name, shape } of this.task.params) {
      const t = params.get(name);
      if (!t || t.shape.join() !== shape.join()) {
        throw new RangeError(`Cannot set parameters: "${name}" is missing or misshapen`);
      }
      this.#store.write(name, t);
    }
  }

  /** The current Adam moments (host copies, UER names). */
  async moments(): Promise<{ m: Map<string, Tensor>; v: Map<string, Tensor> }> {
    const rename = async (f: (p: string) => string) => {
      const got = await this.#store.read(this.task.params.map((p) => f(p.name)));
      return new Map(this.task.params.map((p) => [p.name, got.get(f(p.name))!]));
    };
    return { m: await rename(names.m), v: await rename(names.v) };
  }

  /** Frees the graphs and the state (the store too, unless it was given). */
  async dispose(): Promise<void> {
    if (this.#ownStore) await this.#store.dispose();
    this.#shapes.clear();
    this.#evalShapes.clear();
  }
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function tensor1(data: Float32Array): Tensor {
  return { dtype: "F32", shape: [data.length], data };
}

/** Deterministic U[0, 1) numbers (mulberry32); not torch's RNG. */
export function uniformSource(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic N(0, 1) numbers (mulberry32 + Box–Muller); not torch's RNG. */
function normalSource(seed: number): () => number {
  const u = uniformSource(seed);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/**
 * UER-py's from-scratch init (`trainer.init_model`, run_classifier's `load_or_initialize_parameters`):
 * N(0, 0.02) for every parameter whose name has no `gamma`/`beta` — biases, the `[PAD]` row and segment
 * row 0 included —, gamma = 1, beta = 0. Deterministic per `seed` but not torch's RNG stream.
 *
 * @example
 * ```ts
 * const params = initParams(paramShapes(config), 7);
 * ```
 */
export function initParams(specs: readonly ParamSpec[], seed: number): Map<string, Tensor> {
  const next = normalSource(seed);
  const out = new Map<string, Tensor>();
  for (const { name, shape } of specs) {
    const t = zerosF32(shape);
    const d = t.data as Float32Array;
    if (name.includes("gamma")) d.fill(1);
    else if (!name.includes("beta")) { for (let i = 0; i < d.length; i++) d[i] = 0.02 * next(); }
    out.set(name, t);
  }
  return out;
}

/**
 * torch's `nn.Linear` default init, which UER-py's run_classifier.py leaves on the classifier layers a
 * pretrained model lacks (`load_state_dict(strict=False)` keeps them): weight and bias
 * U(−1/√fan_in, 1/√fan_in) (`kaiming_uniform_(a=√5)`), fan_in = the weight's columns. Deterministic
 * per `seed`, not torch's stream.
 *
 * @example
 * ```ts
 * const head = initLinearParams(classifierHeadShapes(cfg, 2), 7);
 * ```
 */
export function initLinearParams(specs: readonly ParamSpec[], seed: number): Map<string, Tensor> {
  const u = uniformSource(seed);
  const out = new Map<string, Tensor>();
  for (const { name, shape } of specs) {
    const weight = specs.find((s) => s.name === name.replace(/\.bias$/, ".weight"));
    const bound = 1 / Math.sqrt(weight?.shape[1] ?? shape.at(-1)!);
    const t = zerosF32(shape);
    const d = t.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = (2 * u() - 1) * bound;
    out.set(name, t);
  }
  return out;
}

/**
 * The parameters `absent` (names among `specs`) as a freshly built UER-py module holds them, which is what
 * `load_state_dict(strict=False)` leaves on weights a pretrained file lacks (UER-py's `load_model` in
 * `pretrain.py`): LayerNorm `gamma` 1 and `beta` 0, every other weight and bias torch's `nn.Linear` init
 * (`initLinearParams` over the linear layers the absent names belong to). Deterministic per `seed`.
 *
 * @example
 * ```ts
 * const sop = initialiseAbsent(paramShapes(cfg), ["target.sp.linear_2.weight", "target.sp.linear_2.bias"], 7);
 * ```
 */
export function initialiseAbsent(
  specs: readonly ParamSpec[],
  absent: readonly string[],
  seed: number,
): Map<string, Tensor> {
  const module = (name: string) => name.slice(0, name.lastIndexOf("."));
  const modules = new Set(absent.map(module));
  const linear = specs.filter((s) => modules.has(module(s.name)) && !/\.(gamma|beta)$/.test(s.name));
  const init = initLinearParams(linear, seed);
  const out = new Map<string, Tensor>();
  for (const name of absent) {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new TypeError(`Cannot initialise "${name}": the model has no such parameter`);
    const t = init.get(name) ?? zerosF32(spec.shape);
    if (name.endsWith(".gamma")) (t.data as Float32Array).fill(1);
    out.set(name, t);
  }
  return out;
}
