/**
 * MLM masking exactly as UER-py's `mask_seq` / `create_index` / `get_span_len`
 * (`uer/utils/mask.py`): candidates are all positions except `[CLS]`, `[SEP]` and `[PAD]`
 * (`[UNK]` can be masked); they are shuffled with python `random` and the first
 * `max(1, round(len * 0.15))` (banker's rounding) are taken, each replaced by `[MASK]` (80 %), a random
 * id re-drawn until it is not special (10 %) or kept (10 %). Whole-word masking re-segments the
 * sentence into words (UER-py uses jieba) and masks whole words; span masking masks geometric-length
 * spans. Used by preprocessing (static masking) and by the pretrain loader (`--dynamic_masking`),
 * so both draw from the same code in the same order. Browser compatible (the word segmenter is
 * injected).
 * @module
 */

import type { PyRandom } from "./py_random.ts";

/** The vocabulary facts masking needs (a `Vocab` satisfies it). */
export interface MaskingVocab {
  readonly size: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly maskId: number;
  readonly padId: number;
}

/** What whole-word masking needs from the tokenizer and the word segmenter (jieba in UER-py). */
export interface WholeWordSupport {
  /** `tokenizer.convert_ids_to_tokens(ids)`. */
  idsToTokens(ids: ArrayLike<number>): string[];
  /** `tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))`. */
  wordToIds(word: string): number[];
  /** `jieba.cut(sentence)` (accurate mode, HMM on). */
  cut(sentence: string): string[];
}

/** Masking flags (UER-py names: `whole_word_masking`, `span_masking`, `span_geo_prob`, `span_max_length`). */
export interface MaskingOptions {
  wholeWordMasking?: boolean;
  spanMasking?: boolean;
  spanGeoProb?: number;
  spanMaxLength?: number;
  /** Required with `wholeWordMasking`. */
  wholeWord?: WholeWordSupport;
}

/** A masked sequence: the new ids and the sorted `[position, original id]` targets. */
export interface MaskedSequence {
  src: number[];
  tgtMlm: [number, number][];
}

/** Python's `round(x)` for a double: round half to even. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** `max(1, round(n * 0.15))`, UER-py's number of positions to predict for a sequence of n ids. */
export function numToPredict(n: number): number {
  return Math.max(1, pyRound(n * 0.15));
}

/**
 * A reusable masker: precomputes the span-length distribution and checks the options once.
 *
 * @example
 * ```ts
 * const masker = new Masker({ size: 21128, clsId: 101, sepId: 102, maskId: 103, padId: 0 }, {});
 * const { src, tgtMlm } = masker.mask([101, 2769, 4263, 102], new PyRandom(7));
 * ```
 */
export class Masker {
  readonly vocab: MaskingVocab;
  readonly options: MaskingOptions;
  #geoCum: number[] = [];
  #positions = new Int32Array(512); // scratch candidate list, reused

  constructor(vocab: MaskingVocab, options: MaskingOptions) {
    this.vocab = vocab;
    this.options = options;
    if (options.wholeWordMasking && !options.wholeWord) {
      throw new TypeError("Cannot mask whole words: no word segmenter was given");
    }
    if (options.spanMasking && !options.wholeWordMasking) {
      const maxLen = options.spanMaxLength ?? 10;
      const p = options.spanGeoProb ?? 0.2;
      if (!(maxLen >= 1)) throw new RangeError(`Invalid --span_max_length ${maxLen}: must be at least 1`);
      if (!(p > 0 && p <= 1)) throw new RangeError(`Invalid --span_geo_prob ${p}: must be in (0, 1]`);
      // Same float operations, same order as get_span_len.
      const cum = [0.0];
      let g = 1.0;
      for (let i = 1; i <= maxLen; i++) {
        g *= i === 1 ? p : 1 - p;
        cum.push(cum[cum.length - 1] + g);
      }
      this.#geoCum = cum;
    }
  }

  /** `get_span_len`: one `random()` scaled by the total mass, then the interval it falls in. */
  #spanLen(rng: PyRandom): number {
    const cum = this.#geoCum;
    const prob = cum[cum.length - 1] * rng.random();
    let len = -1;
    for (let i = 0; i < cum.length - 1; i++) {
      if (prob >= cum[i] && prob < cum[i + 1]) len = i + 1;
    }
    if (len < 0) throw new RangeError("span length draw fell outside the distribution");
    return len;
  }

  /** A random non-special id: `randint(1, len(vocab) - 1)` re-drawn while special. */
  #randomId(rng: PyRandom): number {
    const v = this.vocab;
    for (;;) {
      const r = rng.randint(1, v.size - 1);
      if (r !== v.clsId && r !== v.sepId && r !== v.maskId && r !== v.padId) return r;
    }
  }

  /**
   * `mask_seq(src, ...)`: masks a copy of `src` (trailing `[PAD]`s are kept out of the count and
   * put back) and returns it with the sorted targets.
   */
  mask(input: ArrayLike<number>, rng: PyRandom): MaskedSequence {
    return this.maskInPlace(Array.prototype.slice.call(input), rng);
  }

  /**
   * {@link mask} of `src[0, n)` in place for the preprocessing hot path: the same draws in the same
   * order, no allocation for plain masking (whole-word and span masking go through
   * {@link maskInPlace}). Writes the targets sorted by position to `tgtPos` / `tgtId` (room for
   * `numToPredict(n)` entries) and returns how many there are.
   */
  maskIds(src: Int32Array, n: number, rng: PyRandom, tgtPos: Int32Array, tgtId: Int32Array): number {
    const v = this.vocab;
    if (this.options.wholeWordMasking || this.options.spanMasking) {
      const m = this.maskInPlace(Array.from(src.subarray(0, n)), rng);
      src.set(m.src.length > n ? m.src.slice(0, n) : m.src);
      for (let k = 0; k < m.tgtMlm.length; k++) {
        tgtPos[k] = m.tgtMlm[k][0];
        tgtId[k] = m.tgtMlm[k][1];
      }
      return m.tgtMlm.length;
    }
    const cls = v.clsId, sep = v.sepId, pad = v.padId;
    let len = n; // trailing [PAD]s are left out of the count (index 0 always stays)
    while (len > 1 && src[len - 1] === pad) len--;
    if (this.#positions.length < len) this.#positions = new Int32Array(len * 2);
    const positions = this.#positions;
    let m = 0;
    for (let i = 0; i < len; i++) {
      const t = src[i];
      if (t !== cls && t !== sep && t !== pad) positions[m++] = i;
    }
    const num = numToPredict(len);
    rng.shuffleInt32(positions, m);
    let nt = 0;
    for (let k = 0; k < m && nt < num; k++) {
      const i = positions[k];
      // Insertion into the position-sorted target list (at most numToPredict(seq_length) long).
      let j = nt++;
      while (j > 0 && tgtPos[j - 1] > i) {
        tgtPos[j] = tgtPos[j - 1];
        tgtId[j] = tgtId[j - 1];
        j--;
      }
      tgtPos[j] = i;
      tgtId[j] = src[i];
      const p = rng.random();
      if (p < 0.8) src[i] = v.maskId;
      else if (p < 0.9) src[i] = this.#randomId(rng);
    }
    return nt;
  }

  /** {@link mask} that reuses `input` (unless whole-word masking rebuilds it). */
  maskInPlace(input: number[], rng: PyRandom): MaskedSequence {
    const v = this.vocab;
    const opts = this.options;
    let last = input.length - 1;
    while (last > 0 && input[last] === v.padId) last--;
    // NOTE: UER-py keeps index 0 even when it is [PAD] (its loop leaves i at 0).
    const inputLength = input.length;
    input.length = last + 1;
    let noPad = input;

    let index: number[][] | null = null;
    let positions: Int32Array | null = null;
    if (opts.wholeWordMasking) {
      const r = this.#wholeWordIndex(noPad);
      index = r.index;
      noPad = r.src;
    } else if (opts.spanMasking) {
      index = [];
      let spanEnd = -1;
      for (let i = 0; i < noPad.length; i++) {
        const t = noPad[i];
        if (t === v.clsId || t === v.sepId || t === v.padId) continue;
        if (i < spanEnd) continue;
        let spanLen = this.#spanLen(rng);
        spanEnd = i + spanLen;
        if (spanEnd > noPad.length) spanLen = noPad.length - i;
        index.push([i, spanLen]);
      }
    } else {
      let n = 0;
      if (this.#positions.length < noPad.length) this.#positions = new Int32Array(noPad.length * 2);
      positions = this.#positions;
      for (let i = 0; i < noPad.length; i++) {
        const t = noPad[i];
        if (t !== v.clsId && t !== v.sepId && t !== v.padId) positions[n++] = i;
      }
      positions = positions.subarray(0, n);
    }
    const num = numToPredict(noPad.length);
    // UER-py pads back to the input length (wwm may have changed the unpadded length).
    const src = noPad;
    while (src.length < inputLength) src.push(v.padId);

    const tgt: [number, number][] = [];
    if (positions) {
      rng.shuffle(positions);
      for (let k = 0; k < positions.length && tgt.length < num; k++) {
        const i = positions[k];
        tgt.push([i, src[i]]);
        const p = rng.random();
        if (p < 0.8) src[i] = v.maskId;
        else if (p < 0.9) src[i] = this.#randomId(rng);
      }
    } else {
      rng.shuffle(index!);
      for (const [i, len] of index!) {
        if (tgt.length >= num) break;
        if (tgt.length + len > num) continue;
        if (opts.wholeWordMasking) {
          for (let j = 0; j < len; j++) {
            tgt.push([i + j, src[i + j]]);
            const p = rng.random();
            if (p < 0.8) src[i + j] = v.maskId;
            else if (p < 0.9) src[i + j] = this.#randomId(rng);
          }
        } else {
          for (let j = 0; j < len; j++) tgt.push([i + j, src[i + j]]);
          const p = rng.random();
          if (p < 0.8) {
            for (let j = 0; j < len; j++) src[i + j] = v.maskId;
          } else if (p < 0.9) {
            for (let j = 0; j < len; j++) src[i + j] = this.#randomId(rng);
          }
        }
      }
    }
    tgt.sort((a, b) => a[0] - b[0]);
    return { src, tgtMlm: tgt };
  }

  /** `create_index` with whole_word_masking: re-tokenize jieba words of the decoded sentence. */
  #wholeWordIndex(src: number[]): { index: number[][]; src: number[] } {
    const v = this.vocab;
    const ww = this.options.wholeWord!;
    const srcLength = src.length;
    let body = src;
    const hasCls = body.length > 0 && body[0] === v.clsId;
    if (hasCls) body = body.slice(1);
    const hasSep = body.length > 0 && body[body.length - 1] === v.sepId;
    if (hasSep) body = body.slice(0, -1);
    const sentence = ww.idsToTokens(body).join("").replaceAll("[UNK]", "").replaceAll("##", "");
    const out: number[] = [];
    const index: number[][] = [];
    if (hasCls) out.push(v.clsId);
    for (const word of ww.cut(sentence)) {
      const position = out.length;
      for (const id of ww.wordToIds(word)) out.push(id);
      if (out.length < srcLength) index.push([position, out.length - position]);
    }
    if (hasSep) out.push(v.sepId);
    return { index, src: out.length > srcLength ? out.slice(0, srcLength) : out };
  }
}
