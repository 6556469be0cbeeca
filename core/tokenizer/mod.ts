/**
 * The tokenizer's public surface: `Vocab` (vocab.ts), `BertTokenizer` (bert_tokenizer.ts), and the
 * pieces they are made of (basic tokenization, WordPiece, character classes). Mirrors UER-py
 * `uer/utils/tokenizers.py` + `uer/utils/vocab.py`. Browser compatible; file reading is in
 * `core/io/vocab_file.ts`.
 * @module
 */

export { SPECIAL_TOKENS, type TokenizerMode, Vocab, vocabHash } from "./vocab.ts";
export { BertTokenizer, type BertTokenizerOptions, type Encoding } from "./bert_tokenizer.ts";
export { type BasicOptions, basicTokenize, normalizeWord } from "./basic.ts";
export { WordPiece } from "./wordpiece.ts";
export { isChineseCodePoint } from "./char_class.ts";
