/**
 * Flag groups shared by several subcommands, mirroring UER-py's `uer/opts.py` (`tokenizer_opts`,
 * `tgt_tokenizer_opts`, `model_opts`, `optimization_opts`, `log_opts`), plus uer-ts's own `--device`,
 * `--quiet` and `--json`. A subcommand's table spreads the groups it takes, as UER-py's scripts call
 * `*_opts(parser)`, and overrides a row where it differs (e.g. `vocab_path` required). Rows with
 * `notBuilt` are UER-py flags uer-ts has not built: they are parsed so that giving one is an error
 * naming it, and hidden from `--help`. Browser compatible.
 * @module
 */
import type { FlagTable } from "./row.ts";
import { SCHEDULERS } from "../train/schedule.ts";

/** UER-py's tokenizers (`--tokenizer`, `--tgt_tokenizer`). */
const TOKENIZERS = ["bert", "bpe", "char", "space", "xlmroberta"] as const;

/** `tokenizer_opts` (uer/opts.py): only BERT's WordPiece is built. */
export const TOKENIZER_OPTS = {
  tokenizer: {
    type: "string",
    default: "bert",
    choices: TOKENIZERS,
    built: ["bert"],
    help: "Tokenizer type; ALBERT Chinese uses BERT's WordPiece.",
    uer: "uer/opts.py:135",
  },
  vocab_path: { type: "string", help: "Path of the vocabulary file (google_zh_vocab.txt).", uer: "uer/opts.py:142" },
  merges_path: {
    type: "string",
    help: "Path of the merges file.",
    uer: "uer/opts.py:144",
    notBuilt: "it belongs to --tokenizer bpe, and only bert is built",
  },
  spm_model_path: {
    type: "string",
    help: "Path of the sentence piece model.",
    uer: "uer/opts.py:146",
    notBuilt: "it belongs to sentencepiece tokenizers, and only bert is built",
  },
  do_lower_case: {
    type: "truefalse",
    default: "true",
    choices: ["true", "false"],
    help: "Whether to lower case the input.",
    uer: "uer/opts.py:148",
  },
} as const satisfies FlagTable;

const TGT = "it belongs to the target side of --data_processor mt (translation), which is not built";

/** `tgt_tokenizer_opts` (uer/opts.py): the target side of seq2seq data, not built. */
export const TGT_TOKENIZER_OPTS = {
  tgt_tokenizer: {
    type: "string",
    default: "bert",
    choices: TOKENIZERS,
    help: "Tokenizer of the target side.",
    uer: "uer/opts.py:153",
    notBuilt: TGT,
  },
  tgt_vocab_path: { type: "string", help: "Target vocabulary.", uer: "uer/opts.py:155", notBuilt: TGT },
  tgt_merges_path: { type: "string", help: "Target merges file.", uer: "uer/opts.py:157", notBuilt: TGT },
  tgt_spm_model_path: { type: "string", help: "Target sentence piece model.", uer: "uer/opts.py:159", notBuilt: TGT },
  tgt_do_lower_case: {
    type: "truefalse",
    default: "true",
    choices: ["true", "false"],
    help: "Whether to lower case the target input.",
    uer: "uer/opts.py:161",
    notBuilt: TGT,
  },
} as const satisfies FlagTable;

const NOT_ALBERT = "ALBERT does not use it";

/** `model_opts` (uer/opts.py): ALBERT's settings are built; other models' flags are not. */
export const MODEL_OPTS = {
  embedding: {
    type: "list",
    default: ["word"],
    choices: ["word", "pos", "seg", "sinusoidalpos", "dual", "word_pos_seg"],
    older: ["word_pos_seg"],
    built: ["word", "pos", "seg"],
    help: "Embedding type(s): word pos seg (older spelling: word_pos_seg).",
    uer: "uer/opts.py:2",
  },
  tgt_embedding: {
    type: "list",
    default: ["word"],
    choices: ["word", "pos", "seg", "sinusoidalpos", "dual"],
    help: "Target embedding type.",
    uer: "uer/opts.py:4",
    notBuilt: "it belongs to encoder-decoder models",
  },
  max_seq_length: {
    type: "int",
    default: 512,
    min: 1,
    help: "Max sequence length for position embedding.",
    uer: "uer/opts.py:6",
  },
  relative_position_embedding: {
    type: "bool",
    help: "Use relative position embedding.",
    uer: "uer/opts.py:8",
    notBuilt: NOT_ALBERT,
  },
  share_embedding: {
    type: "bool",
    help: "Share embedding and target embedding parameters.",
    uer: "uer/opts.py:10",
    notBuilt: "it belongs to encoder-decoder models",
  },
  remove_embedding_layernorm: {
    type: "bool",
    help: "Remove layernorm on embedding.",
    uer: "uer/opts.py:12",
    notBuilt: NOT_ALBERT,
  },
  factorized_embedding_parameterization: {
    type: "bool",
    help: "Factorized embedding parameterization (ALBERT configs set it).",
    uer: "uer/opts.py:14",
  },
  encoder: {
    type: "string",
    default: "transformer",
    choices: ["transformer", "rnn", "lstm", "gru", "birnn", "bilstm", "bigru", "gatedcnn", "dual"],
    built: ["transformer"],
    help: "Encoder type.",
    uer: "uer/opts.py:15",
  },
  decoder: {
    type: "string",
    choices: ["transformer"],
    help: "Decoder type.",
    uer: "uer/opts.py:18",
    notBuilt: "it belongs to encoder-decoder models",
  },
  mask: {
    type: "string",
    default: "fully_visible",
    choices: ["fully_visible", "causal", "causal_with_prefix"],
    built: ["fully_visible"],
    help: "Mask type.",
    uer: "uer/opts.py:19",
  },
  layernorm_positioning: {
    type: "string",
    default: "post",
    choices: ["pre", "post"],
    built: ["post"],
    help: "Layernorm positioning.",
    uer: "uer/opts.py:21",
  },
  feed_forward: {
    type: "string",
    default: "dense",
    choices: ["dense", "gated"],
    built: ["dense"],
    help: "Feed forward type.",
    uer: "uer/opts.py:23",
  },
  relative_attention_buckets_num: {
    type: "int",
    default: 32,
    help: "Buckets of relative position embedding.",
    uer: "uer/opts.py:25",
    notBuilt: NOT_ALBERT,
  },
  remove_attention_scale: {
    type: "bool",
    help: "Remove attention scale.",
    uer: "uer/opts.py:27",
    notBuilt: NOT_ALBERT,
  },
  remove_transformer_bias: {
    type: "bool",
    help: "Remove bias on transformer layers.",
    uer: "uer/opts.py:29",
    notBuilt: NOT_ALBERT,
  },
  layernorm: {
    type: "string",
    default: "normal",
    choices: ["normal", "t5"],
    built: ["normal"],
    help: "Layernorm type.",
    uer: "uer/opts.py:31",
  },
  bidirectional: {
    type: "bool",
    help: "Bidirectional recurrent encoder.",
    uer: "uer/opts.py:33",
    notBuilt: "it belongs to recurrent encoders",
  },
  parameter_sharing: { type: "bool", help: "Parameter sharing (ALBERT configs set it).", uer: "uer/opts.py:34" },
  has_residual_attention: {
    type: "bool",
    help: "Add residual attention.",
    uer: "uer/opts.py:35",
    notBuilt: NOT_ALBERT,
  },
  has_lmtarget_bias: {
    type: "bool",
    help: "Add bias on the lm target's output layer.",
    uer: "uer/opts.py:36",
    notBuilt: "it belongs to the lm target",
  },
  target: {
    type: "list",
    default: ["mlm"],
    choices: ["sp", "lm", "mlm", "bilm", "cls", "albert"],
    older: ["albert"],
    built: ["mlm", "sp"],
    help: "Training targets: mlm sp (older spelling: albert = mlm sp with --data_processor albert).",
    uer: "uer/opts.py:38",
  },
  tie_weights: {
    type: "bool",
    help: "Tie the word embedding and softmax weights.",
    uer: "uer/opts.py:40",
    notBuilt: "ALBERT's MLM output layer has its own weights (target.mlm.linear_2) in UER-py's ALBERT configs",
  },
  pooling: {
    type: "string",
    default: "first",
    choices: ["mean", "max", "first", "last"],
    built: ["first"],
    help: "Pooling type.",
    uer: "uer/opts.py:42",
  },
  prefix_lm_loss: {
    type: "bool",
    help: "Only compute output loss when SFT.",
    uer: "uer/opts.py:44",
    notBuilt: "it belongs to prefix language models",
  },
} as const satisfies FlagTable;

/** `optimization_opts` (uer/opts.py): AdamW with three of UER-py's schedulers. */
export const OPTIMIZATION_OPTS = {
  learning_rate: { type: "float", default: 2e-5, min: 0, help: "Learning rate.", uer: "uer/opts.py:58" },
  warmup: {
    type: "float",
    default: 0.1,
    min: 0,
    max: 1,
    help: "Warm up value (fraction of total_steps).",
    uer: "uer/opts.py:60",
  },
  lr_decay: {
    type: "float",
    default: 0.5,
    help: "Learning rate decay value.",
    uer: "uer/opts.py:62",
    notBuilt: "only UER-py's tri_stage scheduler reads it, and that scheduler is not built",
  },
  optimizer: {
    type: "string",
    default: "adamw",
    choices: ["adamw", "adafactor"],
    built: ["adamw"],
    help: "Optimizer type.",
    uer: "uer/opts.py:64",
  },
  scheduler: {
    type: "string",
    default: "linear",
    choices: SCHEDULERS,
    built: ["linear", "constant", "constant_with_warmup"],
    help: "Scheduler type.",
    uer: "uer/opts.py:67",
  },
} as const satisfies FlagTable;

/** The `--dropout` row of pretrain.py and of `training_opts`, declared at `uer`. */
export function dropoutRow(uer: string) {
  return {
    type: "float",
    default: 0.1,
    min: 0,
    below: 1,
    help: "Dropout probability (UER-py's ALBERT configs set 0.0).",
    uer,
  } as const;
}

const LEVELS = "uer-ts has no log levels; --quiet prints only results and errors";

/** `log_opts` (uer/opts.py): the log file is built; levels are not (use --quiet). */
export const LOG_OPTS = {
  log_path: {
    type: "string",
    help: "Append the report lines to this file too (default: no file).",
    uer: "uer/opts.py:49",
  },
  log_level: {
    type: "string",
    default: "INFO",
    choices: ["ERROR", "INFO", "DEBUG", "NOTSET"],
    help: "Console log level.",
    uer: "uer/opts.py:51",
    notBuilt: LEVELS,
  },
  log_file_level: {
    type: "string",
    default: "INFO",
    choices: ["ERROR", "INFO", "DEBUG", "NOTSET"],
    help: "Log file level.",
    uer: "uer/opts.py:53",
    notBuilt: LEVELS,
  },
} as const satisfies FlagTable;

/** `--device` (uer-ts): where graphs run. */
export const DEVICE_OPTS = {
  device: {
    type: "string",
    default: "auto",
    choices: ["auto", "cpu", "webgpu", "wasm"],
    help: "Where graphs run: auto = WebGPU on a hardware adapter, else native CPU.",
  },
} as const satisfies FlagTable;

/** `--quiet` and `--json` (uer-ts). */
export const OUTPUT_OPTS = {
  quiet: { type: "bool", help: "Print no progress bar or report lines, only results and errors." },
  json: { type: "bool", help: "Print machine-readable JSON instead of text." },
} as const satisfies FlagTable;
