/**
 * Sentence (pair) classification as a training task (task.ts): UER-py's `finetune/run_classifier.py`
 * `Classifier` — the ALBERT backbone, `pooling()`, `tanh(output_layer_1)`, `output_layer_2` (the head
 * in core/model/classifier.ts) — with its loss `nn.NLLLoss()(nn.LogSoftmax(dim=-1)(logits), tgt)`, the
 * mean over the batch's rows (a smaller last batch of an epoch is padded with zero-weight rows, which
 * gives the same numbers). The cross-entropy is the fused rule of core/autodiff/losses.ts. The
 * evaluation graph (`buildEval`) has no dropout and no gradients, and gives the logits and their
 * float32 softmax (`run_classifier_infer.py --output_logits --output_prob`).
 * Browser compatible: no Deno APIs.
 * @module
 */
import { argmaxHits, softmaxCrossEntropy } from "../autodiff/losses.ts";
import type { AlbertConfig } from "../config.ts";
import { A, Graph, type Value } from "../graph/builder.ts";
import { albert } from "../model/albert.ts";
import { classifierHead, classifierHeadShapes, type Pooling, segmentWeights } from "../model/classifier.ts";
import type { Tensor } from "../tensor.ts";
import type { ParamSpec, StepShape, TaskBuildOptions, TaskGraph, TrainTask } from "./task.ts";

/** Rows of a classification data set as the model reads them (row-major `[batchSize * seqLength]`). */
export interface ClassifierBatch {
  /** `[CLS] a [SEP]` (+ `b [SEP]`) ids, cut to seqLength, padded with [PAD]. */
  src: Int32Array;
  /** UER segment ids: 1 = text_a with [CLS] and its [SEP], 2 = text_b and its [SEP], 0 = padding. */
  seg: Int32Array;
  /** Gold label per row (0…labels−1); unused by evaluation without labels. */
  labels: Int32Array;
  batchSize: number;
  seqLength: number;
}

/** Options of `classifierTask`. */
export interface ClassifierOptions {
  /** `--labels_num` (counted from the training file by run_classifier.py). */
  labelsNum: number;
  /** `--pooling` (default "first"). */
  pooling?: Pooling;
}

/** The statistics a classification step sums on the device, in graph order. */
export const CLASSIFIER_GRAPH_STATS = ["loss", "correct"] as const;

/** The classifier's parameters: the backbone's (declaration order), then output_layer_1/2. */
export function classifierParamShapes(cfg: AlbertConfig, labelsNum: number): ParamSpec[] {
  const g = new Graph();
  albert(g, cfg, { semantics: "uer", batch: 1, seq: 2 });
  return [
    ...g.params().map((p) => ({ name: p.name, shape: p.shape as number[] })),
    ...classifierHeadShapes(cfg, labelsNum),
  ];
}

/**
 * The classification task of `cfg` (UER semantics). Data inputs: `src`, `seg` I32 [B,T];
 * `pooled_positions` I32 [B] (pooling first/last: the flat position b·T + t pooled in each row);
 * `labels` I32 [B]; `row_weights` F32 [B] (1 = real row, 0 = padding row). Host statistics:
 * `instances`. Evaluation outputs: `logits` [B,C], `probs` [B,C].
 *
 * @example
 * ```ts
 * const task = classifierTask(cfg, { labelsNum: 2, pooling: "first" });
 * const trainer = await Trainer.create({ task, params, device: "cpu" });
 * ```
 */
export function classifierTask(cfg: AlbertConfig, opts: ClassifierOptions): TrainTask<ClassifierBatch> {
  const C = opts.labelsNum;
  if (!(Number.isInteger(C) && C >= 1)) throw new RangeError(`Invalid --labels_num ${C}: must be a positive integer`);
  const type = opts.pooling ?? "first";
  const norm = { semantics: "uer" as const, fusedOps: true };
  // Pooling at one position per row (first, last): the last layer runs only there (albert.ts
  // `lastLayerQueries`; the host feeds the position), so pooling reads [B,1,H] at that row.
  const atRow = type === "first" || type === "last";
  const forward = (g: Graph, shape: StepShape, dropout?: (x: Value) => Value) => {
    const { batch: B, seq: T } = shape;
    const index = atRow ? g.input("pooled_positions", "I32", [B]) : undefined;
    const lastLayerQueries = index && { index, perRow: 1 };
    const a = albert(g, cfg, { ...norm, idsDtype: "I32", batch: B, seq: T, dropout, lastLayerQueries });
    const segF = segmentWeights(g, a.inputs); // [B,T]
    if (!index) return classifierHead(g, cfg, a.encoderOutput, segF, C, type);
    const segAt = g.reshape(g.gather(g.reshape(segF, [-1]), index), [B, 1]); // the pooled position's segment id
    return classifierHead(g, cfg, a.encoderOutput, segAt, C, "first"); // [B,1,H]: first = the pooled row
  };
  const hostInputs = (b: ClassifierBatch, shape: StepShape) => {
    const { batch: B, seq: T } = shape;
    if (b.seqLength !== T || b.src.length !== b.batchSize * T || b.seg.length !== b.src.length) {
      throw new RangeError(`Cannot run a batch: src/seg must hold batchSize*seqLength = ${b.batchSize * T} ids`);
    }
    const src = new Int32Array(B * T), seg = new Int32Array(B * T);
    src.set(b.src);
    seg.set(b.seg);
    // Padding rows get one segment-1 position so that every pooling stays finite there (mean divides by Σ seg).
    for (let r = b.batchSize; r < B; r++) seg[r * T] = 1;
    const feeds: Record<string, Tensor> = { src: tensor("I32", [B, T], src), seg: tensor("I32", [B, T], seg) };
    if (atRow) {
      // UER pooling: first = position 0; last = position count(seg ≠ 0) − 1 (model/classifier.ts).
      const at = new Int32Array(B);
      for (let r = 0; r < B; r++) {
        let n = 0;
        if (type === "last") { for (let t = 0; t < T; t++) if (seg[r * T + t] !== 0) n++; }
        at[r] = r * T + Math.max(n - 1, 0);
      }
      feeds.pooled_positions = tensor("I32", [B], at);
    }
    return feeds;
  };
  return {
    name: "classification",
    config: cfg,
    params: classifierParamShapes(cfg, C),
    graphStats: CLASSIFIER_GRAPH_STATS,
    shapeFor(b: ClassifierBatch, known: readonly StepShape[]): StepShape {
      const prev = known.find((s) => s.seq === b.seqLength);
      if (prev && prev.batch >= b.batchSize) return prev;
      return { batch: Math.max(b.batchSize, prev?.batch ?? 0), seq: b.seqLength, slots: 0 };
    },
    build(g: Graph, shape: StepShape, o: TaskBuildOptions): TaskGraph {
      const { logits } = forward(g, shape, o.dropout);
      const labels = g.input("labels", "I32", [shape.batch]);
      const w = g.input("row_weights", "F32", [shape.batch]);
      const { nll } = softmaxCrossEntropy(g, logits, labels);
      // NOTE: NLLLoss mean over the batch's rows (a smaller last batch: its own row count).
      const loss = g.div(g.reduceSum(g.mul(nll, w), [0], false), g.reduceSum(w, [0], false));
      const correct = g.reduceSum(g.mul(argmaxHits(g, logits, labels), w), [0], false);
      return { loss, stats: [loss, correct] };
    },
    feeds(b: ClassifierBatch, shape: StepShape): Record<string, Tensor> {
      const B = shape.batch;
      const labels = new Int32Array(B), w = new Float32Array(B);
      for (let r = 0; r < b.batchSize; r++) {
        const y = b.labels[r];
        if (!(y >= 0 && y < C)) throw new RangeError(`Cannot train on label ${y}: --labels_num is ${C}`);
        labels[r] = y;
        w[r] = 1;
      }
      return { ...hostInputs(b, shape), labels: tensor("I32", [B], labels), row_weights: tensor("F32", [B], w) };
    },
    hostStats: (b: ClassifierBatch) => ({ instances: b.batchSize }),
    buildEval(g: Graph, shape: StepShape): Record<string, Value> {
      const { logits } = forward(g, shape);
      const probs = g.op("Softmax", [logits], { axis: A.int(-1) }, {
        shapes: [{ dtype: "F32", shape: [shape.batch, C] }],
      });
      return { logits, probs };
    },
    evalFeeds: hostInputs,
  };
}

function tensor(dtype: Tensor["dtype"], shape: number[], data: Tensor["data"]): Tensor {
  return { dtype, shape, data };
}
