/**
 * The flags of `finetune`, UER-py's `finetune/run_classifier.py` row for row: `finetune_opts` (paths,
 * `model_opts`, `optimization_opts`, `training_opts` with `log_opts`), `tokenizer_opts`, its own
 * `--soft_targets`/`--soft_alpha` and `adv_opts` (uer/opts.py), plus uer-ts's `--device`, `--quiet`,
 * `--json` and `--overwrite`. As in UER-py, a `--config_path` JSON file may set any of these flags and
 * the model keys; precedence is defaults < config file < flags given (`load_hyperparam`), so `dropout`
 * is 0.1 unless the config (UER-py's ALBERT configs: 0.0) or the flag says otherwise.
 * Browser compatible.
 * @module
 */
import {
  DEVICE_OPTS,
  dropoutRow,
  LOG_OPTS,
  MODEL_OPTS,
  OPTIMIZATION_OPTS,
  OUTPUT_OPTS,
  TOKENIZER_OPTS,
} from "./groups.ts";
import { SCHEDULERS } from "../train/schedule.ts";
import { MODEL_KEYS, type ModelKeys } from "./pretrain.ts";
import type { FlagTable, OptionsOf } from "./row.ts";
import { UsageError } from "../errors.ts";

const ADV = "adversarial training (FGM/PGD) is not built";
const SOFT = "training on soft targets (a logits column, knowledge distillation) is not built";

/** Flags of `finetune` (UER-py `finetune/run_classifier.py`). */
export const FINETUNE_FLAGS = {
  pretrained_model_path: {
    type: "string",
    help:
      "Weights to start from (UER .bin, HF folder or zarr checkpoint); classifier layers absent there are initialised.",
    uer: "uer/opts.py:90",
  },
  output_model_path: {
    type: "string",
    default: "models/finetuned_model.bin",
    help: "Where the best epoch's model is saved (a UER .bin; metrics beside it).",
    uer: "uer/opts.py:92",
  },
  train_path: {
    type: "string",
    required: true,
    help: "Training TSV (label<TAB>text_a[<TAB>text_b]).",
    uer: "uer/opts.py:94",
  },
  dev_path: { type: "string", required: true, help: "Dev TSV, evaluated after each epoch.", uer: "uer/opts.py:96" },
  test_path: { type: "string", help: "Test TSV, evaluated with the best epoch's model.", uer: "uer/opts.py:98" },
  config_path: {
    type: "string",
    help: "Config file of model hyper-parameters (default: ALBERT base, UER-py's models/albert/base_config.json).",
    uer: "uer/opts.py:100",
    differs: "uer-ts builds ALBERT only: without --config_path it uses UER-py's models/albert/base_config.json",
  },
  ...MODEL_OPTS,
  pooling: { ...MODEL_OPTS.pooling, built: ["mean", "max", "first", "last"] },
  ...OPTIMIZATION_OPTS,
  lr_decay: {
    ...OPTIMIZATION_OPTS.lr_decay,
    notBuilt: "only the tri_stage scheduler reads it, and run_classifier.py cannot build tri_stage",
  },
  scheduler: {
    ...OPTIMIZATION_OPTS.scheduler,
    built: SCHEDULERS.filter((s) => s !== "tri_stage"),
    hint: "tri_stage: UER-py's run_classifier.py passes it no total steps and fails; use another scheduler",
  },
  batch_size: { type: "int", default: 32, min: 1, help: "Batch size.", uer: "uer/opts.py:73" },
  seq_length: { type: "int", default: 128, min: 3, help: "Rows are cut to this many tokens.", uer: "uer/opts.py:75" },
  dropout: dropoutRow("uer/opts.py:77"),
  epochs_num: { type: "int", default: 3, min: 1, help: "Number of epochs.", uer: "uer/opts.py:79" },
  report_steps: {
    type: "int",
    default: 100,
    min: 1,
    help: "Print the average loss every this many steps of an epoch.",
    uer: "uer/opts.py:81",
  },
  seed: {
    type: "int",
    default: 7,
    min: 0,
    help: "Random seed (shuffles, dropout, new layers).",
    uer: "uer/opts.py:83",
  },
  ...LOG_OPTS,
  ...TOKENIZER_OPTS,
  vocab_path: { ...TOKENIZER_OPTS.vocab_path, required: true, hint: "pass the vocab of the pretrained model" },
  soft_targets: { type: "bool", help: "Train with logits.", uer: "finetune/run_classifier.py:268", notBuilt: SOFT },
  soft_alpha: {
    type: "float",
    default: 0.5,
    help: "Weight of the soft targets loss.",
    uer: "finetune/run_classifier.py:270",
    notBuilt: SOFT,
  },
  use_adv: { type: "bool", help: "Adversarial training.", uer: "uer/opts.py:166", notBuilt: ADV },
  adv_type: {
    type: "string",
    default: "fgm",
    choices: ["fgm", "pgd"],
    help: "Adversarial training type.",
    uer: "uer/opts.py:168",
    notBuilt: ADV,
  },
  fgm_epsilon: { type: "float", default: 1e-6, help: "Epsilon for FGM.", uer: "uer/opts.py:170", notBuilt: ADV },
  pgd_k: { type: "int", default: 3, help: "Steps for PGD.", uer: "uer/opts.py:172", notBuilt: ADV },
  pgd_epsilon: { type: "float", default: 1, help: "Epsilon for PGD.", uer: "uer/opts.py:174", notBuilt: ADV },
  pgd_alpha: { type: "float", default: 0.3, help: "Alpha for PGD.", uer: "uer/opts.py:176", notBuilt: ADV },
  overwrite: { type: "bool", help: "Replace an existing --output_model_path (and its metrics)." },
  ...DEVICE_OPTS,
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** Options of `finetune`: the flags (merged with the config file) and the config's model keys. */
export type FinetuneOptions = OptionsOf<typeof FINETUNE_FLAGS> & { model: ModelKeys };

/**
 * Keys a UER config may hold for `finetune` besides its flags: the model keys, and `data_processor`,
 * which UER-py's ALBERT configs set for pretraining (read and unused, as run_classifier.py does).
 */
export const FINETUNE_MODEL_KEYS = [...MODEL_KEYS, "data_processor"] as const;

/**
 * After the config file and the flags are merged: `--embedding word_pos_seg` = `word pos seg`; a
 * `--target` typed on the command line is refused (run_classifier.py's Classifier has no target; the
 * ALBERT configs' `target` key is read and unused, as UER-py does).
 */
export function finishFinetune(values: Record<string, unknown>, given: ReadonlySet<string>): void {
  values.embedding = (values.embedding as string[]).flatMap((w) => w === "word_pos_seg" ? ["word", "pos", "seg"] : [w]);
  if (given.has("target")) {
    throw new UsageError(
      "--target has no effect on finetune: run_classifier.py's classifier has no pretraining target\n  hint: drop --target",
    );
  }
  const target = values.target as string[];
  if (target.includes("albert")) values.target = ["mlm", "sp"];
}
