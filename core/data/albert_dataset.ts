/**
 * ALBERT's MLM + SOP instances, built exactly as UER-py's `AlbertDataset` (`uer/utils/dataset.py`:
 * `worker`, `create_ins_from_doc`, `truncate_seq_pair`; masking in `mask.py`) with the same python
 * `random` calls in the same order: per document one `random()` (+ `randint(2, max)` for a short
 * target), per chunk `randint(1, n-1)` when it has ≥ 2 sentences, one `random()` for the SOP swap, one
 * per truncation step, then `mask_seq` (unless masking is dynamic). A document is a run of non-blank
 * lines; the last document of a line range is built but not cleared, so with `dup_factor > 1` it is
 * glued in front of the first document of the next pass (UER-py's carry-over, kept on purpose).
 * Browser compatible.
 * @module
 */

import { Masker, type MaskingOptions, type MaskingVocab } from "./masking.ts";
import type { PyRandom } from "./py_random.ts";

/** One instance: `src` unpadded (masked unless masking is dynamic), targets, SOP label, segment ends. */
export interface AlbertInstance {
  /** `[CLS] A [SEP] B [SEP]` ids. */
  src: number[];
  /** Sorted `[position, original id]` pairs; null with dynamic masking. */
  tgtMlm: [number, number][] | null;
  /** 1 when A and B were swapped (SOP label). */
  isWrongOrder: 0 | 1;
  /** `[len([CLS] A [SEP]), len(src)]`. */
  segPos: [number, number];
}

/** The flags that shape instances (UER-py names in camelCase). */
export interface AlbertDatasetOptions extends MaskingOptions {
  seqLength: number;
  shortSeqProb: number;
  dynamicMasking: boolean;
}

/**
 * `create_ins_from_doc` + the document assembly of `AlbertDataset.worker`.
 *
 * @example
 * ```ts
 * const b = new AlbertInstanceBuilder(vocab, { seqLength: 128, shortSeqProb: 0.1, dynamicMasking: false }, new PyRandom(7));
 * b.buildDocument([[2769, 4263], [872, 1962]], (ins) => console.log(ins.src));
 * ```
 */
export class AlbertInstanceBuilder {
  readonly vocab: MaskingVocab;
  readonly options: AlbertDatasetOptions;
  readonly rng: PyRandom;
  readonly masker: Masker | null;
  #document: ArrayLike<number>[] = [];

  constructor(vocab: MaskingVocab, options: AlbertDatasetOptions, rng: PyRandom) {
    if (!(options.seqLength >= 4)) {
      throw new RangeError(`Invalid --seq_length ${options.seqLength}: must be at least 4 ([CLS] A [SEP] B [SEP])`);
    }
    this.vocab = vocab;
    this.options = options;
    this.rng = rng;
    this.masker = options.dynamicMasking ? null : new Masker(vocab, options);
  }

  /**
   * Feeds one corpus line, as the worker loop does: `ids` null for a blank line (ends the document),
   * `last` true for the last line of the worker's range (builds the open document without clearing it).
   * Returns the number of instances emitted.
   */
  line(ids: ArrayLike<number> | null, last: boolean, emit: (ins: AlbertInstance) => void): number {
    let n = 0;
    if (ids === null) {
      if (this.#document.length >= 1) n += this.buildDocument(this.#document, emit);
      this.#document = [];
    } else if (ids.length > 0) {
      this.#document.push(ids);
    }
    // NOTE: UER-py does not reset `document` here: it carries into the next dup_factor pass.
    if (last && this.#document.length >= 1) n += this.buildDocument(this.#document, emit);
    return n;
  }

  /** `create_ins_from_doc(document)`: chunks, A/B split, SOP swap, truncation, masking. */
  buildDocument(document: ArrayLike<number>[], emit: (ins: AlbertInstance) => void): number {
    const rng = this.rng;
    const v = this.vocab;
    const seqLength = this.options.seqLength;
    const maxNumTokens = seqLength - 3;
    let targetSeqLength = maxNumTokens;
    if (rng.random() < this.options.shortSeqProb) targetSeqLength = rng.randint(2, maxNumTokens);

    let n = 0;
    let chunkStart = 0;
    let currentLength = 0;
    for (let i = 0; i < document.length; i++) {
      currentLength += document[i].length;
      if (i !== document.length - 1 && currentLength < targetSeqLength) continue;
      const chunkLen = i + 1 - chunkStart;
      const aEnd = chunkLen >= 2 ? rng.randint(1, chunkLen - 1) : 1;
      let a = concat(document, chunkStart, chunkStart + aEnd);
      let b = concat(document, chunkStart + aEnd, i + 1);
      let isWrongOrder: 0 | 1 = 0;
      if (rng.random() < 0.5) {
        isWrongOrder = 1;
        const t = a;
        a = b;
        b = t;
      }
      // truncate_seq_pair: each step trims one token from the longer side (tie -> B), from the front
      // when random() < 0.5. The sides depend only on the lengths, so the steps are counted in bulk:
      // the longer side alone until both are equal, then B, A, B, A, ...
      let aLo = 0, aHi = a.length, bLo = 0, bHi = b.length;
      let excess = a.length + b.length - maxNumTokens;
      if (excess > 0) {
        const d = Math.min(Math.abs(a.length - b.length), excess);
        if (d > 0) {
          const [e, o] = rng.halfCounts(d);
          if (a.length > b.length) {
            aLo += e + o;
            aHi -= d - e - o;
          } else {
            bLo += e + o;
            bHi -= d - e - o;
          }
          excess -= d;
        }
        if (excess > 0) {
          const [onB, onA] = rng.halfCounts(excess);
          const stepsB = (excess + 1) >> 1;
          const stepsA = excess >> 1;
          bLo += onB;
          bHi -= stepsB - onB;
          aLo += onA;
          aHi -= stepsA - onA;
        }
      }
      const src = new Array<number>(aHi - aLo + bHi - bLo + 3);
      let k = 0;
      src[k++] = v.clsId;
      for (let j = aLo; j < aHi; j++) src[k++] = a[j];
      src[k++] = v.sepId;
      const segA = k;
      for (let j = bLo; j < bHi; j++) src[k++] = b[j];
      src[k++] = v.sepId;
      const segPos: [number, number] = [segA, k];
      if (this.masker) {
        const m = this.masker.maskInPlace(src, rng);
        emit({ src: m.src, tgtMlm: m.tgtMlm, isWrongOrder, segPos });
      } else {
        emit({ src, tgtMlm: null, isWrongOrder, segPos });
      }
      n++;
      chunkStart = i + 1;
      currentLength = 0;
    }
    return n;
  }
}

function concat(doc: ArrayLike<number>[], from: number, to: number): ArrayLike<number> {
  if (to - from === 1) return doc[from];
  let n = 0;
  for (let j = from; j < to; j++) n += doc[j].length;
  const out = new Int32Array(n);
  n = 0;
  for (let j = from; j < to; j++) {
    const s = doc[j];
    for (let k = 0; k < s.length; k++) out[n++] = s[k];
  }
  return out;
}
