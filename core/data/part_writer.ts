/**
 * The writing half of the dataset format (layout in dataset_zarr.ts, DESIGN.md §2): the group
 * attributes, the part layout and `PartWriter`, which streams one worker's instances into its part
 * as zarr v3 arrays (`bytes` little-endian + `zstd`; chunk keys `c/<k>` and `c/<k>/0`) through the
 * project's zarr layer (core/io/zarr.ts: metadata, codecs), the same one the reader and checkpoints
 * use. Each full chunk is handed to a `ChunkSink`: by default compressed and written synchronously on
 * the worker's own thread (native zstd); where a core is spare, preprocess gives the writer a
 * compressing thread instead (chunk_compressor.ts), so zstd overlaps tokenizing. Parallel workers
 * write disjoint chunk files with no merge pass.
 * Not browser compatible (Deno file writes).
 * @module
 */

import type { AlbertInstance, InstanceRow } from "./albert_dataset.ts";
import { numToPredict } from "./masking.ts";
import {
  arrayMetadata,
  type CodecSpec,
  encodeChunk,
  groupMetadata,
  metadataBytes,
  useNativeCodecs,
  type ZarrDtype,
} from "../io/zarr.ts";

/** `format` attribute of a dataset group. */
export const DATASET_FORMAT = "uer-ts.dataset";
/**
 * Version of the layout this build writes. 2: arrays compressed with zstd, and with static masking
 * `src` holds the original ids and `mlm_input` what the model is fed at each masked position (1 stored
 * the masked `src` and the originals in `mlm_id`). Readers take 1 and 2.
 */
export const DATASET_FORMAT_VERSION = 2;
/** Versions `openDataset` reads. */
export const DATASET_READS_VERSIONS: readonly number[] = [1, 2];

/**
 * The dataset arrays' compressor, chosen by measurement (bench/dataset_codec_bench.ts, DESIGN.md §2):
 * zstd level 3, the registered zarr v3 `zstd` codec that zarr-python, tensorstore and zarrita read.
 */
export const DATASET_COMPRESSORS: readonly CodecSpec[] = [{
  name: "zstd",
  configuration: { level: 3, checksum: false },
}];

/**
 * Where a part writer's full chunks go. `write` compresses `values` with `compressors` and writes
 * them to `path`; it returns nothing when that is done, or a promise when it is under way elsewhere
 * (then the sink owns `values`, and the writer takes a fresh buffer).
 */
export interface ChunkSink {
  write(path: string, values: IntArray, compressors: readonly CodecSpec[]): void | Promise<void>;
}

/**
 * The default sink: compresses on this thread and writes synchronously (Deno's async writeFile cost
 * several times the CPU of writeFileSync for these 0.1–1 MiB files, measured); where compression is
 * asynchronous (wasm), the write follows it.
 */
export const writeHere: ChunkSink = {
  write(path, values, compressors) {
    const z = encodeChunk(values, compressors);
    if (z instanceof Promise) return z.then((b) => Deno.writeFile(path, b));
    Deno.writeFileSync(path, z);
  },
};

/** One part: which worker range it holds and how many instances. */
export interface DatasetPart {
  /** Group path inside the dataset, e.g. `parts/0`. */
  path: string;
  count: number;
  /** 0-based corpus line range `[start, end)` the worker read. */
  lines: [number, number];
}

/** Group attributes of a dataset (snake_case, as UER-py's flags). */
export interface DatasetAttributes {
  format: string;
  format_version: number;
  data_processor: "albert";
  tokenizer: "bert";
  do_lower_case: boolean;
  vocab_hash: string;
  vocab_size: number;
  special_ids: { pad: number; unk: number; cls: number; sep: number; mask: number };
  seq_length: number;
  seed: number;
  dup_factor: number;
  short_seq_prob: number;
  dynamic_masking: boolean;
  whole_word_masking: boolean;
  span_masking: boolean;
  span_geo_prob: number;
  span_max_length: number;
  processes_num: number;
  /** `--shard K/N` (0-based K), or null for a whole-corpus dataset. */
  shard: { index: number; count: number } | null;
  corpus: { name: string; bytes: number; lines: number };
  encoding_errors: "strict" | "replace";
  replaced_lines: number;
  token_dtype: "uint16" | "int32";
  chunk_rows: number;
  max_predictions: number;
  count: number;
  parts: DatasetPart[];
}

/** Rows per chunk: about 1 MiB of uint16 tokens per `src` chunk. */
export function chunkRowsFor(seqLength: number): number {
  const rows = 2 ** Math.floor(Math.log2(524288 / seqLength));
  return Math.min(8192, Math.max(256, rows));
}

/** Shape facts a part writer needs. */
export interface PartLayout {
  seqLength: number;
  tokenDtype: "uint16" | "int32";
  staticMasking: boolean;
  chunkRows: number;
}

/** The layout for a dataset of these settings. */
export function partLayout(seqLength: number, vocabSize: number, staticMasking: boolean): PartLayout {
  return {
    seqLength,
    tokenDtype: vocabSize <= 65536 ? "uint16" : "int32",
    staticMasking,
    chunkRows: chunkRowsFor(seqLength),
  };
}

type IntDtype = "uint8" | "uint16" | "int32";
/** The integer arrays of a dataset. */
export type IntArray = Uint8Array | Uint16Array | Int32Array;

function allocate(dtype: IntDtype, n: number): IntArray {
  return dtype === "uint8" ? new Uint8Array(n) : dtype === "uint16" ? new Uint16Array(n) : new Int32Array(n);
}

interface Column {
  name: string;
  dtype: IntDtype;
  width: number; // 0 = 1-D
  buf: IntArray;
}

/**
 * Streams instances into one part (`<dir>` becomes the part's group): rows are buffered per chunk,
 * each full chunk is written as one compressed file per array, and `close()` writes the last chunk
 * (zero rows past the count compress to a few bytes) and the array metadata with the final shapes.
 * With static masking the stored `src` is the original text (masks undone: the model's input at
 * masked positions goes to `mlm_input`), which compresses far better than the masked ids.
 *
 * @example
 * ```ts
 * const w = await PartWriter.create("tmp/parts/0", partLayout(128, 21128, true));
 * w.appendRow(row); // or: await w.append(instance)
 * const n = await w.close();
 * ```
 */
export class PartWriter {
  readonly layout: PartLayout;
  readonly dir: string;
  readonly compressors: readonly CodecSpec[];
  readonly sink: ChunkSink;
  #cols: Column[];
  #pending: Promise<void>[] = [];
  #row = 0; // rows in the current chunk
  #chunk = 0; // index of the current chunk
  count = 0;

  private constructor(
    dir: string,
    layout: PartLayout,
    cols: Column[],
    compressors: readonly CodecSpec[],
    sink: ChunkSink,
  ) {
    this.dir = dir;
    this.layout = layout;
    this.#cols = cols;
    this.compressors = compressors;
    this.sink = sink;
  }

  /**
   * Creates the part group and its array folders under `dir` (`compressors`: default
   * `DATASET_COMPRESSORS`; `sink`: where chunks are compressed and written, default this thread).
   */
  static async create(
    dir: string,
    layout: PartLayout,
    compressors: readonly CodecSpec[] = DATASET_COMPRESSORS,
    sink: ChunkSink = writeHere,
  ): Promise<PartWriter> {
    await useNativeCodecs();
    const L = layout.seqLength;
    const posType: IntDtype = L <= 65535 ? "uint16" : "int32";
    const P = numToPredict(L);
    const specs: [string, IntDtype, number][] = [
      ["src", layout.tokenDtype, L],
      ["length", posType, 0],
      ["seg_pos", posType, 2],
      ["is_wrong_order", "uint8", 0],
    ];
    if (layout.staticMasking) specs.push(["mlm_pos", posType, P], ["mlm_input", layout.tokenDtype, P]);
    const R = layout.chunkRows;
    const cols: Column[] = specs.map(([name, dtype, width]) => ({
      name,
      dtype,
      width,
      buf: allocate(dtype, R * Math.max(1, width)),
    }));
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(`${dir}/zarr.json`, metadataBytes(groupMetadata()));
    await Promise.all(cols.map((c) => Deno.mkdir(`${dir}/${c.name}`, { recursive: true })));
    return new PartWriter(dir, layout, cols, compressors, sink);
  }

  /** Adds one instance from the builder's buffers (a full chunk is written before it returns). */
  appendRow(row: InstanceRow): void {
    const L = this.layout.seqLength;
    const r = this.#row;
    const cols = this.#cols;
    const n = row.length;
    if (n > L) throw new RangeError(`instance of ${n} ids exceeds seq_length ${L}`);
    const src = row.src;
    const dst = cols[0].buf;
    for (let k = 0, o = r * L; k < n; k++) dst[o + k] = src[k];
    cols[1].buf[r] = n;
    cols[2].buf[2 * r] = row.segA;
    cols[2].buf[2 * r + 1] = n;
    cols[3].buf[r] = row.isWrongOrder;
    if (cols.length > 4) {
      const P = cols[4].width;
      const t = row.numTargets;
      if (t > P) throw new RangeError(`instance has ${t} masked positions, more than ${P}`);
      // Masks undone: src keeps the original id, mlm_input what the model is fed there.
      const pos = cols[4].buf, input = cols[5].buf, tp = row.tgtPos, ti = row.tgtId, o = r * L;
      for (let k = 0, q = r * P; k < t; k++) {
        const p = tp[k];
        pos[q + k] = p;
        input[q + k] = dst[o + p];
        dst[o + p] = ti[k];
      }
    }
    this.count++;
    if (++this.#row === this.layout.chunkRows) this.#flush();
  }

  /** Adds one instance (src ≤ seq_length ids; targets ≤ max predictions; seg_pos[1] = src length). */
  append(ins: AlbertInstance): Promise<void> {
    const L = this.layout.seqLength;
    const n = ins.src.length;
    if (n > L) return Promise.reject(new RangeError(`instance of ${n} ids exceeds seq_length ${L}`));
    const t = ins.tgtMlm ?? [];
    const src = Int32Array.from(ins.src);
    this.appendRow({
      src,
      length: n,
      segA: ins.segPos[0],
      isWrongOrder: ins.isWrongOrder,
      masked: ins.tgtMlm !== null,
      numTargets: t.length,
      tgtPos: Int32Array.from(t, (x) => x[0]),
      tgtId: Int32Array.from(t, (x) => x[1]),
    });
    return Promise.resolve();
  }

  // Hands the current chunk's buffers to the sink and clears them (or takes fresh ones, when the sink
  // keeps them for a write under way) for the next chunk.
  #flush(): void {
    if (this.#row === 0) return;
    const chunk = this.#chunk;
    for (const c of this.#cols) {
      const folder = `${this.dir}/${c.name}/c`;
      if (chunk === 0) Deno.mkdirSync(folder, { recursive: true });
      if (c.width) Deno.mkdirSync(`${folder}/${chunk}`, { recursive: true });
      const path = c.width ? `${folder}/${chunk}/0` : `${folder}/${chunk}`;
      const size = c.buf.length; // a sink on another thread detaches the buffer it takes
      const done = this.sink.write(path, c.buf, this.compressors);
      if (done instanceof Promise) {
        this.#pending.push(done);
        done.catch(() => {}); // awaited in close()
        c.buf = allocate(c.dtype, size);
      } else c.buf.fill(0);
    }
    this.#chunk++;
    this.#row = 0;
  }

  /** Writes the last (zero-padded) chunk and the array metadata; returns the instance count. */
  async close(): Promise<number> {
    this.#flush();
    await Promise.all(this.#pending);
    const R = this.layout.chunkRows;
    await Promise.all(this.#cols.map((c) =>
      Deno.writeFile(
        `${this.dir}/${c.name}/zarr.json`,
        metadataBytes(arrayMetadata({
          shape: c.width ? [this.count, c.width] : [this.count],
          chunkShape: c.width ? [R, c.width] : [R],
          dtype: c.dtype as ZarrDtype,
          compressors: [...this.compressors],
        })),
      )
    ));
    return this.count;
  }
}

/** Writes the dataset group's `zarr.json` with its attributes, and the `parts` group's. */
export async function writeDatasetAttributes(dir: string, attrs: DatasetAttributes): Promise<void> {
  await Deno.mkdir(`${dir}/parts`, { recursive: true });
  await Deno.writeFile(`${dir}/zarr.json`, metadataBytes(groupMetadata(attrs as unknown as Record<string, unknown>)));
  await Deno.writeFile(`${dir}/parts/zarr.json`, metadataBytes(groupMetadata()));
}
