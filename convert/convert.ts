/**
 * The `convert` engine: reads a model in one format (UER `.bin`, HF folder, zarr checkpoint) and
 * writes it in another, through the one UER ↔ HF table (names.ts). Mirrors UER-py's
 * `scripts/convert_albert_from_uer_to_huggingface.py` and its reverse, with every tensor accounted
 * for; every output is written to a temporary path and renamed. Not browser compatible: files.
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import { exists, writeFileAtomic } from "../core/io/atomic.ts";
import { writeCheckpoint } from "../core/checkpoint/zarr.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { vocabHash } from "../core/tokenizer/vocab.ts";
import { type HfFormat, writeHfFolder } from "./hf_folder.ts";
import { loadModel, type ModelFormat } from "./mod.ts";
import { uerModuleMetadata } from "./names.ts";
import { writeTorchBin } from "./torch_bin.ts";

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
  const m = await loadModel(req.inputModelPath, { from: req.from, configPath: req.configPath });
  if (req.from && m.format !== req.from) {
    throw new TypeError(
      `Cannot convert "${req.inputModelPath}": --from ${req.from}, but it is a ${m.format} model\n  hint: drop --from to detect the format`,
    );
  }
  let parameters = 0;
  let bytes = 0;
  for (const t of m.params.values()) {
    parameters += t.data.length;
    bytes += t.data.byteLength;
  }
  const out = req.outputModelPath;
  onStage(`writing ${req.to} ${out}`);
  let files: string[];
  if (req.to === "uer") {
    if (!req.overwrite && (await exists(out))) {
      throw new TypeError(`Cannot write "${out}": it already exists\n  hint: pass --overwrite or pick another path`);
    }
    const params = m.params as Map<string, Tensor>;
    await writeFileAtomic(
      out,
      writeTorchBin(params, { archiveName: archiveStem(out), metadata: uerModuleMetadata(m.config) }),
    );
    files = [out];
  } else if (req.to === "hf") {
    const names = await writeHfFolder(out, m.params, m.config, {
      format: req.hfFormat ?? "bin",
      vocabPath: req.vocabPath ?? m.vocabPath,
      overwrite: req.overwrite,
    });
    files = names.map((n) => `${out}/${n}`);
  } else if (req.to === "zarr") {
    let hash = m.vocabHash ?? "";
    const vp = req.vocabPath ?? m.vocabPath;
    if (vp) hash = await vocabHash(await readVocabFile(vp));
    await writeCheckpoint(out, {
      params: m.params,
      config: m.config,
      step: m.step ?? 0,
      vocabHash: hash,
      extra: { converted_from: m.format },
    }, { overwrite: req.overwrite });
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
