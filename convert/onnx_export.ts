/**
 * `convert --to onnx`: a self-contained folder in transformers.js layout — `config.json`,
 * `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, `vocab.txt` and
 * `onnx/model.onnx` (inputs `input_ids`, `attention_mask`, `token_type_ids` as int64, the way
 * transformers.js feeds them; outputs `logits` [B,T,V] (MLM head; transformers.js' fill-mask
 * pipeline), `last_hidden_state` [B,T,H] (its feature-extraction pipeline) and `pooler_output` [B,H]
 * (HF's `BaseModelOutputWithPooling` name) and `sop_logits` [B,2] (AlbertForPreTraining's), each where
 * the weights have the head; for a fine-tuned classifier `logits` [B,C] instead of the MLM's, with
 * `id2label` in config.json, what transformers.js' text-classification pipeline reads, built with the
 * classifier's `--pooling`), parameters baked in as initializers under their UER names (external data
 * `onnx/model.onnx_data` beyond 2 GB), so the folder is also a model `loadModel` reads back. The graph
 * keeps the checkpoint's LayerNorm semantics (a UER checkpoint exports UER-py's LayerNorm, recorded as
 * metadata `layer_norm`), so the export computes what `infer` does.
 * `--dtype q8` writes `onnx/model_quantized.onnx` (what transformers.js loads for `dtype: "q8"`): the
 * same graph with int8 weights per output row for every linear of encoder and heads, as standard ONNX
 * `DynamicQuantizeLinear` + `MatMulInteger` (core/model/quantize.ts), so any ONNX runtime reads it;
 * its initializers are the derived int8 tensors (`<name>#int8`, …) where the fp32 file has the weight.
 * Not browser compatible: reads and writes files.
 * @module
 */
import { toOnnx } from "../core/graph/onnx_proto.ts";
import { writeDirAtomic } from "../core/io/atomic.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { type AlbertOutput, inferenceGraph } from "../core/model/albert.ts";
import type { Dtype } from "../core/model/pipeline.ts";
import { deriveParams } from "../core/model/quantize.ts";
import type { AlbertConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
import type { Vocab } from "../core/tokenizer/vocab.ts";
import type { Pooling } from "../core/model/classifier.ts";
import { loadModel, type ModelFormat } from "./mod.ts";
import { type Head, hfClassifierConfig, labelsNumOf, uerConfigToHf } from "./names.ts";
import { checkPooling } from "./convert.ts";
import { SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG } from "./hf_folder.ts";
import type { HubProgress } from "./hub.ts";

/** Options of `exportOnnx`. */
export interface OnnxExportOptions {
  from?: ModelFormat;
  configPath?: string;
  vocabPath?: string;
  overwrite?: boolean;
  /** A fine-tuned classifier's pooling (default first). */
  pooling?: Pooling;
  log?: (line: string) => void;
  progress?: (p: HubProgress) => void;
  /** Which weight precisions to write (default fp32 only): fp32 → `onnx/model.onnx`, q8 → `onnx/model_quantized.onnx`. */
  dtypes?: Dtype[];
}

/** transformers.js' file name of each dtype (its `DEFAULT_DTYPE_SUFFIX_MAPPING`). */
export const ONNX_FILE: Record<Dtype, string> = { fp32: "model.onnx", q8: "model_quantized.onnx" };

/** What was written. */
export interface OnnxExportSummary {
  output: string;
  bytes: number;
  parameters: number;
  nodes: number;
  semantics: "uer" | "hf";
  /** The model files written (`onnx/model.onnx`, `onnx/model_quantized.onnx`). */
  files: string[];
}

const SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/** HF `tokenizer.json` (BERT WordPiece) for a vocab, as `transformers` writes it for BertTokenizerFast. */
export function bertTokenizerJson(vocab: Vocab, lowercase = true): Record<string, unknown> {
  const id = (t: string) => vocab.id(t)!;
  const map: Record<string, number> = {};
  vocab.tokens.forEach((t, i) => {
    if (!(t in map)) map[t] = i;
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((t) => ({
      id: id(t),
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })).sort((a, b) => a.id - b.id),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [id("[CLS]")], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [id("[SEP]")], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: map,
    },
  };
}

/** What `transformersJsFiles` needs of a model (UER names; `loadModel()` or a pipeline model and its heads). */
export interface ExportModel {
  config: AlbertConfig;
  params: Map<string, Tensor>;
  semantics: "uer" | "hf";
  layerNormEps: number;
  heads: Head[];
}

/**
 * The files of a transformers.js folder for `m` (path inside the folder → bytes or text): configs,
 * tokenizer files, and one ONNX model per dtype (`ONNX_FILE`), with external data when over 2 GB.
 *
 * @example
 * ```ts
 * const { files } = transformersJsFiles(model, vocab, { dtypes: ["fp32", "q8"], source: "models/albert.bin" });
 * ```
 */
export function transformersJsFiles(
  m: ExportModel,
  vocab: Vocab,
  opts: { dtypes?: Dtype[]; source: string; pooling?: Pooling; maxLength?: number },
): { files: Map<string, Uint8Array | string>; bytes: number; nodes: number } {
  const rows = m.params.get("embedding.word.embedding.weight")!.shape[0];
  const labelsNum = m.heads.includes("classifier") ? labelsNumOf(m.params) : undefined;
  const outputs: AlbertOutput[] = [
    ...(labelsNum !== undefined
      ? ["classifier_logits" as const]
      : m.heads.includes("mlm")
      ? ["mlm_logits" as const]
      : []),
    "encoder_output",
    ...(m.heads.includes("pooler") ? ["pooled_output" as const] : []),
    // AlbertForPreTraining's sentence-order logits: keeps every weight in the folder
    ...(m.heads.includes("sop") ? ["sop_logits" as const] : []),
  ];
  const models = (opts.dtypes ?? ["fp32"]).map((dtype) => {
    const g = inferenceGraph(m.config, {
      semantics: m.semantics,
      eps: m.layerNormEps,
      inputs: "hf",
      idsDtype: "I64",
      outputs,
      outputNames: {
        mlm_logits: "logits",
        classifier_logits: "logits",
        encoder_output: "last_hidden_state",
        pooled_output: "pooler_output",
      },
      ...(labelsNum === undefined ? {} : { classifier: { labelsNum, pooling: opts.pooling ?? "first" } }),
      ...(dtype === "q8" ? { quantize: "matmul-integer" as const } : {}),
    });
    const onnx = toOnnx(g, {
      initializers: deriveParams(g, m.params),
      metadata: {
        source: opts.source,
        layer_norm: m.semantics,
        layer_norm_eps: String(m.layerNormEps),
        dtype,
        producer: "uer-ts convert --to onnx",
      },
      autoLocation: `${ONNX_FILE[dtype]}_data`,
    });
    return { dtype, g, onnx };
  });
  const hfConfig = {
    ...uerConfigToHf(m.config, rows),
    architectures: [m.heads.includes("mlm") ? "AlbertForMaskedLM" : "AlbertModel"],
    ...(labelsNum === undefined ? {} : { ...hfClassifierConfig(labelsNum), uer_pooling: opts.pooling ?? "first" }),
    model_type: "albert",
    layer_norm_semantics: m.semantics,
    ...(m.semantics === "uer"
      ? { uer_layer_norm: "gamma*(x-mean)/(std_unbiased+1e-6)+beta (baked into the onnx/ models)" }
      : {}),
  };
  const tokConfig = { ...TOKENIZER_CONFIG, model_max_length: opts.maxLength ?? m.config.max_seq_length };
  const files = new Map<string, Uint8Array | string>([
    ["config.json", JSON.stringify(hfConfig, null, 2) + "\n"],
    ["tokenizer.json", JSON.stringify(bertTokenizerJson(vocab))],
    ["tokenizer_config.json", JSON.stringify(tokConfig, null, 2) + "\n"],
    ["special_tokens_map.json", JSON.stringify(SPECIAL_TOKENS_MAP, null, 2) + "\n"],
    ["vocab.txt", vocab.tokens.map((t) => t + "\n").join("")],
  ]);
  let bytes = 0;
  for (const { dtype, onnx } of models) {
    files.set(`onnx/${ONNX_FILE[dtype]}`, onnx.model);
    bytes += onnx.model.byteLength;
    if (!onnx.external) continue;
    const ext = new Uint8Array(onnx.external.byteLength);
    let off = 0;
    for (const c of onnx.external.chunks) {
      ext.set(c, off);
      off += c.byteLength;
    }
    files.set(`onnx/${onnx.external.location}`, ext);
    bytes += ext.byteLength;
  }
  const g = models[0].g;
  return { files, bytes, nodes: g.ancestors(g.outputs()).length };
}

/**
 * Exports a model (UER .bin, HF folder or zarr checkpoint) as a transformers.js folder.
 *
 * @example
 * ```ts
 * await exportOnnx("models/albert.bin", "models/albert_onnx", { configPath: "configs/albert/base_config.json" });
 * ```
 */
export async function exportOnnx(
  input: string,
  output: string,
  opts: OnnxExportOptions = {},
): Promise<OnnxExportSummary> {
  const m = await loadModel(input, {
    from: opts.from,
    configPath: opts.configPath,
    log: opts.log,
    progress: opts.progress,
  });
  const vocabPath = opts.vocabPath ?? m.vocabPath;
  if (!vocabPath) {
    throw new TypeError(
      `Cannot export "${input}" to ONNX: no vocab (the tokenizer files need one)\n  hint: pass --vocab_path`,
    );
  }
  const vocab = await readVocabFile(vocabPath, "hf");
  const rows = m.params.get("embedding.word.embedding.weight")!.shape[0];
  if (vocab.size !== rows) {
    throw new RangeError(
      `Cannot use vocab "${vocabPath}": it has ${vocab.size} tokens but the model's word embedding has ${rows} rows\n  hint: pass the --vocab_path the model was trained with`,
    );
  }
  checkPooling(m.heads, opts.pooling, "onnx", input);
  const { files, bytes, nodes } = transformersJsFiles(m, vocab, {
    dtypes: opts.dtypes,
    source: input,
    pooling: opts.pooling,
  });
  await writeDirAtomic(output, async (tmp) => {
    await Deno.mkdir(`${tmp}/onnx`, { recursive: true });
    for (const [name, data] of files) {
      if (typeof data === "string") await Deno.writeTextFile(`${tmp}/${name}`, data);
      else await Deno.writeFile(`${tmp}/${name}`, data);
    }
  }, { overwrite: opts.overwrite });
  let parameters = 0;
  for (const t of m.params.values()) parameters += t.data.length;
  const written = [...files.keys()].filter((f) => f.startsWith("onnx/") && f.endsWith(".onnx"));
  return { output, bytes, parameters, nodes, semantics: m.semantics, files: written };
}
