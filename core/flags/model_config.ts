/**
 * The model config of a training run from its options: the config file's model keys (`emb_size`, …),
 * the model flags (`--max_seq_length`, `--dropout`, `--factorized_embedding_parameterization`, …) and
 * the vocabulary's size, as UER-py's `load_hyperparam` merges them (defaults < config < flags) for
 * `pretrain.py` and `run_classifier.py` alike. Browser compatible.
 * @module
 */
import { type AlbertConfig, validateConfig } from "../config.ts";
import type { ModelKeys } from "./pretrain.ts";

/** The options of a subcommand that builds a model (pretrain, finetune). */
export interface ModelFlagOptions {
  model: ModelKeys;
  configPath?: string;
  vocabPath?: string;
  maxSeqLength: number;
  dropout: number;
  embedding: readonly string[];
  encoder: string;
  mask: string;
  target: readonly string[];
  factorizedEmbeddingParameterization: boolean;
  parameterSharing: boolean;
  dataProcessor?: string;
}

/**
 * The run's model config; a config `vocab_size` other than the vocab's is an error (UER-py takes it
 * from the vocab).
 *
 * @example
 * ```ts
 * const cfg = modelConfigOf(opts, vocab.size); // cfg.hidden_size, cfg.dropout, …
 * ```
 */
export function modelConfigOf(opts: ModelFlagOptions, vocabSize: number): AlbertConfig {
  const source = opts.configPath ?? "the ALBERT base defaults";
  if (opts.model.vocab_size !== undefined && opts.model.vocab_size !== vocabSize) {
    throw new TypeError(
      `Cannot use config "${source}": its vocab_size ${opts.model.vocab_size} differs from --vocab_path ` +
        `"${opts.vocabPath}" (${vocabSize} tokens)\n  hint: remove vocab_size from the config (UER-py takes it from the vocab)`,
    );
  }
  return validateConfig({
    ...opts.model,
    max_seq_length: opts.maxSeqLength,
    dropout: opts.dropout,
    embedding: [...opts.embedding],
    encoder: opts.encoder,
    mask: opts.mask,
    target: [...opts.target],
    ...(opts.dataProcessor === undefined ? {} : { data_processor: opts.dataProcessor }),
    factorized_embedding_parameterization: opts.factorizedEmbeddingParameterization,
    parameter_sharing: opts.parameterSharing,
    vocab_size: vocabSize,
  }, source);
}
