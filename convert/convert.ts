/**
 * The `convert` engine: reads a model in one format (UER `.bin`, HF folder, zarr checkpoint) and
 * writes it in another, through the one UER ↔ HF table (names.ts). Mirrors UER-py's
 * `scripts/convert_albert_from_uer_to_huggingface.py` and its reverse, with every tensor accounted
 * for; every output is written to a temporary path and renamed. A UER `.bin` going to a torch `.bin`
 * (UER or HF) or to zarr is streamed: its storages are read (CRC-checked) only as each is written
 * and freed after, so memory stays near one storage, not the file. Not browser compatible: files.
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import type { Pooling } from "../core/model/classifier.ts";
import { exists } from "../core/io/atomic.ts";
import { type HfFormat, writeHfFolder } from "./hf_folder.ts";
import { type LoadedModel, loadModel, type ModelFormat } from "./mod.ts";
import { uerModuleMetadata, uerToHf } from "./names.ts";
import { safetensorsParts } from "./safetensors.ts";
import { torchBinParts } from "./torch_bin.ts";
import { writePartsAtomic } from "./files.ts";
import type { HubProgress } from "./hub.ts";

/** What to convert. */
export interface ConvertRequest {
  from?: ModelFormat;
  to: ModelFormat;
  inputModelPath: string;
  outputModelPath: string;
  configPath?: string;
  vocabPath?: string;
  hfFormat?: HfFormat;
  overwrite?: boolean;
  /** A fine-tuned classifier's pooling (default first); HF can express only first. */
  pooling?: Pooling;
  /** One-line notes about the input (fp16 widened, a model id fetched). */
  log?: (line: string) => void;
  /** Download progress of a model id. */
  progress?: (p: HubProgress) => void;
}

/**
 * Refuses a pooling the output cannot hold: `--pooling` for a model without a classifier, and any
 * pooling but `first` for HF's AlbertForSequenceClassification (its pooler reads the first token).
 */
export function checkPooling(heads: readonly string[], pooling: Pooling | undefined, to: string, input: string): void {
  if (pooling === undefined) return;
  if (!heads.includes("classifier")) {
    throw new TypeError(
      `Cannot convert "${input}" with --pooling ${pooling}: it has no classifier (output_layer_1/2)` +
        `\n  hint: drop --pooling (it belongs to fine-tuned models)`,
    );
  }
  if (to === "hf" && pooling !== "first") {
    throw new TypeError(
      `Cannot convert "${input}" to an HF folder: it was fine-tuned with --pooling ${pooling}, and HF's ` +
        `AlbertForSequenceClassification pools the first token only` +
        `\n  hint: export it with --to onnx (any pooling), or keep the UER .bin for infer --pooling ${pooling}`,
    );
  }
}

/** What a conversion did. */
export interface ConvertSummary {
  from: ModelFormat;
  to: ModelFormat;
  input: string;
  output: string;
  tensors: number;
  parameters: number;
  bytes: number;
  seconds: number;
  files: string[];
}

/** The file stem torch uses as the zip's top folder (`pytorch_model` for `pytorch_model.bin`). */
export function archiveStem(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base || "archive";
}

/**
 * Converts a model; `onStage` hears each stage (for progress output).
 *
 * @example
 * ```ts
 * await convertModel({ to: "hf", inputModelPath: "uer_model.bin", outputModelPath: "hf_out", configPath: "c.json" });
 * ```
 */
export async function convertModel(
  req: ConvertRequest,
  onStage: (msg: string) => void = () => {},
): Promise<ConvertSummary> {
  const t0 = performance.now();
  onStage(`reading ${req.inputModelPath}`);
  // Streaming: a UER .bin copied into one torch .bin is never held whole; each storage is read from
  // the input just before it is written, then freed (memory: one storage, not the file).
  // A zarr checkpoint is written the same way, storage by storage.
  const stream = req.to === "uer" || req.to === "zarr" || (req.to === "hf" && (req.hfFormat ?? "bin") === "bin");
  const m = await loadModel(req.inputModelPath, {
    from: req.from,
    configPath: req.configPath,
    lazy: stream,
    log: req.log,
    progress: req.progress,
  });
  try {
    return await write(req, m, t0, onStage);
  } finally {
    m.lazy?.close();
  }
}

async function write(
  req: ConvertRequest,
  m: LoadedModel,
  t0: number,
  onStage: (msg: string) => void,
): Promise<ConvertSummary> {
  if (req.from && m.format !== req.from) {
    throw new TypeError(
      `Cannot convert "${req.inputModelPath}": --from ${req.from}, but it is a ${m.format} model\n  hint: drop --from to detect the format`,
    );
  }
  checkPooling(m.heads, req.pooling, req.to, req.inputModelPath);
  let parameters = 0;
  let bytes = 0;
  for (const t of m.params.values()) {
    parameters += t.data.length;
    bytes += t.data.byteLength;
  }
  const out = req.outputModelPath;
  onStage(`writing ${req.to} ${out}`);
  let files: string[];
  const refuseExisting = async () => {
    if (!req.overwrite && (await exists(out))) {
      throw new TypeError(`Cannot write "${out}": it already exists\n  hint: pass --overwrite or pick another path`);
    }
  };
  if (req.to === "hf" && /\.(bin|safetensors)$/.test(out)) {
    // UER-py's convert script writes the bare HF state dict (the model card's `--output_model_path
    // pytorch_model.bin`); a path ending in .bin / .safetensors gets that one file, anything else a folder.
    await refuseExisting();
    const hf = uerToHf(m.params, m.config, req.inputModelPath);
    let parts: Uint8Array[];
    if (out.endsWith(".bin")) {
      parts = torchBinParts(hf, { archiveName: archiveStem(out), crcOf: m.lazy?.crcOf }).parts;
    } else {
      m.lazy?.loadAll();
      parts = safetensorsParts(hf, { format: "pt" }).parts;
    }
    await writePartsAtomic(out, parts, { lazy: m.lazy, release: true });
    files = [out];
  } else if (req.to === "uer") {
    await refuseExisting();
    const params = m.params as Map<string, Tensor>;
    await writePartsAtomic(
      out,
      torchBinParts(params, {
        archiveName: archiveStem(out),
        metadata: uerModuleMetadata(m.config, m.heads),
        crcOf: m.lazy?.crcOf,
      }).parts,
      { lazy: m.lazy, release: true },
    );
    files = [out];
  } else if (req.to === "hf") {
    const names = await writeHfFolder(out, m.params, m.config, {
      format: req.hfFormat ?? "bin",
      vocabPath: req.vocabPath ?? m.vocabPath,
      overwrite: req.overwrite,
      lazy: m.lazy,
      trainedSemantics: m.trainedSemantics ?? m.semantics,
    });
    files = names.map((n) => `${out}/${n}`);
  } else if (req.to === "zarr") {
    // loaded here only: the zarr and vocab modules cost start-up time and memory the other paths skip
    const { writeCheckpoint } = await import("../core/checkpoint/zarr.ts");
    let hash = m.vocabHash ?? "";
    const vp = req.vocabPath ?? m.vocabPath;
    if (vp) {
      const { readVocabFile } = await import("../core/io/vocab_file.ts");
      const { vocabHash } = await import("../core/tokenizer/vocab.ts");
      hash = await vocabHash(await readVocabFile(vp));
    }
    const lazy = m.lazy;
    // a storage is freed once every tensor on it is stored
    const users = new Map<ArrayBufferLike, number>();
    for (const t of m.params.values()) users.set(t.data.buffer, (users.get(t.data.buffer) ?? 0) + 1);
    const tensorHooks = lazy && {
      acquire: (t: Tensor) => lazy.load(t.data.buffer),
      done: (t: Tensor) => {
        const left = users.get(t.data.buffer)! - 1;
        users.set(t.data.buffer, left);
        if (left === 0) lazy.release(t.data.buffer);
      },
    };
    await writeCheckpoint(out, {
      params: m.params,
      config: m.config,
      step: m.step ?? 0,
      vocabHash: hash,
      extra: { converted_from: m.format },
    }, { overwrite: req.overwrite, tensorHooks });
    files = [out];
  } else {
    throw new TypeError(`Cannot convert to "${req.to}": unknown format`);
  }
  return {
    from: m.format,
    to: req.to,
    input: req.inputModelPath,
    output: out,
    tensors: m.params.size,
    parameters,
    bytes,
    seconds: (performance.now() - t0) / 1000,
    files,
  };
}
