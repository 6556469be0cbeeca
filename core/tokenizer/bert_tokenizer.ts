/**
 * BertTokenizer: basic tokenization + WordPiece + ids, in two modes.
 * - `uer` = UER-py `BertTokenizer` (`uer/utils/tokenizers.py`): no special-token matching (`[MASK]`
 *   in text → `[`, `mask`, `]`), 200-char words, private-use characters kept.
 * - `hf` = HuggingFace's BertTokenizer (tokenizer.json of an HF folder): `[PAD] [UNK] [CLS] [SEP]
 *   [MASK]` written in the text are single tokens, 100-char words, private-use characters removed.
 *   Otherwise it follows the Python rules (CJK ranges, final sigma) as UER-py and HF Python do; HF's
 *   Rust `tokenizers` differs there (README §5 of the reference data).
 * The hot path is one pass over UTF-16 units with a 64 KiB class table, a per-code-point id table
 * for CJK ideographs, and a bounded cache of word → ids, so a Chinese corpus costs a table lookup per
 * character. `decode` is transformers.js' (WordPiece decoder + clean_up_tokenization).
 * Browser compatible.
 * @module
 */

import { bmpClassTable, charClass, CJK, PRIVATE, PUNCT, REMOVE } from "./char_class.ts";
import { normalizeWord } from "./basic.ts";
import { SPECIAL_TOKENS, type TokenizerMode, type Vocab } from "./vocab.ts";
import { WordPiece } from "./wordpiece.ts";

/** Options of `BertTokenizer`. */
export interface BertTokenizerOptions {
  /** `uer` (default) or `hf`; see the module doc. */
  mode?: TokenizerMode;
  /** Lower-case and strip accents; default true (UER-py `--do_lower_case true`). */
  doLowerCase?: boolean;
  /** Override WordPiece's word length limit (default 200 in uer mode, 100 in hf mode). */
  maxInputCharsPerWord?: number;
}

/** Ids of a single text or a pair, with UER segment ids and HF token types. */
export interface Encoding {
  /** `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`. */
  ids: number[];
  /** UER segment ids: 1 for `[CLS] a [SEP]`, 2 for `b [SEP]` (0 is padding, never produced here). */
  segmentIds: number[];
  /** HF token_type_ids: 0 for `[CLS] a [SEP]`, 1 for `b [SEP]`. */
  tokenTypeIds: number[];
  /** All 1 (no padding is added). */
  attentionMask: number[];
}

const WORD_CACHE_LIMIT = 1 << 17;
const SPECIAL_RE = /\[(?:PAD|UNK|CLS|SEP|MASK)\]/g;

// transformers.js clean_up_tokenization.
function cleanUpTokenization(text: string): string {
  return text.replace(/ \./g, ".").replace(/ \?/g, "?").replace(/ !/g, "!").replace(/ ,/g, ",")
    .replace(/ ' /g, "'").replace(/ n't/g, "n't").replace(/ 'm/g, "'m").replace(/ 's/g, "'s")
    .replace(/ 've/g, "'ve").replace(/ 're/g, "'re");
}

/**
 * BERT tokenizer over a `Vocab`.
 *
 * @example
 * ```ts
 * const tok = new BertTokenizer(vocab, { mode: "uer" });
 * tok.tokenize("北京是[MASK]国"); // ["北", "京", "是", "[", "ma", "##sk", "]", "国"]
 * tok.encode("第一句", "第二句").segmentIds; // [1, 1, 1, 1, 1, 2, 2, 2, 2]
 * ```
 */
export class BertTokenizer {
  readonly vocab: Vocab;
  readonly mode: TokenizerMode;
  readonly doLowerCase: boolean;
  readonly wordPiece: WordPiece;
  #removePrivate: boolean;
  #cjkIds: Int32Array; // BMP code point → id of that CJK char as a word, -2 = not computed yet
  #unitIds = new Int32Array(0x10000).fill(-2); // one-unit word → its single id, -1 = not one id, -2 = unknown
  #ids = new Int32Array(1024); // output of the current call
  #n = 0;
  #astralCjk = new Map<number, number>();
  #cache = new Map<string, number[]>();
  #specialIds = new Map<string, number>();
  #specialSet: Set<string>;

  constructor(vocab: Vocab, opts: BertTokenizerOptions = {}) {
    this.vocab = vocab;
    this.mode = opts.mode ?? "uer";
    this.doLowerCase = opts.doLowerCase ?? true;
    this.#removePrivate = this.mode === "hf";
    this.wordPiece = new WordPiece(vocab, opts.maxInputCharsPerWord ?? (this.mode === "hf" ? 100 : 200));
    this.#cjkIds = new Int32Array(0x10000).fill(-2);
    for (const t of SPECIAL_TOKENS) this.#specialIds.set(t, vocab.id(t)!);
    this.#specialSet = new Set(SPECIAL_TOKENS);
    bmpClassTable();
  }

  /**
   * Tokens of `text` without `[CLS]`/`[SEP]` (UER-py `tokenize`; in hf mode special-token literals
   * in the text stay single tokens).
   */
  tokenize(text: string): string[] {
    const tokens = this.vocab.tokens;
    return this.tokenizeToIds(text).map((id) => tokens[id]);
  }

  /** UER-py `convert_tokens_to_ids`: unknown tokens map to `[UNK]`. */
  convertTokensToIds(tokens: string[]): number[] {
    const out = new Array<number>(tokens.length);
    const unk = this.vocab.unkId;
    for (let i = 0; i < tokens.length; i++) out[i] = this.vocab.id(tokens[i]) ?? unk;
    return out;
  }

  /** The tokens of `ids` (no cleanup); throws a RangeError for an id outside the vocab. */
  convertIdsToTokens(ids: number[]): string[] {
    return ids.map((id) => this.vocab.token(id));
  }

  /**
   * `convertTokensToIds(tokenize(text))` in one pass, without building token strings: the path for
   * corpora (preprocess). Appends to `out` when given.
   */
  tokenizeToIds(text: string, out: number[] = []): number[] {
    const ids = this.tokenizeToIdView(text);
    for (let k = 0; k < ids.length; k++) out.push(ids[k]);
    return out;
  }

  /**
   * {@link tokenizeToIds} into the tokenizer's own buffer: the returned view is valid until the next
   * call (copy it to keep it). Allocates nothing per token.
   */
  tokenizeToIdView(text: string): Int32Array {
    this.#n = 0;
    if (this.mode === "hf" && text.indexOf("[") >= 0) {
      SPECIAL_RE.lastIndex = 0;
      let last = 0;
      for (let m = SPECIAL_RE.exec(text); m !== null; m = SPECIAL_RE.exec(text)) {
        if (m.index > last) this.#encodeSegment(text.slice(last, m.index));
        this.#push(this.#specialIds.get(m[0])!);
        last = m.index + m[0].length;
      }
      if (last < text.length) this.#encodeSegment(last === 0 ? text : text.slice(last));
    } else {
      this.#encodeSegment(text);
    }
    return this.#ids.subarray(0, this.#n);
  }

  #push(id: number): void {
    if (this.#n === this.#ids.length) {
      const next = new Int32Array(this.#ids.length * 2);
      next.set(this.#ids);
      this.#ids = next;
    }
    this.#ids[this.#n++] = id;
  }

  /**
   * `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` with UER segment ids (1/2) and HF token types (0/1).
   */
  encode(a: string, b?: string): Encoding {
    const ids = [this.vocab.clsId];
    this.tokenizeToIds(a, ids);
    ids.push(this.vocab.sepId);
    const lenA = ids.length;
    if (b !== undefined) {
      this.tokenizeToIds(b, ids);
      ids.push(this.vocab.sepId);
    }
    const n = ids.length;
    const segmentIds = new Array<number>(n);
    const tokenTypeIds = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      segmentIds[i] = i < lenA ? 1 : 2;
      tokenTypeIds[i] = i < lenA ? 0 : 1;
    }
    return { ids, segmentIds, tokenTypeIds, attentionMask: new Array<number>(n).fill(1) };
  }

  /**
   * transformers.js `decode`: tokens joined by spaces, `##` pieces glued on, then
   * clean_up_tokenization (` .` → `.`, ` 's` → `'s`, …). `skipSpecialTokens` drops
   * `[PAD] [UNK] [CLS] [SEP] [MASK]`. Ids outside the vocab decode as `[UNK]`.
   */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    let tokens = ids.map((id) => this.vocab.tokens[id] ?? "[UNK]");
    if (opts.skipSpecialTokens) tokens = tokens.filter((t) => !this.#specialSet.has(t));
    let text = "";
    for (let i = 0; i < tokens.length; i++) {
      let t = tokens[i];
      if (i !== 0) t = t.startsWith("##") ? t.slice(2) : " " + t;
      text += cleanUpTokenization(t);
    }
    return cleanUpTokenization(text);
  }

  // One special-token-free segment → ids appended to `out`.
  #encodeSegment(text: string): void {
    const table = bmpClassTable();
    const removePrivate = this.#removePrivate;
    const n = text.length;
    let ws = -1;
    let dirty = false;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      let cls: number;
      let cp = c;
      if (c < 0xd800 || c > 0xdbff) {
        cls = table[c];
      } else {
        const lo = i + 1 < n ? text.charCodeAt(i + 1) : 0;
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          cls = charClass(cp);
          if (cls === CJK) {
            if (ws >= 0) {
              this.#word(text, ws, i, dirty);
              ws = -1;
              dirty = false;
            }
            this.#push(this.#astralCjkId(cp));
            i++;
            continue;
          }
          if (cls === PRIVATE && removePrivate) cls = REMOVE;
          if (cls === 0 || cls === PUNCT || cls === PRIVATE) {
            if (ws < 0) ws = i;
          } else if (cls === REMOVE) {
            if (ws >= 0) dirty = true;
          } else if (ws >= 0) {
            this.#word(text, ws, i, dirty);
            ws = -1;
            dirty = false;
          }
          i++;
          continue;
        }
        cls = table[c];
      }
      switch (cls) {
        case 0:
        case PUNCT:
          if (ws < 0) ws = i;
          break;
        case CJK: {
          if (ws >= 0) {
            this.#word(text, ws, i, dirty);
            ws = -1;
            dirty = false;
          }
          let id = this.#cjkIds[c];
          if (id === -2) id = this.#cjkIds[c] = this.#cjkWordId(String.fromCharCode(c));
          this.#push(id);
          break;
        }
        case REMOVE:
          if (ws >= 0) dirty = true;
          break;
        case PRIVATE:
          if (removePrivate) {
            if (ws >= 0) dirty = true;
          } else if (ws < 0) ws = i;
          break;
        default: // SPACE
          if (ws >= 0) {
            this.#word(text, ws, i, dirty);
            ws = -1;
            dirty = false;
          }
      }
    }
    if (ws >= 0) this.#word(text, ws, n, dirty);
  }

  // The ids of one whitespace word text[start, end), through the caches (one-unit words, e.g. a
  // punctuation mark between CJK characters, by a table).
  #word(text: string, start: number, end: number, dirty: boolean): void {
    if (end - start === 1 && !dirty) {
      const c = text.charCodeAt(start);
      const id = this.#unitIds[c];
      if (id >= 0) {
        this.#push(id);
        return;
      }
      if (id === -2) {
        const ids = this.#wordIds(text.slice(start, end));
        this.#unitIds[c] = ids.length === 1 ? ids[0] : -1;
        for (let k = 0; k < ids.length; k++) this.#push(ids[k]);
        return;
      }
    }
    const raw = dirty ? this.#clean(text.slice(start, end)) : text.slice(start, end);
    if (raw.length === 0) return;
    const ids = this.#wordIds(raw);
    for (let k = 0; k < ids.length; k++) this.#push(ids[k]);
  }

  #wordIds(raw: string): number[] {
    let ids = this.#cache.get(raw);
    if (ids === undefined) {
      ids = [];
      for (const piece of normalizeWord(raw, this.doLowerCase)) this.wordPiece.encodeWord(piece, ids);
      if (this.#cache.size >= WORD_CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(raw, ids);
    }
    return ids;
  }

  // Removes what _clean_text removes from one word (no spaces or CJK inside).
  #clean(word: string): string {
    let out = "";
    for (const ch of word) {
      const cls = charClass(ch.codePointAt(0)!);
      if (cls === REMOVE || (cls === PRIVATE && this.#removePrivate)) continue;
      out += ch;
    }
    return out;
  }

  // A CJK ideograph is a word by itself; compatibility ideographs NFD to their canonical one.
  #cjkWordId(ch: string): number {
    const cp = ch.codePointAt(0)!;
    const w = this.doLowerCase && ((cp >= 0xf900 && cp <= 0xfaff) || cp >= 0x2f800) ? ch.normalize("NFD") : ch;
    const ids: number[] = [];
    this.wordPiece.encodeWord(w, ids);
    return ids[0];
  }

  #astralCjkId(cp: number): number {
    let id = this.#astralCjk.get(cp);
    if (id === undefined) {
      id = this.#cjkWordId(String.fromCodePoint(cp));
      this.#astralCjk.set(cp, id);
    }
    return id;
  }
}
