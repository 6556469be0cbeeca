/**
 * The word segmenter of whole-word masking: `@node-rs/jieba` (jieba-rs) repaired to give Python jieba 0.42's
 * words (UER-py `create_index` calls `jieba.cut`), plus the tokenizer calls `core/data/masking.ts` needs.
 * Not browser compatible: jieba is a native addon.
 * @module
 */
import type { BertTokenizer } from "../tokenizer/mod.ts";
import type { WholeWordSupport } from "./masking.ts";

// jieba-rs's HMM fallback splits alphanumeric runs with `[a-zA-Z0-9]+(?:.\d+)?%?` (the dot is not
// escaped), so "4-5db" becomes "4-5", "db" and "35%45%" stays one word, where Python jieba 0.42
// (`finalseg.re_skip`, dot escaped) gives "4", "-", "5db" and "35%", "45%". Repair those words: re-split
// them (with a following non-dictionary ASCII word from the same run) by Python's pattern.
const RS_DOT = /^[a-zA-Z0-9]+[^a-zA-Z0-9.]\d+%?$/;
const ASCII_WORD = /^[a-zA-Z0-9]+(?:\.\d+)?%?$/;
const PY_SKIP = /([a-zA-Z0-9]+(?:\.\d+)?%?)/;

/** Python jieba's segmentation from jieba-rs's (see the note above). */
export function pythonJiebaWords(words: string[], inDict: (w: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    if (!RS_DOT.test(words[i])) {
      out.push(words[i]);
      continue;
    }
    let buf = words[i];
    if (i + 1 < words.length && ASCII_WORD.test(words[i + 1]) && !inDict(words[i + 1])) buf += words[++i];
    for (const piece of buf.split(PY_SKIP)) if (piece !== "") out.push(piece);
  }
  return out;
}

/**
 * jieba (as UER-py's `jieba.cut`) + the tokenizer, for `--whole_word_masking`: what preprocess (static masking)
 * and the pretrain loader (dynamic masking) both use, so both segment words alike.
 */
export async function wholeWordSupport(tok: BertTokenizer): Promise<WholeWordSupport> {
  const { Jieba } = await import("@node-rs/jieba");
  const { dict } = await import("@node-rs/jieba/dict.js");
  const jieba = Jieba.withDict(dict);
  let words: Set<string> | null = null;
  const inDict = (w: string) => {
    if (!words) {
      words = new Set();
      for (const line of new TextDecoder().decode(dict).split("\n")) words.add(line.split(" ")[0]);
    }
    return words.has(w);
  };
  return {
    idsToTokens: (ids) => tok.convertIdsToTokens(Array.from(ids)),
    wordToIds: (word) => tok.tokenizeToIds(word),
    cut: (sentence) => pythonJiebaWords(jieba.cut(sentence, true), inDict),
  };
}
