/**
 * The step graphs of every training task (task.ts): the task's forward and loss (core/model/albert.ts
 * + a head) + `grad(loss, params)` from the rule table (core/autodiff, the losses as fused rules) +
 * UER-py's AdamW (adamw.ts) + the running sums of the task's statistics. Shapes are static
 * (task.ts `StepShape`).
 *
 * The graphs follow one naming convention, which is how a state store (state_store.ts) runs them:
 * an input named like a piece of training state is fed from the store, an output `updated.<name>`
 * replaces that state; everything else is fed by the host per step or read back. State names:
 * `<p>` (the parameter, its UER name), `adam_m.<p>`, `adam_v.<p>`, `grad_acc.<p>` (gradients summed
 * over an accumulation window) and `stats` ([R,S] running sums of the S statistics, R per-step rows).
 * Host inputs: the task's batch inputs, `neg_lr`/`neg_lr_wd` (lr computed in double, adamw.ts),
 * `loss_scale` (1/accumulation_steps, as UER-py divides the loss before `backward()`), `stat_slot`
 * (one-hot [R,1] row of this step, when R > 1), `dropout_key` (dropout.ts) and `grad_flat`.
 *
 * Kinds (one micro-step runs one of the first three; a data-parallel step runs `gradients` then `apply`):
 * - `update`: gradients (+ the window's `grad_acc`) → AdamW → `updated.<p>`, `updated.adam_m.<p>`, …;
 * - `accumulate`: gradients (+ `grad_acc`) → `updated.grad_acc.<p>` (a micro-step inside the window);
 * - `gradients`: gradients (+ `grad_acc`) → one flat `grad_flat` [N] in parameter order (the all-reduce's
 *   buffer, so a device step hands its gradients to the host in one piece), or with `eachGradient` one
 *   output `grad.<p>` per parameter (a CPU store has them written straight into its host AdamW's
 *   memory, adamw_host.ts, or into the all-reduce buffer's slices: no concatenation); a table whose
 *   whole gradient is one scatter-add of rows (the word embedding, outside an accumulation window)
 *   gives `grad_rows.<p>` and `grad_ids.<p>` instead (`sparseRows`), scattered on the host;
 * - `apply`: `grad_flat` → AdamW (no forward).
 * Params and moments are graph inputs/outputs, never initializers. Browser compatible: no Deno APIs.
 * @module
 */
import { grad } from "../autodiff/grad.ts";
import { SCATTER_ADD_ROWS, type ScatterMode } from "../autodiff/rules.ts";
import { Graph, type Value } from "../graph/builder.ts";
import { type AdamwEntry, adamwInputs, adamwUpdateAll, GROUP_SIZE } from "./adamw.ts";
import { Dropout } from "./dropout.ts";
import type { ParamSpec, StepShape, TrainTask } from "./task.ts";

/** Graph-side names of the training state and per-step inputs. */
export const names = {
  gradAcc: (p: string): string => `grad_acc.${p}`,
  m: (p: string): string => `adam_m.${p}`,
  v: (p: string): string => `adam_v.${p}`,
  updated: (x: string): string => `updated.${x}`,
  /** The statistics' running sums (state, F32 [R,S]). */
  stats: "stats",
  /** The one-hot row of this step in `stats` (F32 [R,1], only when R > 1). */
  statSlot: "stat_slot",
  /** d loss / d loss (F32 [], 1/accumulation_steps). */
  lossScale: "loss_scale",
  /** All gradients back to back in parameter order (F32 [N]). */
  gradFlat: "grad_flat",
  /** One parameter's gradient (`gradients` kind with `eachGradient`). */
  grad: (p: string): string => `grad.${p}`,
  /** A table's gradient as the rows to scatter-add (F32 [N,R]) and their row ids (I32 [N]). */
  gradRows: (p: string): string => `grad_rows.${p}`,
  gradIds: (p: string): string => `grad_ids.${p}`,
} as const;

/** Prefix of the outputs that replace training state. */
export const UPDATED = "updated.";

/** Which step graph (see the module doc). */
export type StepKind = "update" | "accumulate" | "gradients" | "apply";

/** Options of `stepGraph`. */
export interface StepGraphOptions {
  kind: StepKind;
  /** Add the accumulation window's `grad_acc.<p>` to the gradients (every micro-step but a window's first). */
  accumulated?: boolean;
  /** Seed the backward with the `loss_scale` input (accumulation_steps > 1) instead of 1. */
  scaled?: boolean;
  /** Gather-gradient flavour: "scatter" on CPU, "matmul" (WebGPU-safe) elsewhere. Default "matmul". */
  scatter?: ScatterMode;
  /** Weight decay of the decayed group (UER: 0.01). */
  weightDecay?: number;
  /** Per-step rows R of the `stats` sums (default 1: sums only). */
  statSlots?: number;
  /** Dropout probability (`--dropout`); 0 or absent: no dropout nodes. */
  dropout?: number;
  /**
   * `--recompute_activations`: the backward recomputes each checkpoint of the task's forward (one per
   * transformer layer application, core/model/albert.ts) from its input (core/autodiff `recompute`).
   */
  recompute?: boolean;
  /** `gradients` kind: one output `grad.<p>` per parameter instead of the flat `grad_flat`. */
  eachGradient?: boolean;
  /**
   * With `eachGradient`: a parameter whose gradient is one "scatter" scatter-add of rows (rules.ts
   * `SCATTER_ADD_ROWS`) outputs the rows and ids (`grad_rows.<p>`, `grad_ids.<p>`) instead of the table.
   */
  sparseRows?: boolean;
}

/** Element offsets of each parameter in the flat gradient buffer, and its length. */
export function flatLayout(params: readonly ParamSpec[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const p of params) {
    offsets.push(total);
    total += p.shape.reduce((a, b) => a * b, 1);
  }
  return { offsets, total };
}

/** AdamW outputs for `entries`, named by the convention. */
function adamwOutputs(g: Graph, entries: AdamwEntry[], wd: number): void {
  adamwUpdateAll(g, entries, adamwInputs(g), wd).forEach((u, i) => {
    const name = entries[i].name;
    g.output(u.p, names.updated(name));
    g.output(u.m, names.updated(names.m(name)));
    g.output(u.v, names.updated(names.v(name)));
  });
}

/** Concatenation of many [n] vectors in rounds of at most GROUP_SIZE (WebGPU binds ≤ 16 buffers per kernel). */
function concatMany(g: Graph, xs: Value[]): Value {
  if (xs.length === 1) return xs[0];
  if (xs.length <= GROUP_SIZE) return g.concat(xs, 0);
  const parts: Value[] = [];
  for (let i = 0; i < xs.length; i += GROUP_SIZE) parts.push(concatMany(g, xs.slice(i, i + GROUP_SIZE)));
  return concatMany(g, parts);
}

/**
 * Builds one step graph of `task` at `shape`.
 *
 * @example
 * ```ts
 * const g = stepGraph(pretrainTask(cfg), { batch: 16, seq: 128, slots: 320 }, { kind: "update", scatter: "scatter" });
 * const bytes = toOnnx(g).model;
 * ```
 */
export function stepGraph<B>(task: TrainTask<B>, shape: StepShape, opts: StepGraphOptions): Graph {
  const g = new Graph();
  const wd = opts.weightDecay ?? 0.01;
  const specs = task.params;
  if (opts.kind === "apply") {
    const { offsets, total } = flatLayout(specs);
    const flat = g.input(names.gradFlat, "F32", [total]);
    const entries = specs.map(({ name, shape }, i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return {
        name,
        p: g.param(name, shape),
        grad: g.reshape(g.slice(flat, [offsets[i]], [offsets[i] + n], [0]), shape), // [n] -> shape
        m: g.input(names.m(name), "F32", shape),
        v: g.input(names.v(name), "F32", shape),
      };
    });
    adamwOutputs(g, entries, wd);
    return g;
  }
  const scatter = opts.scatter ?? "matmul";
  const drop = opts.dropout ? new Dropout(g, opts.dropout) : undefined;
  const { loss, stats } = task.build(g, shape, { scatter, dropout: drop && ((x) => drop.apply(x)) });
  const params = specs.map(({ name, shape }) => {
    const p = g.paramByName(name);
    if (!p || p.shape.join() !== shape.join()) {
      throw new RangeError(`Cannot build the ${task.name} graph: parameter "${name}" [${shape}] is not declared by it`);
    }
    return p;
  });
  if (g.params().length !== params.length) {
    const extra = g.params().filter((p) => !specs.some((s) => s.name === p.name)).map((p) => p.name);
    throw new RangeError(
      `Cannot build the ${task.name} graph: parameters ${extra.join(", ")} are not in the task's list`,
    );
  }

  // Statistics: stats' = stats + slot ⊗ [s_1 … s_S] (one row per step since the last read).
  const R = opts.statSlots ?? 1, S = stats.length;
  const sums = g.input(names.stats, "F32", [R, S]);
  const vec = g.reshape(g.concat(stats.map((v) => g.reshape(v, [1])), 0), [1, S]); // [1,S]
  const add = R > 1 ? g.mul(g.input(names.statSlot, "F32", [R, 1]), vec) : vec; // [R,S]
  g.output(g.add(sums, add), names.updated(names.stats));

  const seed = opts.scaled ? g.input(names.lossScale, "F32", []) : undefined;
  const grads = grad(g, loss, params, { scatter, seed, recompute: opts.recompute });
  const total = params.map((p) => {
    const gr = grads.get(p)!;
    return opts.accumulated ? g.add(g.input(names.gradAcc(p.name), "F32", p.shape as number[]), gr) : gr;
  });
  if (opts.kind === "accumulate") {
    params.forEach((p, i) => g.output(total[i], names.updated(names.gradAcc(p.name))));
  } else if (opts.kind === "gradients" && opts.eachGradient) {
    params.forEach((p, i) => {
      const scatter = opts.sparseRows && !opts.accumulated
        ? g.fusions.find((f) => f.op === SCATTER_ADD_ROWS && f.outputs[0] === total[i])
        : undefined;
      if (!scatter) return g.output(total[i], names.grad(p.name));
      const [rows, ids] = scatter.inputs as Value[];
      g.output(rows.producer ? rows : g.reshape(rows, rows.shape as number[]), names.gradRows(p.name));
      g.output(ids.dtype === "I32" && ids.producer ? ids : g.cast(ids, "I32"), names.gradIds(p.name));
    });
  } else if (opts.kind === "gradients") {
    g.output(concatMany(g, total.map((v) => g.reshape(v, [-1]))), names.gradFlat);
  } else {
    adamwOutputs(
      g,
      params.map((p, i) => ({
        name: p.name,
        p,
        grad: total[i],
        m: g.input(names.m(p.name), "F32", p.shape as number[]),
        v: g.input(names.v(p.name), "F32", p.shape as number[]),
      })),
      wd,
    );
  }
  return g;
}

/**
 * The evaluation graph of `task` at `shape`: its forward without dropout or gradients, the task's
 * named outputs (e.g. `logits`). Params are inputs (fed from the state store).
 */
export function evalGraph<B>(task: TrainTask<B>, shape: StepShape): Graph {
  if (!task.buildEval) throw new TypeError(`Cannot evaluate: the ${task.name} task has no evaluation graph`);
  const g = new Graph();
  for (const [name, v] of Object.entries(task.buildEval(g, shape))) g.output(v, name);
  return g;
}
