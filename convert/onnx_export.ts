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
 * Not browser compatible: reads and writes files.
 * @module
 */
import { toOnnx } from "../core/graph/onnx_proto.ts";
import { writeDirAtomic } from "../core/io/atomic.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { type AlbertOutput, inferenceGraph } from "../core/model/albert.ts";
import type { Vocab } from "../core/tokenizer/vocab.ts";
import type { Pooling } from "../core/model/classifier.ts";
import { loadModel, type ModelFormat } from "./mod.ts";
import { hfClassifierConfig, labelsNumOf, uerConfigToHf } from "./names.ts";
import { checkPooling } from "./convert.ts";
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
}

/** What was written. */
export interface OnnxExportSummary {
  output: string;
  bytes: number;
  parameters: number;
  nodes: number;
  semantics: "uer" | "hf";
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
  });
  const onnx = toOnnx(g, {
    initializers: m.params,
    metadata: {
      source: input,
      layer_norm: m.semantics,
      layer_norm_eps: String(m.layerNormEps),
      producer: "uer-ts convert --to onnx",
    },
  });
  const hfConfig = {
    ...uerConfigToHf(m.config, rows),
    architectures: [m.heads.includes("mlm") ? "AlbertForMaskedLM" : "AlbertModel"],
    ...(labelsNum === undefined ? {} : { ...hfClassifierConfig(labelsNum), uer_pooling: opts.pooling ?? "first" }),
    model_type: "albert",
    layer_norm_semantics: m.semantics,
    ...(m.semantics === "uer"
      ? { uer_layer_norm: "gamma*(x-mean)/(std_unbiased+1e-6)+beta (baked into onnx/model.onnx)" }
      : {}),
  };
  const tokConfig = {
    tokenizer_class: "BertTokenizer",
    do_lower_case: true,
    tokenize_chinese_chars: true,
    strip_accents: null,
    model_max_length: m.config.max_seq_length,
    clean_up_tokenization_spaces: true,
    unk_token: "[UNK]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    cls_token: "[CLS]",
    mask_token: "[MASK]",
  };
  const specialMap = {
    unk_token: "[UNK]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    cls_token: "[CLS]",
    mask_token: "[MASK]",
  };
  const files = new Map<string, Uint8Array | string>([
    ["config.json", JSON.stringify(hfConfig, null, 2) + "\n"],
    ["tokenizer.json", JSON.stringify(bertTokenizerJson(vocab))],
    ["tokenizer_config.json", JSON.stringify(tokConfig, null, 2) + "\n"],
    ["special_tokens_map.json", JSON.stringify(specialMap, null, 2) + "\n"],
    ["vocab.txt", vocab.tokens.map((t) => t + "\n").join("")],
    ["onnx/model.onnx", onnx.model],
  ]);
  let bytes = onnx.model.byteLength;
  if (onnx.external) {
    const ext = new Uint8Array(onnx.external.byteLength);
    let off = 0;
    for (const c of onnx.external.chunks) {
      ext.set(c, off);
      off += c.byteLength;
    }
    files.set(`onnx/${onnx.external.location}`, ext);
    bytes += ext.byteLength;
  }
  await writeDirAtomic(output, async (tmp) => {
    await Deno.mkdir(`${tmp}/onnx`, { recursive: true });
    for (const [name, data] of files) {
      if (typeof data === "string") await Deno.writeTextFile(`${tmp}/${name}`, data);
      else await Deno.writeFile(`${tmp}/${name}`, data);
    }
  }, { overwrite: opts.overwrite });
  let parameters = 0;
  for (const t of m.params.values()) parameters += t.data.length;
  return { output, bytes, parameters, nodes: g.ancestors(g.outputs()).length, semantics: m.semantics };
}
