/**
 * Inference pipelines over an ALBERT model: fill-mask (HF `FillMaskPipeline`, UER-py
 * `scripts/cloze_test.py`) and feature extraction (HF `FeatureExtractionPipeline`, UER-py
 * `scripts/extract_features.py`). One session per pipeline (params baked in as initializers so
 * onnxruntime can fold and pre-pack them); texts run in batches padded to their longest row.
 * Fill-mask computes the MLM head only at the [MASK] rows (`mlm_positions`).
 * Browser compatible: no Deno APIs (files are read by cli/infer.ts).
 * @module
 */
import type { AlbertConfig } from "../config.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession, type Device, type Session } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import type { BertTokenizer } from "../tokenizer/bert_tokenizer.ts";
import { type AlbertOutput, inferenceGraph } from "./albert.ts";
import type { Semantics } from "./layers.ts";

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

/** Batching options. */
export interface BatchOptions {
  batchSize: number;
  /** Rows longer than this are truncated (with a warning through `warn`). */
  seqLength: number;
  warn?: (line: string) => void;
}

/** Features of one text. */
export interface TextFeatures {
  /** [L, H] last hidden state (L = its token count, no padding). */
  lastHiddenState: Float32Array;
  length: number;
  /** [H] pooled output (tanh(linear(h[CLS]))). */
  pooledOutput: Float32Array;
}

interface Encoded {
  ids: number[];
  seg: number[];
  types: number[];
}

function toTensor(rows: number[][], width: number, dtype: "I64"): Tensor {
  const data = new BigInt64Array(rows.length * width);
  rows.forEach((r, i) => r.forEach((v, j) => (data[i * width + j] = BigInt(v))));
  return { dtype, shape: [rows.length, width], data };
}

/**
 * A loaded model + tokenizer ready for fill-mask / feature extraction.
 *
 * @example
 * ```ts
 * const p = await AlbertPipeline.create(model, tokenizer, { device: "cpu" });
 * const [[preds]] = await p.fillMask([{ a: "中国的首都是[MASK]京。" }], 5, { batchSize: 8, seqLength: 128 });
 * ```
 */
export class AlbertPipeline {
  #sessions = new Map<string, Promise<Session>>();
  private constructor(
    readonly model: PipelineModel,
    readonly tokenizer: BertTokenizer,
    readonly device: Device,
    readonly threads?: number,
    readonly log?: (line: string) => void,
  ) {}

  /** Checks the vocab against the embedding and prepares the pipeline (sessions start lazily). */
  static create(
    model: PipelineModel,
    tokenizer: BertTokenizer,
    opts: { device?: Device; threads?: number; log?: (line: string) => void } = {},
  ): AlbertPipeline {
    const rows = model.params.get("embedding.word.embedding.weight")?.shape[0];
    if (rows !== tokenizer.vocab.size) {
      throw new RangeError(
        `Cannot use vocab "${tokenizer.vocab.source}": it has ${tokenizer.vocab.size} tokens but the model's word embedding has ${rows} rows\n  hint: pass the --vocab_path the model was trained with`,
      );
    }
    return new AlbertPipeline(model, tokenizer, opts.device ?? "auto", opts.threads, opts.log);
  }

  /** The ONNX model (params baked in) of one task. */
  onnxModel(task: "fill-mask" | "feature-extraction"): Uint8Array {
    const m = this.model;
    const outputs: AlbertOutput[] = task === "fill-mask" ? ["mlm_logits"] : ["encoder_output", "pooled_output"];
    const g = inferenceGraph(m.config, {
      semantics: m.semantics,
      eps: m.layerNormEps,
      outputs,
      mlmPositions: task === "fill-mask",
    });
    return toOnnx(g, { initializers: m.params }).model;
  }

  #session(task: "fill-mask" | "feature-extraction"): Promise<Session> {
    let s = this.#sessions.get(task);
    if (!s) {
      s = createSession(this.onnxModel(task), { device: this.device, threads: this.threads, log: this.log });
      this.#sessions.set(task, s);
    }
    return s;
  }

  #encode(inputs: TextInput[], opts: BatchOptions): Encoded[] {
    const max = this.model.config.max_seq_length;
    if (opts.seqLength > max) {
      throw new RangeError(
        `Cannot use --seq_length ${opts.seqLength}: the model has ${max} positions\n  hint: pass --seq_length ${max} or less`,
      );
    }
    return inputs.map((inp, i) => {
      const e = this.tokenizer.encode(inp.a, inp.b);
      let { ids, segmentIds: seg, tokenTypeIds: types } = e;
      if (ids.length > opts.seqLength) {
        opts.warn?.(`warning: text ${i + 1} has ${ids.length} tokens, truncated to --seq_length ${opts.seqLength}`);
        ids = ids.slice(0, opts.seqLength);
        seg = seg.slice(0, opts.seqLength);
        types = types.slice(0, opts.seqLength);
      }
      return { ids, seg, types };
    });
  }

  #feeds(batch: Encoded[]): Record<string, Tensor> {
    const width = Math.max(...batch.map((e) => e.ids.length));
    const pad = (rows: number[][], v: number) => rows.map((r) => [...r, ...new Array(width - r.length).fill(v)]);
    const ids = toTensor(pad(batch.map((e) => e.ids), this.tokenizer.vocab.padId), width, "I64");
    if (this.model.semantics === "uer") {
      return {
        src: ids,
        seg: toTensor(pad(batch.map((e) => e.seg), 0), width, "I64"),
      };
    }
    return {
      input_ids: ids,
      token_type_ids: toTensor(pad(batch.map((e) => e.types), 0), width, "I64"),
      attention_mask: toTensor(pad(batch.map((e) => e.ids.map(() => 1)), 0), width, "I64"),
    };
  }

  /**
   * HF fill-mask: per input, per [MASK], the `topK` predictions (softmax over the vocab) with
   * `sequence` decoded as HF does (specials skipped for a single mask, kept for several).
   */
  async fillMask(inputs: TextInput[], topK: number, opts: BatchOptions): Promise<FillMaskPrediction[][][]> {
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
    const session = await this.#session("fill-mask");
    const V = this.tokenizer.vocab.size;
    const results: FillMaskPrediction[][][] = [];
    for (let start = 0; start < enc.length; start += opts.batchSize) {
      const batch = enc.slice(start, start + opts.batchSize);
      const feeds = this.#feeds(batch);
      const width = feeds[this.model.semantics === "uer" ? "src" : "input_ids"].shape[1];
      const where: [number, number][] = [];
      batch.forEach((e, r) => e.ids.forEach((id, p) => id === maskId && where.push([r, p])));
      feeds.mlm_positions = {
        dtype: "I64",
        shape: [where.length],
        data: BigInt64Array.from(where, ([r, p]) => BigInt(r * width + p)),
      };
      const logits = (await session.run(feeds, ["mlm_logits"])).mlm_logits.data as Float32Array;
      let k = 0;
      for (const e of batch) {
        const masks = e.ids.flatMap((id, p) => (id === maskId ? [p] : []));
        const single = masks.length === 1;
        const perMask: FillMaskPrediction[][] = [];
        for (const p of masks) {
          const row = logits.subarray(k * V, (k + 1) * V);
          k++;
          perMask.push(
            this.#topK(row, topK).map(({ id, score }) => {
              const tokens = [...e.ids];
              tokens[p] = id;
              return {
                score,
                token: id,
                token_str: this.tokenizer.decode([id]),
                sequence: this.tokenizer.decode(tokens, { skipSpecialTokens: single }),
              };
            }),
          );
        }
        results.push(perMask);
      }
    }
    return results;
  }

  #topK(row: Float32Array, k: number): { id: number; score: number }[] {
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const idx: number[] = [];
    // Keep the k best ids (ties: lower id first), without sorting the whole vocab.
    for (let i = 0; i < row.length; i++) {
      if (idx.length < k || row[i] > row[idx[idx.length - 1]]) {
        let j = idx.length < k ? idx.length : idx.length - 1;
        if (idx.length < k) idx.push(i);
        while (j > 0 && row[idx[j - 1]] < row[i]) {
          idx[j] = idx[j - 1];
          j--;
        }
        idx[j] = i;
      }
    }
    return idx.map((id) => ({ id, score: Math.exp(row[id] - max) / sum }));
  }

  /** Last hidden state (unpadded) and pooled output of each input. */
  async features(inputs: TextInput[], opts: BatchOptions): Promise<TextFeatures[]> {
    const enc = this.#encode(inputs, opts);
    const session = await this.#session("feature-extraction");
    const H = this.model.config.hidden_size;
    const out: TextFeatures[] = [];
    for (let start = 0; start < enc.length; start += opts.batchSize) {
      const batch = enc.slice(start, start + opts.batchSize);
      const res = await session.run(this.#feeds(batch), ["encoder_output", "pooled_output"]);
      const h = res.encoder_output.data as Float32Array, pooled = res.pooled_output.data as Float32Array;
      const width = res.encoder_output.shape[1];
      batch.forEach((e, r) => {
        const L = e.ids.length;
        out.push({
          length: L,
          lastHiddenState: h.slice(r * width * H, (r * width + L) * H),
          pooledOutput: pooled.slice(r * H, (r + 1) * H),
        });
      });
    }
    return out;
  }

  /** Frees the sessions. */
  async release(): Promise<void> {
    for (const s of this.#sessions.values()) await (await s).release();
    this.#sessions.clear();
  }
}
