/**
 * ALBERT pretraining as a training task (task.ts): UER-py's `AlbertTrainer.forward_propagation`
 * (`uer/trainer.py`) with the MLM and SOP targets (`uer/targets/mlm_target.py`, `sp_target.py`) on the
 * declaration of core/model/albert.ts. Shapes are static: `B` rows of `T` tokens and `K` MLM slots.
 * The MLM head runs only on the `K` gathered positions (UER selects `tgt_mlm > 0` rows; here the
 * positions are an input, unused slots have weight 0), so no [B·T, V] logits exist; the positions
 * are gathered on the host into slots that grow when a batch needs more. As nothing else reads the
 * last layer, its queries, attention output and feed-forward run only at [CLS] and the masked
 * positions of each row (`lastLayerRows`; keys and values at every position): the same numbers
 * with a sixth of that layer's work at seq 128.
 *
 * Losses, exactly as UER-py: `loss_mlm` = NLL of log-softmax summed over the masked tokens of the
 * whole batch divided by their count (torch `NLLLoss` mean); `loss_sp` = mean over the real rows;
 * `loss = loss_mlm + loss_sp`. Both cross-entropies are fused ops with closed-form gradients
 * (core/autodiff/losses.ts: the MLM output layer `target.mlm.linear_2` inside its loss, so the [K,V]
 * arrays are never walked node by node). Correct counts are arg-max hits. A smaller last batch is
 * padded with zero-weight rows (SOP weight 0, no MLM slots; attention is per row), which gives the
 * same numbers. Browser compatible: no Deno APIs.
 * @module
 */
import { argmaxHits, linearSoftmaxCrossEntropy, softmaxCrossEntropy } from "../autodiff/losses.ts";
import type { AlbertConfig } from "../config.ts";
import { Graph } from "../graph/builder.ts";
import { albert, mlmHead, sopHead } from "../model/albert.ts";
import type { Tensor } from "../tensor.ts";
import type { Batch } from "./loader.ts";
import type { ParamSpec, StepShape, TaskBuildOptions, TaskGraph, TrainTask } from "./task.ts";

export type { Batch };

/** The statistics a pretraining step sums on the device, in graph order. */
export const PRETRAIN_GRAPH_STATS = ["loss", "loss_mlm", "loss_sp", "correct_mlm", "correct_sp"] as const;

/** What UER-py's trainer accumulates, over one step or several (`pretrainStats` of taken sums). */
export interface StepStats {
  /** loss_mlm + loss_sp (what UER logs). */
  loss: number;
  lossMlm: number;
  lossSp: number;
  correctMlm: number;
  /** Σ float32(n_masked + 1e-6), as UER's `denominator`. */
  denominator: number;
  correctSp: number;
  nMasked: number;
  /** Instances (rows of real batches). */
  batchSize: number;
}

/** The pretraining statistics from a trainer's taken sums (names as the task reports them). */
export function pretrainStats(s: Readonly<Record<string, number>>): StepStats {
  return {
    loss: s.loss,
    lossMlm: s.loss_mlm,
    lossSp: s.loss_sp,
    correctMlm: s.correct_mlm,
    denominator: s.denominator,
    correctSp: s.correct_sp,
    nMasked: s.n_masked,
    batchSize: s.instances,
  };
}

/** A default number of MLM slots for `B` rows of `T` tokens: UER masks max(1, round(0.15·len)) per row. */
export function defaultMaskedSlots(batch: number, seq: number): number {
  const perRow = Math.max(1, Math.round(seq * 0.15)) + 1;
  return Math.ceil((batch * perRow) / 8) * 8;
}

/** The trainable parameters of `cfg` for pretraining (UER names and shapes, declaration order). */
export function paramShapes(cfg: AlbertConfig): ParamSpec[] {
  const g = new Graph();
  const a = albert(g, cfg, { semantics: "uer", batch: 1, seq: 2 });
  mlmHead(g, cfg, a.encoderOutput, { semantics: "uer" });
  sopHead(g, cfg, a.encoderOutput);
  return g.params().map((p) => ({ name: p.name, shape: p.shape as number[] }));
}

function countMasked(b: Batch): number {
  let n = 0;
  for (const id of b.tgtMlm) if (id > 0) n++;
  return n;
}

/** The most masked tokens of one row. */
function maxMaskedPerRow(b: Batch): number {
  let most = 0;
  for (let r = 0; r < b.batchSize; r++) {
    let n = 0;
    for (let i = r * b.seqLength; i < (r + 1) * b.seqLength; i++) if (b.tgtMlm[i] > 0) n++;
    most = Math.max(most, n);
  }
  return most;
}

/**
 * Query rows of the last layer application per batch row at `shape`: [CLS] (SOP) and room for
 * ceil(K/B) masked tokens (MLM) — all the loss reads of the last layer.
 */
export function lastLayerRows(shape: StepShape): number {
  return Math.ceil(shape.slots / shape.batch) + 1;
}

/**
 * The pretraining task of `cfg` (UER semantics: UER LayerNorm, `src`/`seg` inputs).
 *
 * Data inputs: `src`, `seg` I32 [B,T]; `last_layer_positions` I32 [B·S] (flat b·T+t, `lastLayerRows`);
 * `mlm_positions` I32 [K] (into the last layer's B·S rows); `mlm_labels` I32 [K];
 * `mlm_weights` F32 [K] (1 = a masked token, 0 = unused slot); `sop_labels` I32 [B];
 * `sop_weights` F32 [B] (1 = real row, 0 = padding row). Host statistics: `n_masked`, `denominator`
 * (float32 `n_masked + 1e-6`, UER's), `instances`.
 *
 * @example
 * ```ts
 * const trainer = await Trainer.create({ task: pretrainTask(cfg), params, device: "cpu" });
 * ```
 */
export function pretrainTask(cfg: AlbertConfig): TrainTask<Batch> {
  const V = cfg.vocab_size;
  if (!V) throw new RangeError("Cannot build the pretraining task: config has no vocab_size");
  return {
    name: "pretraining",
    config: cfg,
    params: paramShapes(cfg),
    graphStats: PRETRAIN_GRAPH_STATS,
    shapeFor(b: Batch, known: readonly StepShape[]): StepShape {
      const n = countMasked(b), perRow = maxMaskedPerRow(b);
      // Room for every masked token of the batch, and in the last layer's query rows for the row with most.
      const fits = (batch: number, slots: number) => slots >= n && Math.ceil(slots / batch) >= perRow;
      const prev = known.find((s) => s.seq === b.seqLength);
      if (prev && prev.batch >= b.batchSize && fits(prev.batch, prev.slots)) return prev;
      const batch = Math.max(b.batchSize, prev?.batch ?? 0);
      let slots = Math.max(defaultMaskedSlots(batch, b.seqLength), prev?.slots ?? 0);
      while (!fits(batch, slots)) slots *= 2;
      return { batch, seq: b.seqLength, slots };
    },
    build(g: Graph, shape: StepShape, opts: TaskBuildOptions): TaskGraph {
      const { batch: B, seq: T, slots: K } = shape;
      // fusedOps: the attention softmax as one Softmax op (it has a rule); UER LayerNorm stays primitive.
      const norm = { semantics: "uer" as const, fusedOps: true };
      // The last layer runs at S rows per batch row: [CLS] and the row's masked tokens (lastLayerRows).
      const S = lastLayerRows(shape);
      const queries = g.input("last_layer_positions", "I32", [B * S]);
      const a = albert(g, cfg, {
        ...norm,
        idsDtype: "I32",
        batch: B,
        seq: T,
        dropout: opts.dropout,
        lastLayerQueries: { index: queries, perRow: S },
      });
      const positions = g.input("mlm_positions", "I32", [K]); // into the [B*S] rows of the last layer
      const mlmLabels = g.input("mlm_labels", "I32", [K]);
      const mlmWeights = g.input("mlm_weights", "F32", [K]);
      const sopLabels = g.input("sop_labels", "I32", [B]);
      const sopWeights = g.input("sop_weights", "F32", [B]);
      const h = a.encoderOutput; // [B,S,H]: slot 0 [CLS], then the row's masked tokens
      const hMasked = g.gather(g.reshape(h, [-1, cfg.hidden_size]), positions); // [B*S,H] -> [K,H]
      // The head's hidden transform; its output layer is inside the fused loss (same params).
      const mlmT = mlmHead(g, cfg, hMasked, norm).transform; // [K,E]
      const E = mlmT.shape[1] as number;
      const w = g.param("target.mlm.linear_2.weight", [V, E]), b = g.param("target.mlm.linear_2.bias", [V]);
      const mlm = linearSoftmaxCrossEntropy(g, mlmT, w, b, mlmLabels);
      // NOTE: UER NLLLoss mean: over ALL masked tokens of the batch (not per row).
      // max(n, 1) as Clip (Max has no WebGPU kernel); UER-py skips batches without masked tokens.
      const nMasked = g.op("Clip", [g.reduceSum(mlmWeights, [0], false), g.scalar(1), null], {}, {
        shapes: [{ dtype: "F32", shape: [] }],
      });
      const lossMlm = g.div(g.reduceSum(g.mul(mlm.nll, mlmWeights), [0], false), nMasked);
      const sop = sopHead(g, cfg, h); // slot 0: [CLS]; logits [B,2]
      const sopCe = softmaxCrossEntropy(g, sop.logits, sopLabels);
      const nRows = g.reduceSum(sopWeights, [0], false);
      const lossSp = g.div(g.reduceSum(g.mul(sopCe.nll, sopWeights), [0], false), nRows);
      const loss = g.add(lossMlm, lossSp);
      const count = (hits: ReturnType<typeof argmaxHits>, wts: typeof mlmWeights) =>
        g.reduceSum(g.mul(hits, wts), [0], false);
      return {
        loss,
        stats: [
          loss,
          lossMlm,
          lossSp,
          count(argmaxHits(g, mlm.logits, mlmLabels), mlmWeights),
          count(argmaxHits(g, sop.logits, sopLabels), sopWeights),
        ],
      };
    },
    feeds(b: Batch, shape: StepShape): Record<string, Tensor> {
      const { batch: B, seq: T, slots: K } = shape;
      if (b.src.length !== b.batchSize * T || b.seg.length !== b.src.length || b.tgtMlm.length !== b.src.length) {
        throw new RangeError(
          `Cannot train on a batch: src/seg/tgt_mlm must hold batchSize*seqLength = ${b.batchSize * T} ids`,
        );
      }
      const src = new Int32Array(B * T), seg = new Int32Array(B * T);
      src.set(b.src);
      seg.set(b.seg);
      // Last-layer rows: row r's slot 0 is its [CLS], slots 1… its masked tokens, unused slots [CLS] again.
      const S = lastLayerRows(shape);
      const queries = new Int32Array(B * S);
      for (let r = 0; r < B; r++) queries.fill(r * T, r * S, (r + 1) * S);
      const pos = new Int32Array(K), lab = new Int32Array(K), w = new Float32Array(K);
      let k = 0;
      for (let r = 0; r < b.batchSize; r++) {
        let j = r * S + 1;
        for (let i = r * T; i < (r + 1) * T; i++) {
          if (b.tgtMlm[i] > 0) {
            if (k === K || j === (r + 1) * S) {
              throw new RangeError("Cannot train on a batch: more masked tokens than slots");
            }
            queries[j] = i;
            pos[k] = j++;
            lab[k] = b.tgtMlm[i];
            w[k++] = 1;
          }
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
        last_layer_positions: t("I32", [B * S], queries),
        mlm_positions: t("I32", [K], pos),
        mlm_labels: t("I32", [K], lab),
        mlm_weights: t("F32", [K], w),
        sop_labels: t("I32", [B], sopL),
        sop_weights: t("F32", [B], sopW),
      };
    },
    hostStats(b: Batch): Record<string, number> {
      const n = countMasked(b);
      // UER: denominator = torch.tensor(n_masked + 1e-6), float32
      return { n_masked: n, denominator: Math.fround(n + 1e-6), instances: b.batchSize };
    },
  };
}
