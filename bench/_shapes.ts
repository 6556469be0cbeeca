/**
 * The model shapes the training benches run (pretrain, finetune, gpu, loader), declared once: the
 * reference tiny ALBERT (`albert-tiny/uer_config.json`: emb 32, hidden 64, 3 layers, 4 heads) and ALBERT-base
 * (UER-py `models/albert/base_config.json`), both over the 21128-token google_zh_vocab, positions for seq 128
 * (tiny) and 512 (base).
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";

/** The tiny ALBERT of the reference traces, positions for seq 128. */
export const TINY: AlbertConfig = {
  ...ALBERT_BASE,
  emb_size: 32,
  hidden_size: 64,
  feedforward_size: 128,
  heads_num: 4,
  layers_num: 3,
  max_seq_length: 128,
  vocab_size: 21128,
};

/** ALBERT-base, positions for seq 512. */
export const BASE: AlbertConfig = { ...ALBERT_BASE, max_seq_length: 512, vocab_size: 21128 };
