/**
 * One ALBERT training step at a time, as UER-py's `AlbertTrainer.forward_propagation` + `loss.backward()`
 * + (every `accumulation_steps`) `optimizer.step()` (`uer/trainer.py`), run as ONNX graphs built by
 * training_graph.ts. Parameters and Adam moments live as session outputs fed back as inputs (on
 * WebGPU they stay in GPU buffers; on CPU they are written into two sets of buffers used in turn);
 * only the statistics are read back each step.
 *
 * Shapes are static per (rows, seq_length): a smaller last batch of a buffer is padded to the rows of
 * the session with zero-weight rows (their SOP weight and MLM slots are 0, attention is per row), which
 * gives the same numbers, so one session serves every batch of a sequence length. MLM positions are
 * gathered on the host from `tgt_mlm > 0` into `K` static slots (grown when a batch needs more).
 *
 * Browser compatible apart from the CPU backend (onnxruntime-node, loaded by core/runtime only when asked).
 * @module
 */
import type { AlbertConfig } from "../config.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession, type DeviceTensor, pickBackend, type Session } from "../runtime/mod.ts";
import type { Backend } from "../runtime/types.ts";
import type { Tensor } from "../tensor.ts";
import { ADAMW, adamwScalars } from "./adamw.ts";
import {
  defaultMaskedSlots,
  names,
  paramShapes,
  STAT_OUTPUTS,
  trainingGraph,
  type TrainingGraphKind,
} from "./training_graph.ts";

/** One micro-batch as the UER loader yields it (row-major [B*T]). */
export interface Batch {
  src: Int32Array;
  /** MLM targets, 0 = not predicted. */
  tgtMlm: Int32Array;
  /** UER segment ids 1/2, 0 = padding. */
  seg: Int32Array;
  /** SOP label per row (1 = swapped). */
  tgtSop: Int32Array;
  batchSize: number;
  seqLength: number;
}

/** What UER-py's trainer accumulates per step. */
export interface StepStats {
  /** loss_mlm + loss_sp (what UER logs). */
  loss: number;
  lossMlm: number;
  lossSp: number;
  correctMlm: number;
  /** float32(n_masked + 1e-6), as UER's `denominator`. */
  denominator: number;
  correctSp: number;
  nMasked: number;
  batchSize: number;
}

/** Options of `Trainer.create`. */
export interface TrainerOptions {
  config: AlbertConfig;
  /** Initial parameters, UER names. */
  params: Map<string, Tensor>;
  /** Adam moments (resume); zeros when absent. */
  moments?: { m: Map<string, Tensor>; v: Map<string, Tensor> };
  device: "auto" | "cpu" | "webgpu" | "wasm";
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
  /** Where `auto` reports its device choice (default console.error). */
  log?: (line: string) => void;
  /**
   * Data-parallel runs (core/parallel `gradientAverager`): averages the window's gradients over the ranks.
   * When set, the window's last micro-step runs the `grad` graph, hands its gradients (host tensors,
   * UER names) to this hook and applies AdamW with the `update` graph to what the hook returns, so
   * every rank applies the same update.
   */
  averageGradients?: GradientHook;
}

/**
 * The data-parallel gradient hook (`TrainerOptions.averageGradients`). When it carries `buffers`
 * (host tensors by UER name, e.g. views of the all-reduce's flat buffer), a CPU trainer has the
 * gradient graph write its gradients straight into them, so the hook receives them without a copy
 * or a fresh allocation.
 */
export type GradientHook =
  & ((grads: Map<string, Tensor>) => Map<string, Tensor> | Promise<Map<string, Tensor>>)
  & { buffers?: Map<string, Tensor> };

type Held = Tensor | DeviceTensor;

interface ShapeSessions {
  batch: number;
  seq: number;
  slots: number;
  sessions: Map<TrainingGraphKind | "grad_acc", Session>;
}

function zerosLike(t: { shape: number[] }): Tensor {
  return { dtype: "F32", shape: [...t.shape], data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)) };
}

function isDevice(t: Held): t is DeviceTensor {
  return (t as DeviceTensor).kind === "device";
}

/**
 * The training step runner.
 *
 * @example
 * ```ts
 * const t = await Trainer.create({ config, params, device: "cpu" });
 * const stats = await t.step(batch, schedule.lrAt(1));
 * const params = await t.params();
 * ```
 */
export class Trainer {
  readonly deviceName: string;
  #cfg: AlbertConfig;
  #backend: Backend;
  #threads: number;
  #spinning: boolean;
  #acc: number;
  #wd: number;
  #names: { name: string; shape: number[] }[];
  #params = new Map<string, Held>();
  #m = new Map<string, Held>();
  #v = new Map<string, Held>();
  #gradAcc = new Map<string, Held>();
  /** CPU: the two owned buffers per updated output (`#stepInto` writes one, the other is current). */
  #spare = new Map<string, [Tensor, Tensor]>();
  #micro = 0;
  #avg: TrainerOptions["averageGradients"];
  #shapes = new Map<number, ShapeSessions>();
  #retired: Session[] = [];

  private constructor(cfg: AlbertConfig, backend: Backend, opts: TrainerOptions) {
    this.#cfg = cfg;
    this.#backend = backend;
    this.#threads = opts.threads ?? 2;
    this.#spinning = opts.spinning ?? true;
    this.#acc = opts.accumulationSteps ?? 1;
    this.#wd = opts.weightDecay ?? ADAMW.weightDecay;
    this.#avg = opts.averageGradients;
    this.#names = paramShapes(cfg);
    this.deviceName = backend === "cpu" ? `cpu (onnxruntime-node, ${this.#threads} threads)` : backend;
  }

  /** Checks the parameters against the config and picks the device. */
  static async create(opts: TrainerOptions): Promise<Trainer> {
    const word = opts.params.get("embedding.word.embedding.weight");
    const cfg = { ...opts.config, vocab_size: opts.config.vocab_size ?? word?.shape[0] };
    if (!cfg.vocab_size) {
      throw new RangeError(
        'Cannot create the trainer: no vocab_size in the config and no "embedding.word.embedding.weight"',
      );
    }
    const acc = opts.accumulationSteps ?? 1;
    if (!(Number.isInteger(acc) && acc >= 1)) {
      throw new RangeError(`Invalid --accumulation_steps ${acc}: must be a positive integer`);
    }
    const backend = await pickBackend(opts.device, opts.log);
    const t = new Trainer(cfg, backend, opts);
    for (const { name, shape } of t.#names) {
      const p = opts.params.get(name);
      if (!p) {
        throw new RangeError(
          `Cannot train: parameter "${name}" is missing\n  hint: initialise with initParams(config)`,
        );
      }
      if (p.dtype !== "F32" || p.shape.join() !== shape.join()) {
        throw new RangeError(`Cannot train: parameter "${name}" is ${p.dtype} [${p.shape}], expected F32 [${shape}]`);
      }
      t.#params.set(name, p);
      t.#m.set(name, opts.moments?.m.get(name) ?? zerosLike(p));
      t.#v.set(name, opts.moments?.v.get(name) ?? zerosLike(p));
    }
    return t;
  }

  #sessions(b: Batch, nMasked: number): ShapeSessions {
    let s = this.#shapes.get(b.seqLength);
    if (s && s.batch >= b.batchSize && s.slots >= nMasked) return s;
    const batch = Math.max(b.batchSize, s?.batch ?? 0);
    let slots = Math.max(defaultMaskedSlots(batch, b.seqLength), s?.slots ?? 0);
    while (slots < nMasked) slots *= 2;
    // Old sessions are kept until dispose(): their outputs (params on WebGPU) may still be alive.
    if (s) this.#retired.push(...s.sessions.values());
    s = { batch, seq: b.seqLength, slots, sessions: new Map() };
    this.#shapes.set(b.seqLength, s);
    return s;
  }

  async #session(s: ShapeSessions, kind: TrainingGraphKind | "grad_acc"): Promise<Session> {
    let ss = s.sessions.get(kind);
    if (ss) return ss;
    const { graph } = trainingGraph(this.#cfg, {
      kind: kind === "grad_acc" ? "grad" : kind,
      batch: s.batch,
      seq: s.seq,
      maskedSlots: s.slots,
      scatter: this.#backend === "cpu" ? "scatternd" : "matmul",
      weightDecay: this.#wd,
      accumulate: kind === "grad_acc" || (kind === "fused" && this.#acc > 1),
    });
    const keep = graph.outputs().map((v) => v.name).filter((n) => !(STAT_OUTPUTS as readonly string[]).includes(n));
    ss = await createSession(toOnnx(graph).model, {
      device: this.#backend,
      threads: this.#threads,
      spinning: this.#spinning,
      gpuOutputs: this.#backend === "webgpu" ? keep : undefined,
    });
    s.sessions.set(kind, ss);
    return ss;
  }

  /** Host feeds of a batch padded to the session's rows and MLM slots. */
  #batchFeeds(b: Batch, s: ShapeSessions): Record<string, Tensor> {
    const { batch: B, seq: T, slots: K } = s;
    if (b.src.length !== b.batchSize * T || b.seg.length !== b.src.length || b.tgtMlm.length !== b.src.length) {
      throw new RangeError(
        `Cannot train on a batch: src/seg/tgt_mlm must hold batchSize*seqLength = ${b.batchSize * T} ids`,
      );
    }
    const src = new Int32Array(B * T), seg = new Int32Array(B * T);
    src.set(b.src);
    seg.set(b.seg);
    const pos = new Int32Array(K), lab = new Int32Array(K), w = new Float32Array(K);
    let k = 0;
    for (let i = 0; i < b.tgtMlm.length; i++) {
      if (b.tgtMlm[i] > 0) {
        pos[k] = i;
        lab[k] = b.tgtMlm[i];
        w[k++] = 1;
      }
    }
    const sopL = new Int32Array(B), sopW = new Float32Array(B);
    for (let r = 0; r < b.batchSize; r++) {
      sopL[r] = b.tgtSop[r];
      sopW[r] = 1;
    }
    const t = (dtype: Tensor["dtype"], shape: number[], data: Tensor["data"]): Tensor => ({ dtype, shape, data });
    return {
      src: t("I32", [B, T], src),
      seg: t("I32", [B, T], seg),
      mlm_positions: t("I32", [K], pos),
      mlm_labels: t("I32", [K], lab),
      mlm_weights: t("F32", [K], w),
      sop_labels: t("I32", [B], sopL),
      sop_weights: t("F32", [B], sopW),
    };
  }

  /** One micro-batch; when the accumulation window completes, applies AdamW with `lr`. */
  async step(batch: Batch, lr: number): Promise<StepStats> {
    let nMasked = 0;
    for (const id of batch.tgtMlm) if (id > 0) nMasked++;
    const s = this.#sessions(batch, nMasked);
    const feeds: Record<string, Tensor | DeviceTensor> = this.#batchFeeds(batch, s);
    for (const [n, p] of this.#params) feeds[n] = p;
    this.#micro++;
    const last = this.#micro % this.#acc === 0;
    const scalar = (x: number): Tensor => ({ dtype: "F32", shape: [], data: Float32Array.of(x) });
    if (this.#acc > 1) {
      feeds.loss_scale = scalar(Math.fround(1 / this.#acc));
      if (this.#micro % this.#acc !== 1) { for (const [n, a] of this.#gradAcc) feeds[names.gradAcc(n)] = a; }
    }
    if (last && this.#avg) return await this.#splitStep(batch, s, feeds, lr, nMasked);
    let kind: TrainingGraphKind | "grad_acc";
    if (last) {
      kind = "fused";
      const { negLr, negLrWd } = adamwScalars(lr, this.#wd);
      feeds.neg_lr = scalar(negLr);
      feeds.neg_lr_wd = scalar(negLrWd);
      for (const [n, m] of this.#m) feeds[names.m(n)] = m;
      for (const [n, v] of this.#v) feeds[names.v(n)] = v;
      if (this.#acc > 1 && this.#gradAcc.size === 0) {
        for (const { name, shape } of this.#names) feeds[names.gradAcc(name)] = zerosLike({ shape });
      }
    } else {
      kind = this.#micro % this.#acc === 1 ? "grad" : "grad_acc";
    }
    const session = await this.#session(s, kind);
    if (last && session.runInto) return await this.#stepInto(session, feeds, batch, nMasked);
    const out = await session.runDevice(feeds);
    const read = async (k: string) => {
      const t = await out[k].download();
      out[k].dispose();
      return Number(t.data[0]);
    };
    const swap = (m: Map<string, Held>, n: string, key: string) => {
      const old = m.get(n);
      m.set(n, out[key]);
      if (old && isDevice(old)) old.dispose();
    };
    if (last) {
      for (const { name } of this.#names) {
        swap(this.#params, name, names.updated(name));
        swap(this.#m, name, names.updated(names.m(name)));
        swap(this.#v, name, names.updated(names.v(name)));
      }
      this.#clearGradAcc();
    } else {
      for (const { name } of this.#names) swap(this.#gradAcc, name, names.grad(name));
    }
    return await stepStats(read, nMasked, batch.batchSize);
  }

  /**
   * A CPU optimizer step whose new params and moments are written into buffers this trainer owns:
   * two per tensor, used in turn (the step reads one and writes the other), so a step allocates and
   * copies no state (onnxruntime-node would otherwise copy every output into a fresh buffer).
   */
  async #stepInto(
    session: Session,
    feeds: Record<string, Tensor | DeviceTensor>,
    batch: Batch,
    nMasked: number,
  ): Promise<StepStats> {
    const { into, commit } = this.#stateInto();
    const res = await session.runInto!(feeds, into, [...STAT_OUTPUTS]);
    commit();
    this.#clearGradAcc();
    return await stepStats((k) => Number(res[k].data[0]), nMasked, batch.batchSize);
  }

  /**
   * CPU: the owned output buffers for an optimizer step's new params and moments (the one of each
   * pair not holding the current value), and `commit` to make them current after the run.
   */
  #stateInto(): { into: Record<string, Tensor>; commit: () => void } {
    const into: Record<string, Tensor> = {};
    const plan: [Map<string, Held>, string, string, Tensor][] = [];
    for (const { name, shape } of this.#names) {
      for (
        const [m, key] of [[this.#params, names.updated(name)], [this.#m, names.updated(names.m(name))], [
          this.#v,
          names.updated(names.v(name)),
        ]] as const
      ) {
        let pair = this.#spare.get(key);
        if (!pair) this.#spare.set(key, pair = [zerosLike({ shape }), zerosLike({ shape })]);
        const t = m.get(name) === pair[0] ? pair[1] : pair[0];
        into[key] = t;
        plan.push([m, name, key, t]);
      }
    }
    const commit = () => {
      for (const [m, name, , t] of plan) {
        const old = m.get(name);
        m.set(name, t);
        if (old && isDevice(old)) old.dispose();
      }
    };
    return { into, commit };
  }

  /**
   * The window's last micro-step of a data-parallel run: gradient half, the `averageGradients` hook
   * (the all-reduce), then the update half. Same numbers as the fused graph on one rank.
   */
  async #splitStep(
    batch: Batch,
    s: ShapeSessions,
    feeds: Record<string, Tensor | DeviceTensor>,
    lr: number,
    nMasked: number,
  ): Promise<StepStats> {
    const scalar = (x: number): Tensor => ({ dtype: "F32", shape: [], data: Float32Array.of(x) });
    const kind = this.#acc > 1 ? "grad_acc" : "grad";
    if (this.#acc === 1) feeds.loss_scale = scalar(1);
    if (kind === "grad_acc" && this.#gradAcc.size === 0) {
      for (const { name, shape } of this.#names) feeds[names.gradAcc(name)] = zerosLike({ shape });
    }
    const gradSession = await this.#session(s, kind);
    const buffers = this.#avg!.buffers;
    if (gradSession.runInto && buffers) {
      // CPU: gradients go straight into the hook's buffers, new params/moments into owned ones: a step
      // allocates no state-sized arrays (fresh 50 MB outputs cost page faults and GC work that slowed
      // the all-reduce running right after them several-fold on a 2-core machine).
      const into: Record<string, Tensor> = {};
      for (const { name } of this.#names) into[names.grad(name)] = buffers.get(name)!;
      const res = await gradSession.runInto(feeds, into, [...STAT_OUTPUTS]);
      const avg = await this.#avg!(new Map(this.#names.map(({ name }) => [name, buffers.get(name)!])));
      const { into: uInto, commit } = this.#stateInto();
      await (await this.#session(s, "update")).runInto!(this.#updateFeeds(lr, avg), uInto, []);
      commit();
      this.#clearGradAcc();
      return await stepStats((k) => Number(res[k].data[0]), nMasked, batch.batchSize);
    }
    const out = await gradSession.runDevice(feeds);
    const grads = new Map<string, Tensor>();
    for (const { name } of this.#names) grads.set(name, await out[names.grad(name)].download());
    const avg = await this.#avg!(grads);
    for (const { name } of this.#names) out[names.grad(name)].dispose();
    const uo = await (await this.#session(s, "update")).runDevice(this.#updateFeeds(lr, avg));
    const swap = (m: Map<string, Held>, n: string, key: string) => {
      const old = m.get(n);
      m.set(n, uo[key]);
      if (old && isDevice(old)) old.dispose();
    };
    for (const { name } of this.#names) {
      swap(this.#params, name, names.updated(name));
      swap(this.#m, name, names.updated(names.m(name)));
      swap(this.#v, name, names.updated(names.v(name)));
    }
    this.#clearGradAcc();
    const read = async (k: string) => {
      const t = await out[k].download();
      out[k].dispose();
      return Number(t.data[0]);
    };
    return await stepStats(read, nMasked, batch.batchSize);
  }

  /** Drops the accumulated gradients of a finished accumulation window. */
  #clearGradAcc(): void {
    for (const a of this.#gradAcc.values()) if (isDevice(a)) a.dispose();
    this.#gradAcc.clear();
  }

  /** Feeds of the `update` graph: current params and moments, the averaged gradients, the lr scalars. */
  #updateFeeds(lr: number, avg: Map<string, Tensor>): Record<string, Tensor | DeviceTensor> {
    const scalar = (x: number): Tensor => ({ dtype: "F32", shape: [], data: Float32Array.of(x) });
    const { negLr, negLrWd } = adamwScalars(lr, this.#wd);
    const uf: Record<string, Tensor | DeviceTensor> = { neg_lr: scalar(negLr), neg_lr_wd: scalar(negLrWd) };
    for (const { name } of this.#names) {
      uf[name] = this.#params.get(name)!;
      uf[names.m(name)] = this.#m.get(name)!;
      uf[names.v(name)] = this.#v.get(name)!;
      uf[names.grad(name)] = avg.get(name)!;
    }
    return uf;
  }

  async #download(m: Map<string, Held>): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    // Copies: the trainer's own buffers are overwritten two steps later.
    for (const [n, t] of m) out.set(n, isDevice(t) ? await t.download() : { ...t, data: t.data.slice() });
    return out;
  }

  /** The current parameters (host copies, UER names). */
  params(): Promise<Map<string, Tensor>> {
    return this.#download(this.#params);
  }

  /** The current Adam moments. */
  async moments(): Promise<{ m: Map<string, Tensor>; v: Map<string, Tensor> }> {
    return { m: await this.#download(this.#m), v: await this.#download(this.#v) };
  }

  /** Frees the sessions and device buffers. */
  async dispose(): Promise<void> {
    // Buffers first: a WebGPU session must outlive the outputs it produced.
    for (const m of [this.#params, this.#m, this.#v, this.#gradAcc]) {
      for (const t of m.values()) if (isDevice(t)) t.dispose();
      m.clear();
    }
    for (const s of this.#shapes.values()) for (const ss of s.sessions.values()) await ss.release();
    for (const ss of this.#retired) await ss.release();
    this.#shapes.clear();
    this.#retired = [];
    this.#spare.clear();
  }
}

/** Deterministic N(0, 1) numbers (mulberry32 + Box–Muller); not torch's RNG. */
function normalSource(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/**
 * UER-py's from-scratch init (`trainer.init_model`): N(0, 0.02) for every parameter whose name has no
 * `gamma`/`beta` — biases, the `[PAD]` row and segment row 0 included —, gamma = 1, beta = 0.
 * Deterministic per `seed` but not torch's RNG stream.
 */
export function initParams(config: AlbertConfig, seed: number): Map<string, Tensor> {
  const next = normalSource(seed);
  const out = new Map<string, Tensor>();
  for (const { name, shape } of paramShapes(config)) {
    const t = zerosLike({ shape });
    const d = t.data as Float32Array;
    if (name.includes("gamma")) d.fill(1);
    else if (!name.includes("beta")) { for (let i = 0; i < d.length; i++) d[i] = 0.02 * next(); }
    out.set(name, t);
  }
  return out;
}

/** The step's statistics from its scalar outputs (`read` fetches one by name), as UER-py's trainer reports them. */
async function stepStats(
  read: (name: string) => number | Promise<number>,
  nMasked: number,
  batchSize: number,
): Promise<StepStats> {
  return {
    loss: await read("loss"),
    lossMlm: await read("loss_mlm"),
    lossSp: await read("loss_sp"),
    correctMlm: await read("correct_mlm"),
    denominator: Math.fround(nMasked + 1e-6), // UER: torch.tensor(n_masked + 1e-6), float32
    correctSp: await read("correct_sp"),
    nMasked,
    batchSize,
  };
}
