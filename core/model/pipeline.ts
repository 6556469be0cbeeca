/**
 * Inference pipelines over an ALBERT model: fill-mask (HF `FillMaskPipeline`, UER-py
 * `scripts/cloze_test.py`), feature extraction (HF `FeatureExtractionPipeline`, UER-py
 * `scripts/extract_features.py`) and text classification with a fine-tuned classifier (HF
 * `TextClassificationPipeline`, UER-py `inference/run_classifier_infer.py`). One session per task (params baked in as initializers so
 * onnxruntime can fold and pre-pack them; on WebGPU one per padded length, see `AlbertPipeline`);
 * texts run sorted by length in batches padded to their longest row (core/model/batching.ts), results
 * in input order.
 * Fill-mask computes the last layer's queries/feed-forward and the MLM head only at the [MASK] rows.
 * Browser compatible: no Deno APIs (files are read by cli/infer.ts).
 * @module
 */
import type { AlbertConfig } from "../config.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { type Backend, createSession, type Device, pickBackend, type Placement, type Session } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import type { BertTokenizer } from "../tokenizer/bert_tokenizer.ts";
import { type AlbertOutput, inferenceGraph } from "./albert.ts";
import type { Pooling } from "./classifier.ts";
import { type Quantize, type Semantics, softmax } from "./layers.ts";
import { planBatches } from "./batching.ts";
import { deriveParams } from "./quantize.ts";

/** A model as `convert/mod.ts` `loadModel()` returns it (UER names). */
export interface PipelineModel {
  config: AlbertConfig;
  params: Map<string, Tensor>;
  semantics: Semantics;
  layerNormEps: number;
}

/** One input: a text, or a pair. */
export interface TextInput {
  a: string;
  b?: string;
}

/** One HF fill-mask prediction. */
export interface FillMaskPrediction {
  score: number;
  token: number;
  token_str: string;
  sequence: string;
}

/** Milliseconds spent per stage, summed over batches (for benchmarks). */
export interface PipelineTimings {
  /** Text → ids (and truncation). */
  tokenize: number;
  /** Padded id tensors (and mask positions). */
  feeds: number;
  /** The session run, outputs copied to the host. */
  run: number;
  /** Softmax, top-k and the result objects (fill-mask), or row copies (features). */
  post: number;
}

/** Batching options. */
export interface BatchOptions {
  batchSize: number;
  /** Rows longer than this are truncated (with a warning through `warn`). */
  seqLength: number;
  warn?: (line: string) => void;
  /** If given, each stage's time is added to it. */
  timings?: PipelineTimings;
  /**
   * Run the rows sorted by token count, so each batch is padded only to its own longest row
   * (core/model/batching.ts; default true). Results are in input order either way.
   */
  sortByLength?: boolean;
  /** Called after each batch with the number of texts done and the total. */
  progress?: (done: number, total: number) => void;
}

/** Features of one text. */
export interface TextFeatures {
  /** [L, H] last hidden state (L = its token count, no padding). */
  lastHiddenState: Float32Array;
  length: number;
  /** [H] pooled output (tanh(linear(h[CLS]))); undefined when the model has no pooler. */
  pooledOutput?: Float32Array;
}

/** Options of `AlbertPipeline.create`. */
export interface PipelineOptions {
  device?: Device;
  /** CPU intra-op threads (default onnxruntime's choice). */
  threads?: number;
  /** Where the device choice of `auto` is reported. */
  log?: (line: string) => void;
  /** WebGPU/wasm: record node placement per session (see `placements()`). */
  reportPlacement?: boolean;
  /** text-classification: the classifier's pooling (UER-py `--pooling`, default first). */
  pooling?: Pooling;
  /**
   * Weights the sessions compute with: `fp32` (default), or `q8` — int8 per output row for every
   * linear of encoder and heads (core/model/quantize.ts), run as `DynamicQuantizeLinear` + `MatMulInteger`
   * on the CPU and wasm, as 8-bit `MatMulNBits` on WebGPU (its only quantized matmul kernel).
   */
  dtype?: Dtype;
  /** onnxruntime's fused com.microsoft kernels (attention, skip LayerNorm, bias GELU; default true), or standard ONNX ops only. */
  fused?: boolean;
}

/** Weight precision of an inference graph (transformers.js' names). */
export type Dtype = "fp32" | "q8";

/** How `dtype` is lowered on a backend. */
export function quantizeFor(dtype: Dtype, backend: Backend): Quantize | undefined {
  if (dtype === "fp32") return undefined;
  return backend === "webgpu" ? "matmul-nbits" : "matmul-integer";
}

type Task = "fill-mask" | "feature-extraction" | "text-classification";

/** One text's classifier outputs (UER-py run_classifier_infer.py's `--output_logits --output_prob`). */
export interface Classification {
  /** [C] logits. */
  logits: Float32Array;
  /** [C] float32 softmax of the logits. */
  probs: Float32Array;
}

interface Encoded {
  ids: number[];
  seg: number[];
  types: number[];
}

/** WebGPU sessions kept per pipeline (one per task and padded length); the oldest is released. */
const MAX_STATIC_SESSIONS = 4;
const MIN_STATIC_SEQ = 16;

const now = () => performance.now();

/**
 * A loaded model + tokenizer ready for fill-mask / feature extraction.
 *
 * On the CPU (and wasm) one session per task serves every batch shape. On WebGPU a graph whose
 * length is symbolic needs a `Shape` op, which onnxruntime runs on the CPU (DESIGN.md §3), so
 * there each task gets graphs for concrete lengths: batches are padded to the next power of two
 * (at least 16, at most `max_seq_length`) and the sessions are cached, a few at most.
 *
 * @example
 * ```ts
 * const p = AlbertPipeline.create(model, tokenizer, { device: "cpu" });
 * const [[preds]] = await p.fillMask([{ a: "中国的首都是[MASK]京。" }], 5, { batchSize: 8, seqLength: 128 });
 * ```
 */
export class AlbertPipeline {
  #sessions = new Map<string, Promise<Session>>();
  #backend?: Promise<Backend>;
  private constructor(
    readonly model: PipelineModel,
    readonly tokenizer: BertTokenizer,
    readonly device: Device,
    readonly threads?: number,
    readonly log?: (line: string) => void,
    readonly reportPlacement = false,
    readonly pooling: Pooling = "first",
    readonly dtype: Dtype = "fp32",
    readonly fused = true,
  ) {}

  /** Checks the vocab against the embedding and prepares the pipeline (sessions start lazily). */
  static create(model: PipelineModel, tokenizer: BertTokenizer, opts: PipelineOptions = {}): AlbertPipeline {
    const rows = model.params.get("embedding.word.embedding.weight")?.shape[0];
    if (rows !== tokenizer.vocab.size) {
      throw new RangeError(
        `Cannot use vocab "${tokenizer.vocab.source}": it has ${tokenizer.vocab.size} tokens but the model's word embedding has ${rows} rows\n  hint: pass the --vocab_path the model was trained with`,
      );
    }
    return new AlbertPipeline(
      model,
      tokenizer,
      opts.device ?? "auto",
      opts.threads,
      opts.log,
      opts.reportPlacement,
      opts.pooling,
      opts.dtype,
      opts.fused,
    );
  }

  /**
   * The ONNX model (params baked in) of one task on `backend`; `seq` fixes the sequence length (no
   * `Shape` op). Inference-only fused ops (LayerNormalization, Softmax, and onnxruntime's contrib
   * kernels unless `fused` is false) are used, and int8 weights for `dtype` q8. Fill-mask computes the
   * last layer and the MLM head at the `mlm_positions` rows only (inputs `mlm_positions`, `mlm_rows`)
   * and outputs `mlm_logits` and `mlm_probs` (their softmax over the vocab), both [K,V].
   */
  onnxModel(task: Task, seq?: number, backend: Backend = "cpu"): Uint8Array {
    const m = this.model;
    const outputs: AlbertOutput[] = task === "fill-mask"
      ? ["mlm_logits"]
      : task === "text-classification"
      ? ["classifier_logits", "classifier_probs"]
      : this.hasPooler
      ? ["encoder_output", "pooled_output"]
      : ["encoder_output"];
    const labelsNum = m.params.get("output_layer_2.weight")?.shape[0];
    const g = inferenceGraph(m.config, {
      ...(task === "text-classification" ? { classifier: { labelsNum: labelsNum!, pooling: this.pooling } } : {}),
      semantics: m.semantics,
      eps: m.layerNormEps,
      outputs,
      mlmPositions: task === "fill-mask",
      lastLayerAtPositions: task === "fill-mask",
      fusedOps: true,
      contribOps: this.fused,
      quantize: quantizeFor(this.dtype, backend),
      ...(seq ? { seq } : {}),
    });
    if (task === "fill-mask") {
      // The softmax runs in onnxruntime (vectorized) rather than as V Math.exp calls per mask in JS.
      g.output(softmax(g, g.outputs().find((v) => v.name === "mlm_logits")!, true), "mlm_probs");
    }
    return toOnnx(g, { initializers: deriveParams(g, m.params) }).model;
  }

  /** Whether the model has a pooler (`target.sp.linear_1`; AlbertForMaskedLM folders have none). */
  get hasPooler(): boolean {
    return this.model.params.has("target.sp.linear_1.weight");
  }

  /** The backend `device` resolves to (asked once). */
  #resolvedDevice(): Promise<Backend> {
    if (!this.#backend) {
      const d = this.device;
      this.#backend = d === "auto" || d === "webgpu" ? pickBackend(d, this.log) : Promise.resolve(d);
    }
    return this.#backend;
  }

  /** The padded length a batch of longest row `width` runs at: itself, or a power-of-two bucket on WebGPU. */
  async paddedLength(width: number): Promise<number> {
    if ((await this.#resolvedDevice()) !== "webgpu") return width;
    let T = MIN_STATIC_SEQ;
    while (T < width) T *= 2;
    return Math.max(width, Math.min(T, this.model.config.max_seq_length));
  }

  /**
   * The session a batch of padded length `width` runs on (created on first use; on WebGPU one per
   * length, see `paddedLength`).
   */
  async session(task: Task, width: number): Promise<Session> {
    const device = await this.#resolvedDevice();
    const seq = device === "webgpu" ? width : undefined;
    const key = seq ? `${task}:${seq}` : task;
    let s = this.#sessions.get(key);
    if (s) {
      // Most recently used last.
      this.#sessions.delete(key);
      this.#sessions.set(key, s);
      return s;
    }
    s = createSession(this.onnxModel(task, seq, device), {
      device,
      threads: this.threads,
      log: this.log,
      reportPlacement: this.reportPlacement,
    });
    this.#sessions.set(key, s);
    if (seq && this.#sessions.size > MAX_STATIC_SESSIONS) {
      const [oldKey, old] = this.#sessions.entries().next().value!;
      this.#sessions.delete(oldKey);
      await (await old).release();
    }
    return s;
  }

  /** Node placement of each started session (those created with `reportPlacement`). */
  async placements(): Promise<{ session: string; placement?: Placement }[]> {
    const out = [];
    for (const [key, s] of this.#sessions) out.push({ session: key, placement: (await s).placement });
    return out;
  }

  #encode(inputs: TextInput[], opts: BatchOptions): Encoded[] {
    // Rows longer than --seq_length, or than the model's positions when --seq_length is larger, are cut.
    const max = this.model.config.max_seq_length;
    const limit = Math.min(opts.seqLength, max);
    const what = opts.seqLength > max ? `the model's ${max} positions` : `--seq_length ${limit}`;
    return inputs.map((inp, i) => {
      const e = this.tokenizer.encode(inp.a, inp.b);
      let { ids, segmentIds: seg, tokenTypeIds: types } = e;
      if (ids.length > limit) {
        opts.warn?.(`warning: text ${i + 1} has ${ids.length} tokens, truncated to ${what}`);
        ids = ids.slice(0, limit);
        seg = seg.slice(0, limit);
        types = types.slice(0, limit);
      }
      return { ids, seg, types };
    });
  }

  /** [B, width] int64 feeds, padded (ids with [PAD], segments/types/mask with 0). */
  #feeds(batch: Encoded[], width: number): Record<string, Tensor> {
    const B = batch.length, n = B * width;
    const ids = new BigInt64Array(n);
    if (this.tokenizer.vocab.padId !== 0) ids.fill(BigInt(this.tokenizer.vocab.padId));
    const second = new BigInt64Array(n); // UER seg (0 = padding) or HF token types
    const mask = this.model.semantics === "uer" ? undefined : new BigInt64Array(n);
    batch.forEach((e, r) => {
      const o = r * width, src = this.model.semantics === "uer" ? e.seg : e.types;
      for (let j = 0; j < e.ids.length; j++) {
        ids[o + j] = BigInt(e.ids[j]);
        second[o + j] = BigInt(src[j]);
        if (mask) mask[o + j] = 1n;
      }
    });
    const t = (data: BigInt64Array): Tensor => ({ dtype: "I64", shape: [B, width], data });
    if (!mask) return { src: t(ids), seg: t(second) };
    return { input_ids: t(ids), token_type_ids: t(second), attention_mask: t(mask) };
  }

  /**
   * HF fill-mask: per input, per [MASK], the `topK` predictions (softmax over the vocab) with
   * `sequence` decoded as HF does (specials skipped for a single mask, kept for several).
   */
  async fillMask(inputs: TextInput[], topK: number, opts: BatchOptions): Promise<FillMaskPrediction[][][]> {
    const tm = opts.timings;
    let t0 = now();
    const enc = this.#encode(inputs, opts);
    const maskId = this.tokenizer.vocab.maskId;
    enc.forEach((e, i) => {
      if (!e.ids.includes(maskId)) {
        const t = inputs[i].a.length > 40 ? `${inputs[i].a.slice(0, 40)}…` : inputs[i].a;
        throw new TypeError(
          `Cannot run fill-mask: text ${i + 1} "${t}" has no [MASK]${
            inputs[i].a.includes("[MASK]") ? " left after truncation" : ""
          }\n  hint: put [MASK] in the text or use --task feature-extraction`,
        );
      }
    });
    if (tm) tm.tokenize += now() - t0;
    const V = this.tokenizer.vocab.size;
    const results: FillMaskPrediction[][][] = new Array(enc.length);
    let done = 0;
    for (const rowsOf of planBatches(enc.map((e) => e.ids.length), opts.batchSize, opts.sortByLength ?? true)) {
      const batch = rowsOf.map((i) => enc[i]);
      const width = await this.paddedLength(Math.max(...batch.map((e) => e.ids.length)));
      const session = await this.session("fill-mask", width);
      t0 = now();
      const feeds = this.#feeds(batch, width);
      // Flat [MASK] positions into B*width: the graph computes the MLM head at these rows only.
      const masks = batch.map((e) => e.ids.flatMap((id, p) => (id === maskId ? [p] : [])));
      const positions: bigint[] = [], rows: bigint[] = [];
      masks.forEach((ps, r) =>
        ps.forEach((p) => {
          positions.push(BigInt(r * width + p));
          rows.push(BigInt(r));
        })
      );
      feeds.mlm_positions = { dtype: "I64", shape: [positions.length], data: BigInt64Array.from(positions) };
      feeds.mlm_rows = { dtype: "I64", shape: [rows.length], data: BigInt64Array.from(rows) };
      let t1 = now();
      if (tm) tm.feeds += t1 - t0;
      const probs = (await session.run(feeds, ["mlm_probs"])).mlm_probs.data as Float32Array; // [K,V]
      t0 = now();
      if (tm) tm.run += t0 - t1;
      let k = 0;
      batch.forEach((e, r) => {
        const single = masks[r].length === 1;
        results[rowsOf[r]] = masks[r].map((p) => {
          const row = probs.subarray(k * V, (k + 1) * V);
          k++;
          return topKIds(row, topK).map((id) => {
            const score = row[id];
            const tokens = e.ids.slice();
            tokens[p] = id;
            return {
              score,
              token: id,
              token_str: this.tokenizer.decode([id]),
              sequence: this.tokenizer.decode(tokens, { skipSpecialTokens: single }),
            };
          });
        });
      });
      t1 = now();
      if (tm) tm.post += t1 - t0;
      opts.progress?.(done += batch.length, enc.length);
    }
    return results;
  }

  /** Last hidden state (unpadded) and pooled output of each input. */
  async features(inputs: TextInput[], opts: BatchOptions): Promise<TextFeatures[]> {
    const tm = opts.timings;
    let t0 = now();
    const enc = this.#encode(inputs, opts);
    if (tm) tm.tokenize += now() - t0;
    const H = this.model.config.hidden_size;
    const out: TextFeatures[] = new Array(enc.length);
    let done = 0;
    for (const rowsOf of planBatches(enc.map((e) => e.ids.length), opts.batchSize, opts.sortByLength ?? true)) {
      const batch = rowsOf.map((i) => enc[i]);
      const width = await this.paddedLength(Math.max(...batch.map((e) => e.ids.length)));
      const session = await this.session("feature-extraction", width);
      t0 = now();
      const feeds = this.#feeds(batch, width);
      let t1 = now();
      if (tm) tm.feeds += t1 - t0;
      const res = await session.run(feeds, this.hasPooler ? ["encoder_output", "pooled_output"] : ["encoder_output"]);
      t0 = now();
      if (tm) tm.run += t0 - t1;
      const h = res.encoder_output.data as Float32Array, pooled = res.pooled_output?.data as Float32Array | undefined;
      batch.forEach((e, r) => {
        const L = e.ids.length;
        out[rowsOf[r]] = {
          length: L,
          lastHiddenState: h.slice(r * width * H, (r * width + L) * H),
          pooledOutput: pooled?.slice(r * H, (r + 1) * H),
        };
      });
      t1 = now();
      if (tm) tm.post += t1 - t0;
      opts.progress?.(done += batch.length, enc.length);
    }
    return out;
  }

  /**
   * The classifier's logits and probabilities of each input (UER-py's run_classifier_infer.py; HF's
   * text-classification pipeline takes the label of the largest).
   */
  async classify(inputs: TextInput[], opts: BatchOptions): Promise<Classification[]> {
    if (!this.model.params.has("output_layer_2.weight")) {
      throw new TypeError(
        "Cannot run text-classification: the model has no classifier (output_layer_1/2)\n  hint: use a model from `finetune`",
      );
    }
    const enc = this.#encode(inputs, opts);
    const C = this.model.params.get("output_layer_2.weight")!.shape[0];
    const out: Classification[] = new Array(enc.length);
    let done = 0;
    for (const rowsOf of planBatches(enc.map((e) => e.ids.length), opts.batchSize, opts.sortByLength ?? true)) {
      const batch = rowsOf.map((i) => enc[i]);
      const width = await this.paddedLength(Math.max(...batch.map((e) => e.ids.length)));
      const session = await this.session("text-classification", width);
      const res = await session.run(this.#feeds(batch, width), ["classifier_logits", "classifier_probs"]);
      const logits = res.classifier_logits.data as Float32Array, probs = res.classifier_probs.data as Float32Array;
      rowsOf.forEach((i, r) => {
        out[i] = { logits: logits.slice(r * C, (r + 1) * C), probs: probs.slice(r * C, (r + 1) * C) };
      });
      opts.progress?.(done += batch.length, enc.length);
    }
    return out;
  }

  /** Frees the sessions. */
  async release(): Promise<void> {
    for (const s of this.#sessions.values()) await (await s).release();
    this.#sessions.clear();
  }
}

/** The ids of the `k` largest values of `row`, largest first (ties: lower id first), without a full sort. */
export function topKIds(row: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (idx.length < k || v > row[idx[idx.length - 1]]) {
      let j = idx.length < k ? idx.length : idx.length - 1;
      if (idx.length < k) idx.push(i);
      while (j > 0 && row[idx[j - 1]] < v) {
        idx[j] = idx[j - 1];
        j--;
      }
      idx[j] = i;
    }
  }
  return idx;
}
