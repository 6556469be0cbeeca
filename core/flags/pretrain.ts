/**
 * The flags of `pretrain`, UER-py's `pretrain.py` row for row (with `uer/opts.py`'s `tokenizer_opts`,
 * `tgt_tokenizer_opts`, `model_opts`, `optimization_opts` and `log_opts`), and uer-ts's own
 * `--device`, `--quiet` and `--json`. As in UER-py, a `--config_path` JSON file may set any of these
 * flags and the model keys (`emb_size`, `hidden_size`, …); precedence is defaults < config file <
 * flags given (`load_hyperparam`). Browser compatible.
 * @module
 */
import {
  DEVICE_OPTS,
  dropoutRow,
  LOG_OPTS,
  MODEL_OPTS,
  OPTIMIZATION_OPTS,
  OUTPUT_OPTS,
  TGT_TOKENIZER_OPTS,
  TOKENIZER_OPTS,
} from "./groups.ts";
import { checkSpanFlags, dataProcessorRow, maskingOpts } from "./preprocess.ts";
import type { FlagTable, OptionsOf } from "./row.ts";
import type { AlbertConfig } from "../config.ts";
import { UsageError } from "../errors.ts";

const STEPS = "a positive number of steps";

/** Flags of `pretrain` (UER-py `pretrain.py`). */
export const PRETRAIN_FLAGS = {
  dataset_path: {
    type: "string",
    default: "dataset.pt",
    help: "Path of the preprocessed dataset.",
    uer: "pretrain.py:12",
  },
  pretrained_model_path: {
    type: "string",
    help: "Weights to start from (zarr checkpoint, UER .bin or HF folder); the run starts at step 1.",
    uer: "pretrain.py:14",
  },
  output_model_path: {
    type: "string",
    required: true,
    help: "Path of the output model; checkpoints are <path>-<step>.",
    uer: "pretrain.py:16",
  },
  config_path: {
    type: "string",
    help: "Config file of model hyper-parameters (default: ALBERT base, UER-py's models/albert/base_config.json).",
    uer: "pretrain.py:18",
    differs: "uer-ts builds ALBERT only: without --config_path it uses UER-py's models/albert/base_config.json",
  },
  total_steps: {
    type: "int",
    default: 100000,
    min: 1,
    hint: STEPS,
    help: "Total training steps.",
    uer: "pretrain.py:22",
  },
  save_checkpoint_steps: {
    type: "int",
    default: 10000,
    min: 1,
    help: "Save a checkpoint every this many steps (and at the last step).",
    uer: "pretrain.py:24",
  },
  report_steps: {
    type: "int",
    default: 100,
    min: 1,
    help: "Print a report line every this many steps.",
    uer: "pretrain.py:26",
  },
  accumulation_steps: { type: "int", default: 1, min: 1, help: "Steps to accumulate gradient.", uer: "pretrain.py:28" },
  batch_size: {
    type: "int",
    default: 32,
    min: 1,
    help: "Batch size; the actual batch is batch_size x world_size x accumulation_steps.",
    uer: "pretrain.py:30",
  },
  instances_buffer_size: {
    type: "int",
    default: 25600,
    min: 1,
    help: "The buffer size of instances in memory.",
    uer: "pretrain.py:32",
  },
  labels_num: {
    type: "int",
    help: "Number of prediction labels.",
    uer: "pretrain.py:34",
    notBuilt: "it belongs to the cls target",
  },
  dropout: dropoutRow("pretrain.py:36"),
  seed: { type: "int", default: 7, min: 0, help: "Random seed.", uer: "pretrain.py:37" },
  ...TOKENIZER_OPTS,
  vocab_path: { ...TOKENIZER_OPTS.vocab_path, required: true, hint: "pass the vocab the dataset was made with" },
  ...TGT_TOKENIZER_OPTS,
  ...MODEL_OPTS,
  data_processor: dataProcessorRow("pretrain.py:45"),
  deep_init: {
    type: "bool",
    help: "Scale initialization of projection layers by 1/sqrt(2N).",
    uer: "pretrain.py:47",
    notBuilt: "uer-ts initializes as UER-py does without it",
  },
  ...maskingOpts("pretrain.py", [52, 53, 54, 56]),
  ...OPTIMIZATION_OPTS,
  world_size: {
    type: "int",
    default: 1,
    min: 1,
    help: "Total number of processes for training (ranks under mpirun).",
    uer: "pretrain.py:63",
  },
  gpu_ranks: {
    type: "ints",
    default: [],
    min: 0,
    help: "List of ranks of each process (device index per rank).",
    uer: "pretrain.py:64",
  },
  master_ip: {
    type: "string",
    default: "tcp://localhost:12345",
    help: "IP-Port of master.",
    uer: "pretrain.py:66",
    notBuilt: "uer-ts runs ranks under mpirun, which finds its peers itself",
  },
  backend: {
    type: "string",
    default: "nccl",
    choices: ["nccl", "gloo"],
    help: "Distributed backend.",
    uer: "pretrain.py:67",
    notBuilt: "uer-ts's data parallelism is MPI",
  },
  ...LOG_OPTS,
  resume: {
    type: "bool",
    help: "Continue the run in --output_model_path from its last checkpoint, with this command's total steps, " +
      "learning rate, warmup, scheduler and dropout (re-running the same command resumes without it).",
  },
  overwrite: {
    type: "bool",
    help: "Remove the run in --output_model_path (checkpoints, metrics, settings) and start a new one.",
  },
  keep_checkpoints: {
    type: "int",
    default: 0,
    min: 0,
    help: "Keep only the N latest checkpoints of the run (0: keep all, as UER-py).",
  },
  recompute_activations: {
    type: "bool",
    help: "Keep only each layer application's input from the forward and recompute the layer in the backward: " +
      "about a third more compute for far less memory (the card's stage 2, batch 64 x 512); the same results " +
      "(up to float32 rounding on CPU).",
  },
  ...DEVICE_OPTS,
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** The model keys of a UER config file that are not flags (UER-py's `load_hyperparam` reads them too). */
export const MODEL_KEYS = [
  "emb_size",
  "hidden_size",
  "feedforward_size",
  "heads_num",
  "layers_num",
  "hidden_act",
  "vocab_size",
] as const;

/** Model keys of other UER-py configs that ALBERT does not have. */
export const NOT_BUILT_MODEL_KEYS: Record<string, string> = {
  decoder_layers_num: "it belongs to encoder-decoder models",
  attention_head_size: "it belongs to T5-style attention",
  kernel_size: "it belongs to the gatedcnn encoder",
  block_size: "it belongs to the gatedcnn encoder",
};

/** The model part of a config file (`emb_size`, `hidden_size`, …). */
export type ModelKeys = Partial<Pick<AlbertConfig, (typeof MODEL_KEYS)[number]>>;

/** Options of `pretrain`: the flags (merged with the config file) and the config's model keys. */
export type PretrainOptions = OptionsOf<typeof PRETRAIN_FLAGS> & { model: ModelKeys };

/**
 * The older spellings after the config file and the flags are merged: `--embedding word_pos_seg` =
 * `word pos seg`; `--target albert` = `--target mlm sp` with `--data_processor albert`.
 */
export function finishPretrain(values: Record<string, unknown>, given: ReadonlySet<string>): void {
  values.embedding = (values.embedding as string[]).flatMap((w) => w === "word_pos_seg" ? ["word", "pos", "seg"] : [w]);
  const target = values.target as string[];
  if (target.includes("albert")) {
    if (target.length > 1) throw new UsageError(`option '--target' got ${target.join(" ")}; albert stands alone`);
    if (given.has("data_processor") && values.data_processor !== "albert") {
      throw new UsageError(
        `--target albert means --data_processor albert, but --data_processor ${values.data_processor} was given`,
      );
    }
    values.target = ["mlm", "sp"];
    values.data_processor = "albert";
  }
  checkSpanFlags(given);
  if (given.has("resume") && given.has("overwrite")) {
    throw new UsageError("--resume and --overwrite contradict each other\n  hint: pass one of them");
  }
}
