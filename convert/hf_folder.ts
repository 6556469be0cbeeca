/**
 * HF model folders (what `save_pretrained` writes and transformers / transformers.js load):
 * `config.json` (AlbertConfig), `vocab.txt`, `tokenizer_config.json`, `special_tokens_map.json`, and
 * `pytorch_model.bin` and/or `model.safetensors`. Written atomically (temp folder + rename); file
 * bytes match UER-py's converter + transformers' writers. Not browser compatible: file-system edge.
 * @module
 */
import type { AlbertConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
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
import { type LazyWeights, readFileBytes, writeParts } from "./files.ts";
import { readSafetensors, safetensorsParts } from "./safetensors.ts";
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
  /** The weight file that was read. */
  weightsPath: string;
}

const TOKENIZER_CONFIG = {
  tokenizer_class: "BertTokenizer",
  do_lower_case: true,
  tokenize_chinese_chars: true,
  strip_accents: null,
  model_max_length: 512,
  clean_up_tokenization_spaces: true,
  unk_token: "[UNK]",
  sep_token: "[SEP]",
  pad_token: "[PAD]",
  cls_token: "[CLS]",
  mask_token: "[MASK]",
};
const SPECIAL_TOKENS_MAP = {
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

/** Parses state-dict bytes by content: torch zip/legacy, else safetensors. */
export function parseStateDict(bytes: Uint8Array, source: string): Map<string, Tensor> {
  const torchLike = (bytes[0] === 0x50 && bytes[1] === 0x4b) || bytes[0] === 0x80;
  if (torchLike) return readTorchBin(bytes, source);
  return readSafetensors(bytes, source).tensors;
}

/** Whether `dir` looks like an HF model folder. */
export async function isHfFolder(dir: string): Promise<boolean> {
  return (await exists(`${dir}/config.json`)) &&
    ((await exists(`${dir}/model.safetensors`)) || (await exists(`${dir}/pytorch_model.bin`)));
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
  const st = `${dir}/model.safetensors`;
  const bin = `${dir}/pytorch_model.bin`;
  const order = opts.prefer === "bin" ? [bin, st] : [st, bin];
  let weightsPath = "";
  for (const p of order) {
    if (await exists(p)) {
      weightsPath = p;
      break;
    }
  }
  if (!weightsPath) {
    throw new Deno.errors.NotFound(
      `Cannot load HF folder "${dir}": neither model.safetensors nor pytorch_model.bin is there`,
    );
  }
  const hf = await readStateDictFile(weightsPath);
  const params = hfToUer(hf, config, weightsPath, { tieWordEmbeddings: raw.tie_word_embeddings !== false });
  config.vocab_size = params.get("embedding.word.embedding.weight")!.shape[0];
  const vocabPath = (await exists(`${dir}/vocab.txt`)) ? `${dir}/vocab.txt` : undefined;
  return { params, config, hfConfig: raw, vocabPath, weightsPath };
}

/** Options of `writeHfFolder`. */
export interface HfWriteOptions {
  format?: HfFormat;
  /** A vocab file to copy in as vocab.txt. */
  vocabPath?: string;
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
    const labelsNum = labelsNumOf(params);
    const hfConfig = {
      ...uerConfigToHf({ ...cfg }, vocabSize),
      ...(labelsNum === undefined ? {} : hfClassifierConfig(labelsNum)),
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
      await Deno.writeTextFile(`${tmp}/tokenizer_config.json`, JSON.stringify(TOKENIZER_CONFIG, null, 1));
      await Deno.writeTextFile(`${tmp}/special_tokens_map.json`, JSON.stringify(SPECIAL_TOKENS_MAP, null, 1));
      written.push("vocab.txt", "tokenizer_config.json", "special_tokens_map.json");
    }
  }, { overwrite: opts.overwrite });
  return written;
}
