/**
 * The flags of `convert` (UER-py `scripts/convert_albert_from_uer_to_huggingface.py` and the reverse,
 * with format detection). Browser compatible.
 * @module
 */
import { OUTPUT_OPTS } from "./groups.ts";
import type { FlagTable, OptionsOf } from "./row.ts";
import { UsageError } from "../errors.ts";

/** Flags of `convert`. */
export const CONVERT_FLAGS = {
  from: {
    type: "string",
    choices: ["uer", "hf", "zarr", "onnx"],
    help: "Input format (default: detected from the path).",
  },
  to: {
    type: "string",
    default: "hf",
    choices: ["uer", "hf", "zarr", "onnx"],
    help: "Output format.",
  },
  input_model_path: { type: "string", required: true, help: "Path of the input model." },
  output_model_path: { type: "string", required: true, help: "Path of the output model." },
  config_path: { type: "string", help: "UER config (needed to read a UER .bin)." },
  vocab_path: { type: "string", help: "Vocabulary copied into HF/ONNX folders." },
  hf_format: {
    type: "string",
    default: "bin",
    choices: ["bin", "safetensors", "both"],
    help: "Weights file(s) of an HF folder.",
  },
  pooling: {
    type: "string",
    choices: ["mean", "max", "first", "last"],
    help: "A fine-tuned classifier's pooling (finetune --pooling; default first): --to onnx builds it; " +
      "HF's AlbertForSequenceClassification pools the first token only.",
  },
  overwrite: { type: "bool", help: "Replace an existing output." },
  dtype: {
    type: "string",
    default: "fp32",
    choices: ["fp32", "q8", "fp32,q8", "q8,fp32"],
    help: "--to onnx: fp32 = onnx/model.onnx, q8 = int8 onnx/model_quantized.onnx (transformers.js dtype q8), or both.",
  },
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** Options of `convert`, derived from `CONVERT_FLAGS`. */
export type ConvertOptions = OptionsOf<typeof CONVERT_FLAGS>;

/** `--pooling` shapes only the graphs and HF folders a classifier is written as (not UER or zarr weights). */
export function finishConvert(values: Record<string, unknown>, given: ReadonlySet<string>): void {
  if (given.has("pooling") && (values.to === "uer" || values.to === "zarr")) {
    throw new UsageError(
      `--pooling has no effect with --to ${values.to}: the weights do not record it\n  hint: drop --pooling (pass it to infer and convert --to onnx)`,
    );
  }
}
