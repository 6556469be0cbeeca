/**
 * HF model folders (what `save_pretrained` writes and transformers / transformers.js load):
 * `config.json` (AlbertConfig), `vocab.txt` and/or `tokenizer.json`, `tokenizer_config.json`,
 * `special_tokens_map.json`, and `pytorch_model.bin` and/or `model.safetensors`, or shards of either
 * listed by `model.safetensors.index.json` / `pytorch_model.bin.index.json` (read one shard at a
 * time, only the names the index lists). Any ALBERT class (AlbertModel, AlbertForMaskedLM,
 * AlbertForPreTraining, AlbertForSequenceClassification) reads; fp16/bf16 weights are widened to fp32.
 * Written atomically (temp folder + rename); file bytes match UER-py's converter + transformers'
 * writers. Not browser compatible: file-system edge.
 * @module
 */
import type { AlbertConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
import { Vocab } from "../core/tokenizer/vocab.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { exists, writeDirAtomic } from "../core/io/atomic.ts";
import {
  hfClassifierConfig,
  hfConfigToUer,
  hfToUer,
  labelsNumOf,
  pythonJson,
  uerConfigToHf,
  uerToHf,
} from "./names.ts";
import { type LazyWeights, readFileBytes, readStateDictLazy, writeParts } from "./files.ts";
import { looksLikeSafetensors, readSafetensors, safetensorsParts } from "./safetensors.ts";
import { readTorchBin, torchBinParts } from "./torch_bin.ts";

/** Which weight files an HF folder gets. */
export type HfFormat = "bin" | "safetensors" | "both";

/** An HF folder read into UER names. */
export interface HfModel {
  /** UER names, UER order. */
  params: Map<string, Tensor>;
  config: AlbertConfig;
  /** The raw config.json. */
  hfConfig: Record<string, unknown>;
  vocabPath?: string;
  /** The weight file that was read (the index file of a sharded folder). */
  weightsPath: string;
  /** Tensors widened to float32, by their stored dtype (fp16/bf16 folders). */
  widened: Partial<Record<"F16" | "BF16", number>>;
}

/** `tokenizer_config.json` of the folders uer-ts writes (HF and ONNX): BertTokenizer, UER-py's casing. */
export const TOKENIZER_CONFIG = {
  tokenizer_class: "BertTokenizer",
  do_lower_case: true,
  tokenize_chinese_chars: true,
  strip_accents: null,
  model_max_length: 512, // replaced by the model's max_position_embeddings when written
  clean_up_tokenization_spaces: true,
  unk_token: "[UNK]",
  sep_token: "[SEP]",
  pad_token: "[PAD]",
  cls_token: "[CLS]",
  mask_token: "[MASK]",
};
/** `special_tokens_map.json` of the folders uer-ts writes (HF and ONNX). */
export const SPECIAL_TOKENS_MAP = {
  unk_token: "[UNK]",
  sep_token: "[SEP]",
  pad_token: "[PAD]",
  cls_token: "[CLS]",
  mask_token: "[MASK]",
};

/** Reads a state-dict file by content: torch `.bin` (zip/legacy) or safetensors. */
export async function readStateDictFile(path: string): Promise<Map<string, Tensor>> {
  const bytes = await readFileBytes(path);
  return parseStateDict(bytes, path);
}

/** Parses state-dict bytes by content: safetensors (`looksLikeSafetensors`), else torch zip/legacy. */
export function parseStateDict(bytes: Uint8Array, source: string): Map<string, Tensor> {
  if (looksLikeSafetensors(bytes, bytes.length)) return readSafetensors(bytes, source).tensors;
  return readTorchBin(bytes, source);
}

/** Weight files of an HF folder, in the order they are preferred. */
const WEIGHT_FILES = [
  "model.safetensors",
  "pytorch_model.bin",
  "model.safetensors.index.json",
  "pytorch_model.bin.index.json",
];

/** Whether `dir` looks like an HF model folder (config.json + weights, whole or sharded). */
export async function isHfFolder(dir: string): Promise<boolean> {
  if (!(await exists(`${dir}/config.json`))) return false;
  for (const f of WEIGHT_FILES) if (await exists(`${dir}/${f}`)) return true;
  return false;
}

/** Largest shard index accepted (bytes). */
const MAX_INDEX_BYTES = 64 << 20;

/**
 * Reads the tensors a sharded folder's index lists, one shard file at a time and lazily: of each shard
 * only the header (or the torch zip's directory and pickle) and the bytes of the tensors the index maps
 * to it are read (`readStateDictLazy` with `names`), fp16/bf16 widened before the next shard is read, so
 * memory holds the model's float32 weights and one shard's listed tensors, never whole shard files. A
 * listed name missing from its shard is an error.
 */
async function readShards(
  dir: string,
  indexPath: string,
  widened: HfModel["widened"],
): Promise<Map<string, Tensor>> {
  const fail = (what: string) =>
    new TypeError(`Cannot load HF folder "${dir}": ${indexPath.slice(dir.length + 1)} ${what}`);
  const size = (await Deno.stat(indexPath)).size;
  if (size > MAX_INDEX_BYTES) throw fail(`is ${size} bytes, not an index`);
  let index: { weight_map?: Record<string, unknown> };
  try {
    index = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (e) {
    throw fail(`is not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  const map = index?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) throw fail(`has no "weight_map" object`);
  const byFile = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\") || file.startsWith(".")) {
      throw fail(`maps "${name}" to ${JSON.stringify(file)}, not a file name in the folder`);
    }
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  const out = new Map<string, Tensor>();
  for (const [file, names] of byFile) {
    const shard = widenHalfTensors(
      (await readStateDictLazy(`${dir}/${file}`, { names: new Set(names) })).tensors,
      widened,
    );
    for (const n of names) {
      const t = shard.get(n);
      if (!t) throw fail(`lists "${n}" in ${file}, which does not hold it`);
      out.set(n, t);
    }
  }
  return out;
}

/** fp16 bits → float32. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Widens fp16/bf16 tensors to float32 (exactly: every fp16/bf16 value is a float32), counting them.
 *
 * @example
 * ```ts
 * const widened = {};
 * const f32 = widenHalfTensors(stateDict, widened); // widened.F16 = number of fp16 tensors
 * ```
 */
export function widenHalfTensors(
  params: Map<string, Tensor>,
  widened: Partial<Record<"F16" | "BF16", number>>,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of params) {
    if (t.dtype !== "F16" && t.dtype !== "BF16") {
      out.set(k, t);
      continue;
    }
    const bits = t.data as Uint16Array;
    const data = new Float32Array(bits.length);
    if (t.dtype === "BF16") new Uint32Array(data.buffer).set(Uint32Array.from(bits, (b) => b << 16));
    else for (let i = 0; i < bits.length; i++) data[i] = halfToFloat(bits[i]);
    widened[t.dtype] = (widened[t.dtype] ?? 0) + 1;
    out.set(k, { dtype: "F32", shape: t.shape, data });
  }
  return out;
}

/** The tokenizer an HF (or transformers.js) folder ships, read into a vocab and its casing. */
export interface FolderTokenizer {
  vocab: Vocab;
  doLowerCase: boolean;
  /** The file the vocab came from (vocab.txt or tokenizer.json). */
  source: string;
  maxInputCharsPerWord?: number;
}

/**
 * Reads a folder's tokenizer: `vocab.txt` (with `tokenizer_config.json`'s `do_lower_case`), else
 * `tokenizer.json` (a WordPiece model and a BertNormalizer, as transformers 5 writes without
 * vocab.txt); undefined when the folder has neither. Settings the BERT tokenizer cannot follow
 * (another model type, `handle_chinese_chars` false, accents stripped without lowercasing) are errors.
 *
 * @example
 * ```ts
 * const tok = await readFolderTokenizer("../shared/reference/albert-tiny/hf"); // { vocab, doLowerCase: true, ... }
 * ```
 */
export async function readFolderTokenizer(dir: string): Promise<FolderTokenizer | undefined> {
  let lower: boolean | undefined;
  const cfgPath = `${dir}/tokenizer_config.json`;
  if (await exists(cfgPath)) {
    try {
      const c = JSON.parse(await Deno.readTextFile(cfgPath));
      if (typeof c?.do_lower_case === "boolean") lower = c.do_lower_case;
    } catch (e) {
      throw new SyntaxError(`Cannot load tokenizer config "${cfgPath}": ${(e as Error).message.split("\n")[0]}`);
    }
  }
  if (await exists(`${dir}/vocab.txt`)) {
    return {
      vocab: await readVocabFile(`${dir}/vocab.txt`, "hf"),
      doLowerCase: lower ?? true,
      source: `${dir}/vocab.txt`,
    };
  }
  const path = `${dir}/tokenizer.json`;
  if (!(await exists(path))) return undefined;
  const fail = (what: string, hint = "pass --vocab_path with the model's vocab.txt") =>
    new TypeError(`Cannot load tokenizer "${path}": ${what}\n  hint: ${hint}`);
  if ((await Deno.stat(path)).size > MAX_INDEX_BYTES) throw fail("the file is too large for a tokenizer");
  let tj: Record<string, unknown>;
  try {
    tj = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw fail(`not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  const model = tj?.model as { type?: string; vocab?: unknown; max_input_chars_per_word?: unknown } | undefined;
  if (model?.type !== "WordPiece") throw fail(`model type is ${JSON.stringify(model?.type)}, not "WordPiece"`);
  const v = model.vocab;
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw fail(`model.vocab is not a token -> id object`);
  const entries = Object.entries(v as Record<string, unknown>);
  const tokens = new Array<string>(entries.length);
  for (const [tok, id] of entries) {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= entries.length || tokens[id as number]) {
      throw fail(`ids are not 0..${entries.length - 1}, each once (token ${JSON.stringify(tok)} has ${id})`);
    }
    tokens[id as number] = tok;
  }
  const norm = tj.normalizer as Record<string, unknown> | null | undefined;
  let doLowerCase = lower ?? true;
  if (norm && norm.type === "BertNormalizer") {
    if (norm.handle_chinese_chars === false) {
      throw fail(`handle_chinese_chars false is not supported (CJK is always split)`);
    }
    doLowerCase = norm.lowercase !== false;
    const strip = norm.strip_accents ?? doLowerCase; // HF: null follows lowercase
    if (strip !== doLowerCase) {
      throw fail(`strip_accents ${norm.strip_accents} with lowercase ${norm.lowercase} is not supported`);
    }
  } else if (norm) throw fail(`normalizer ${JSON.stringify(norm.type)} is not a BertNormalizer`);
  const maxChars = typeof model.max_input_chars_per_word === "number" ? model.max_input_chars_per_word : undefined;
  try {
    return { vocab: Vocab.fromTokens(tokens, path, "hf"), doLowerCase, source: path, maxInputCharsPerWord: maxChars };
  } catch (e) {
    throw fail((e as Error).message.split("\n")[0]);
  }
}

/**
 * Reads an HF ALBERT folder into UER names (safetensors preferred when both files exist).
 *
 * @example
 * ```ts
 * const { params, config } = await readHfFolder("../shared/reference/albert-tiny/hf");
 * ```
 */
export async function readHfFolder(dir: string, opts: { prefer?: "bin" | "safetensors" } = {}): Promise<HfModel> {
  const cfgPath = `${dir}/config.json`;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await Deno.readTextFile(cfgPath));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load HF folder "${dir}": config.json is missing`);
    }
    throw new SyntaxError(`Cannot load HF config "${cfgPath}": ${(e as Error).message.split("\n")[0]}`);
  }
  const config = hfConfigToUer(raw, cfgPath);
  const order = opts.prefer === "bin" ? [WEIGHT_FILES[1], WEIGHT_FILES[0], ...WEIGHT_FILES.slice(2)] : WEIGHT_FILES;
  let weightsPath = "";
  for (const f of order) {
    if (await exists(`${dir}/${f}`)) {
      weightsPath = `${dir}/${f}`;
      break;
    }
  }
  if (!weightsPath) {
    throw new Deno.errors.NotFound(
      `Cannot load HF folder "${dir}": none of ${WEIGHT_FILES.join(", ")} is there`,
    );
  }
  const widened: HfModel["widened"] = {};
  const hf = weightsPath.endsWith(".index.json")
    ? await readShards(dir, weightsPath, widened)
    : widenHalfTensors(await readStateDictFile(weightsPath), widened);
  const params = hfToUer(hf, config, weightsPath, { tieWordEmbeddings: raw.tie_word_embeddings !== false });
  config.vocab_size = params.get("embedding.word.embedding.weight")!.shape[0];
  const vocabPath = (await exists(`${dir}/vocab.txt`)) ? `${dir}/vocab.txt` : undefined;
  return { params, config, hfConfig: raw, vocabPath, weightsPath, widened };
}

/** Options of `writeHfFolder`. */
export interface HfWriteOptions {
  format?: HfFormat;
  /** A vocab file to copy in as vocab.txt. */
  vocabPath?: string;
  /** LayerNorm the weights were trained with (recorded in config.json; default "uer"). */
  trainedSemantics?: "uer" | "hf";
  /** Replace an existing folder. */
  overwrite?: boolean;
  /**
   * The params' lazily read storages (`loadModel({ lazy: true })`): with format "bin" each is read
   * just before it is written and freed after (the params are unusable afterwards); other formats
   * load them all first.
   */
  lazy?: LazyWeights;
}

/**
 * Writes UER parameters as an HF folder (atomically).
 *
 * @example
 * ```ts
 * await writeHfFolder("out/hf", params, cfg, { format: "both", vocabPath: "vocab.txt" });
 * ```
 */
export async function writeHfFolder(
  dir: string,
  params: Map<string, Tensor>,
  cfg: AlbertConfig,
  opts: HfWriteOptions = {},
): Promise<string[]> {
  const format = opts.format ?? "bin";
  if (!opts.overwrite && (await exists(dir))) {
    throw new TypeError(
      `Cannot write HF folder "${dir}": it already exists\n  hint: pass --overwrite or pick another path`,
    );
  }
  const hf = uerToHf(params, cfg, dir);
  const vocabSize = hf.get("albert.embeddings.word_embeddings.weight")!.shape[0];
  const vocab = opts.vocabPath ? await Deno.readFile(opts.vocabPath) : undefined;
  const written: string[] = ["config.json"];
  await writeDirAtomic(dir, async (tmp) => {
    // NOTE: transformers runs the standard LayerNorm on any HF folder; the weights of a UER model were
    // trained with UER-py's (unbiased std, eps added to it). Both are recorded (extra keys transformers keeps).
    const labelsNum = labelsNumOf(params);
    const hfConfig = {
      ...uerConfigToHf({ ...cfg }, vocabSize),
      ...(labelsNum === undefined ? {} : hfClassifierConfig(labelsNum)),
      layer_norm_semantics: "hf",
      trained_layer_norm_semantics: opts.trainedSemantics ?? "uer",
    };
    await Deno.writeTextFile(`${tmp}/config.json`, pythonJson(hfConfig) + "\n");
    if (format === "bin" || format === "both") {
      const lazy = opts.lazy;
      if (lazy && format !== "bin") lazy.loadAll();
      const { parts } = torchBinParts(hf, { archiveName: "pytorch_model", crcOf: lazy?.crcOf });
      await writeParts(`${tmp}/pytorch_model.bin`, parts, { lazy, release: format === "bin" });
      written.push("pytorch_model.bin");
    }
    if (format === "safetensors" || format === "both") {
      opts.lazy?.loadAll();
      await writeParts(`${tmp}/model.safetensors`, safetensorsParts(hf, { format: "pt" }).parts);
      written.push("model.safetensors");
    }
    if (vocab) {
      await Deno.writeFile(`${tmp}/vocab.txt`, vocab);
      // The tokenizer's max length is the model's positions (transformers would say 512 for any model).
      const tokConfig = { ...TOKENIZER_CONFIG, model_max_length: cfg.max_seq_length };
      await Deno.writeTextFile(`${tmp}/tokenizer_config.json`, JSON.stringify(tokConfig, null, 1));
      await Deno.writeTextFile(`${tmp}/special_tokens_map.json`, JSON.stringify(SPECIAL_TOKENS_MAP, null, 1));
      written.push("vocab.txt", "tokenizer_config.json", "special_tokens_map.json");
    }
  }, { overwrite: opts.overwrite });
  return written;
}
