/**
 * The public surface of `convert/`: `loadModel` reads any model the toolkit knows (UER `.bin` zip or
 * legacy, UER safetensors, HF folder, zarr checkpoint) into UER names with its config, and
 * `detectFormat` says which it is. Used by `infer`, `pretrain --pretrained_model_path` and `convert`.
 * Not browser compatible: reads files.
 * @module
 */
import type { AlbertConfig } from "../core/config.ts";
import { validateConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
import { exists } from "../core/io/atomic.ts";
import {
  type FolderTokenizer,
  isHfFolder,
  readFolderTokenizer,
  readHfFolder,
  readStateDictFile,
  widenHalfTensors,
} from "./hf_folder.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { type HubProgress, parseModelId, resolveModelId } from "./hub.ts";
import { type LazyWeights, readStateDictLazy } from "./files.ts";
import {
  type Head,
  headsOf,
  hfConfigToUer,
  hfToUer,
  labelsNumOf,
  nameTable,
  uerParamNames,
  upgradeUerNames,
} from "./names.ts";

export { readTorchBin, readTorchStateDict, writeTorchBin } from "./torch_bin.ts";
export { readSafetensors, writeSafetensors } from "./safetensors.ts";
export { type Head, headsOf, hfConfigToUer, hfToUer, uerConfigToHf, uerToHf } from "./names.ts";
export { type FolderTokenizer, readFolderTokenizer, readHfFolder, writeHfFolder } from "./hf_folder.ts";

/** Model formats (`onnx`: a folder `convert --to onnx` wrote, read back from its initializers). */
export type ModelFormat = "uer" | "hf" | "zarr" | "onnx";

/** A model read into UER names. */
export interface LoadedModel {
  format: ModelFormat;
  /** The local path it was read from (a model id's snapshot folder in the HF cache). */
  path: string;
  /** UER names, UER-py `state_dict()` order. */
  params: Map<string, Tensor>;
  config: AlbertConfig;
  /** The heads the weights hold (the backbone is always complete). */
  heads: Head[];
  /** LayerNorm kind: HF checkpoints use the standard LayerNorm, UER ones UER-py's. */
  semantics: "uer" | "hf";
  /** HF `layer_norm_eps` for "hf"; 1e-6 (added to the std) for "uer". */
  layerNormEps: number;
  /**
   * The LayerNorm the weights were trained with, where known: "uer" for UER files and checkpoints,
   * an HF folder's `trained_layer_norm_semantics` (written by uer-ts), else undefined.
   */
  trainedSemantics?: "uer" | "hf";
  /** An HF folder's vocab.txt. */
  vocabPath?: string;
  step?: number;
  /** The checkpoint's vocab hash (zarr). */
  vocabHash?: string;
  /** Read from `onnx/model_quantized.onnx`: the linear weights are int8 read back (see `LoadOptions.int8`). */
  int8?: boolean;
  /**
   * With `LoadOptions.lazy`, a UER `.bin` (zip)'s storages not read yet: tensor values are zeros
   * until `lazy.load`/`loadAll`; the caller must `lazy.close()`.
   */
  lazy?: LazyWeights;
}

/** Options of `loadModel`. */
export interface LoadOptions {
  from?: ModelFormat;
  /** UER config JSON (needed for UER files; defaults to a sibling uer_config.json / config.json). */
  configPath?: string;
  /**
   * Leave a UER `.bin`'s storages unread (`LoadedModel.lazy`), for a caller that only copies them
   * to another file (convert's streaming path). Other inputs are read as usual.
   */
  lazy?: boolean;
  /** Hears one-line notes for the user (e.g. fp16 weights widened); stderr in the CLI. */
  log?: (line: string) => void;
  /** Download progress of a model id fetched from the hub. */
  progress?: (p: HubProgress) => void;
  /**
   * Accept an ONNX folder that holds only `onnx/model_quantized.onnx` (`convert --to onnx --dtype q8`):
   * its int8 weights are read back as q × scale (`LoadedModel.int8`), for a caller that quantizes them
   * again (`infer --dtype q8`). Without it such a folder is an error saying so.
   */
  int8?: boolean;
}

/**
 * A local path for `path`: itself when it exists, else, for `org/name[@revision]`, the model's
 * folder in the HF cache (downloaded there first unless offline; see hub.ts).
 *
 * @example
 * ```ts
 * await resolveModelPath("uer/albert-base-chinese-cluecorpussmall"); // ~/.cache/huggingface/hub/models--uer--.../snapshots/<commit>
 * ```
 */
export async function resolveModelPath(
  path: string,
  opts: { log?: (line: string) => void; progress?: (p: HubProgress) => void } = {},
): Promise<string> {
  if (await exists(path)) return path;
  const id = parseModelId(path);
  if (!id) return path; // reported as "no such file" by the reader
  return await resolveModelId(id, { log: opts.log, progress: opts.progress });
}

/** The note said once when half-precision weights were widened. */
function widenNote(path: string, widened: Partial<Record<"F16" | "BF16", number>>): string | undefined {
  const parts = Object.entries(widened).filter(([, n]) => n).map(([d, n]) => `${n} ${d === "F16" ? "fp16" : "bf16"}`);
  return parts.length ? `note: "${path}": ${parts.join(" and ")} tensors widened to fp32` : undefined;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

const HF_PREFIXES = ["albert.", "predictions.", "sop_classifier."];

/**
 * Says which format `path` holds: a folder with zarr.json → "zarr", a folder with config.json and
 * weights → "hf", a file whose names are HF's → "hf" (its folder must hold config.json), else "uer".
 *
 * @example
 * ```ts
 * await detectFormat("../shared/reference/albert-tiny/hf"); // "hf"
 * ```
 */
export async function detectFormat(path: string): Promise<ModelFormat> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load model "${path}": no such file` +
          `\n  hint: pass an HF folder, a UER .bin, a zarr checkpoint, an ONNX folder or a model id (user/name)`,
      );
    }
    throw e;
  }
  if (info.isDirectory) {
    if (await exists(`${path}/zarr.json`)) return "zarr";
    if (await isHfFolder(path)) return "hf";
    if ((await exists(`${path}/config.json`)) && (await onnxModelFile(path))) return "onnx";
    throw new TypeError(
      `Cannot load model "${path}": the folder is neither a zarr checkpoint (zarr.json), an HF folder (config.json + ` +
        `weights) nor an ONNX folder (config.json + onnx/model.onnx or onnx/model_quantized.onnx)` +
        `\n  hint: pass the folder that holds these files (a checkpoint's own folder, not its parent)`,
    );
  }
  return "uer"; // files: decided by their tensor names in loadModel
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load ${what} "${path}": no such file\n  hint: check the path`);
    }
    throw e;
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
    return v;
  } catch (e) {
    throw new SyntaxError(`Cannot load ${what} "${path}": ${(e as Error).message.split("\n")[0]}`);
  }
}

/** Finds the UER config of a `.bin`: `configPath`, else a sibling uer_config.json or UER-style config.json. */
async function uerConfigFor(modelPath: string, configPath?: string): Promise<AlbertConfig> {
  if (configPath) return validateConfig(await readJson(configPath, "config"), configPath);
  const dir = dirOf(modelPath);
  for (const name of ["uer_config.json", "config.json"]) {
    const p = `${dir}/${name}`;
    if (await exists(p)) {
      const raw = await readJson(p, "config");
      if ("emb_size" in raw || "layers_num" in raw) return validateConfig(raw, p);
    }
  }
  throw new TypeError(
    `Cannot load UER model "${modelPath}": no config found\n  hint: pass --config_path (e.g. configs/albert/base_config.json)`,
  );
}

/**
 * Loads a model in any supported format into UER names.
 *
 * @example
 * ```ts
 * const m = await loadModel("../shared/reference/albert-tiny/uer_model.bin");
 * m.params.get("embedding.word.embedding.weight")!.shape; // [21128, 32]
 * ```
 */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  path = await resolveModelPath(path, opts);
  return { ...await loadLocal(path, opts), path };
}

async function loadLocal(path: string, opts: LoadOptions): Promise<Omit<LoadedModel, "path">> {
  const detected = await detectFormat(path);
  if (detected === "zarr" || (opts.from === "zarr")) {
    if (detected !== "zarr") {
      throw new TypeError(`Cannot load model "${path}": --from zarr, but it is not a zarr checkpoint folder`);
    }
    const { readCheckpoint } = await import("../core/checkpoint/zarr.ts"); // zarrita: only when needed
    const c = await readCheckpoint(path);
    return {
      format: "zarr",
      params: c.params,
      config: c.config,
      heads: headsOf(c.params.keys()),
      semantics: "uer",
      layerNormEps: 1e-6,
      trainedSemantics: "uer",
      step: c.step,
      vocabHash: c.vocabHash,
    };
  }
  if (detected === "onnx" || opts.from === "onnx") {
    if (detected !== "onnx") {
      throw new TypeError(
        `Cannot load model "${path}": --from onnx, but it is not an ONNX folder (onnx/model.onnx)` +
          `\n  hint: pass the folder convert --to onnx wrote, or drop --from`,
      );
    }
    return await loadOnnxFolder(path, opts);
  }
  if (detected === "hf") {
    if (opts.from === "uer") {
      throw new TypeError(`Cannot load model "${path}": --from uer, but it is an HF folder`);
    }
    const m = await readHfFolder(path);
    const note = widenNote(path, m.widened);
    if (note) opts.log?.(note);
    const trained = m.hfConfig.trained_layer_norm_semantics;
    return {
      ...hfLoaded(m.params, m.config, m.vocabPath),
      trainedSemantics: trained === "uer" || trained === "hf" ? trained : undefined,
    };
  }
  // A single weights file: UER or HF names decide.
  let raw: Map<string, Tensor>;
  let lazy: LazyWeights | undefined;
  if (opts.lazy) ({ tensors: raw, lazy } = await readStateDictLazy(path));
  else raw = await readStateDictFile(path);
  if ([...raw.values()].some((t) => t.dtype === "F16" || t.dtype === "BF16")) {
    if (lazy) {
      lazy.loadAll(); // widening reads the values
      lazy.close();
      lazy = undefined;
    }
    const widened = {};
    raw = widenHalfTensors(raw, widened);
    opts.log?.(widenNote(path, widened)!);
  }
  const names = [...raw.keys()];
  const hfNames = names.filter((n) => HF_PREFIXES.some((p) => n.startsWith(p))).length;
  const isHf = opts.from === "hf" || (opts.from === undefined && hfNames > names.length / 2);
  if (lazy && isHf) {
    // the HF → UER mapping reads values (bias check, segment row): load everything now
    try {
      lazy.loadAll();
    } finally {
      lazy.close();
    }
    lazy = undefined;
  }
  try {
    return await loadStateDict(path, raw, isHf, opts, lazy);
  } catch (e) {
    lazy?.close();
    throw e;
  }
}

async function loadStateDict(
  path: string,
  raw: Map<string, Tensor>,
  isHf: boolean,
  opts: LoadOptions,
  lazy: LazyWeights | undefined,
): Promise<Omit<LoadedModel, "path">> {
  if (isHf) {
    const cfgPath = opts.configPath ?? `${dirOf(path)}/config.json`;
    const hfRaw = await readJson(cfgPath, "HF config");
    const config = hfConfigToUer(hfRaw, cfgPath);
    const params = hfToUer(raw, config, path, { tieWordEmbeddings: hfRaw.tie_word_embeddings !== false });
    config.vocab_size = params.get("embedding.word.embedding.weight")!.shape[0];
    const vocab = `${dirOf(path)}/vocab.txt`;
    return hfLoaded(params, config, (await exists(vocab)) ? vocab : undefined);
  }
  const config = await uerConfigFor(path, opts.configPath);
  const params = checkUer(upgradeUerNames(raw, path), config, path);
  config.vocab_size = params.get("embedding.word.embedding.weight")!.shape[0];
  return {
    format: "uer",
    params,
    config,
    heads: headsOf(params.keys()),
    semantics: "uer",
    layerNormEps: 1e-6,
    trainedSemantics: "uer",
    lazy,
  };
}

function hfLoaded(params: Map<string, Tensor>, config: AlbertConfig, vocabPath?: string): Omit<LoadedModel, "path"> {
  return {
    format: "hf",
    params,
    config,
    heads: headsOf(params.keys()),
    semantics: "hf",
    layerNormEps: config.layer_norm_eps ?? 1e-12,
    vocabPath,
  };
}

/**
 * An ONNX folder (`convert --to onnx` output, transformers.js layout) read back from its initializers:
 * UER names (our exports) or HF names; the LayerNorm from the model's `layer_norm` metadata.
 */
async function loadOnnxFolder(path: string, opts: LoadOptions): Promise<Omit<LoadedModel, "path">> {
  const { readOnnxFolderWeights } = await import("./onnx_read.ts");
  const file = (await onnxModelFile(path))!;
  const int8 = file === "model_quantized.onnx";
  if (int8 && !opts.int8) {
    throw new TypeError(
      `Cannot load model "${path}": it holds only onnx/model_quantized.onnx (int8 weights), no float onnx/model.onnx` +
        `\n  hint: infer runs it with --dtype q8; for anything else export onnx/model.onnx (convert --to onnx --dtype ` +
        `fp32) from the model it came from`,
    );
  }
  const w = await readOnnxFolderWeights(path, file);
  const source = `${path}/onnx/${file}`;
  const cfgPath = `${path}/config.json`;
  const config = hfConfigToUer(await readJson(cfgPath, "HF config"), cfgPath);
  const widened = {};
  let all = widenHalfTensors(w.tensors, widened);
  if (int8) {
    const { dequantizeInt8 } = await import("../core/model/quantize.ts");
    const read = dequantizeInt8(all, source);
    all = read.params;
    opts.log?.(
      `note: "${path}" holds only onnx/model_quantized.onnx: its ${read.count} int8 weights are read back as ` +
        `q × scale and quantized again, the file's own int8 values`,
    );
  }
  const note = widenNote(path, widened);
  if (note) opts.log?.(note);
  const uerNames = new Map([...all].filter(([k]) => /^(embedding|encoder|target|output_layer_[12])\./.test(k)));
  const hfNames = new Map([...all].filter(([k]) => /^(albert|predictions|sop_classifier|classifier)\./.test(k)));
  let params: Map<string, Tensor>;
  if (uerNames.has("embedding.word.embedding.weight")) params = checkUer(uerNames, config, source);
  else if (hfNames.has("albert.embeddings.word_embeddings.weight")) {
    params = hfToUer(hfNames, config, source, { tieWordEmbeddings: false });
  } else {
    throw new TypeError(
      `Cannot load model "${path}": the weights in onnx/${file} are not named as parameters (exported by another ` +
        `tool?)\n  hint: load the HF folder or checkpoint it was exported from`,
    );
  }
  config.vocab_size = params.get("embedding.word.embedding.weight")!.shape[0];
  const semantics = w.metadata.layer_norm === "uer" ? "uer" : "hf";
  const eps = semantics === "uer" ? 1e-6 : Number(w.metadata.layer_norm_eps ?? config.layer_norm_eps ?? 1e-12);
  return {
    format: "onnx",
    params,
    config,
    heads: headsOf(params.keys()),
    semantics,
    layerNormEps: eps,
    trainedSemantics: semantics,
    vocabPath: (await exists(`${path}/vocab.txt`)) ? `${path}/vocab.txt` : undefined,
    ...(int8 ? { int8 } : {}),
  };
}

/** The model file of an ONNX folder (`onnx/model.onnx`, else the q8-only `onnx/model_quantized.onnx`), or null. */
async function onnxModelFile(path: string): Promise<"model.onnx" | "model_quantized.onnx" | null> {
  if (await exists(`${path}/onnx/model.onnx`)) return "model.onnx";
  return (await exists(`${path}/onnx/model_quantized.onnx`)) ? "model_quantized.onnx" : null;
}

/**
 * Checks a UER state dict against the table for `cfg` and the heads its names hold (the backbone
 * complete, each head whole, every name known, shapes right) and returns it in UER-py order.
 */
export function checkUer(params: Map<string, Tensor>, cfg: AlbertConfig, source: string): Map<string, Tensor> {
  const word = params.get("embedding.word.embedding.weight");
  if (!word) {
    throw new TypeError(
      `Cannot load UER model "${source}": "embedding.word.embedding.weight" is missing\n  hint: is this an ALBERT checkpoint?`,
    );
  }
  const heads = headsOf(params.keys());
  const rows = nameTable(cfg, word.shape[0], { heads, labelsNum: labelsNumOf(params) }).filter((r) => r.uer !== "");
  const known = new Set(rows.map((r) => r.uer));
  const extra = [...params.keys()].filter((k) => !known.has(k));
  const missing = rows.filter((r) => !params.has(r.uer)).map((r) => r.uer);
  const list = (xs: string[]) => xs.slice(0, 5).map((x) => `"${x}"`).join(", ") + (xs.length > 5 ? ", …" : "");
  if (missing.length) {
    throw new TypeError(
      `Cannot load UER model "${source}": missing parameter ${list(missing)}\n  hint: check --config_path`,
    );
  }
  if (extra.length) {
    throw new TypeError(
      `Cannot load UER model "${source}": unknown parameter ${list(extra)}\n  hint: check --config_path`,
    );
  }
  const out = new Map<string, Tensor>();
  for (const r of rows) {
    const t = params.get(r.uer)!;
    if (t.shape.length !== r.shape.length || t.shape.some((d, i) => d !== r.shape[i])) {
      throw new RangeError(
        `Cannot load UER model "${source}": "${r.uer}" has shape [${t.shape}], the config needs [${r.shape}]\n  hint: check --config_path`,
      );
    }
  }
  for (const n of uerParamNames(cfg, heads)) out.set(n, params.get(n)!); // UER-py order
  return out;
}

/** What the tasks that run on a model need of its heads. */
export type ModelTask = "fill-mask" | "feature-extraction" | "text-classification" | "sentence-order";

const TASK_HEADS: Record<ModelTask, { heads: Head[]; name: string; hint: string }> = {
  "fill-mask": {
    heads: ["mlm"],
    name: "MLM head",
    hint:
      "use a model saved with its MLM head (AlbertForMaskedLM / AlbertForPreTraining), or --task feature-extraction",
  },
  "feature-extraction": { heads: [], name: "", hint: "" },
  "text-classification": {
    heads: ["classifier"],
    name: "classification head",
    hint: "use a fine-tuned model (AlbertForSequenceClassification / UER-py run_classifier.py output)",
  },
  "sentence-order": {
    heads: ["pooler", "sop"],
    name: "pooler and SOP head",
    hint: "use an AlbertForPreTraining folder or a UER pretrain checkpoint",
  },
};

/**
 * Throws unless `m` holds the heads `task` needs; the error names the task and the missing weights
 * (HF names for HF models, UER names else).
 *
 * @example
 * ```ts
 * requireTask(await loadModel("hf_mlm_folder"), "fill-mask", "hf_mlm_folder"); // passes
 * ```
 */
export function requireTask(m: LoadedModel, task: ModelTask, source: string): void {
  const need = TASK_HEADS[task];
  const lacking = need.heads.filter((h) => !m.heads.includes(h));
  if (lacking.length === 0) return;
  const rows = nameTable(m.config, m.config.vocab_size ?? 1, { heads: need.heads })
    .filter((r) => r.head !== null && lacking.includes(r.head));
  const names = rows.map((r) => (m.format === "hf" ? r.hf[0] : r.uer));
  const shown = names.slice(0, 4).map((n) => `"${n}"`).join(", ") + (names.length > 4 ? `, … (${names.length})` : "");
  throw new TypeError(
    `Cannot run ${task} with "${source}": the model has no ${need.name} (missing ${shown})\n  hint: ${need.hint}`,
  );
}

/**
 * The tokenizer `infer` uses for a model: `--vocab_path` when given, else the model folder's (or the
 * weight file's folder's) `vocab.txt` or `tokenizer.json`.
 *
 * @example
 * ```ts
 * const tok = await modelTokenizer("../shared/reference/albert-tiny/hf");
 * ```
 */
export async function modelTokenizer(modelPath: string, vocabPath?: string): Promise<FolderTokenizer> {
  if (vocabPath) return { vocab: await readVocabFile(vocabPath, "hf"), doLowerCase: true, source: vocabPath };
  let dir = modelPath.replace(/\/+$/, "") || "/";
  try {
    if (!(await Deno.stat(dir)).isDirectory) dir = dirOf(dir);
  } catch {
    dir = dirOf(dir);
  }
  const tok = await readFolderTokenizer(dir);
  if (!tok) {
    throw new Deno.errors.NotFound(
      `Cannot load the tokenizer of "${modelPath}": no vocab.txt or tokenizer.json in "${dir}"\n  hint: pass --vocab_path`,
    );
  }
  return tok;
}

/**
 * One line saying which LayerNorm a loaded model runs with (and what its weights were trained with,
 * when that differs), for `infer` to print.
 *
 * @example
 * ```ts
 * semanticsLine(await loadModel("uer_model.bin", { configPath })); // "model: uer ..., UER-py's LayerNorm ..."
 * ```
 */
export function semanticsLine(m: LoadedModel): string {
  const runs = m.semantics === "uer"
    ? "UER-py's LayerNorm (unbiased std, 1e-6 added to it)"
    : `the standard LayerNorm (HF, eps ${m.layerNormEps})`;
  const trained = m.trainedSemantics && m.trainedSemantics !== m.semantics
    ? `; its weights were trained with ${m.trainedSemantics === "uer" ? "UER-py's" : "the standard"} LayerNorm, so ` +
      `scores differ slightly from the original's (README: "LayerNorm semantics")`
    : "";
  return `model: ${m.format}, runs ${runs}${trained}`;
}
