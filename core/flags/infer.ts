/**
 * The flags of `infer`: HF pipelines `fill-mask` and `feature-extraction` on a model folder or file,
 * with UER-py's `infer_opts` names where they exist (`--test_path`, `--batch_size`, `--seq_length`,
 * `--vocab_path`, `--config_path`; UER-py `scripts/cloze_test.py`, `scripts/extract_features.py`).
 * Browser compatible.
 * @module
 */
import { DEVICE_OPTS, OUTPUT_OPTS } from "./groups.ts";
import type { FlagTable, OptionsOf } from "./row.ts";

/** Flags of `infer`. */
export const INFER_FLAGS = {
  model_path: {
    type: "string",
    required: true,
    help: "HF folder, UER .bin (with --config_path) or zarr checkpoint.",
  },
  vocab_path: {
    type: "string",
    help: "Vocabulary file (default: the model folder's vocab.txt).",
    uer: "uer/opts.py:142",
  },
  config_path: {
    type: "string",
    help: "UER config of a .bin model (HF folders and zarr checkpoints carry their own).",
    uer: "uer/opts.py:121",
  },
  text: { type: "string", repeat: true, help: "Input text (repeatable); text_a<TAB>text_b for pairs." },
  test_path: {
    type: "string",
    help: "File with one text per line, or text_a<TAB>text_b; one output row per line.",
    uer: "uer/opts.py:117",
  },
  task: {
    type: "string",
    choices: ["fill-mask", "feature-extraction"],
    help: "Pipeline (default: fill-mask when the text holds [MASK], else feature-extraction).",
  },
  top_k: { type: "int", min: 1, help: "fill-mask: predictions per mask (default 5, as HF pipelines' top_k)." },
  batch_size: { type: "int", default: 64, min: 1, help: "Batch size.", uer: "uer/opts.py:128" },
  seq_length: {
    type: "int",
    default: 128,
    min: 3,
    help: "Longer rows are truncated (with a warning).",
    uer: "uer/opts.py:130",
  },
  output_path: {
    type: "string",
    help: "Write the results to this file: fill-mask .jsonl; feature-extraction .safetensors or .npy.",
  },
  overwrite: { type: "bool", help: "Replace an existing --output_path." },
  ...DEVICE_OPTS,
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** Options of `infer`, derived from `INFER_FLAGS`. */
export type InferOptions = OptionsOf<typeof INFER_FLAGS>;
