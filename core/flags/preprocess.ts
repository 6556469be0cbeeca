/**
 * The flags of `preprocess`, UER-py's `preprocess.py` (`--data_processor albert`) row for row, plus
 * the model card's older `--target albert` and uer-ts's own `--overwrite`, `--shard`,
 * `--encoding_errors`, `--quiet` and `--json`. Browser compatible.
 * @module
 */
import { OUTPUT_OPTS, TGT_TOKENIZER_OPTS, TOKENIZER_OPTS } from "./groups.ts";
import type { FlagTable, OptionsOf } from "./row.ts";
import { UsageError } from "../errors.ts";

/** UER-py's data processors (`--data_processor`); only albert is built. */
export const DATA_PROCESSORS = [
  "bert",
  "lm",
  "mlm",
  "bilm",
  "albert",
  "mt",
  "t5",
  "cls",
  "prefixlm",
  "gsg",
  "bart",
  "cls_mlm",
] as const;

/** The `--data_processor` row of preprocess.py and pretrain.py, declared at `uer`. */
export function dataProcessorRow(uer: string) {
  return {
    type: "string",
    default: "bert",
    choices: DATA_PROCESSORS,
    built: ["albert"],
    hint: "pass --data_processor albert (or the model card's --target albert)",
    help: "The data processor of the pretraining model (only albert is built).",
    uer,
  } as const;
}

/** The masking flags of preprocess.py and pretrain.py (dynamic masking in pretrain's loader), at `lines`. */
export function maskingOpts(file: string, lines: readonly [number, number, number, number]) {
  return {
    whole_word_masking: {
      type: "bool",
      help: "Whole word masking (Chinese words segmented with jieba).",
      uer: `${file}:${lines[0]}`,
    },
    span_masking: { type: "bool", help: "Span masking.", uer: `${file}:${lines[1]}` },
    span_geo_prob: {
      type: "float",
      default: 0.2,
      above: 0,
      max: 1,
      help: "Hyperparameter of geometric distribution for span masking.",
      uer: `${file}:${lines[2]}`,
    },
    span_max_length: {
      type: "int",
      default: 10,
      min: 1,
      help: "Max length for span masking.",
      uer: `${file}:${lines[3]}`,
    },
  } as const satisfies FlagTable;
}

const ALBERT_IGNORES = "UER-py's AlbertDataset does not read it (it has no effect with --data_processor albert)";

/** Flags of `preprocess` (UER-py `preprocess.py`). */
export const PREPROCESS_FLAGS = {
  corpus_path: { type: "string", required: true, help: "Path of the corpus for pretraining.", uer: "preprocess.py:15" },
  dataset_path: {
    type: "string",
    default: "dataset.pt",
    help: "Path of the preprocessed dataset (a zarr folder).",
    uer: "preprocess.py:17",
  },
  ...TOKENIZER_OPTS,
  vocab_path: { ...TOKENIZER_OPTS.vocab_path, required: true },
  ...TGT_TOKENIZER_OPTS,
  processes_num: {
    type: "int",
    default: 1,
    min: 1,
    help: "Split the corpus into `processes_num` line ranges processed in parallel.",
    uer: "preprocess.py:23",
  },
  data_processor: dataProcessorRow("preprocess.py:26"),
  target: {
    type: "string",
    choices: ["albert"],
    help: "Older UER-py spelling used by the model card: `--target albert` = `--data_processor albert`.",
  },
  docs_buffer_size: {
    type: "int",
    default: 100000,
    help: "The buffer size of documents in memory.",
    uer: "preprocess.py:28",
    notBuilt: ALBERT_IGNORES,
  },
  seq_length: {
    type: "int",
    default: 128,
    min: 4,
    hint: "[CLS] A [SEP] B [SEP] needs 3 special tokens and one token of text",
    help: "Sequence length of instances.",
    uer: "preprocess.py:30",
  },
  tgt_seq_length: {
    type: "int",
    default: 128,
    help: "Target sequence length of instances.",
    uer: "preprocess.py:31",
    notBuilt: "it belongs to seq2seq data processors",
  },
  dup_factor: { type: "int", default: 5, min: 1, help: "Duplicate instances multiple times.", uer: "preprocess.py:32" },
  short_seq_prob: {
    type: "float",
    default: 0.1,
    min: 0,
    max: 1,
    help: "Probability of using a short (truncated) sequence.",
    uer: "preprocess.py:34",
  },
  full_sentences: { type: "bool", help: "Full sentences.", uer: "preprocess.py:37", notBuilt: ALBERT_IGNORES },
  seed: { type: "int", default: 7, min: 0, help: "Random seed.", uer: "preprocess.py:38" },
  dynamic_masking: {
    type: "bool",
    help: "Dynamic masking: masks are drawn by the pretrain loader (forces dup_factor 1).",
    uer: "preprocess.py:41",
  },
  ...maskingOpts("preprocess.py", [42, 43, 44, 46]),
  sentence_selection_strategy: {
    type: "string",
    default: "lead",
    choices: ["lead", "random"],
    help: "Sentence selection strategy for gap-sentences generation.",
    uer: "preprocess.py:50",
    notBuilt: "it belongs to --data_processor gsg",
  },
  overwrite: { type: "bool", help: "Replace an existing --dataset_path." },
  shard: { type: "string", help: "K/N: process only the K-th of N groups of line ranges, into its own dataset." },
  encoding_errors: {
    type: "string",
    default: "strict",
    choices: ["strict", "replace"],
    help: "Invalid UTF-8 in the corpus: stop naming the line (strict) or replace and count (replace).",
  },
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** Options of `preprocess`, derived from `PREPROCESS_FLAGS`. */
export type PreprocessOptions = OptionsOf<typeof PREPROCESS_FLAGS>;

/**
 * The older spellings: `--target albert` = `--data_processor albert`; `--dynamic_masking` forces
 * `dup_factor` 1 (UER-py `preprocess.py`).
 */
export function finishPreprocess(values: Record<string, unknown>, given: ReadonlySet<string>): void {
  if (values.target === "albert") {
    if (given.has("data_processor") && values.data_processor !== "albert") {
      throw new UsageError(
        `--target albert means --data_processor albert, but --data_processor ${values.data_processor} was given`,
      );
    }
    values.data_processor = "albert";
  }
  if (values.dynamic_masking) values.dup_factor = 1;
  checkSpanFlags(given);
}

/** `--span_geo_prob` and `--span_max_length` shape span masking only: without `--span_masking` they would do nothing. */
export function checkSpanFlags(given: ReadonlySet<string>): void {
  for (const f of ["span_geo_prob", "span_max_length"]) {
    if (given.has(f) && !given.has("span_masking")) {
      throw new UsageError(`--${f} has no effect without --span_masking\n  hint: add --span_masking, or drop --${f}`);
    }
  }
}
