/**
 * Training checkpoints as zarr v3 groups (DESIGN.md §4), the uer-ts counterpart of UER-py's
 * `model_saver.py` `.bin` files: one chunked, gzip-compressed array per parameter under its UER name,
 * optional Adam moments under `moments/m/<name>` and `moments/v/<name>`, and group attributes with the
 * format version, the UER config, the step, the vocab hash, the parameter order and free-form `extra`
 * (loader position, RNG state). Written into a temporary sibling folder and renamed, so a killed run
 * never leaves a half checkpoint under the final name. Metadata and codecs come from the project's
 * zarr layer (core/io/zarr.ts), so the folder is zarr v3 by the spec and zarr v3 written by other
 * tools reads back (omitted chunks as the fill value, sharded arrays, other codecs).
 *
 * Chunks are written straight from views of the tensors (no zarr-side copy), many at once; gzip is
 * level 1 with zlib's RLE strategy (float weights gain nothing from LZ matches), native where
 * `node:zlib` exists.
 *
 * Not browser compatible: file-system glue (`writeCheckpoint` / `readCheckpoint`: a Deno folder store /
 * FileSystemStore, atomic rename, a dynamic import of `node:zlib`). The store-level functions
 * `writeCheckpointToStore` / `readCheckpointFromStore` are, given a browser store (they then use
 * CompressionStream / fflate).
 * @module
 */
import * as zarr from "zarrita";
import type { AlbertConfig } from "../config.ts";
import { validateConfig } from "../config.ts";
import { type DType, numel, type Tensor, type TensorData } from "../tensor.ts";
import { exists, writeDirAtomic } from "../io/atomic.ts";
import {
  arrayMetadata,
  type CodecSpec,
  encodeChunk,
  groupMetadata,
  metadataBytes,
  registerCodecs,
  specStore,
  useNativeCodecs,
  type ZarrDtype,
} from "../io/zarr.ts";

/**
 * The checkpoint layout version this build writes (2: numeric fill values, group metadata for
 * `moments/`; the arrays are the same as in 1, which this build also reads).
 */
export const CHECKPOINT_FORMAT_VERSION = 2;
const READS_VERSIONS = [1, 2];
const FORMAT_NAME = "uer-ts-checkpoint";
/** Largest array accepted on read (elements), so a corrupt shape cannot demand absurd memory. */
const MAX_ELEMENTS = 2 ** 28;

/** What a checkpoint holds. */
export interface Checkpoint {
  /** UER names, UER order. */
  params: Map<string, Tensor>;
  /** Adam first/second moments, same names as `params`. */
  moments?: { m: Map<string, Tensor>; v: Map<string, Tensor> };
  config: AlbertConfig;
  step: number;
  vocabHash: string;
  extra?: Record<string, unknown>;
}

/** Options of `writeCheckpoint`. */
export interface CheckpointWriteOptions {
  /** Replace an existing checkpoint at the path. */
  overwrite?: boolean;
  /** gzip level 0-9 (default 1: float weights barely compress; speed matters more). */
  level?: number;
  /** Target bytes per chunk (default 1 MiB). */
  chunkBytes?: number;
  /** Chunks compressed and stored at once (default 4; compression itself is synchronous under Deno). */
  concurrency?: number;
  /**
   * Called before a tensor's values are first read (e.g. to load a lazily read storage), and once
   * all its chunks are stored (e.g. to free it), so a writer need not hold every tensor at once.
   */
  tensorHooks?: { acquire(t: Tensor): void | Promise<void>; done(t: Tensor): void };
}

const ZARR_DTYPE: Partial<Record<DType, ZarrDtype>> = {
  F32: "float32",
  F64: "float64",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
};
const FROM_ZARR = Object.fromEntries(Object.entries(ZARR_DTYPE).map(([k, v]) => [v, k])) as Record<string, DType>;

/**
 * Frees a buffer this module allocated and no one else holds (detaching it releases its memory now,
 * not at the next GC, which V8 delays until ~64 MB of such garbage piled up). Small buffers, which
 * may share a pooled slab, are left to the GC.
 */
function release(b: Uint8Array): void {
  const ab = b.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
  if (ab instanceof ArrayBuffer && ab.byteLength >= 1 << 16 && typeof ab.transfer === "function") ab.transfer(0);
}

/**
 * A zarr store on a local folder with Deno's file API (keys are "/a/b/c"). Its `set` has written
 * the value to disk before it resolves and keeps no reference to it.
 */
function denoFolderStore(root: string) {
  const made = new Set<string>();
  return {
    async get(key: string): Promise<Uint8Array | undefined> {
      try {
        return await Deno.readFile(root + key);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      }
    },
    async set(key: string, value: Uint8Array): Promise<void> {
      const path = root + key;
      const dir = path.slice(0, path.lastIndexOf("/"));
      if (!made.has(dir)) {
        await Deno.mkdir(dir, { recursive: true });
        made.add(dir);
      }
      await Deno.writeFile(path, value);
    },
  };
}

/**
 * Runs jobs with at most `limit` in flight; `run` waits for a free slot, `drain` for all. The first
 * failure is rethrown by the next `run` or by `drain` (never left as an unhandled rejection).
 */
function pool(limit: number) {
  const pending = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;
  const check = () => {
    if (failed) throw failed.error;
  };
  return {
    async run(job: () => Promise<void>): Promise<void> {
      while (pending.size >= limit) await Promise.race(pending);
      check();
      const p: Promise<void> = job().catch((error) => {
        failed ??= { error };
      }).finally(() => pending.delete(p));
      pending.add(p);
    },
    async drain(): Promise<void> {
      await Promise.all(pending);
      check();
    },
  };
}

function chunkShapeFor(shape: number[], itemSize: number, chunkBytes: number): number[] {
  if (shape.length === 0) return [];
  const rowElems = numel(shape.slice(1)) || 1;
  const rows = Math.max(1, Math.min(shape[0], Math.floor(chunkBytes / (rowElems * itemSize))));
  return [rows, ...shape.slice(1)];
}

/**
 * Writes a checkpoint into a zarr store (no atomicity: see `writeCheckpoint`).
 */
export function writeCheckpointToStore(
  store: zarr.Mutable,
  ckpt: Checkpoint,
  opts: CheckpointWriteOptions = {},
): Promise<void> {
  return writeToStore(store, ckpt, opts, false);
}

/** `writeCheckpointToStore`; with `ownsChunks` the store keeps no chunk, so each is freed once stored. */
async function writeToStore(
  store: zarr.Mutable,
  ckpt: Checkpoint,
  opts: CheckpointWriteOptions,
  ownsChunks: boolean,
): Promise<void> {
  const level = opts.level ?? 1;
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const names = [...ckpt.params.keys()];
  const gzip: CodecSpec[] = [{ name: "gzip", configuration: { level } }];
  const setMeta = (path: string, meta: Record<string, unknown>) =>
    store.set(`/${path ? `${path}/` : ""}zarr.json`, metadataBytes(meta));
  await setMeta(
    "",
    groupMetadata({
      format: FORMAT_NAME,
      format_version: CHECKPOINT_FORMAT_VERSION,
      config: ckpt.config,
      step: ckpt.step,
      vocab_hash: ckpt.vocabHash,
      parameters: names,
      // The LayerNorm these weights run with (and were trained with): UER-py's, unbiased std + 1e-6.
      layer_norm: "uer",
      moments: ckpt.moments !== undefined,
      extra: ckpt.extra ?? {},
    }),
  );
  if (ckpt.moments) {
    // zarr v3 has no implicit groups: every folder on the way to an array is a group with its zarr.json
    for (const g of ["moments", "moments/m", "moments/v"]) await setMeta(g, groupMetadata());
  }
  // Chunks span whole rows (axis 0), so each is a contiguous range of the tensor's bytes: it is
  // compressed straight from a view (the last one padded with zeros to the full chunk, as zarr's
  // regular grid requires), and chunks of all arrays are in flight together.
  const jobs = pool(opts.concurrency ?? 4);
  const writeArray = async (path: string, name: string, t: Tensor) => {
    const dt = ZARR_DTYPE[t.dtype];
    if (!dt) throw new TypeError(`Cannot write checkpoint tensor "${name}": dtype ${t.dtype} is not supported`);
    if (numel(t.shape) !== t.data.length) {
      throw new RangeError(`Cannot write checkpoint tensor "${name}": shape [${t.shape}] does not match its data`);
    }
    if (t.data.length === 0) {
      throw new RangeError(`Cannot write checkpoint tensor "${name}": shape [${t.shape}] has no elements`);
    }
    await opts.tensorHooks?.acquire(t);
    const itemSize = t.data.BYTES_PER_ELEMENT;
    const shape = t.shape.length === 0 ? [1] : t.shape;
    const chunkShape = chunkShapeFor(shape, itemSize, chunkBytes);
    await setMeta(
      path,
      arrayMetadata({
        shape,
        chunkShape,
        dtype: dt,
        compressors: gzip,
        attributes: t.shape.length === 0 ? { scalar: true } : {},
      }),
    );
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const chunkLen = numel(chunkShape) * itemSize;
    const rest = shape.slice(1).map(() => 0);
    let left = Math.ceil(bytes.byteLength / chunkLen);
    for (let i = 0, off = 0; off < bytes.byteLength; i++, off += chunkLen) {
      let raw = bytes.subarray(off, off + chunkLen);
      if (raw.byteLength < chunkLen) {
        const padded = new Uint8Array(chunkLen);
        padded.set(raw);
        raw = padded;
      }
      const key = `/${path}/c/${[i, ...rest].join("/")}` as const;
      const padded = raw.buffer !== bytes.buffer;
      await jobs.run(async () => {
        try {
          const z = await encodeChunk(raw, gzip);
          await store.set(key, z);
          if (ownsChunks) {
            if (z.buffer !== raw.buffer && z.buffer !== bytes.buffer) release(z);
            if (padded) release(raw);
          }
        } finally {
          if (--left === 0) opts.tensorHooks?.done(t);
        }
      });
    }
  };
  for (const [name, t] of ckpt.params) await writeArray(name, name, t);
  if (ckpt.moments) {
    for (const [which, map] of [["m", ckpt.moments.m], ["v", ckpt.moments.v]] as const) {
      for (const name of names) {
        const t = map.get(name);
        if (!t) throw new TypeError(`Cannot write checkpoint: moment "${which}" of "${name}" is missing`);
        await writeArray(`moments/${which}/${name}`, `${which}:${name}`, t);
      }
    }
  }
  await jobs.drain();
}

/**
 * Reads a checkpoint from a zarr store; `source` names it in errors.
 */
export async function readCheckpointFromStore(store: zarr.Readable, source: string): Promise<Checkpoint> {
  try {
    return await readStore(store, source);
  } catch (e) {
    // Anything not already phrased for the user (a library's own error) becomes one line naming the file.
    if (e instanceof Error && e.message.includes(`"${source}"`)) throw e;
    throw new TypeError(`Cannot load checkpoint "${source}": ${String((e as Error)?.message ?? e).split("\n")[0]}`);
  }
}

async function readStore(store: zarr.Readable, source: string): Promise<Checkpoint> {
  registerCodecs();
  const s = specStore(store, source);
  const fail = (what: string) => new TypeError(`Cannot load checkpoint "${source}": ${what}`);
  let group: zarr.Group<zarr.Readable>;
  try {
    group = await zarr.open(zarr.root(s), { kind: "group" });
  } catch (e) {
    if (e instanceof Error && e.message.includes(`"${source}"`)) throw e;
    throw fail(`not a zarr checkpoint (${(e as Error).message.split("\n")[0]})`);
  }
  const a = (group.attrs ?? {}) as Record<string, unknown>;
  if (a.format !== FORMAT_NAME) throw fail(`attribute "format" is ${JSON.stringify(a.format)}, not "${FORMAT_NAME}"`);
  if (!READS_VERSIONS.includes(a.format_version as number)) {
    throw fail(`format version is ${a.format_version}, this build reads ${READS_VERSIONS.join(" and ")}`);
  }
  if (!Array.isArray(a.parameters) || !a.parameters.every((n) => typeof n === "string")) {
    throw fail(`attribute "parameters" is not a list of names`);
  }
  if (typeof a.step !== "number" || !Number.isInteger(a.step) || a.step < 0) throw fail(`attribute "step" is invalid`);
  if (typeof a.vocab_hash !== "string") throw fail(`attribute "vocab_hash" is missing`);
  if (typeof a.config !== "object" || a.config === null) throw fail(`attribute "config" is missing`);
  const config = validateConfig(a.config as Record<string, unknown>, `${source} (config attribute)`);
  const readArray = async (path: string): Promise<Tensor> => {
    try {
      const arr = await zarr.open(group.resolve(path), { kind: "array" });
      const dtype = FROM_ZARR[arr.dtype as string];
      if (!dtype) throw fail(`array "${path}" has unsupported dtype ${arr.dtype}`);
      const count = numel(arr.shape);
      if (!arr.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || count > MAX_ELEMENTS) {
        throw fail(`array "${path}" has an implausible shape [${arr.shape}]`);
      }
      // Omitted chunks read as the fill value (zarr v3; tensorstore and zarr-python omit chunks equal to it).
      const chunk = await zarr.get(arr, null) as { data: unknown; shape: number[] };
      const scalar = (arr.attrs as Record<string, unknown> | undefined)?.scalar === true; // attributes are optional
      const data = chunk.data as TensorData;
      if (data.length !== count || (scalar && count !== 1)) throw fail(`array "${path}" decodes to the wrong size`);
      return { dtype, shape: scalar ? [] : [...arr.shape], data };
    } catch (e) {
      if (e instanceof Error && e.message.includes(`"${source}"`)) throw e;
      throw fail(`array "${path}" is missing or malformed (${(e as Error)?.message?.split("\n")[0]})`);
    }
  };
  const names = a.parameters as string[];
  const params = new Map<string, Tensor>();
  for (const n of names) params.set(n, await readArray(n));
  let moments: Checkpoint["moments"];
  if (a.moments === true) {
    moments = { m: new Map(), v: new Map() };
    for (const n of names) {
      moments.m.set(n, await readArray(`moments/m/${n}`));
      moments.v.set(n, await readArray(`moments/v/${n}`));
    }
  }
  return {
    params,
    moments,
    config,
    step: a.step,
    vocabHash: a.vocab_hash,
    extra: (a.extra ?? {}) as Record<string, unknown>,
  };
}

/**
 * Writes a checkpoint folder atomically (temp sibling + rename).
 *
 * @example
 * ```ts
 * await writeCheckpoint("models/albert-1000", { params, config, step: 1000, vocabHash });
 * ```
 */
export async function writeCheckpoint(
  path: string,
  ckpt: Checkpoint,
  opts: CheckpointWriteOptions = {},
): Promise<void> {
  if (!opts.overwrite && (await exists(path))) {
    throw new TypeError(
      `Cannot write checkpoint "${path}": it already exists\n  hint: pass --overwrite or pick another path`,
    );
  }
  await useNativeCodecs();
  await writeDirAtomic(path, async (tmp) => {
    await writeToStore(denoFolderStore(tmp) as unknown as zarr.Mutable, ckpt, opts, true);
  }, { overwrite: opts.overwrite });
}

/**
 * Reads a checkpoint folder.
 *
 * @example
 * ```ts
 * const { params, config, step } = await readCheckpoint("models/albert-1000");
 * ```
 */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  if (!(await exists(`${path}/zarr.json`))) {
    throw new Deno.errors.NotFound(`Cannot load checkpoint "${path}": no zarr.json there`);
  }
  await useNativeCodecs();
  const { default: FileSystemStore } = await import("@zarrita/storage/fs");
  return readCheckpointFromStore(new FileSystemStore(path), path);
}
