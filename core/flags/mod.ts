/**
 * Every subcommand's flag table, and the one function that turns typed flags (and a config file) into
 * that subcommand's options. `cli/options.ts` feeds it from the command line; nothing else builds
 * options. To add a subcommand: write `core/flags/<name>.ts` (its table, `as const satisfies FlagTable`,
 * and `export type <Name>Options = OptionsOf<typeof TABLE>`), add a row to `SUBCOMMAND_FLAGS` and to
 * `OptionsBySubcommand` below, and its summary and module to `cli/main.ts`'s `SUBCOMMANDS`
 * (DESIGN.md §1). Browser compatible.
 * @module
 */
import { ALBERT_BASE, validateConfig } from "../config.ts";
import { UsageError } from "../errors.ts";
import { CONVERT_FLAGS, type ConvertOptions, finishConvert } from "./convert.ts";
import { finishInfer, INFER_FLAGS, type InferOptions } from "./infer.ts";
import { FINETUNE_FLAGS, FINETUNE_MODEL_KEYS, type FinetuneOptions, finishFinetune } from "./finetune.ts";
import { applyConfig, checkBuilt, readFlags, toOptions } from "./parse.ts";
import { finishPreprocess, PREPROCESS_FLAGS, type PreprocessOptions } from "./preprocess.ts";
import {
  finishPretrain,
  MODEL_KEYS,
  type ModelKeys,
  NOT_BUILT_MODEL_KEYS,
  PRETRAIN_FLAGS,
  type PretrainOptions,
} from "./pretrain.ts";
import type { FlagTable } from "./row.ts";
import {
  DEMO_FLAGS,
  type DemoOptions,
  INSPECT_FLAGS,
  type InspectOptions,
  TOKENIZE_FLAGS,
  type TokenizeOptions,
} from "./tools.ts";

export * from "./row.ts";
export type { ConvertOptions, DemoOptions, FinetuneOptions, InferOptions, InspectOptions };
export type { PreprocessOptions, PretrainOptions };
export type { TokenizeOptions };
export type { ModelKeys };

/** One subcommand's table and how its values are finished. */
export interface SubcommandFlags {
  flags: FlagTable;
  /** Older spellings and implied values, applied after the config file and the flags. */
  finish?: (values: Record<string, unknown>, given: ReadonlySet<string>) => void;
  /** Reads a UER config file (`--config_path`), with the model keys it may hold besides the flags. */
  config?: { model: readonly string[]; notBuilt: Record<string, string> };
}

/** The flag tables by subcommand. */
export const SUBCOMMAND_FLAGS = {
  preprocess: { flags: PREPROCESS_FLAGS, finish: finishPreprocess },
  pretrain: {
    flags: PRETRAIN_FLAGS,
    finish: finishPretrain,
    config: { model: MODEL_KEYS, notBuilt: NOT_BUILT_MODEL_KEYS },
  },
  finetune: {
    flags: FINETUNE_FLAGS,
    finish: finishFinetune,
    config: { model: FINETUNE_MODEL_KEYS, notBuilt: NOT_BUILT_MODEL_KEYS },
  },
  infer: { flags: INFER_FLAGS, finish: finishInfer },
  convert: { flags: CONVERT_FLAGS, finish: finishConvert },
  tokenize: { flags: TOKENIZE_FLAGS },
  inspect: { flags: INSPECT_FLAGS },
  demo: { flags: DEMO_FLAGS },
} as const satisfies Record<string, SubcommandFlags>;

/** A subcommand's name. */
export type Subcommand = keyof typeof SUBCOMMAND_FLAGS;

/** The options each subcommand's `run()` takes. */
export interface OptionsBySubcommand {
  preprocess: PreprocessOptions;
  pretrain: PretrainOptions;
  finetune: FinetuneOptions;
  infer: InferOptions;
  convert: ConvertOptions;
  tokenize: TokenizeOptions;
  inspect: InspectOptions;
  demo: DemoOptions;
}

/** A config file as read by the caller: its parsed JSON and the name to show. */
export interface ConfigFile {
  json: unknown;
  source: string;
}

/**
 * The built-in config used when `pretrain` or `finetune` has no `--config_path` (UER-py's
 * models/albert/base_config.json).
 */
export const DEFAULT_CONFIG: ConfigFile = { json: ALBERT_BASE, source: "the built-in ALBERT base config" };

/**
 * Options of `command` from the typed flags (`raw` by UER name, `given`: the names typed) and, for
 * subcommands that read one, a config file (default: `DEFAULT_CONFIG`).
 *
 * @example
 * ```ts
 * const opts = buildOptions("preprocess", { corpus_path: "c.txt", vocab_path: "v.txt", target: "albert" },
 *   new Set(["corpus_path", "vocab_path", "target"]));
 * opts.dataProcessor; // "albert"
 * ```
 */
export function buildOptions<K extends Subcommand>(
  command: K,
  raw: Record<string, unknown>,
  given: ReadonlySet<string>,
  config?: ConfigFile,
): OptionsBySubcommand[K] {
  const sub: SubcommandFlags = SUBCOMMAND_FLAGS[command];
  const state = readFlags(command, sub.flags, raw, given);
  let model: Record<string, unknown> | undefined;
  if (sub.config) {
    const file = config ?? DEFAULT_CONFIG;
    model = applyConfig(state, file.json, file.source, sub.config);
    try {
      validateConfig(model, file.source);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  sub.finish?.(state.values, state.given);
  checkBuilt(state);
  const opts = toOptions(state);
  if (model) opts.model = model;
  return opts as OptionsBySubcommand[K];
}
