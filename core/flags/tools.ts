/**
 * The flags of the small subcommands: `tokenize` (stdin lines → ids), `inspect` (a dataset's
 * instances and summary) and `demo` (the model card's chain on the embedded demo corpus).
 * Browser compatible.
 * @module
 */
import { DEVICE_OPTS, TOKENIZER_OPTS } from "./groups.ts";
import type { FlagTable, OptionsOf } from "./row.ts";

/** Flags of `tokenize`. */
export const TOKENIZE_FLAGS = {
  vocab_path: { ...TOKENIZER_OPTS.vocab_path, required: true },
  mode: {
    type: "string",
    default: "uer",
    choices: ["uer", "hf"],
    help: "uer = UER-py's BertTokenizer; hf = HuggingFace's (special tokens in text).",
  },
  do_lower_case: TOKENIZER_OPTS.do_lower_case,
  json: { type: "bool", help: "Print {ids, tokens} objects instead of bare id arrays." },
} as const satisfies FlagTable;

/** Options of `tokenize`. */
export type TokenizeOptions = OptionsOf<typeof TOKENIZE_FLAGS>;

/** Flags of `inspect`. */
export const INSPECT_FLAGS = {
  dataset_path: { type: "string", required: true, help: "Path of a preprocessed dataset." },
  limit: { type: "int", default: 10, min: 0, help: "Instances to print." },
  json: { type: "bool", help: "Print the summary as JSON too." },
} as const satisfies FlagTable;

/** Options of `inspect`. */
export type InspectOptions = OptionsOf<typeof INSPECT_FLAGS>;

/** Flags of `demo`. */
export const DEMO_FLAGS = {
  work_dir: { type: "string", default: ".tmp/demo", help: "Where the demo writes its files." },
  total_steps: {
    type: "int",
    default: 1500,
    min: 1,
    help: "Pretraining steps (1500: about a minute on 2 cores; fewer for a quick look, e.g. README's test).",
  },
  ...DEVICE_OPTS,
  quiet: { type: "bool", help: "Print only the results." },
} as const satisfies FlagTable;

/** Options of `demo`. */
export type DemoOptions = OptionsOf<typeof DEMO_FLAGS>;
