/**
 * The pretraining data loader, in UER-py's order (`uer/utils/dataloader.py`: `Dataloader._fill_buf` +
 * `BertDataloader.__iter__`, which `AlbertDataloader` inherits): read up to `instances_buffer_size`
 * instances of this rank (instance read number r goes to rank `r mod world_size`; the count runs on
 * across passes, as UER-py's `read_count`), CPython-`random.shuffle` the buffer, cut it into consecutive
 * batches (the last one smaller, never dropped), pad rows to the dataset's seq_length, skip batches
 * without a masked token, and re-read from the first instance after the end of the dataset. Instances
 * stored without masks (`--dynamic_masking`) are masked here with the same generator, in row order, as
 * UER-py's `mask_seq` in the loader. The whole position (file offset, read count, buffer, cursor and the
 * generator state) is a plain JSON object, so a run restored from a checkpoint continues with the batch
 * it would have drawn next.
 *
 * Reading runs ahead of training: which instances the next fill reads does not depend on the generator,
 * so as soon as a fill is shuffled the loader asks its source for the next fill's instances
 * (`InstanceSource.readMany`; the zarr dataset reader reads and decodes them on a worker thread) and
 * keeps them packed in flat arrays. When the buffer runs out, the next fill is usually in memory
 * already: a step waits only for the shuffle and the copy of its own rows, whatever the dataset's
 * codec. The order of batches and of generator draws is unchanged. Browser compatible.
 * @module
 */

import { PyRandom, type PyRandomState } from "../data/py_random.ts";
import type { Masker } from "../data/masking.ts";

/** One stored instance as the dataset reader returns it (UER's `((src, pad_num), tgt_mlm, is_wrong_order, seg_pos)`). */
export interface LoaderInstance {
  /** `[CLS] A [SEP] B [SEP]` ids, unpadded. */
  src: ArrayLike<number>;
  /** Sorted `[position, original id]` targets; null/undefined when masking is dynamic. */
  tgtMlm?: ArrayLike<readonly [number, number] | number[]> | null;
  /** SOP label (1 = A and B swapped). */
  isWrongOrder: number;
  /** `[len([CLS] A [SEP]), len(src)]`. */
  segPos: readonly [number, number] | number[];
}

/** Random access to a dataset's instances (in-memory lists and the zarr dataset reader both fit). */
export interface InstanceSource {
  /** Number of instances in the dataset (all ranks). */
  readonly count: number;
  /** Rows are padded to this length (the dataset's `--seq_length`). */
  readonly seqLength: number;
  /** Instance `i` in dataset order. */
  instance(i: number): LoaderInstance | Promise<LoaderInstance>;
  /**
   * Instances `indices` (ascending) at once, packed; optional (the loader packs `instance(i)` otherwise).
   * A source that can should do the work off the calling thread: the loader asks for a fill ahead of
   * time, while the trainer's step holds this thread.
   */
  readMany?(indices: Int32Array): Promise<PackedInstances>;
}

/**
 * Instances in flat arrays, row `r` being dataset instance `indices[r]` (what a buffer fill holds).
 * Row r's ids are `src[srcStart[r] .. srcStart[r + 1])` (as the model is fed: masks applied, unpadded);
 * its targets `[tgtPos[k], tgtId[k]]` for k in `tgtStart[r] .. tgtStart[r + 1]`, ascending positions.
 */
export interface PackedInstances {
  /** Dataset indexes, ascending. */
  indices: Int32Array;
  srcStart: Int32Array;
  src: Int32Array | Uint16Array;
  tgtStart: Int32Array;
  tgtPos: Int32Array | Uint16Array;
  /** The original id at each target position. */
  tgtId: Int32Array | Uint16Array;
  /** 1 where the row has stored targets, 0 where the loader masks it (`tgtMlm` null: dynamic masking). */
  masked: Uint8Array;
  /** `[len([CLS] A [SEP]), len(src)]` per row. */
  segPos: Int32Array | Uint16Array;
  isWrongOrder: Uint8Array;
}

/** The arrays of a {@link PackedInstances} (to transfer them between threads). */
export function packedBuffers(p: PackedInstances): ArrayBuffer[] {
  const arrays = [p.indices, p.srcStart, p.src, p.tgtStart, p.tgtPos, p.tgtId, p.masked, p.segPos, p.isWrongOrder];
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

/**
 * Packs instances given one by one (`get(i)` for each of `indices`, ascending), for sources without
 * `readMany`.
 *
 * @example
 * ```ts
 * const packed = await packInstances(Int32Array.of(0, 2), (i) => list[i]);
 * ```
 */
export async function packInstances(
  indices: Int32Array,
  get: (i: number) => LoaderInstance | Promise<LoaderInstance>,
): Promise<PackedInstances> {
  const n = indices.length;
  const rows: LoaderInstance[] = new Array(n);
  let nSrc = 0, nTgt = 0;
  for (let r = 0; r < n; r++) {
    const ins = await get(indices[r]);
    rows[r] = ins;
    nSrc += ins.src.length;
    nTgt += ins.tgtMlm?.length ?? 0;
  }
  const p: PackedInstances = {
    indices: Int32Array.from(indices),
    srcStart: new Int32Array(n + 1),
    src: new Int32Array(nSrc),
    tgtStart: new Int32Array(n + 1),
    tgtPos: new Int32Array(nTgt),
    tgtId: new Int32Array(nTgt),
    masked: new Uint8Array(n),
    segPos: new Int32Array(2 * n),
    isWrongOrder: new Uint8Array(n),
  };
  let s = 0, t = 0;
  for (let r = 0; r < n; r++) {
    const ins = rows[r];
    for (let k = 0; k < ins.src.length; k++) p.src[s++] = ins.src[k];
    p.srcStart[r + 1] = s;
    if (ins.tgtMlm !== null && ins.tgtMlm !== undefined) {
      p.masked[r] = 1;
      for (let k = 0; k < ins.tgtMlm.length; k++) {
        p.tgtPos[t] = ins.tgtMlm[k][0];
        p.tgtId[t++] = ins.tgtMlm[k][1];
      }
    }
    p.tgtStart[r + 1] = t;
    p.segPos[2 * r] = ins.segPos[0];
    p.segPos[2 * r + 1] = ins.segPos[1];
    p.isWrongOrder[r] = ins.isWrongOrder;
  }
  return p;
}

/** Row of dataset index `i` in `p` (binary search over the ascending indices), or -1. */
function rowOf(p: PackedInstances, i: number): number {
  const idx = p.indices;
  let lo = 0, hi = idx.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = idx[mid];
    if (v === i) return mid;
    if (v < i) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** A fill read ahead: the indices it reads from `position`/`readCount` on, where it leaves them, its data. */
interface FillPlan {
  from: number;
  fromCount: number;
  indices: Int32Array;
  position: number;
  readCount: number;
  data: Promise<PackedInstances>;
}

/** One training batch, row-major `[batchSize * seqLength]`, as UER-py's loader yields it. */
export interface Batch {
  src: Int32Array;
  /** Original id at predicted positions, 0 elsewhere. */
  tgtMlm: Int32Array;
  /** UER segment ids: 1 = A (with [CLS] and the first [SEP]), 2 = B, 0 = padding. */
  seg: Int32Array;
  /** SOP labels, one per row. */
  tgtSop: Int32Array;
  batchSize: number;
  seqLength: number;
}

/** A batch with where it came from. */
export interface LoadedBatch {
  batch: Batch;
  /** Dataset indexes of the rows, in row order. */
  instanceIndices: number[];
  /** Number of predicted positions in the batch. */
  nMasked: number;
}

/** The loader's position: everything needed to draw the same next batch after a restart. */
export interface LoaderState {
  version: 1;
  /** Next instance to read from the dataset (UER's file offset). */
  position: number;
  /** Instances read so far over all passes (UER's `read_count`, decides the rank). */
  readCount: number;
  /** The current shuffled buffer as dataset indexes. */
  buffer: number[];
  /** Index into `buffer` of the next batch's first row. */
  start: number;
  /** The python `random` state (shuffles and dynamic masks). */
  rng: PyRandomState;
  /** Buffer fills so far. */
  fills: number;
}

/** Loader settings (UER-py flag names in camelCase). */
export interface LoaderOptions {
  batchSize: number;
  /** `--instances_buffer_size` (UER-py default 25600). */
  instancesBufferSize: number;
  /** This process's rank (default 0). */
  rank?: number;
  /** Number of ranks (default 1). */
  worldSize?: number;
  /** `set_seed(seed)`: the generator starts as `random.seed(seed)`. Ignored when `rng` is given. */
  seed?: number;
  /** A generator to draw from (shared with other code, as UER-py's module-level `random`). */
  rng?: PyRandom;
  /** Masks instances stored without targets (`--dynamic_masking`); required if the dataset has such. */
  masker?: Masker;
  /** `[PAD]` id (default 0). */
  padId?: number;
  /** Called after each buffer fill with the shuffled order (dataset indexes). */
  onFill?: (order: readonly number[]) => void;
}

/**
 * UER-py's `AlbertDataloader`, as an async iterator of batches.
 *
 * @example
 * ```ts
 * const loader = new AlbertLoader(dataset, { batchSize: 8, instancesBufferSize: 25600, seed: 7 });
 * const { batch, instanceIndices } = await loader.next();
 * const saved = loader.state(); // store with the checkpoint; later: loader.restore(saved)
 * ```
 */
export class AlbertLoader {
  readonly source: InstanceSource;
  readonly batchSize: number;
  readonly bufferSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly rng: PyRandom;
  readonly masker?: Masker;
  readonly padId: number;
  onFill?: (order: readonly number[]) => void;
  #position = 0;
  #readCount = 0;
  #buffer: number[] = [];
  #start = 0;
  #fills = 0;
  /** The buffer's instances, packed (UER-py keeps the buffer in memory); null after `restore`. */
  #loaded: PackedInstances | null = null;
  /** The next fill, being read while the current buffer is used. */
  #ahead: FillPlan | null = null;

  constructor(source: InstanceSource, options: LoaderOptions) {
    const { batchSize, instancesBufferSize } = options;
    const rank = options.rank ?? 0;
    const worldSize = options.worldSize ?? 1;
    if (!(Number.isInteger(batchSize) && batchSize > 0)) {
      throw new RangeError(`Invalid --batch_size ${batchSize}: must be a positive integer`);
    }
    if (!(Number.isInteger(instancesBufferSize) && instancesBufferSize > 0)) {
      throw new RangeError(`Invalid --instances_buffer_size ${instancesBufferSize}: must be a positive integer`);
    }
    if (!(Number.isInteger(worldSize) && worldSize > 0 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new RangeError(`Invalid rank ${rank} of --world_size ${worldSize}`);
    }
    if (source.count <= rank) {
      throw new RangeError(
        `Cannot load batches for rank ${rank}: the dataset has only ${source.count} instance(s)` +
          `\n  hint: preprocess a larger corpus or lower --world_size`,
      );
    }
    this.source = source;
    this.batchSize = batchSize;
    this.bufferSize = instancesBufferSize;
    this.rank = rank;
    this.worldSize = worldSize;
    this.rng = options.rng ?? new PyRandom(options.seed ?? 7);
    this.masker = options.masker;
    this.padId = options.padId ?? 0;
    this.onFill = options.onFill;
  }

  /**
   * The fill `_fill_buf` makes from `position`/`readCount`: this rank's next instances in dataset order,
   * stopping at the buffer size or at the dataset's end (then the next fill starts from 0); its
   * instances start loading now.
   */
  #plan(position: number, readCount: number): FillPlan {
    const from = position, fromCount = readCount;
    const picked: number[] = [];
    const n = this.source.count;
    for (;;) {
      if (position >= n) {
        position = 0; // EOF: UER-py seeks back to 0 and stops this fill
        break;
      }
      const i = position++;
      readCount++;
      if ((readCount - 1) % this.worldSize === this.rank) {
        picked.push(i);
        if (picked.length >= this.bufferSize) break;
      }
    }
    const indices = Int32Array.from(picked);
    const data = this.#read(indices);
    data.catch(() => {}); // a read ahead that is never used must not fail the run; a used one rethrows
    return { from, fromCount, indices, position, readCount, data };
  }

  #read(indices: Int32Array): Promise<PackedInstances> {
    if (this.source.readMany) return this.source.readMany(indices);
    return packInstances(indices, (i) => this.source.instance(i));
  }

  /** `_fill_buf`: takes the fill read ahead (or reads it now), shuffles it, and starts reading the next. */
  async #fill(): Promise<void> {
    const ahead = this.#ahead;
    const plan = ahead && ahead.from === this.#position && ahead.fromCount === this.#readCount
      ? ahead
      : this.#plan(this.#position, this.#readCount);
    this.#ahead = null;
    const loaded = await plan.data;
    this.#position = plan.position;
    this.#readCount = plan.readCount;
    const buffer = Array.from(plan.indices);
    this.rng.shuffle(buffer);
    this.#buffer = buffer;
    this.#loaded = loaded;
    this.#start = 0;
    this.#fills++;
    this.onFill?.(buffer);
    this.#ahead = this.#plan(this.#position, this.#readCount);
  }

  /** After `restore`: read the buffer's instances back, and the next fill ahead. */
  async #reload(): Promise<void> {
    const current = this.#read(Int32Array.from(this.#buffer).sort());
    this.#ahead ??= this.#plan(this.#position, this.#readCount);
    this.#loaded = await current;
  }

  /** The next batch with at least one masked token. */
  async next(): Promise<LoadedBatch> {
    // A rank sees every instance of its shard at least once in 2 passes; a batch-free stretch
    // longer than that means no instance has a target.
    let emptyStreak = 0;
    const limit = 2 * Math.ceil(this.source.count / this.worldSize) + 2;
    let emptyFills = 0;
    for (;;) {
      if (this.#loaded === null && this.#start < this.#buffer.length) await this.#reload();
      while (this.#start >= this.#buffer.length) {
        await this.#fill();
        if (this.#buffer.length === 0 && ++emptyFills > 2) {
          throw new RangeError(`Cannot load batches for rank ${this.rank}: it reads no instance`);
        }
      }
      const indices = this.#buffer.slice(this.#start, this.#start + this.batchSize);
      this.#start += this.batchSize;
      const loaded = this.#assemble(indices);
      if (loaded.nMasked > 0) return loaded;
      emptyStreak += indices.length;
      if (emptyStreak > limit) {
        throw new RangeError(
          "Cannot load batches: no instance of the dataset has a masked token\n  hint: re-run preprocess",
        );
      }
    }
  }

  #assemble(indices: number[]): LoadedBatch {
    const rows = indices.length;
    const t = this.source.seqLength;
    const src = new Int32Array(rows * t);
    const tgtMlm = new Int32Array(rows * t);
    const seg = new Int32Array(rows * t);
    const tgtSop = new Int32Array(rows);
    if (this.padId !== 0) src.fill(this.padId);
    const p = this.#loaded!;
    let nMasked = 0;
    for (let r = 0; r < rows; r++) {
      const q = rowOf(p, indices[r]);
      if (q < 0) throw new RangeError(`Cannot load instance ${indices[r]}: it is not in the loaded buffer`);
      const s0 = p.srcStart[q], len = p.srcStart[q + 1] - s0;
      if (len > t) {
        throw new RangeError(
          `Cannot load instance ${indices[r]}: ${len} ids exceed the dataset's seq_length ${t}`,
        );
      }
      const o = r * t;
      if (p.masked[q]) {
        src.set(p.src.subarray(s0, s0 + len), o);
        const t0 = p.tgtStart[q], t1 = p.tgtStart[q + 1];
        for (let k = t0; k < t1; k++) tgtMlm[o + p.tgtPos[k]] = p.tgtId[k];
        nMasked += t1 - t0;
      } else {
        if (!this.masker) {
          throw new TypeError(
            `Cannot load instance ${indices[r]}: it has no masks (dynamic masking) and no masker was given`,
          );
        }
        // NOTE: UER-py masks the padded row; mask_seq strips and restores the trailing [PAD]s.
        const padded = new Array<number>(t).fill(this.padId);
        for (let k = 0; k < len; k++) padded[k] = p.src[s0 + k];
        const m = this.masker.mask(padded, this.rng);
        for (let k = 0; k < Math.min(m.src.length, t); k++) src[o + k] = m.src[k];
        for (const [pos, id] of m.tgtMlm) tgtMlm[o + pos] = id;
        nMasked += m.tgtMlm.length;
      }
      tgtSop[r] = p.isWrongOrder[q];
      const a = p.segPos[2 * q], b = p.segPos[2 * q + 1];
      seg.fill(1, o, o + a);
      seg.fill(2, o + a, o + b);
    }
    return { batch: { src, tgtMlm, seg, tgtSop, batchSize: rows, seqLength: t }, instanceIndices: indices, nMasked };
  }

  /** Number of buffer fills so far. */
  get fills(): number {
    return this.#fills;
  }

  /** The loader's position, as a JSON-serializable object. */
  state(): LoaderState {
    return {
      version: 1,
      position: this.#position,
      readCount: this.#readCount,
      buffer: [...this.#buffer],
      start: this.#start,
      rng: this.rng.getState(),
      fills: this.#fills,
    };
  }

  /** Puts the loader back where {@link state} was taken. */
  restore(state: LoaderState): void {
    if (state?.version !== 1 || !Array.isArray(state.buffer)) {
      throw new TypeError("Cannot restore the loader: unknown loader state (version 1 expected)");
    }
    const n = this.source.count;
    if (!(state.position >= 0 && state.position <= n) || state.buffer.some((i) => !(i >= 0 && i < n))) {
      throw new RangeError(`Cannot restore the loader: its state points past the dataset's ${n} instances`);
    }
    this.rng.setState(state.rng);
    this.#position = state.position;
    this.#readCount = state.readCount;
    this.#buffer = [...state.buffer];
    this.#start = state.start;
    this.#fills = state.fills ?? 0;
    this.#loaded = null; // read back on the next batch
    this.#ahead = null; // a read ahead from before is not this position's
  }
}
