/**
 * The preprocessed dataset as a zarr v3 group (DESIGN.md §4) — the one writer and the one reader of
 * what `preprocess` produces and `pretrain` consumes (UER-py's pickled `dataset.pt` instead holds one
 * pickle per instance, `uer/utils/dataset.py`).
 *
 * Layout of a dataset `D`:
 * ```
 * D/zarr.json                  group; attributes = DatasetAttributes (format, flags, vocab hash, parts)
 * D/parts/<k>/src              [n, seq_length] uint16 (int32 when the vocab has > 65536 ids), [PAD]=0 padded
 * D/parts/<k>/length           [n] unpadded length of src
 * D/parts/<k>/seg_pos          [n, 2] len([CLS] A [SEP]), len(src)
 * D/parts/<k>/is_wrong_order   [n] uint8 SOP label
 * D/parts/<k>/mlm_pos          [n, P] masked positions, 0-padded (static masking only; P = max(1, round(0.15 L)))
 * D/parts/<k>/mlm_input        [n, P] the id the model is fed there: [MASK], a random id or the original
 * ```
 * Every array is chunked by rows (`chunk_rows`) and compressed with zstd (format 2). `src` holds the
 * original ids also with static masking; the reader puts `mlm_input` at `mlm_pos` and returns the
 * originals as targets, so instances equal UER-py's. (Format 1, still read: `src` masked, `mlm_id`
 * the originals, no compression.) The pretrain loader reads its buffer fills with `readMany`: on a
 * worker thread (dataset_worker.ts), ahead of time, packed in flat arrays, so decoding never holds the
 * training thread (Deno runs `node:zlib`'s zstd on the calling JS thread, its async API included).
 * Part k is written by worker k alone (its line range of the corpus), so parallel workers write
 * disjoint files of one dataset and nothing is merged; instance order is part order, as UER-py's
 * merged file. Several datasets made with `--shard K/N` combine by putting them in one folder:
 * `openDataset(folder)` reads every shard dataset inside it in shard order as one dataset (all N
 * shards, identical flags and vocab required). The writing half (attributes, `PartWriter`) lives in
 * part_writer.ts, re-exported here, so that preprocessing workers need not load zarrita. Not
 * browser compatible (file system).
 * @module
 */

import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";
import { DATASET_FORMAT, DATASET_READS_VERSIONS, type DatasetAttributes } from "./part_writer.ts";
import { registerCodecs, specStore, useNativeCodecs } from "../io/zarr.ts";
import type { PackedInstances } from "../train/loader.ts";

export {
  chunkRowsFor,
  DATASET_COMPRESSORS,
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  DATASET_READS_VERSIONS,
  type DatasetAttributes,
  type DatasetPart,
  type PartLayout,
  partLayout,
  PartWriter,
  writeDatasetAttributes,
} from "./part_writer.ts";

type IntDtype = "uint8" | "uint16" | "int32";
type IntArray = Uint8Array | Uint16Array | Int32Array;

/** One instance as read back: `src` unpadded, targets as sorted `[pos, original id]` pairs. */
export interface DatasetInstance {
  src: Int32Array;
  /** Empty with dynamic masking. */
  tgtMlm: [number, number][];
  isWrongOrder: 0 | 1;
  segPos: [number, number];
}

/** What `inspect` prints about a dataset. */
export interface DatasetSummary {
  count: number;
  /** Ids over all instances, `[CLS]`/`[SEP]` included, padding excluded. */
  tokens: number;
  meanLength: number;
  /** Instances shorter than seq_length. */
  padded: number;
  lengthHistogram: { from: number; to: number; count: number }[];
  masked: number;
  /** masked / tokens; null with dynamic masking. */
  maskedFraction: number | null;
  instancesWithoutMask: number;
  /** Instances with is_wrong_order 1. */
  wrongOrder: number;
  wrongOrderFraction: number;
  /** Bytes of every file of the dataset on disk (all shards). */
  bytes: number;
  /** `bytes / count`. */
  bytesPerInstance: number;
}

interface LoadedChunk {
  src: IntArray;
  length: IntArray;
  segPos: IntArray;
  wrong: IntArray;
  mlmPos?: IntArray;
  /** `mlm_input` (format 2) or `mlm_id` (format 1). */
  mlmIds?: IntArray;
  rows: number;
}

interface PartHandle {
  base: string; // dataset folder holding this part
  path: string;
  count: number;
  first: number; // global index of its first instance
  arrays?: Promise<zarr.Array<IntDtype, FileSystemStore>[]>;
}

/**
 * Reads a dataset (or a folder of `--shard` datasets) instance by instance. Chunks are decoded once
 * and cached (a few most recent), so sequential or clustered reads cost a copy per instance.
 */
export class DatasetReader {
  readonly path: string;
  readonly attrs: DatasetAttributes;
  readonly count: number;
  readonly seqLength: number;
  /** False when the dataset was made with `--dynamic_masking` (mask in the loader). */
  readonly staticMasking: boolean;
  /** The shard datasets it combines (itself when it is one dataset). */
  readonly sources: string[];
  #parts: PartHandle[];
  #cache = new Map<string, Promise<LoadedChunk>>();
  #cacheLimit = 8;
  /** Format 2: `src` stores the original ids, `mlm_input` the fed ones. */
  #unmaskedSrc: boolean;
  /** `readMany` of at least this many rows runs on the reading worker (fewer: on this thread). */
  workerMinRows = 1024;
  #worker: ReadWorker | null = null;

  constructor(path: string, attrs: DatasetAttributes, parts: PartHandle[], sources: string[]) {
    this.path = path;
    this.attrs = attrs;
    this.#parts = parts;
    this.sources = sources;
    this.count = parts.reduce((s, p) => s + p.count, 0);
    this.seqLength = attrs.seq_length;
    this.staticMasking = !attrs.dynamic_masking;
    this.#unmaskedSrc = attrs.format_version >= 2;
  }

  #locate(i: number): [PartHandle, number] {
    if (!(Number.isInteger(i) && i >= 0 && i < this.count)) {
      throw new RangeError(`Cannot read instance ${i} of dataset "${this.path}": it has ${this.count} instances`);
    }
    let lo = 0, hi = this.#parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#parts[mid].first <= i) lo = mid;
      else hi = mid - 1;
    }
    const p = this.#parts[lo];
    return [p, i - p.first];
  }

  #chunk(p: PartHandle, c: number, prefetch = true): Promise<LoadedChunk> {
    const key = `${p.base}\u0000${p.path}\u0000${c}`;
    let hit = this.#cache.get(key);
    if (hit) {
      this.#cache.delete(key); // refresh LRU position
      this.#cache.set(key, hit);
    } else {
      hit = this.#loadChunk(p, c);
      this.#cache.set(key, hit);
      hit.catch(() => this.#cache.delete(key));
      while (this.#cache.size > this.#cacheLimit) this.#cache.delete(this.#cache.keys().next().value!);
    }
    // Reads are mostly sequential (the loader fills its buffer in dataset order): start decoding the
    // next two chunks now, so they are ready when asked for (errors surface when they are read).
    const R = this.attrs.chunk_rows;
    for (let k = 1; prefetch && k <= 2 && (c + k) * R < p.count; k++) this.#chunk(p, c + k, false).catch(() => {});
    return hit;
  }

  async #loadChunk(p: PartHandle, c: number): Promise<LoadedChunk> {
    if (!p.arrays) {
      await useNativeCodecs();
      registerCodecs();
      const root = zarr.root(specStore(new FileSystemStore(p.base), p.base));
      const names = ["src", "length", "seg_pos", "is_wrong_order"];
      if (this.staticMasking) names.push("mlm_pos", this.#unmaskedSrc ? "mlm_input" : "mlm_id");
      p.arrays = Promise.all(
        names.map((n) =>
          zarr.open.v3(root.resolve(`${p.path}/${n}`), { kind: "array" }) as Promise<
            zarr.Array<IntDtype, FileSystemStore>
          >
        ),
      );
    }
    const arrays = await p.arrays;
    const chunks = await Promise.all(arrays.map((a) =>
      a.getChunk(a.shape.length === 2 ? [c, 0] : [c]).catch((e) => {
        const key = `${a.path.replace(/^\/+/, "")}/c/${c}${a.shape.length === 2 ? "/0" : ""}`;
        throw new TypeError(
          `Cannot read dataset "${p.base}": chunk "${key}" is damaged (${e instanceof Error ? e.message : e})` +
            `\n  hint: run preprocess again to rewrite the dataset`,
        );
      })
    ));
    const data = chunks.map((ch) => ch.data as IntArray);
    const R = arrays[0].chunks[0];
    return {
      src: data[0],
      length: data[1],
      segPos: data[2],
      wrong: data[3],
      mlmPos: data[4],
      mlmIds: data[5],
      rows: Math.min(R, p.count - c * R),
    };
  }

  /** Instance `i` (0-based, over all parts). */
  async instance(i: number): Promise<DatasetInstance> {
    const [p, local] = this.#locate(i);
    const R = this.attrs.chunk_rows;
    const ch = await this.#chunk(p, Math.floor(local / R));
    return this.#row(ch, local % R);
  }

  /**
   * Instances `indices` (ascending) packed as the pretrain loader keeps a buffer fill. Many rows (at
   * least `workerMinRows`) are read and decoded on a worker thread, so a training step running on this
   * thread meanwhile is not held up; `close()` stops that thread (it also stops after 10 s idle).
   *
   * @example
   * ```ts
   * const fill = await ds.readMany(Int32Array.of(0, 1, 2)); // fill.src, fill.srcStart, fill.tgtPos...
   * ds.close();
   * ```
   */
  readMany(indices: Int32Array): Promise<PackedInstances> {
    if (indices.length < this.workerMinRows || typeof Worker === "undefined") return this.readRows(indices);
    this.#worker ??= new ReadWorker(this.path);
    return this.#worker.read(indices);
  }

  /** {@link readMany} on this thread. */
  async readRows(indices: Int32Array): Promise<PackedInstances> {
    const n = indices.length, L = this.seqLength, R = this.attrs.chunk_rows;
    const P = this.staticMasking ? this.attrs.max_predictions : 0;
    // Ids as the batches hold them (int32): widened here, on the reading thread, not at each batch.
    const Ids = Int32Array;
    const Pos = L <= 65535 ? Uint16Array : Int32Array;
    // Sized for full rows and every target; trimmed to what the rows hold at the end.
    const out: PackedInstances = {
      indices: Int32Array.from(indices),
      srcStart: new Int32Array(n + 1),
      src: new Ids(n * L),
      tgtStart: new Int32Array(n + 1),
      tgtPos: new Pos(n * P),
      tgtId: new Ids(n * P),
      masked: new Uint8Array(n).fill(this.staticMasking ? 1 : 0),
      segPos: new Pos(2 * n),
      isWrongOrder: new Uint8Array(n),
    };
    let s = 0, t = 0;
    for (let r = 0; r < n;) {
      if (r > 0 && !(indices[r] > indices[r - 1])) {
        throw new RangeError(`Cannot read instances of dataset "${this.path}": indexes must ascend`);
      }
      const [p, local] = this.#locate(indices[r]);
      const c = Math.floor(local / R);
      const ch = await this.#chunk(p, c);
      const end = p.first + Math.min((c + 1) * R, p.count); // past the chunk's last instance
      for (; r < n && indices[r] < end && (r === 0 || indices[r] > indices[r - 1]); r++) {
        const row = indices[r] - p.first - c * R;
        const [len, nt] = this.#copyRow(ch, row, out.src, s, out.tgtPos, out.tgtId, t);
        s += len;
        t += nt;
        out.srcStart[r + 1] = s;
        out.tgtStart[r + 1] = t;
        out.segPos[2 * r] = ch.segPos[2 * row];
        out.segPos[2 * r + 1] = ch.segPos[2 * row + 1];
        out.isWrongOrder[r] = ch.wrong[row];
      }
    }
    out.src = out.src.slice(0, s);
    out.tgtPos = out.tgtPos.slice(0, t);
    out.tgtId = out.tgtId.slice(0, t);
    return out;
  }

  /** Stops the reading worker of `readMany`, if one runs (reading again starts another). */
  close(): void {
    this.#worker?.stop();
    this.#worker = null;
  }

  /** Instances `[start, end)` in order. */
  async instances(start: number, end: number): Promise<DatasetInstance[]> {
    const out: DatasetInstance[] = [];
    for (let i = start; i < end; i++) out.push(await this.instance(i));
    return out;
  }

  /** Count, length histogram, masked fraction and SOP balance over every instance (chunk by chunk). */
  async summary(): Promise<DatasetSummary> {
    const L = this.seqLength;
    // at most 8 buckets of equal width over lengths 0..L; no bucket starts past L
    const width = Math.ceil((L + 1) / Math.min(8, L));
    const buckets = Math.ceil((L + 1) / width);
    const hist = Array.from({ length: buckets }, (_, b) => ({
      from: b * width,
      to: Math.min(L, (b + 1) * width - 1),
      count: 0,
    }));
    let tokens = 0, masked = 0, wrong = 0, padded = 0, noMask = 0;
    const R = this.attrs.chunk_rows;
    const P = this.attrs.max_predictions;
    for (const p of this.#parts) {
      for (let c = 0; c * R < p.count; c++) {
        const ch = await this.#chunk(p, c);
        for (let r = 0; r < ch.rows; r++) {
          const n = ch.length[r];
          tokens += n;
          if (n < L) padded++;
          hist[Math.min(buckets - 1, Math.floor(n / width))].count++;
          wrong += ch.wrong[r];
          if (ch.mlmPos) {
            let k = 0;
            while (k < P && ch.mlmPos[r * P + k] !== 0) k++;
            masked += k;
            if (k === 0) noMask++;
          }
        }
      }
    }
    let bytes = 0;
    for (const dir of this.sources) bytes += await folderBytes(dir);
    return {
      count: this.count,
      tokens,
      meanLength: this.count ? tokens / this.count : 0,
      padded,
      lengthHistogram: hist,
      masked,
      maskedFraction: this.staticMasking ? (tokens ? masked / tokens : 0) : null,
      instancesWithoutMask: noMask,
      wrongOrder: wrong,
      wrongOrderFraction: this.count ? wrong / this.count : 0,
      bytes,
      bytesPerInstance: this.count ? bytes / this.count : 0,
    };
  }

  #row(ch: LoadedChunk, r: number): DatasetInstance {
    const P = ch.mlmPos ? this.attrs.max_predictions : 0;
    const src = new Int32Array(this.seqLength), pos = new Int32Array(P), ids = new Int32Array(P);
    const [n, nt] = this.#copyRow(ch, r, src, 0, pos, ids, 0);
    return {
      src: src.slice(0, n),
      tgtMlm: Array.from({ length: nt }, (_, k) => [pos[k], ids[k]] as [number, number]),
      isWrongOrder: ch.wrong[r] as 0 | 1,
      segPos: [ch.segPos[2 * r], ch.segPos[2 * r + 1]],
    };
  }

  /**
   * Row `r` of a chunk as the model is fed it: its ids into `src` at `s` (masks applied), its targets
   * (position, original id) into `pos`/`ids` at `t`. Returns the row's length and target count.
   */
  #copyRow(ch: LoadedChunk, r: number, src: IntArray, s: number, pos: IntArray, ids: IntArray, t: number) {
    const L = this.seqLength;
    const n = ch.length[r];
    if (n > L) throw new RangeError(`Cannot read dataset "${this.path}": a row is longer than seq_length ${L}`);
    src.set(ch.src.subarray(r * L, r * L + n), s);
    let k = 0;
    if (ch.mlmPos && ch.mlmIds) {
      const P = this.attrs.max_predictions;
      for (; k < P; k++) {
        const p = ch.mlmPos[r * P + k];
        if (p === 0) break;
        if (p >= n) throw new RangeError(`Cannot read dataset "${this.path}": a masked position is past its row`);
        pos[t + k] = p;
        if (this.#unmaskedSrc) {
          ids[t + k] = src[s + p]; // the original id; the model is fed mlm_input there
          src[s + p] = ch.mlmIds[r * P + k];
        } else ids[t + k] = ch.mlmIds[r * P + k];
      }
    }
    return [n, k] as const;
  }
}

/** A reading worker stops after this long without a request (so a forgotten one never holds the process). */
const WORKER_IDLE_MS = 10_000;

/** Requests to dataset_worker.ts and its answers. */
export type DatasetWorkerRequest = { type: "read"; id: number; path: string; indices: Int32Array };
export type DatasetWorkerAnswer =
  | { type: "done"; id: number; packed: PackedInstances }
  | { type: "error"; id: number; name: string; message: string };

/** The worker thread behind `DatasetReader.readMany`: one request at a time, in order. */
class ReadWorker {
  readonly path: string;
  #worker: Worker | null = null;
  #pending = new Map<number, { resolve: (p: PackedInstances) => void; reject: (e: Error) => void }>();
  #id = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;

  constructor(path: string) {
    this.path = path;
  }

  read(indices: Int32Array): Promise<PackedInstances> {
    clearTimeout(this.#idle);
    const w = this.#worker ??= this.#start();
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      w.postMessage({ type: "read", id, path: this.path, indices } satisfies DatasetWorkerRequest);
    });
  }

  #start(): Worker {
    const w = new Worker(new URL("./dataset_worker.ts", import.meta.url).href, { type: "module" });
    w.onmessage = (e: MessageEvent<DatasetWorkerAnswer>) => {
      const m = e.data;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.type === "done") p.resolve(m.packed);
      else {
        const Ctor = m.name === "RangeError" ? RangeError : m.name === "SyntaxError" ? SyntaxError : TypeError;
        p.reject(new Ctor(m.message));
      }
      if (this.#pending.size === 0) {
        const idle = setTimeout(() => this.stop(), WORKER_IDLE_MS);
        Deno.unrefTimer(idle);
        this.#idle = idle;
      }
    };
    w.onerror = (e) => {
      e.preventDefault();
      this.stop(new Error(`Cannot read dataset "${this.path}": its reading thread failed: ${e.message}`));
    };
    return w;
  }

  /** Terminates the thread; requests still pending fail with `reason`. */
  stop(reason = new Error(`Cannot read dataset "${this.path}": the reader was closed`)): void {
    clearTimeout(this.#idle);
    this.#worker?.terminate();
    this.#worker = null;
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
  }
}

async function readAttributes(dir: string): Promise<DatasetAttributes | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/zarr.json`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  let meta: { node_type?: string; attributes?: Partial<DatasetAttributes> };
  try {
    meta = JSON.parse(text);
  } catch {
    throw new SyntaxError(`Cannot open dataset "${dir}": zarr.json is not valid JSON`);
  }
  const a = meta.attributes ?? {};
  if (meta.node_type !== "group" || a.format !== DATASET_FORMAT) {
    throw new TypeError(
      `Cannot open dataset "${dir}": not a uer-ts dataset (format ${JSON.stringify(a.format ?? null)})` +
        `\n  hint: make one with \`preprocess --data_processor albert\``,
    );
  }
  if (!DATASET_READS_VERSIONS.includes(a.format_version as number)) {
    throw new TypeError(
      `Cannot open dataset "${dir}": format version is ${a.format_version}, this build reads ${
        DATASET_READS_VERSIONS.join(" and ")
      }` +
        `\n  hint: run preprocess again with this version`,
    );
  }
  return a as DatasetAttributes;
}

// Flags that must agree between shards combined into one dataset.
const SHARD_KEYS: (keyof DatasetAttributes)[] = [
  "format_version",
  "data_processor",
  "vocab_hash",
  "do_lower_case",
  "seq_length",
  "seed",
  "dup_factor",
  "short_seq_prob",
  "dynamic_masking",
  "whole_word_masking",
  "span_masking",
  "span_geo_prob",
  "span_max_length",
  "processes_num",
  "token_dtype",
  "chunk_rows",
  "corpus",
];

/**
 * Opens a dataset written by `preprocess`, or a folder whose sub-folders are the N datasets of a
 * `--shard K/N` run (read in shard order as one dataset).
 *
 * @example
 * ```ts
 * const ds = await openDataset("dataset_seq128");
 * const first = await ds.instance(0); // { src, tgtMlm, isWrongOrder, segPos }
 * ```
 */
export async function openDataset(path: string): Promise<DatasetReader> {
  const clean = path.replace(/\/+$/, "") || "/";
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(clean);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot open dataset "${path}": no such directory\n  hint: pass --dataset_path of a preprocessed dataset`,
      );
    }
    throw e;
  }
  if (!stat.isDirectory) throw new TypeError(`Cannot open dataset "${path}": not a directory`);
  const own = await readAttributes(clean);
  if (own) {
    const parts = handles(clean, own);
    return new DatasetReader(clean, own, parts, [clean]);
  }
  // A folder of shard datasets.
  const shards: { dir: string; attrs: DatasetAttributes }[] = [];
  for await (const e of Deno.readDir(clean)) {
    if (!e.isDirectory || e.name.startsWith(".")) continue;
    const attrs = await readAttributes(`${clean}/${e.name}`);
    if (attrs) shards.push({ dir: `${clean}/${e.name}`, attrs });
  }
  if (shards.length === 0) {
    throw new TypeError(
      `Cannot open dataset "${path}": no zarr.json and no shard datasets inside` +
        `\n  hint: pass --dataset_path of a preprocessed dataset or of a folder of --shard K/N outputs`,
    );
  }
  shards.sort((a, b) => (a.attrs.shard?.index ?? 0) - (b.attrs.shard?.index ?? 0));
  const first = shards[0].attrs;
  const n = first.shard?.count;
  for (const s of shards) {
    if (!s.attrs.shard || s.attrs.shard.count !== n) {
      throw new TypeError(`Cannot combine "${s.dir}" into dataset "${path}": it is not one of ${n ?? "N"} shards`);
    }
    for (const k of SHARD_KEYS) {
      if (JSON.stringify(s.attrs[k]) !== JSON.stringify(first[k])) {
        throw new TypeError(
          `Cannot combine "${s.dir}" into dataset "${path}": --${k} differs from "${shards[0].dir}"` +
            `\n  hint: make every shard with the same flags and vocab`,
        );
      }
    }
  }
  const have = shards.map((s) => s.attrs.shard!.index);
  const missing = Array.from({ length: n! }, (_, i) => i).filter((i) => !have.includes(i));
  if (missing.length > 0 || have.length !== n) {
    throw new TypeError(
      `Cannot open dataset "${path}": shards ${missing.length ? missing.join(", ") : "duplicated"} of ${n} ` +
        `are missing\n  hint: run preprocess --shard K/${n} for each missing K into this folder`,
    );
  }
  const parts: PartHandle[] = [];
  let total = 0;
  for (const s of shards) {
    for (const h of handles(s.dir, s.attrs, total)) parts.push(h);
    total += s.attrs.count;
  }
  const attrs: DatasetAttributes = {
    ...first,
    shard: null,
    count: total,
    replaced_lines: shards.reduce((a, s) => a + s.attrs.replaced_lines, 0),
    parts: parts.map((p) => ({ path: `${p.base.slice(clean.length + 1)}/${p.path}`, count: p.count, lines: [0, 0] })),
  };
  attrs.parts.forEach((p, i) => (p.lines = shards.flatMap((s) => s.attrs.parts)[i].lines));
  return new DatasetReader(clean, attrs, parts, shards.map((s) => s.dir));
}

/** Bytes of the files under `dir`. */
async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) n += await folderBytes(p);
    else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}

function handles(dir: string, attrs: DatasetAttributes, offset = 0): PartHandle[] {
  const out: PartHandle[] = [];
  let first = offset;
  for (const p of attrs.parts) {
    out.push({ base: dir, path: p.path, count: p.count, first });
    first += p.count;
  }
  return out;
}
