/**
 * The sentence classifier of UER-py's `finetune/run_classifier.py` (`Classifier`) on the ALBERT
 * declaration: encoder output → `pooling()` (`uer/utils/misc.py`) → `tanh(output_layer_1)` →
 * `output_layer_2` → logits. UER names: `output_layer_1.weight [H,H]`, `.bias [H]`,
 * `output_layer_2.weight [labels,H]`, `.bias [labels]`. Browser compatible: no Deno APIs.
 *
 * Pooling follows UER-py's exact rules, which first multiply every position by its segment id
 * (`memory_bank * seg`, seg 1 = text_a, 2 = text_b, 0 = padding):
 * - `first`: position 0 (`[CLS]`, segment 1);
 * - `last`: position `count(seg ≠ 0) − 1`, the last token — of a pair, text_b's `[SEP]`, weighed 2;
 * - `mean`: `Σ_t seg_t·h_t / Σ_t seg_t` (text_b positions weigh 2);
 * - `max`: `max_t (seg_t·h_t + (seg_t − 1)·sys.maxsize)`: padding is pushed to −2^63 and, of a pair,
 *   text_b to +2^63, so in float32 every feature of a pair is exactly 2^63 (UER-py's result too).
 *
 * Shapes: B batch, T sequence, H hidden_size, C labels.
 * @module
 */
import type { AlbertConfig } from "../config.ts";
import { type Graph, makeTensor, type Value } from "../graph/builder.ts";
import { linear, type NormOptions } from "./layers.ts";

/** UER-py's `--pooling` choices. */
export type Pooling = "first" | "last" | "mean" | "max";

/** The poolings, in UER-py's `--pooling` choice order. */
export const POOLINGS: readonly Pooling[] = ["mean", "max", "first", "last"];

/** float32(sys.maxsize) = 2^63: what UER-py's `(seg - 1) * sys.maxsize` multiplies by. */
const SYS_MAXSIZE_F32 = 2 ** 63;

/**
 * UER segment ids as floats: `seg` [B,T] int (0/1/2) through a table lookup (WebGPU has no Cast from
 * int64; Gather takes int64 indices), or HF's `token_type_ids` and `attention_mask` as
 * `attention_mask · (token_type_ids + 1)`.
 */
export function segmentWeights(
  g: Graph,
  inp: { seg?: Value; tokenTypeIds?: Value; attentionMask?: Value },
  dtype: Value["dtype"] = "F32",
): Value {
  const table = (values: number[]) => g.constant(makeTensor(dtype, [values.length], values));
  if (inp.seg) return g.gather(table([0, 1, 2]), inp.seg);
  return g.mul(g.gather(table([0, 1]), inp.attentionMask!), g.gather(table([1, 2]), inp.tokenTypeIds!));
}

/**
 * UER-py's `pooling(memory_bank, seg, pooling_type)`: h [B,T,H] and the float segment ids
 * (`segmentWeights`) [B,T] → features [B,H].
 */
export function pooling(g: Graph, h: Value, segF: Value, type: Pooling): Value {
  const hs = g.mul(h, g.unsqueeze(segF, [2])); // NOTE: UER multiplies every position by its segment id
  switch (type) {
    case "first":
      return g.gather(hs, g.scalar(0, "I64"), 1); // [B,T,H] -> [B,H]
    case "mean":
      return g.div(g.reduceSum(hs, [1], false), g.reduceSum(segF, [1], true)); // [B,H] / [B,1]
    case "max": {
      const shift = g.mul(g.sub(segF, 1), SYS_MAXSIZE_F32); // [B,T]: -2^63 padding, 0 text_a, 2^63 text_b
      return g.reduceMax(g.add(hs, g.unsqueeze(shift, [2])), [1], false);
    }
    case "last": {
      // Position count(seg ≠ 0) − 1 as a one-hot over T, for any T: the running count of real tokens
      // equals the total there (and at the padding after it, which nz zeroes). No int64 arithmetic.
      const nz = g.cast(g.greater(segF, 0), h.dtype); // [B,T]
      const count = g.reduceSum(nz, [1], true); // [B,1]
      const running = g.op("CumSum", [nz, g.scalar(1, "I64")], {}, {
        shapes: [{ dtype: h.dtype, shape: [...nz.shape] }],
      });
      const onehot = g.mul(nz, g.cast(g.equal(running, count), h.dtype)); // [B,T]
      return g.squeeze(g.matmul(g.unsqueeze(onehot, [1]), hs), [1]); // [B,1,T] x [B,T,H] -> [B,H]
    }
  }
}

/** The classifier's outputs. */
export interface ClassifierOutputs {
  /** tanh(output_layer_1(pooled)) [B,H]. */
  hidden: Value;
  /** output_layer_2(hidden) [B,C]. */
  logits: Value;
}

/**
 * `Classifier.forward` after the encoder: pooling, `tanh(output_layer_1)`, `output_layer_2`.
 *
 * @example
 * ```ts
 * const a = albert(g, cfg, { semantics: "uer", idsDtype: "I32" });
 * const { logits } = classifierHead(g, cfg, a.encoderOutput, segmentWeights(g, a.inputs), 2, "first");
 * ```
 */
export function classifierHead(
  g: Graph,
  cfg: AlbertConfig,
  h: Value,
  segF: Value,
  labelsNum: number,
  type: Pooling,
  opts?: NormOptions,
): ClassifierOutputs {
  const H = cfg.hidden_size;
  const hidden = g.tanh(linear(g, "output_layer_1", pooling(g, h, segF, type), H, H, opts));
  return { hidden, logits: linear(g, "output_layer_2", hidden, H, labelsNum, opts) };
}

/** The classifier's own parameters (UER names and shapes), after the backbone's. */
export function classifierHeadShapes(cfg: AlbertConfig, labelsNum: number): { name: string; shape: number[] }[] {
  const H = cfg.hidden_size;
  return [
    { name: "output_layer_1.weight", shape: [H, H] },
    { name: "output_layer_1.bias", shape: [H] },
    { name: "output_layer_2.weight", shape: [labelsNum, H] },
    { name: "output_layer_2.bias", shape: [labelsNum] },
  ];
}
