/**
 * What a training objective on the ALBERT declaration tells the trainer: its parameters, how a batch
 * becomes graph inputs, the forward and the loss (as UER-py computes it), and the statistics it
 * reports. Two tasks exist: pretraining (MLM + SOP, pretrain_task.ts, UER-py's `AlbertTrainer`) and
 * sentence classification (classifier_task.ts, UER-py's `finetune/run_classifier.py`). The step graphs
 * (training_graph.ts) and the trainer (trainer.ts) are the same for both. Browser compatible.
 * @module
 */
import type { ScatterMode } from "../autodiff/rules.ts";
import type { AlbertConfig } from "../config.ts";
import type { Graph, Value } from "../graph/builder.ts";
import type { Tensor } from "../tensor.ts";

/** A parameter's UER name and shape. */
export interface ParamSpec {
  name: string;
  shape: number[];
}

/**
 * The static shape of a task's graphs. Graphs are built per shape and reused for every batch that
 * fits (a smaller last batch is padded with zero-weight rows, which gives the same numbers).
 */
export interface StepShape {
  /** Rows (B). */
  batch: number;
  /** Tokens per row (T). */
  seq: number;
  /** A task's extra static size (pretraining: MLM slots K; 0 when unused). */
  slots: number;
}

/** How a task builds its graph part. */
export interface TaskBuildOptions {
  /** Gather-gradient flavour ("scatter" on CPU, "matmul" elsewhere): chosen by the backend. */
  scatter: ScatterMode;
  /** Training graphs with `--dropout` > 0: applied at UER-py's dropout sites (core/train/dropout.ts). */
  dropout?: (x: Value) => Value;
}

/** A task's training graph part: the loss to minimise and the statistics to sum. */
export interface TaskGraph {
  /** The loss, as UER-py's `loss.backward()` sees it (F32 scalar). */
  loss: Value;
  /** F32 scalars, in `TrainTask.graphStats` order. */
  stats: Value[];
}

/**
 * A training objective.
 *
 * @example
 * ```ts
 * const task = pretrainTask(config);          // or classifierTask(config, { labels: 2, pooling: "first" })
 * const trainer = await Trainer.create({ task, params, device: "cpu" });
 * ```
 */
export interface TrainTask<B> {
  /** What the task is, in messages ("pretraining", "classification"). */
  readonly name: string;
  readonly config: AlbertConfig;
  /** Trainable parameters (UER names, declaration order). */
  readonly params: readonly ParamSpec[];
  /** Statistics the step graph sums on the device, in order (F32 scalars per step). */
  readonly graphStats: readonly string[];
  /**
   * The shape serving `batch`: one of the `known` shapes (returned as is) when the batch fits it, else a
   * new one (grown from the known shape of the same sequence length, never shrunk, so it replaces it).
   */
  shapeFor(batch: B, known: readonly StepShape[]): StepShape;
  /** Declares the batch inputs, the model and the loss on `g`. */
  build(g: Graph, shape: StepShape, opts: TaskBuildOptions): TaskGraph;
  /** Host feeds of `batch` padded to `shape` (names as `build` declares them). */
  feeds(batch: B, shape: StepShape): Record<string, Tensor>;
  /** Statistics the host knows without the graph (summed in double), e.g. the instances of the batch. */
  hostStats(batch: B): Record<string, number>;
  /**
   * Evaluation graph (no gradients, no dropout): the batch inputs of `build` (labels may be absent)
   * and the named outputs, e.g. `{ logits }`. Absent for tasks that are not evaluated.
   */
  buildEval?(g: Graph, shape: StepShape): Record<string, Value>;
  /** Host feeds of an evaluation batch (default `feeds`). */
  evalFeeds?(batch: B, shape: StepShape): Record<string, Tensor>;
}

/** An F32 scalar host tensor. */
export function scalarF32(x: number): Tensor {
  return { dtype: "F32", shape: [], data: Float32Array.of(x) };
}

/** A zero-filled F32 host tensor. */
export function zerosF32(shape: readonly number[]): Tensor {
  return { dtype: "F32", shape: [...shape], data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
}
