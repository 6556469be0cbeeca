/**
 * The flags of `convert` (UER-py `scripts/convert_albert_from_uer_to_huggingface.py` and the reverse,
 * with format detection). Browser compatible.
 * @module
 */
import { OUTPUT_OPTS } from "./groups.ts";
import type { FlagTable, OptionsOf } from "./row.ts";

/** Flags of `convert`. */
export const CONVERT_FLAGS = {
  from: {
    type: "string",
    choices: ["uer", "hf", "zarr"],
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
  overwrite: { type: "bool", help: "Replace an existing output." },
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** Options of `convert`, derived from `CONVERT_FLAGS`. */
export type ConvertOptions = OptionsOf<typeof CONVERT_FLAGS>;
