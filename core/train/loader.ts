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
 * it would have drawn next. Browser compatible.
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
  /** The buffer's instances by dataset index (UER-py keeps the buffer in memory). */
  #loaded: Map<number, LoaderInstance> | null = new Map();

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
   * `_fill_buf`: read this rank's next instances (stop at the buffer size or the dataset end) into
   * memory, in dataset order, then shuffle the buffer.
   */
  async #fill(): Promise<void> {
    const buffer: number[] = [];
    const n = this.source.count;
    for (;;) {
      if (this.#position >= n) {
        this.#position = 0; // EOF: UER-py seeks back to 0 and stops this fill
        break;
      }
      const i = this.#position++;
      this.#readCount++;
      if ((this.#readCount - 1) % this.worldSize === this.rank) {
        buffer.push(i);
        if (buffer.length >= this.bufferSize) break;
      }
    }
    const loaded = new Map<number, LoaderInstance>();
    for (const i of buffer) loaded.set(i, await this.source.instance(i));
    this.rng.shuffle(buffer);
    this.#buffer = buffer;
    this.#loaded = loaded;
    this.#start = 0;
    this.#fills++;
    this.onFill?.(buffer);
  }

  /** After `restore`: read the buffer's instances back, in dataset order. */
  async #reload(): Promise<void> {
    const loaded = new Map<number, LoaderInstance>();
    for (const i of [...this.#buffer].sort((a, b) => a - b)) loaded.set(i, await this.source.instance(i));
    this.#loaded = loaded;
  }

  /** The next batch with at least one masked token. */
  async next(): Promise<LoadedBatch> {
    // A rank sees every instance of its shard at least once in 2 passes; a batch-free stretch
    // longer than that means no instance has a target.
    let emptyStreak = 0;
    const limit = 2 * Math.ceil(this.source.count / this.worldSize) + 2;
    let emptyFills = 0;
    for (;;) {
      if (this.#loaded === null) await this.#reload();
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
    let nMasked = 0;
    for (let r = 0; r < rows; r++) {
      const ins = this.#loaded!.get(indices[r])!;
      const len = ins.src.length;
      if (len > t) {
        throw new RangeError(
          `Cannot load instance ${indices[r]}: ${len} ids exceed the dataset's seq_length ${t}`,
        );
      }
      const o = r * t;
      let row: ArrayLike<number> = ins.src;
      let targets = ins.tgtMlm;
      if (targets === null || targets === undefined) {
        if (!this.masker) {
          throw new TypeError(
            `Cannot load instance ${indices[r]}: it has no masks (dynamic masking) and no masker was given`,
          );
        }
        // NOTE: UER-py masks the padded row; mask_seq strips and restores the trailing [PAD]s.
        const padded = new Array<number>(t).fill(this.padId);
        for (let k = 0; k < len; k++) padded[k] = ins.src[k];
        const m = this.masker.mask(padded, this.rng);
        row = m.src;
        targets = m.tgtMlm;
      }
      for (let k = 0; k < Math.min(row.length, t); k++) src[o + k] = row[k];
      for (let k = 0; k < targets.length; k++) {
        const [pos, id] = targets[k];
        tgtMlm[o + pos] = id;
      }
      nMasked += targets.length;
      tgtSop[r] = ins.isWrongOrder;
      const [a, b] = ins.segPos;
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
  }
}
