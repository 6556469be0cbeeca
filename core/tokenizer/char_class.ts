/**
 * Character classes of BERT's basic tokenizer, looked up per code point (never per UTF-16 unit):
 * what `_clean_text` drops or turns into a space, what `_tokenize_chinese_chars` spaces out and what
 * `_run_split_on_punc` splits on (UER-py `uer/utils/tokenizers.py`, HF `BertNormalizer` /
 * `BertPreTokenizer`). Categories come from the JS engine's Unicode data through `\p{...}` regexes,
 * a 64 KiB table for the BMP (built with a few regex scans), a memo for the other planes.
 * Browser compatible.
 * @module
 */

/** A letter, digit or any other character that stays inside a word. */
export const OTHER = 0;
/** Whitespace after cleaning: `\t\n\r`, Zs, and Zl/Zp (Python's `str.split()` splits on U+2028/2029). */
export const SPACE = 1;
/** Dropped by `_clean_text`: U+0000, U+FFFD, Cc and Cf except `\t\n\r`. */
export const REMOVE = 2;
/** Punctuation: ASCII 33–47, 58–64, 91–96, 123–126 and every Unicode P* character. */
export const PUNCT = 3;
/** A CJK ideograph in BERT's "Chinese character" ranges (spaced out, one word each). */
export const CJK = 4;
/** Private use (Co) or a lone surrogate (Cs): kept by UER-py, dropped by HF / transformers.js. */
export const PRIVATE = 5;

/** UER-py `_is_chinese_char` (and HF's Python tokenizer); code points, not UTF-16 units. */
export function isChineseCodePoint(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f);
}

const RE_REMOVE = /^[\p{Cc}\p{Cf}]$/u;
const RE_SPACE = /^[\p{Zs}\p{Zl}\p{Zp}]$/u;
const RE_PUNCT = /^\p{P}$/u;
const RE_PRIVATE = /^[\p{Co}\p{Cs}]$/u;

/** Computes the class of one code point from the Unicode data (slow; use `charClass`). */
export function computeCharClass(cp: number): number {
  if (cp === 0x09 || cp === 0x0a || cp === 0x0d) return SPACE;
  if (cp === 0 || cp === 0xfffd) return REMOVE;
  if (
    (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)
  ) return PUNCT;
  if (cp < 128 && cp > 32 && cp !== 127) return OTHER;
  if (isChineseCodePoint(cp)) return CJK;
  // Lone surrogates cannot go through a `u` regex as one character; they are Cs.
  if (cp >= 0xd800 && cp <= 0xdfff) return PRIVATE;
  const ch = String.fromCodePoint(cp);
  if (RE_REMOVE.test(ch)) return REMOVE;
  if (RE_SPACE.test(ch)) return SPACE;
  if (RE_PUNCT.test(ch)) return PUNCT;
  if (RE_PRIVATE.test(ch)) return PRIVATE;
  return OTHER;
}

let bmpTable: Uint8Array | undefined;

/**
 * The class of every BMP code point, built on first use: the same rules as `computeCharClass`, but
 * each Unicode-category class is marked by one global regex scan over a string of all BMP
 * characters (runs of a class at a time), lowest precedence first, instead of 65,536 regex tests.
 */
export function bmpClassTable(): Uint8Array {
  if (bmpTable) return bmpTable;
  const t = new Uint8Array(0x10000); // OTHER
  const units = new Uint16Array(0x10000);
  for (let cp = 0; cp < 0x10000; cp++) units[cp] = cp >= 0xd800 && cp <= 0xdfff ? 0x61 : cp; // no pairs
  let all = "";
  for (let at = 0; at < 0x10000; at += 4096) all += String.fromCharCode(...units.subarray(at, at + 4096));
  // Reverse precedence of computeCharClass: later marks win.
  const scans: [RegExp, number][] = [
    [/\p{Co}+/gu, PRIVATE],
    [/\p{P}+/gu, PUNCT],
    [/[\p{Zs}\p{Zl}\p{Zp}]+/gu, SPACE],
    [/[\p{Cc}\p{Cf}]+/gu, REMOVE],
  ];
  for (const [re, cls] of scans) {
    for (const m of all.matchAll(re)) t.fill(cls, m.index, m.index + m[0].length);
  }
  t.fill(PRIVATE, 0xd800, 0xe000);
  t.fill(CJK, 0x3400, 0x4dc0);
  t.fill(CJK, 0x4e00, 0xa000);
  t.fill(CJK, 0xf900, 0xfb00);
  t.fill(OTHER, 33, 127);
  for (const [from, to] of [[33, 48], [58, 65], [91, 97], [123, 127]]) t.fill(PUNCT, from, to);
  t[0] = REMOVE;
  t[0xfffd] = REMOVE;
  t[0x09] = t[0x0a] = t[0x0d] = SPACE;
  bmpTable = t;
  return t;
}

/**
 * Installs a table made by `bmpClassTable()` in another thread (a worker gets it from the main
 * thread instead of rebuilding it). Throws a RangeError unless it has 65,536 entries.
 */
export function setBmpClassTable(table: Uint8Array): void {
  if (table.length !== 0x10000) {
    throw new RangeError(`Cannot install a character class table of ${table.length} entries: expected 65536`);
  }
  bmpTable ??= table;
}

const astralMemo = new Map<number, number>();

/** The class of any code point (table for the BMP, memo for the other planes). */
export function charClass(cp: number): number {
  if (cp < 0x10000) return bmpClassTable()[cp];
  let c = astralMemo.get(cp);
  if (c === undefined) {
    c = computeCharClass(cp);
    astralMemo.set(cp, c);
  }
  return c;
}
