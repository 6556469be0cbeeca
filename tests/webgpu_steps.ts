/**
 * Shared by the WebGPU counting test (core/webgpu/counts_test.ts), the lowering test and
 * bench/webgpu_step_bench.ts: UER-shaped synthetic batches and the pretraining optimizer step graph
 * (its statistics summed on the device in the state `stats`, read only when asked) with its feeds.
 * Not browser compatible (reads the reference config).
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import type { Graph } from "../core/graph/builder.ts";
import type { Tensor } from "../core/tensor.ts";
import { adamwScalars } from "../core/train/adamw.ts";
import type { Batch } from "../core/train/loader.ts";
import { defaultMaskedSlots, pretrainTask } from "../core/train/pretrain_task.ts";
import type { StateStore } from "../core/train/state_store.ts";
import type { ParamSpec, StepShape, TrainTask } from "../core/train/task.ts";
import { initParams } from "../core/train/trainer.ts";
import { names, stepGraph } from "../core/train/training_graph.ts";
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

/** A pretraining optimizer step (`update` graph) of `cfg` at batch `B` × seq `T` for the executor or onnxruntime. */
export interface PretrainStep {
  task: TrainTask<Batch>;
  shape: StepShape;
  graph: Graph;
  /** The host feeds of `b` at learning rate `lr`. */
  feeds(b: Batch, lr: number): Record<string, Tensor>;
  /** Writes the parameters (`initParams(…, 7)`), zero moments and zero statistics into `store`. */
  init(store: StateStore): void;
}

/** The `update` step graph of the pretraining task (WebGPU-safe "matmul" scatters) and its feeds. */
export function pretrainStep(cfg: AlbertConfig, B: number, T: number): PretrainStep {
  const task = pretrainTask(cfg);
  const shape: StepShape = { batch: B, seq: T, slots: defaultMaskedSlots(B, T) };
  const graph = stepGraph(task, shape, { kind: "update", scatter: "matmul" });
  return {
    task,
    shape,
    graph,
    feeds(b, lr) {
      const { negLr, negLrWd } = adamwScalars(lr);
      return {
        ...task.feeds(b, shape),
        neg_lr: { dtype: "F32", shape: [], data: Float32Array.of(negLr) },
        neg_lr_wd: { dtype: "F32", shape: [], data: Float32Array.of(negLrWd) },
      };
    },
    init(store) {
      const params = initParams(task.params, 7);
      const zeros = (p: ParamSpec): Tensor => ({
        dtype: "F32",
        shape: [...p.shape],
        data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)),
      });
      for (const p of task.params) {
        store.write(p.name, params.get(p.name)!);
        store.write(names.m(p.name), zeros(p));
        store.write(names.v(p.name), zeros(p));
      }
      store.write(names.stats, zeros({ name: names.stats, shape: [1, task.graphStats.length] }));
    },
  };
}
