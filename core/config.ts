/**
 * The UER-py model/training configuration of ALBERT, with UER-py's key names unchanged
 * (`emb_size`, `heads_num`, `layers_num`, …), as in `models/albert/*_config.json` of UER-py.
 * Browser compatible: no Deno APIs.
 *
 * Precedence is UER-py's `load_hyperparam`: defaults < config file < flags given on the command line.
 * @module
 */

/** Activation names as UER-py writes them (`gelu` = exact erf, `gelu_fast` = tanh approximation). */
export type HiddenAct = "relu" | "gelu" | "gelu_fast";

/** The model part of a UER config (the keys `models/albert/base_config.json` sets). */
export interface AlbertConfig {
  emb_size: number;
  hidden_size: number;
  feedforward_size: number;
  heads_num: number;
  layers_num: number;
  hidden_act: HiddenAct;
  max_seq_length: number;
  dropout: number;
  /** Vocabulary size; not in UER's JSON (UER takes it from the vocab), recorded in checkpoints. */
  vocab_size?: number;
  factorized_embedding_parameterization: boolean;
  parameter_sharing: boolean;
  embedding: string[];
  encoder: string;
  mask: string;
  target: string[];
  data_processor: string;
  /** LayerNorm epsilon of HF checkpoints (HF `layer_norm_eps`); UER LayerNorm always adds 1e-6 to std. */
  layer_norm_eps?: number;
}

/** `models/albert/base_config.json` of UER-py (the model card's base model). */
export const ALBERT_BASE: AlbertConfig = {
  emb_size: 128,
  feedforward_size: 3072,
  hidden_size: 768,
  hidden_act: "relu",
  heads_num: 12,
  layers_num: 12,
  max_seq_length: 512,
  dropout: 0.0,
  data_processor: "albert",
  embedding: ["word", "pos", "seg"],
  encoder: "transformer",
  mask: "fully_visible",
  factorized_embedding_parameterization: true,
  parameter_sharing: true,
  target: ["mlm", "sp"],
};

const HIDDEN_ACTS: readonly string[] = ["relu", "gelu", "gelu_fast"];
const NUMERIC_KEYS = [
  "emb_size",
  "hidden_size",
  "feedforward_size",
  "heads_num",
  "layers_num",
  "max_seq_length",
] as const;

/**
 * Checks a parsed config object and returns it typed; `source` names the file in errors.
 *
 * @example
 * ```ts
 * const cfg = validateConfig({ ...ALBERT_BASE, layers_num: 2 }, "mini.json");
 * ```
 */
export function validateConfig(raw: Record<string, unknown>, source: string): AlbertConfig {
  const cfg = { ...ALBERT_BASE, ...raw } as AlbertConfig;
  for (const key of NUMERIC_KEYS) {
    const v = cfg[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new TypeError(
        `Cannot use config "${source}": "${key}" must be a positive integer, got ${JSON.stringify(v)}`,
      );
    }
  }
  if (cfg.hidden_size % cfg.heads_num !== 0) {
    throw new RangeError(
      `Cannot use config "${source}": hidden_size ${cfg.hidden_size} is not divisible by heads_num ${cfg.heads_num}`,
    );
  }
  if (!HIDDEN_ACTS.includes(cfg.hidden_act)) {
    throw new TypeError(
      `Cannot use config "${source}": hidden_act "${cfg.hidden_act}" is not one of ${HIDDEN_ACTS.join(", ")}`,
    );
  }
  if (!cfg.factorized_embedding_parameterization && cfg.emb_size !== cfg.hidden_size) {
    throw new RangeError(
      `Cannot use config "${source}": without factorized_embedding_parameterization emb_size must equal hidden_size`,
    );
  }
  return cfg;
}
