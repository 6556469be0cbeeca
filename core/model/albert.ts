/**
 * ALBERT declared once on the graph builder, with UER-py's parameter names (state-dict keys) and
 * module structure: embedding (word + position + segment → LayerNorm; UER `uer/embeddings/`),
 * encoder (factorized `encoder.linear` E→H, then one shared post-LN `TransformerLayer` applied
 * `layers_num` times, or `encoder.transformer.<i>.*` without sharing; `uer/encoders/transformer_encoder.py`,
 * `uer/layers/transformer.py`, `uer/layers/multi_headed_attn.py`), MLM head and SOP head
 * (`uer/targets/mlm_target.py`, `sp_target.py`). The same declaration serves the inference graph
 * (`inferenceGraph`), the ONNX export and the training graph (core/autodiff adds losses + grads).
 * Browser compatible: no Deno APIs.
 *
 * Shapes: B batch, T sequence, E emb_size, H hidden_size, F feedforward_size, V vocab, n heads, d = H/n.
 * @module
 */
import type { AlbertConfig } from "../config.ts";
import { A, Graph, makeTensor, type Value } from "../graph/builder.ts";
import type { Dim } from "../graph/shapes.ts";
import { classifierHead, type Pooling, segmentWeights } from "./classifier.ts";
import {
  attend,
  layerNorm,
  linear,
  linearAct,
  type ModelOptions,
  MS_DOMAIN,
  type NormOptions,
  type Quantize,
  residualLayerNorm,
  type Semantics,
  softmax,
  weightMatmul,
} from "./layers.ts";
import { derivedName } from "./quantize.ts";

export type { ModelOptions, NormOptions, Quantize, Semantics };

/** How the batch enters the graph: UER (`src`, `seg` 1/2/0) or HF (`input_ids`, `token_type_ids`, `attention_mask`). */
export type InputStyle = "uer" | "hf";

/** Options shared by every graph built from the declaration. */
export interface AlbertOptions extends ModelOptions {
  /** Input names/meaning (default: same as `semantics`). */
  inputs?: InputStyle;
  /** dtype of id inputs (Gather indices; I64 as transformers.js feeds, or I32). Default I64. */
  idsDtype?: "I64" | "I32";
  /** Batch dim (number for static training graphs; default symbol "batch"). */
  batch?: Dim;
  /** Sequence dim (number for static training graphs; default symbol "seq"). */
  seq?: Dim;
  /**
   * Training graphs whose loss reads the last layer at a few positions only (the MLM slots and
   * [CLS], a classifier's pooled position): the last layer application computes its queries,
   * attention output and feed-forward at `perRow` positions of each row (`encoder`'s
   * `LastLayerQueries`), so `encoderOutput` is [B,perRow,H]. Needs a static `batch`.
   */
  lastLayerQueries?: LastLayerQueries;
}

/**
 * Where the last layer application is evaluated (`AlbertOptions.lastLayerQueries`): `index` I32/I64
 * [B·S] holds flat positions b·T + t, S = `perRow` per row, row-major (row b's positions at
 * b·S … b·S+S−1).
 */
export interface LastLayerQueries {
  index: Value;
  perRow: number;
}

/** The graph inputs of a batch. */
export interface AlbertInputs {
  /** Token ids [B,T] (`src` or `input_ids`). */
  ids: Value;
  /** UER segment ids [B,T] (1 = A, 2 = B, 0 = padding); UER inputs only. */
  seg?: Value;
  /** HF token type ids [B,T] (0/1); HF inputs only. */
  tokenTypeIds?: Value;
  /** HF attention mask [B,T] (1 = token, 0 = padding); HF inputs only. */
  attentionMask?: Value;
}

/** Every intermediate the declaration produces. */
export interface AlbertValues {
  inputs: AlbertInputs;
  /** [B,T,E] embedding after LayerNorm. */
  embeddingOutput: Value;
  /** [B,T,H] after `encoder.linear` (= embeddingOutput without factorization). */
  projectedEmbedding: Value;
  /** [B,T,H] after each layer application. */
  layerOutputs: Value[];
  /** [B,T,H] last hidden state ([B,S,H] with `lastLayerQueries`). */
  encoderOutput: Value;
  /** [B,1,1,T] additive attention bias (0 or -10000). */
  attentionBias: Value;
}

function vocabSize(cfg: AlbertConfig): number {
  if (!cfg.vocab_size) {
    throw new RangeError("Cannot build ALBERT: config has no vocab_size\n  hint: set it from the vocab or the weights");
  }
  return cfg.vocab_size;
}

/** Declares the batch inputs. */
export function albertInputs(g: Graph, opts: AlbertOptions): AlbertInputs {
  const B = opts.batch ?? "batch", T = opts.seq ?? "seq";
  const dt = opts.idsDtype ?? "I64";
  if ((opts.inputs ?? opts.semantics) === "uer") {
    return { ids: g.input("src", dt, [B, T]), seg: g.input("seg", dt, [B, T]) };
  }
  return {
    ids: g.input("input_ids", dt, [B, T]),
    attentionMask: g.input("attention_mask", dt, [B, T]),
    tokenTypeIds: g.input("token_type_ids", dt, [B, T]),
  };
}

/** word + position + segment embeddings, then LayerNorm (`embedding.*`) → [B,T,E]. */
export function embedding(g: Graph, cfg: AlbertConfig, inp: AlbertInputs, norm: ModelOptions): Value {
  const E = cfg.emb_size;
  const word = g.gather(g.param("embedding.word.embedding.weight", [vocabSize(cfg), E]), inp.ids); // [B,T,E]
  const posTable = g.param("embedding.pos.embedding.weight", [cfg.max_seq_length, E]);
  const T = inp.ids.shape[1];
  const pos = typeof T === "number"
    ? g.slice(posTable, [0], [T], [0]) // [T,E]
    : g.op(
      "Slice",
      [posTable, g.ints([0]), g.op("Shape", [inp.ids], { start: A.int(1), end: A.int(2) }), g.ints([0])],
      {},
      {
        shapes: [{ dtype: "F32", shape: [T, E] }],
      },
    );
  const segTable = g.param("embedding.seg.embedding.weight", [3, E]); // row 0 = padding, 1 = A, 2 = B
  // NOTE: HF's token_type table is UER rows 1..2 (the converter drops row 0), so HF inputs index a slice.
  const seg = inp.seg ? g.gather(segTable, inp.seg) : g.gather(g.slice(segTable, [1], [3], [0]), inp.tokenTypeIds!);
  const sum = g.add(g.add(word, pos), seg);
  const out = layerNorm(g, "embedding.layer_norm", sum, E, norm);
  return norm.dropout ? norm.dropout(out) : out; // UER: self.dropout(self.layer_norm(emb))
}

/** Additive attention bias [B,1,1,T]: 0 for real keys, -10000 for padding (UER `seg > 0`, HF `attention_mask`). */
export function attentionBias(g: Graph, inp: AlbertInputs): Value {
  // A table lookup by the integer ids: WebGPU has no Cast from int64 (it would run on the CPU), but
  // Gather takes int64 indices. seg 0 (padding) / 1 / 2 → -10000 / 0 / 0; attention_mask 0 / 1 → -10000 / 0.
  const table = inp.seg ? [-10000, 0, 0] : [-10000, 0];
  const bias = g.gather(g.constant(makeTensor("F32", [table.length], table)), inp.seg ?? inp.attentionMask!); // [B,T]
  return g.unsqueeze(bias, [1, 2]); // [B,1,1,T]
}

/**
 * The attention bias the contrib kernels take, [B,1,T,T] (their `attention_bias` needs the query
 * dim): [B,1,1,T] broadcast over the queries by adding zeros [B,1,T,1] (no Shape op, so the graph
 * stays on the GPU).
 */
function queryBroadcastBias(g: Graph, bias: Value): Value {
  return g.add(bias, g.transpose(g.mul(bias, 0), [0, 1, 3, 2])); // [B,1,1,T] + [B,1,T,1]
}

/**
 * Self-attention with onnxruntime's kernels (`contribOps`): the context [B,S,H] before the output
 * projection. fp32 with S = T: com.microsoft `Attention` (one GEMM with the packed q/k/v weight
 * `<prefix>.self_attn#qkv_weight`); otherwise (int8 weights, or queries at some rows only)
 * `MultiHeadAttention` on separately projected q [B,S,H], k and v [B,T,H], the biases added inside.
 * `bias` [B,1,S,T] is added to the scores (0 or -10000, as in the composite form).
 */
function contribAttention(
  g: Graph,
  cfg: AlbertConfig,
  prefix: string,
  xq: Value,
  k: Value,
  v: Value,
  bias: Value,
  packed?: Value,
): Value {
  const H = cfg.hidden_size;
  const attrs = { num_heads: A.int(cfg.heads_num) };
  const shapes = [{ dtype: xq.dtype, shape: [...xq.shape] }];
  const qkvBias = g.param(derivedName(`${prefix}.self_attn`, "qkv_bias"), [3 * H]);
  if (packed) {
    const w = g.param(derivedName(`${prefix}.self_attn`, "qkv_weight"), [H, 3 * H]);
    return g.op("Attention", [packed, w, qkvBias, null, null, bias], attrs, { shapes, domain: MS_DOMAIN });
  }
  return g.op("MultiHeadAttention", [xq, k, v, qkvBias, null, bias], attrs, { shapes, domain: MS_DOMAIN });
}

/**
 * One post-LN transformer layer (`<prefix>.self_attn/feed_forward/layer_norm_1/2`): [B,T,H] → [B,T,H].
 * `bias` [B,1,1,T] (or [B,1,T,T] with `contribOps`, see `encoder`). With `xq` [B,S,H] (S rows of
 * each sequence, gathered from x), the queries, the attention output and the feed-forward run at those
 * rows only, keys and values at every position: → [B,S,H], equal to the full layer's output at those
 * rows (the same per-row arithmetic).
 */
export function transformerLayer(
  g: Graph,
  cfg: AlbertConfig,
  prefix: string,
  x: Value,
  bias: Value,
  norm: ModelOptions,
  xq: Value = x,
): Value {
  const H = cfg.hidden_size, n = cfg.heads_num, d = H / n;
  if (norm.contribOps && xq !== x) {
    throw new RangeError(
      "Cannot build a transformer layer at some rows with contribOps\n  hint: use transformerLayerAtRows",
    );
  }
  if (norm.contribOps) {
    const proj = (i: number) => weightMatmul(g, `${prefix}.self_attn.linear_layers.${i}`, x, H, H, norm);
    const ctx = norm.quantize
      ? contribAttention(g, cfg, prefix, proj(0), proj(1), proj(2), bias)
      : contribAttention(g, cfg, prefix, x, x, x, bias, x);
    return layerTail(g, cfg, prefix, ctx, x, norm);
  }
  const heads = (v: Value) => g.transpose(g.reshape(v, [0, 0, n, d]), [0, 2, 1, 3]); // [B,T,H] -> [B,n,T,d]
  const q = heads(linear(g, `${prefix}.self_attn.linear_layers.0`, xq, H, H, norm)); // [B,n,S,d]
  const k = heads(linear(g, `${prefix}.self_attn.linear_layers.1`, x, H, H, norm));
  const v = heads(linear(g, `${prefix}.self_attn.linear_layers.2`, x, H, H, norm));
  const scores = g.div(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), Math.sqrt(d)); // [B,n,S,T]
  // UER MultiHeadedAttention: self.dropout(probs) between the softmax and the product.
  const o = attend(g, g.add(scores, bias), v, norm.fusedOps ?? false, norm.dropout); // [B,n,S,d]
  const ctx = g.reshape(g.transpose(o, [0, 2, 1, 3]), [0, 0, H]); // [B,n,S,d] -> [B,S,H]
  return layerTail(g, cfg, prefix, ctx, xq, norm);
}

/** Attention output projection, residual + LayerNorm, feed-forward, residual + LayerNorm: [...,H] → [...,H]. */
function layerTail(g: Graph, cfg: AlbertConfig, prefix: string, ctx: Value, x: Value, norm: ModelOptions): Value {
  const H = cfg.hidden_size, F = cfg.feedforward_size;
  const out = `${prefix}.self_attn.final_linear`, ff2 = `${prefix}.feed_forward.linear_2`;
  // UER TransformerLayer dropout_1 / dropout_2 (training graphs) sit inside residualLayerNorm.
  const attn = weightMatmul(g, out, ctx, H, H, norm);
  const inter = residualLayerNorm(g, `${prefix}.layer_norm_1`, attn, g.param(`${out}.bias`, [H]), x, H, norm);
  const ff1 = linearAct(g, `${prefix}.feed_forward.linear_1`, cfg.hidden_act, inter, H, F, norm);
  const ff = weightMatmul(g, ff2, ff1, F, H, norm);
  return residualLayerNorm(g, `${prefix}.layer_norm_2`, ff, g.param(`${ff2}.bias`, [H]), inter, H, norm);
}

/**
 * `transformerLayer` evaluated at K rows only: queries, attention output and feed-forward for the
 * flat positions `pos` [K] (into B*T) of batch rows `rows` [K], keys/values for every position of
 * those rows. x [B,T,H] → [K,H], equal to `transformerLayer(...)` reshaped to [B*T,H] at `pos`.
 * `bias` is the [B,1,1,T] form.
 */
export function transformerLayerAtRows(
  g: Graph,
  cfg: AlbertConfig,
  prefix: string,
  x: Value,
  bias: Value,
  norm: NormOptions,
  pos: Value,
  rows: Value,
): Value {
  const H = cfg.hidden_size, n = cfg.heads_num, d = H / n;
  const xq = g.gather(g.reshape(x, [-1, H]), pos); // [B*T,H] -> [K,H]
  if (norm.contribOps) {
    const proj = (i: number, v: Value) => weightMatmul(g, `${prefix}.self_attn.linear_layers.${i}`, v, H, H, norm);
    const q = g.unsqueeze(proj(0, xq), [1]); // [K,1,H]
    const k = g.gather(proj(1, x), rows), v = g.gather(proj(2, x), rows); // [B,T,H] -> [K,T,H]
    const ctx = contribAttention(g, cfg, prefix, q, k, v, g.gather(bias, rows)); // bias [K,1,1,T]
    return layerTail(g, cfg, prefix, g.reshape(ctx, [-1, H]), xq, norm); // [K,1,H] -> [K,H]
  }
  const heads = (v: Value) => g.transpose(g.reshape(v, [0, 0, n, d]), [0, 2, 1, 3]); // [B,T,H] -> [B,n,T,d]
  const q = g.reshape(linear(g, `${prefix}.self_attn.linear_layers.0`, xq, H, H, norm), [-1, n, 1, d]); // [K,n,1,d]
  const k = g.gather(heads(linear(g, `${prefix}.self_attn.linear_layers.1`, x, H, H, norm)), rows); // [K,n,T,d]
  const v = g.gather(heads(linear(g, `${prefix}.self_attn.linear_layers.2`, x, H, H, norm)), rows); // [K,n,T,d]
  const scores = g.div(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), Math.sqrt(d)); // [K,n,1,T]
  const logits = g.add(scores, g.gather(bias, rows)); // bias [B,1,1,T] -> [K,1,1,T]
  const ctx = g.reshape(attend(g, logits, v, norm.fusedOps ?? false), [-1, H]); // [K,n,1,d] -> [K,H]
  return layerTail(g, cfg, prefix, ctx, xq, norm);
}

/**
 * The encoder: factorized projection (`encoder.linear`) then `layers_num` layer applications; with
 * `last`, the last application at `last.perRow` positions per row only (its output [B,S,H]).
 */
export function encoder(
  g: Graph,
  cfg: AlbertConfig,
  emb: Value,
  bias: Value,
  norm: ModelOptions,
  last?: LastLayerQueries,
): { projectedEmbedding: Value; layerOutputs: Value[] } {
  const projected = cfg.factorized_embedding_parameterization
    ? linear(g, "encoder.linear", emb, cfg.emb_size, cfg.hidden_size, norm)
    : emb;
  const layerOutputs: Value[] = [];
  let h = projected;
  const layerBias = norm.contribOps ? queryBroadcastBias(g, bias) : bias; // [B,1,T,T] once for every layer
  for (let i = 0; i < cfg.layers_num; i++) {
    // Same prefix every layer = parameter sharing (Graph.param returns the same values).
    const prefix = cfg.parameter_sharing ? "encoder.transformer" : `encoder.transformer.${i}`;
    // A checkpoint: training with --recompute_activations keeps only h and recomputes the rest in the backward.
    const x = h;
    // The last application at the loss's rows only: [B*T,H] gathered at the flat positions -> [B,S,H].
    const xq = last && i === cfg.layers_num - 1
      ? g.reshape(g.gather(g.reshape(x, [-1, cfg.hidden_size]), last.index), [-1, last.perRow, cfg.hidden_size])
      : x;
    h = g.checkpoint(() => transformerLayer(g, cfg, prefix, x, layerBias, norm, xq));
    layerOutputs.push(h);
  }
  return { projectedEmbedding: projected, layerOutputs };
}

/** MLM head (`target.mlm.*`): h [...,H] → transform [...,E'] and logits [...,V]. */
export function mlmHead(g: Graph, cfg: AlbertConfig, h: Value, norm: NormOptions): { transform: Value; logits: Value } {
  const E = cfg.factorized_embedding_parameterization ? cfg.emb_size : cfg.hidden_size;
  const t = linearAct(g, "target.mlm.linear_1", cfg.hidden_act, h, cfg.hidden_size, E, norm);
  const transform = layerNorm(g, "target.mlm.layer_norm", t, E, norm);
  return { transform, logits: linear(g, "target.mlm.linear_2", transform, E, vocabSize(cfg), norm) };
}

/** SOP head (`target.sp.*`): pooled = tanh(linear_1(h[:,0])) [B,H], logits [B,2]. */
export function sopHead(
  g: Graph,
  cfg: AlbertConfig,
  h: Value,
  norm?: NormOptions,
): { pooled: Value; logits: Value } {
  const H = cfg.hidden_size;
  const first = g.gather(h, g.scalar(0, "I64"), 1); // [B,T,H] -> [B,H]
  const pooled = g.tanh(linear(g, "target.sp.linear_1", first, H, H, norm));
  return { pooled, logits: linear(g, "target.sp.linear_2", pooled, H, 2, norm) };
}

/** The whole backbone on `g`: inputs, embedding, encoder. Heads are added by the caller. */
export function albert(g: Graph, cfg: AlbertConfig, opts: AlbertOptions): AlbertValues {
  const inputs = albertInputs(g, opts);
  const embeddingOutput = embedding(g, cfg, inputs, opts);
  const bias = attentionBias(g, inputs);
  const { projectedEmbedding, layerOutputs } = encoder(g, cfg, embeddingOutput, bias, opts, opts.lastLayerQueries);
  return {
    inputs,
    embeddingOutput,
    projectedEmbedding,
    layerOutputs,
    encoderOutput: layerOutputs.at(-1)!,
    attentionBias: bias,
  };
}

/** Outputs an inference graph can expose (names as in the reference files). */
export type AlbertOutput =
  | "embedding_output"
  | "projected_embedding"
  | "layer_outputs"
  | "encoder_output"
  | "mlm_transform"
  | "mlm_logits"
  | "pooled_output"
  | "sop_logits"
  | "classifier_logits"
  | "classifier_probs";

/** Options of `inferenceGraph`. */
export interface InferenceGraphOptions extends AlbertOptions {
  /** Which outputs (default `["mlm_logits"]`). */
  outputs?: AlbertOutput[];
  /** Rename outputs (e.g. `{ mlm_logits: "logits" }` for transformers.js). */
  outputNames?: Partial<Record<AlbertOutput, string>>;
  /**
   * Add an input `mlm_positions` (I64 [K], flat indices into B*T) and compute the MLM head only at
   * those rows: `mlm_transform` [K,E], `mlm_logits` [K,V] (fill-mask needs only the [MASK] rows).
   */
  mlmPositions?: boolean;
  /**
   * With `mlmPositions` and only MLM outputs: run the last layer at those rows too (queries, attention
   * output, feed-forward; keys/values everywhere). Adds an input `mlm_rows` (I64 [K], the batch row
   * of each position, so no int64 division in the graph). For fill-mask; inference only.
   */
  lastLayerAtPositions?: boolean;
  /**
   * The fine-tuned classifier of UER-py's run_classifier.py (core/model/classifier.ts) for the
   * `classifier_logits` / `classifier_probs` outputs: its label count and pooling.
   */
  classifier?: { labelsNum: number; pooling: Pooling };
}

/**
 * The inference graph: params as graph inputs (UER names), outputs as asked.
 *
 * @example
 * ```ts
 * const g = inferenceGraph(cfg, { semantics: "uer", outputs: ["mlm_logits", "sop_logits"] });
 * const { model } = toOnnx(g);
 * ```
 */
export function inferenceGraph(cfg: AlbertConfig, opts: InferenceGraphOptions): Graph {
  const g = new Graph();
  const a = albert(g, cfg, opts);
  const want = new Set<AlbertOutput>(opts.outputs ?? ["mlm_logits"]);
  const name = (o: AlbertOutput) => opts.outputNames?.[o] ?? o;
  const out = (o: AlbertOutput, v: () => Value) => {
    if (want.has(o)) g.output(v(), name(o));
  };
  out("embedding_output", () => a.embeddingOutput);
  if (want.has("projected_embedding") && !cfg.factorized_embedding_parameterization) {
    throw new RangeError("Cannot output projected_embedding: the config has no factorized embedding");
  }
  out("projected_embedding", () => a.projectedEmbedding);
  out("layer_outputs", () => g.concat(a.layerOutputs.map((h) => g.unsqueeze(h, [0])), 0)); // [layers,B,T,H]
  if (want.has("encoder_output")) {
    const h = a.encoderOutput;
    // The last layer output may also be in layer_outputs (a different value, so no clash).
    g.output(h, name("encoder_output"));
  }
  if (opts.lastLayerAtPositions && (!opts.mlmPositions || [...want].some((o) => !o.startsWith("mlm_")))) {
    throw new RangeError("Cannot build lastLayerAtPositions: it needs mlmPositions and only mlm_* outputs");
  }
  if (want.has("mlm_transform") || want.has("mlm_logits")) {
    let h = a.encoderOutput;
    if (opts.mlmPositions) {
      const pos = g.input("mlm_positions", "I64", ["masked"]);
      if (opts.lastLayerAtPositions) {
        const rows = g.input("mlm_rows", "I64", ["masked"]);
        const L = cfg.layers_num;
        const prev = L > 1 ? a.layerOutputs[L - 2] : a.projectedEmbedding;
        const prefix = cfg.parameter_sharing ? "encoder.transformer" : `encoder.transformer.${L - 1}`;
        h = transformerLayerAtRows(g, cfg, prefix, prev, a.attentionBias, opts, pos, rows); // [K,H]
      } else {
        h = g.gather(g.reshape(h, [-1, cfg.hidden_size]), pos); // [B*T,H] -> [K,H]
      }
    }
    const mlm = mlmHead(g, cfg, h, opts);
    out("mlm_transform", () => mlm.transform);
    out("mlm_logits", () => mlm.logits);
  }
  if (want.has("classifier_logits") || want.has("classifier_probs")) {
    if (!opts.classifier) {
      throw new RangeError("Cannot output classifier_logits: no classifier options (labels, pooling)");
    }
    const { labelsNum, pooling } = opts.classifier;
    const { logits } = classifierHead(g, cfg, a.encoderOutput, segmentWeights(g, a.inputs), labelsNum, pooling, opts);
    out("classifier_logits", () => logits);
    out("classifier_probs", () => softmax(g, logits, true));
  }
  if (want.has("pooled_output") || want.has("sop_logits")) {
    const sop = sopHead(g, cfg, a.encoderOutput, opts);
    out("pooled_output", () => sop.pooled);
    out("sop_logits", () => sop.logits);
  }
  return g;
}
