/**
 * BERT's basic tokenization (UER-py `BasicTokenizer` in `uer/utils/tokenizers.py`; HF
 * `BertNormalizer` + `BertPreTokenizer`): clean the text, space out CJK ideographs, split on
 * whitespace, then per word lower-case (Python `str.lower()`: full Unicode, final-sigma aware), NFD
 * and drop Mn, and split on punctuation. Everything walks code points. `splitWords` is the scan that
 * `BertTokenizer` fuses with WordPiece; `basicTokenize` is the plain, list-returning form.
 * Browser compatible.
 * @module
 */

import { bmpClassTable, charClass, CJK, PRIVATE, PUNCT, REMOVE, SPACE } from "./char_class.ts";

/** Options of the basic tokenizer. */
export interface BasicOptions {
  /** Lower-case and strip accents (UER-py `--do_lower_case true`). Default true. */
  doLowerCase?: boolean;
  /** Drop private-use (Co) characters and lone surrogates, as HF and transformers.js do. Default false. */
  removePrivate?: boolean;
}

const RE_MN = /\p{Mn}/gu;
// Characters whose NFD is themselves and which are not Mn, so a word made only of them needs no
// normalize(): ASCII and the CJK Unified Ideographs (+ Ext. A) blocks.
function isNfdStable(word: string): boolean {
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if (c < 0x80 || (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf)) continue;
    return false;
  }
  return true;
}

/**
 * One whitespace-delimited word (already cleaned, no CJK inside) → the pieces BERT's basic tokenizer
 * makes of it: `lower()` then NFD minus Mn (when `doLowerCase`), then split on punctuation. Empty
 * pieces (a word that was only accents) are dropped.
 *
 * @example
 * ```ts
 * normalizeWord("Héllo,World", true); // ["hello", ",", "world"]
 * ```
 */
export function normalizeWord(word: string, doLowerCase: boolean): string[] {
  let w = word;
  if (doLowerCase) {
    // NOTE: JS toLowerCase = Python str.lower(): full mappings (İ → i̇) and Final_Sigma context. The
    // context is the whitespace word in both, because cleaning and CJK spacing happened before.
    w = w.toLowerCase();
    if (!isNfdStable(w)) w = w.normalize("NFD").replace(RE_MN, "");
  }
  const out: string[] = [];
  const table = bmpClassTable();
  let start = 0;
  for (let i = 0; i < w.length; i++) {
    let cp = w.charCodeAt(i);
    let width = 1;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < w.length) {
      const lo = w.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        width = 2;
      }
    }
    const cls = cp < 0x10000 ? table[cp] : charClass(cp);
    if (cls === PUNCT) {
      if (i > start) out.push(w.slice(start, i));
      out.push(w.slice(i, i + width));
      start = i + width;
    }
    i += width - 1;
  }
  if (start < w.length) out.push(w.slice(start));
  return out;
}

/**
 * Scans `text` once and reports, in order, each CJK ideograph (as its code point) and each other
 * whitespace-delimited word (cleaned: removed characters taken out). Words are raw (not lower-cased):
 * pass them to `normalizeWord`.
 */
export function splitWords(
  text: string,
  removePrivate: boolean,
  onCjk: (cp: number, ch: string) => void,
  onWord: (word: string) => void,
): void {
  const table = bmpClassTable();
  const n = text.length;
  let ws = -1; // start of the current word (UTF-16 index), -1 if none
  let dirty = false; // the current word contains removed characters
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    let width = 1;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        width = 2;
      }
    }
    let cls = cp < 0x10000 ? table[cp] : charClass(cp);
    if (cls === PRIVATE) cls = removePrivate ? REMOVE : 0;
    if (cls === 0 || cls === PUNCT) {
      if (ws < 0) ws = i;
    } else if (cls === REMOVE) {
      if (ws >= 0) dirty = true;
    } else {
      if (ws >= 0) {
        onWord(dirty ? cleanWord(text, ws, i, removePrivate) : text.slice(ws, i));
        ws = -1;
        dirty = false;
      }
      if (cls === CJK) onCjk(cp, text.slice(i, i + width));
      // SPACE: nothing to emit
    }
    i += width - 1;
  }
  if (ws >= 0) onWord(dirty ? cleanWord(text, ws, n, removePrivate) : text.slice(ws, n));
}

/** `text[start, end)` without the characters `_clean_text` removes (no spaces or CJK occur there). */
function cleanWord(text: string, start: number, end: number, removePrivate: boolean): string {
  let out = "";
  for (let i = start; i < end; i++) {
    const cp = text.codePointAt(i)!;
    const width = cp > 0xffff ? 2 : 1;
    const cls = charClass(cp);
    if (!(cls === REMOVE || (cls === PRIVATE && removePrivate))) out += text.slice(i, i + width);
    i += width - 1;
  }
  return out;
}

/**
 * UER-py `BasicTokenizer.tokenize`: the list of basic tokens (before WordPiece).
 *
 * @example
 * ```ts
 * basicTokenize("北京是[MASK]国"); // ["北", "京", "是", "[", "mask", "]", "国"]
 * ```
 */
export function basicTokenize(text: string, opts: BasicOptions = {}): string[] {
  const lower = opts.doLowerCase ?? true;
  const out: string[] = [];
  splitWords(text, opts.removePrivate ?? false, (cp, ch) => {
    // Compatibility ideographs (F900–FAFF, 2F800–2FA1F) are NFD singletons to a canonical one.
    out.push(lower && ((cp >= 0xf900 && cp <= 0xfaff) || cp >= 0x2f800) ? ch.normalize("NFD") : ch);
  }, (word) => {
    for (const piece of normalizeWord(word, lower)) out.push(piece);
  });
  return out;
}

/** Whether the scan treats `cp` as whitespace (exported for tests). */
export function isSpaceCodePoint(cp: number): boolean {
  return charClass(cp) === SPACE;
}
