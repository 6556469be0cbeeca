/**
 * ALBERT's MLM + SOP instances, built exactly as UER-py's `AlbertDataset` (`uer/utils/dataset.py`:
 * `worker`, `create_ins_from_doc`, `truncate_seq_pair`; masking in `mask.py`) with the same python
 * `random` calls in the same order: per document one `random()` (+ `randint(2, max)` for a short
 * target), per chunk `randint(1, n-1)` when it has ≥ 2 sentences, one `random()` for the SOP swap, one
 * per truncation step, then `mask_seq` (unless masking is dynamic). A document is a run of non-blank
 * lines; the last document of a line range is built but not cleared, so with `dup_factor > 1` it is
 * glued in front of the first document of the next pass (UER-py's carry-over, kept on purpose).
 * The hot path (`feed` / `buildRows`) builds each instance in reused typed arrays (an
 * {@link InstanceRow}) and copies token ranges straight out of the document's sentences, so nothing
 * is allocated per instance or per token; `line` / `buildDocument` wrap it into plain objects.
 * Browser compatible.
 * @module
 */

import { Masker, type MaskingOptions, type MaskingVocab, numToPredict } from "./masking.ts";
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

/**
 * One instance in the builder's reused buffers (valid only during the callback that receives it):
 * `src[0, length)` is `[CLS] A [SEP] B [SEP]`, `tgtPos[0, numTargets)` / `tgtId` the sorted targets.
 */
export interface InstanceRow {
  readonly src: Int32Array;
  readonly length: number;
  /** `len([CLS] A [SEP])` (seg_pos[0]; seg_pos[1] is `length`). */
  readonly segA: number;
  readonly isWrongOrder: 0 | 1;
  /** False with dynamic masking (no targets). */
  readonly masked: boolean;
  readonly numTargets: number;
  readonly tgtPos: Int32Array;
  readonly tgtId: Int32Array;
}

/** The flags that shape instances (UER-py names in camelCase). */
export interface AlbertDatasetOptions extends MaskingOptions {
  seqLength: number;
  shortSeqProb: number;
  dynamicMasking: boolean;
}

class Row implements InstanceRow {
  src: Int32Array;
  length = 0;
  segA = 0;
  isWrongOrder: 0 | 1 = 0;
  masked: boolean;
  numTargets = 0;
  tgtPos: Int32Array;
  tgtId: Int32Array;
  constructor(seqLength: number, masked: boolean) {
    this.src = new Int32Array(seqLength);
    this.masked = masked;
    this.tgtPos = new Int32Array(numToPredict(seqLength));
    this.tgtId = new Int32Array(numToPredict(seqLength));
  }
}

/** A plain-object copy of a row. */
export function rowToInstance(r: InstanceRow): AlbertInstance {
  const tgt: [number, number][] | null = r.masked ? [] : null;
  for (let k = 0; k < r.numTargets; k++) tgt!.push([r.tgtPos[k], r.tgtId[k]]);
  return {
    src: Array.from(r.src.subarray(0, r.length)),
    tgtMlm: tgt,
    isWrongOrder: r.isWrongOrder,
    segPos: [r.segA, r.length],
  };
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
  #row: Row;

  constructor(vocab: MaskingVocab, options: AlbertDatasetOptions, rng: PyRandom) {
    if (!(options.seqLength >= 4)) {
      throw new RangeError(`Invalid --seq_length ${options.seqLength}: must be at least 4 ([CLS] A [SEP] B [SEP])`);
    }
    this.vocab = vocab;
    this.options = options;
    this.rng = rng;
    this.masker = options.dynamicMasking ? null : new Masker(vocab, options);
    this.#row = new Row(options.seqLength, !options.dynamicMasking);
  }

  /**
   * Feeds one corpus line, as the worker loop does: `ids` null for a blank line (ends the document),
   * `last` true for the last line of the worker's range (builds the open document without clearing it).
   * Returns the number of instances emitted.
   */
  line(ids: ArrayLike<number> | null, last: boolean, emit: (ins: AlbertInstance) => void): number {
    return this.feed(ids, last, (r) => emit(rowToInstance(r)));
  }

  /**
   * {@link line} for the hot path: each instance goes to `onRow` in the builder's reused buffers.
   * `ids` is kept (not copied) until its document is built.
   */
  feed(ids: ArrayLike<number> | null, last: boolean, onRow: (row: InstanceRow) => void): number {
    let n = 0;
    if (ids === null) {
      if (this.#document.length >= 1) n += this.buildRows(this.#document, onRow);
      this.#document = [];
    } else if (ids.length > 0) {
      this.#document.push(ids);
    }
    // NOTE: UER-py does not reset `document` here: it carries into the next dup_factor pass.
    if (last && this.#document.length >= 1) n += this.buildRows(this.#document, onRow);
    return n;
  }

  /** `create_ins_from_doc(document)`: chunks, A/B split, SOP swap, truncation, masking. */
  buildDocument(document: ArrayLike<number>[], emit: (ins: AlbertInstance) => void): number {
    return this.buildRows(document, (r) => emit(rowToInstance(r)));
  }

  /** {@link buildDocument} into the builder's reused buffers. */
  buildRows(document: ArrayLike<number>[], onRow: (row: InstanceRow) => void): number {
    const rng = this.rng;
    const v = this.vocab;
    const row = this.#row;
    const src = row.src;
    const seqLength = this.options.seqLength;
    const maxNumTokens = seqLength - 3;
    let targetSeqLength = maxNumTokens;
    if (rng.random() < this.options.shortSeqProb) targetSeqLength = rng.randint(2, maxNumTokens);

    let n = 0;
    let chunkStart = 0;
    let currentLength = 0;
    const docLen = document.length;
    for (let i = 0; i < docLen; i++) {
      currentLength += document[i].length;
      if (i !== docLen - 1 && currentLength < targetSeqLength) continue;
      const chunkLen = i + 1 - chunkStart;
      const aEnd = chunkStart + (chunkLen >= 2 ? rng.randint(1, chunkLen - 1) : 1);
      let lenA = 0;
      for (let j = chunkStart; j < aEnd; j++) lenA += document[j].length;
      const lenB = currentLength - lenA;
      // A = sentences [aFrom, aTo), B = [bFrom, bTo) after the SOP swap.
      let aFrom = chunkStart, aTo = aEnd, bFrom = aEnd, bTo = i + 1, la = lenA, lb = lenB;
      let isWrongOrder: 0 | 1 = 0;
      if (rng.random() < 0.5) {
        isWrongOrder = 1;
        aFrom = aEnd;
        aTo = i + 1;
        bFrom = chunkStart;
        bTo = aEnd;
        la = lenB;
        lb = lenA;
      }
      // truncate_seq_pair: each step trims one token from the longer side (tie -> B), from the front
      // when random() < 0.5. The sides depend only on the lengths, so the steps are counted in bulk:
      // the longer side alone until both are equal, then B, A, B, A, ...
      let aLo = 0, aHi = la, bLo = 0, bHi = lb;
      let excess = la + lb - maxNumTokens;
      if (excess > 0) {
        const d = Math.min(Math.abs(la - lb), excess);
        if (d > 0) {
          const [e, o] = rng.halfCounts(d);
          if (la > lb) {
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
      let k = 0;
      src[k++] = v.clsId;
      k = copyTokens(document, aFrom, aTo, aLo, aHi, src, k);
      src[k++] = v.sepId;
      row.segA = k;
      k = copyTokens(document, bFrom, bTo, bLo, bHi, src, k);
      src[k++] = v.sepId;
      row.length = k;
      row.isWrongOrder = isWrongOrder;
      row.numTargets = this.masker ? this.masker.maskIds(src, k, rng, row.tgtPos, row.tgtId) : 0;
      onRow(row);
      n++;
      chunkStart = i + 1;
      currentLength = 0;
    }
    return n;
  }
}

/**
 * Copies tokens `[lo, hi)` of the concatenation of sentences `[from, to)` to `dst` at `at`; returns
 * the end offset.
 */
function copyTokens(
  doc: ArrayLike<number>[],
  from: number,
  to: number,
  lo: number,
  hi: number,
  dst: Int32Array,
  at: number,
): number {
  let offset = 0; // position of sentence j's first token in the concatenation
  for (let j = from; j < to && offset < hi; j++) {
    const s = doc[j];
    const len = s.length;
    const x = lo > offset ? lo - offset : 0;
    const y = hi - offset < len ? hi - offset : len;
    if (y > x) {
      if (s instanceof Int32Array) dst.set(x === 0 && y === len ? s : s.subarray(x, y), at);
      else for (let t = x; t < y; t++) dst[at + t - x] = s[t];
      at += y - x;
    }
    offset += len;
  }
  return at;
}
