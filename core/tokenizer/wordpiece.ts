/**
 * WordPiece: greedy longest-match-first split of one basic token into vocab pieces, continuation
 * pieces prefixed with `##`; a word with an unmatched piece, or longer than
 * `maxInputCharsPerWord` code points, becomes `[UNK]` as a whole (UER-py `WordpieceTokenizer`, 200
 * chars; HF `WordPiece`, 100 chars). Lookups go through two Maps (word-initial pieces, and
 * continuation pieces stored without their `##`) so no `"##" + s` strings are built, and the match
 * never tries pieces longer than the longest vocab entry. Browser compatible.
 * @module
 */

import type { Vocab } from "./vocab.ts";

/**
 * WordPiece over a vocab, producing ids.
 *
 * @example
 * ```ts
 * const wp = new WordPiece(vocab, 200);
 * const ids: number[] = [];
 * wp.encodeWord("unaffable", ids); // ids of "una", "##ff", "##able" (whatever the vocab holds)
 * ```
 */
export class WordPiece {
  readonly unkId: number;
  readonly maxInputCharsPerWord: number;
  #initial: ReadonlyMap<string, number>; // every token (a "##x" token is also the literal word "##x")
  #cont = new Map<string, number>();
  #maxLen = 1; // longest piece in UTF-16 units (without "##")

  constructor(vocab: Vocab, maxInputCharsPerWord: number) {
    this.unkId = vocab.unkId;
    this.maxInputCharsPerWord = maxInputCharsPerWord;
    // Word-initial pieces are exactly the vocab's token -> id map (last line wins for duplicates).
    this.#initial = vocab.map;
    const tokens = vocab.tokens;
    let maxLen = 1;
    for (let id = 0; id < tokens.length; id++) { // a duplicated "##x" keeps its last id, as the map
      const tok = tokens[id];
      if (tok.length > maxLen) maxLen = tok.length;
      if (tok.charCodeAt(0) === 35 && tok.charCodeAt(1) === 35) this.#cont.set(tok.slice(2), id); // "##"
    }
    this.#maxLen = maxLen;
  }

  /** Appends the ids of `word` (one basic token, non-empty) to `out`. */
  encodeWord(word: string, out: number[]): void {
    const n = word.length;
    // Code-point count: UTF-16 length minus the number of low surrogates.
    let hasPairs = false;
    for (let i = 0; i < n; i++) {
      const c = word.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        hasPairs = true;
        break;
      }
    }
    if (hasPairs) {
      this.#encodeAstral(word, out);
      return;
    }
    if (n > this.maxInputCharsPerWord) {
      out.push(this.unkId);
      return;
    }
    const first = out.length;
    let start = 0;
    const maxLen = this.#maxLen;
    while (start < n) {
      let end = Math.min(n, start + maxLen);
      const map = start === 0 ? this.#initial : this.#cont;
      let id: number | undefined;
      while (end > start) {
        id = map.get(start === 0 && end === n ? word : word.slice(start, end));
        if (id !== undefined) break;
        end--;
      }
      if (id === undefined) {
        out.length = first;
        out.push(this.unkId);
        return;
      }
      out.push(id);
      start = end;
    }
  }

  // Same algorithm over code-point boundaries, for words with characters outside the BMP.
  #encodeAstral(word: string, out: number[]): void {
    const bounds: number[] = [0];
    for (let i = 0; i < word.length;) {
      const cp = word.codePointAt(i)!;
      i += cp > 0xffff ? 2 : 1;
      bounds.push(i);
    }
    const nChars = bounds.length - 1;
    if (nChars > this.maxInputCharsPerWord) {
      out.push(this.unkId);
      return;
    }
    const first = out.length;
    let s = 0;
    while (s < nChars) {
      let e = nChars;
      while (e > s && bounds[e] - bounds[s] > this.#maxLen) e--;
      const map = s === 0 ? this.#initial : this.#cont;
      let id: number | undefined;
      while (e > s) {
        id = map.get(word.slice(bounds[s], bounds[e]));
        if (id !== undefined) break;
        e--;
      }
      if (id === undefined) {
        out.length = first;
        out.push(this.unkId);
        return;
      }
      out.push(id);
      s = e;
    }
  }
}
