/**
 * Shared by the WebGPU counting test (core/webgpu/counts_test.ts) and bench/webgpu_step_bench.ts:
 * UER-shaped synthetic batches, their step feeds, and a pretraining step graph whose statistics are
 * summed on the device (state `stats`, read only when asked), as the trainer's step graphs do.
 * Not browser compatible (reads the reference config).
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import type { Graph } from "../core/graph/builder.ts";
import type { Tensor } from "../core/tensor.ts";
import { adamwScalars } from "../core/train/adamw.ts";
import type { Batch } from "../core/train/trainer.ts";
import { STAT_OUTPUTS, trainingGraph } from "../core/train/training_graph.ts";
import { refPath } from "./reference.ts";

/** The reference albert-tiny config (../shared/reference/albert-tiny) with `layers` layer applications. */
export async function tinyConfigLayers(layers: number): Promise<AlbertConfig> {
  const raw = JSON.parse(await Deno.readTextFile(refPath("albert-tiny/uer_config.json")));
  return { ...ALBERT_BASE, ...raw, layers_num: layers, vocab_size: 21128 };
}

/** ALBERT-base's shape (UER-py models/albert/base_config.json, vocab 21128). */
export const BASE_SHAPE: AlbertConfig = { ...ALBERT_BASE, vocab_size: 21128 };

/** A deterministic synthetic batch shaped like UER's: two segments, ~15% masked, a few padded rows. */
export function syntheticBatch(batchSize: number, seqLength: number, vocab: number, salt: number): Batch {
  const n = batchSize * seqLength;
  const src = new Int32Array(n), seg = new Int32Array(n), tgtMlm = new Int32Array(n);
  let x = 12345 + salt * 7919;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let r = 0; r < batchSize; r++) {
    const len = r % 4 === 3 ? Math.floor(seqLength * 0.6) : seqLength;
    const a = Math.floor(len / 2);
    for (let t = 0; t < len; t++) {
      const i = r * seqLength + t;
      src[i] = t === 0 ? 101 : t === a || t === len - 1 ? 102 : 104 + Math.floor(rnd() * (vocab - 104));
      seg[i] = t <= a ? 1 : 2;
    }
    const k = Math.max(1, Math.round(len * 0.15));
    for (let j = 0; j < k; j++) {
      const t = 1 + Math.floor(rnd() * (len - 2));
      const i = r * seqLength + t;
      if (src[i] === 102) continue;
      tgtMlm[i] = src[i];
      src[i] = 103;
    }
  }
  const tgtSop = Int32Array.from({ length: batchSize }, (_, r) => r % 2);
  return { src, seg, tgtMlm, tgtSop, batchSize, seqLength };
}

/** The host feeds of one optimizer step on `b` with `K` MLM slots at learning rate `lr`. */
export function stepFeeds(b: Batch, K: number, lr: number): Record<string, Tensor> {
  const B = b.batchSize, T = b.seqLength;
  const pos = new Int32Array(K), lab = new Int32Array(K), w = new Float32Array(K);
  let k = 0;
  for (let i = 0; i < b.tgtMlm.length && k < K; i++) {
    if (b.tgtMlm[i] > 0) {
      pos[k] = i;
      lab[k] = b.tgtMlm[i];
      w[k++] = 1;
    }
  }
  const { negLr, negLrWd } = adamwScalars(lr);
  const t = (dtype: Tensor["dtype"], shape: number[], data: Tensor["data"]): Tensor => ({ dtype, shape, data });
  return {
    src: t("I32", [B, T], b.src),
    seg: t("I32", [B, T], b.seg),
    mlm_positions: t("I32", [K], pos),
    mlm_labels: t("I32", [K], lab),
    mlm_weights: t("F32", [K], w),
    sop_labels: t("I32", [B], b.tgtSop),
    sop_weights: t("F32", [B], new Float32Array(B).fill(1)),
    neg_lr: t("F32", [], Float32Array.of(negLr)),
    neg_lr_wd: t("F32", [], Float32Array.of(negLrWd)),
  };
}

/**
 * The fused pretraining step graph (forward, backward, AdamW) with its statistics summed into the
 * state `stats` [1,5] (`updated.stats`), and the outputs a store computes for it (only `updated.*`).
 */
export function statefulStepGraph(
  cfg: AlbertConfig,
  B: number,
  T: number,
  K: number,
): { graph: Graph; params: { name: string; shape: number[] }[]; outputs: string[] } {
  const { graph: g, params } = trainingGraph(cfg, {
    kind: "fused",
    batch: B,
    seq: T,
    maskedSlots: K,
    scatter: "matmul",
  });
  const stats = STAT_OUTPUTS.map((n) => g.outputs().find((v) => v.name === n)!);
  const sums = g.input("stats", "F32", [1, stats.length]);
  const vec = g.reshape(g.concat(stats.map((v) => g.reshape(v, [1])), 0), [1, stats.length]);
  g.output(g.add(sums, vec), "updated.stats");
  return { graph: g, params, outputs: g.outputs().map((v) => v.name).filter((n) => n.startsWith("updated.")) };
}
