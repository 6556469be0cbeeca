/**
 * Training checkpoints as zarr v3 groups (DESIGN.md §4), the uer-ts counterpart of UER-py's
 * `model_saver.py` `.bin` files: one chunked, gzip-compressed array per parameter under its UER name,
 * optional Adam moments under `moments/m/<name>` and `moments/v/<name>`, and group attributes with the
 * format version, the UER config, the step, the vocab hash, the parameter order and free-form `extra`
 * (loader position, RNG state). Written into a temporary sibling folder and renamed, so a killed run
 * never leaves a half checkpoint under the final name. Every chunk must exist on read (zarr would
 * silently fill a missing chunk with zeros; a checkpoint never has one).
 *
 * Not browser compatible: file-system glue (FileSystemStore, atomic rename). The store-level functions
 * `writeCheckpointToStore` / `readCheckpointFromStore` are, given a browser store.
 * @module
 */
import * as zarr from "zarrita";
import { gunzipSync, gzipSync } from "fflate";
import type { AlbertConfig } from "../config.ts";
import { validateConfig } from "../config.ts";
import { type DType, numel, type Tensor, type TensorData } from "../tensor.ts";
import { exists, writeDirAtomic } from "../io/atomic.ts";

/** The checkpoint layout version this build writes and reads. */
export const CHECKPOINT_FORMAT_VERSION = 1;
const FORMAT_NAME = "uer-ts-checkpoint";
/** Largest array accepted on read (elements), so a corrupt shape cannot demand absurd memory. */
const MAX_ELEMENTS = 2 ** 28;

async function hasKey(store: zarr.Readable, key: string): Promise<boolean> {
  // deno-lint-ignore no-explicit-any
  const st = store as any;
  if (typeof st.has === "function") return await st.has(key);
  return (await st.get(key)) !== undefined;
}

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
}

const ZARR_DTYPE: Partial<Record<DType, string>> = {
  F32: "float32",
  F64: "float64",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
};
const FROM_ZARR = Object.fromEntries(Object.entries(ZARR_DTYPE).map(([k, v]) => [v, k])) as Record<string, DType>;

let registered = false;
/**
 * Registers a gzip codec that can encode (zarrita's built-in one only decodes), backed by fflate.
 * Idempotent; the decoder also reads what numcodecs/zarr-python write.
 */
export function registerGzipCodec(): void {
  if (registered) return;
  registered = true;
  class GzipCodec {
    kind = "bytes_to_bytes" as const;
    level: number;
    constructor(level: number) {
      this.level = level;
    }
    static fromConfig(config: { level?: number }) {
      return new GzipCodec(config?.level ?? 1);
    }
    async encode(bytes: Uint8Array): Promise<Uint8Array> {
      // Native deflate (web-standard CompressionStream) is several times faster than fflate here;
      // fflate stays as the fallback where the stream API is missing.
      if (typeof CompressionStream === "undefined") return gzipSync(bytes, { level: this.level as 1, mtime: 0 });
      const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
      return new Uint8Array(await new Response(stream).arrayBuffer());
    }
    decode(bytes: Uint8Array): Uint8Array {
      return gunzipSync(bytes);
    }
  }
  // deno-lint-ignore no-explicit-any
  zarr.registry.set("gzip", () => GzipCodec as any);
}

function chunkShapeFor(shape: number[], itemSize: number, chunkBytes: number): number[] {
  if (shape.length === 0) return [];
  const rowElems = numel(shape.slice(1)) || 1;
  const rows = Math.max(1, Math.min(shape[0], Math.floor(chunkBytes / (rowElems * itemSize))));
  return [rows, ...shape.slice(1)];
}

/** A store wrapper that turns a missing chunk into an error instead of zeros. */
function strictStore(store: zarr.Readable, source: string): zarr.Readable {
  return {
    async get(key: `/${string}`, opts?: unknown) {
      // deno-lint-ignore no-explicit-any
      const v = await (store as any).get(key, opts);
      if (v === undefined && /\/c(\/\d+)*$/.test(key)) {
        throw new RangeError(`Cannot load checkpoint "${source}": chunk "${key.slice(1)}" is missing`);
      }
      return v;
    },
  } as zarr.Readable;
}

/**
 * Writes a checkpoint into a zarr store (no atomicity: see `writeCheckpoint`).
 */
export async function writeCheckpointToStore(
  store: zarr.Mutable,
  ckpt: Checkpoint,
  opts: CheckpointWriteOptions = {},
): Promise<void> {
  registerGzipCodec();
  const level = opts.level ?? 1;
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const root = zarr.root(store);
  const names = [...ckpt.params.keys()];
  await zarr.create(root, {
    attributes: {
      format: FORMAT_NAME,
      format_version: CHECKPOINT_FORMAT_VERSION,
      config: ckpt.config,
      step: ckpt.step,
      vocab_hash: ckpt.vocabHash,
      parameters: names,
      moments: ckpt.moments !== undefined,
      extra: ckpt.extra ?? {},
    },
  });
  const writeArray = async (path: string, name: string, t: Tensor) => {
    const dt = ZARR_DTYPE[t.dtype];
    if (!dt) throw new TypeError(`Cannot write checkpoint tensor "${name}": dtype ${t.dtype} is not supported`);
    if (numel(t.shape) !== t.data.length) {
      throw new RangeError(`Cannot write checkpoint tensor "${name}": shape [${t.shape}] does not match its data`);
    }
    const itemSize = t.data.BYTES_PER_ELEMENT;
    const shape = t.shape.length === 0 ? [1] : t.shape;
    const arr = await zarr.create(root.resolve(path), {
      shape,
      chunkShape: chunkShapeFor(shape, itemSize, chunkBytes),
      dtype: dt as "float32",
      codecs: [{ name: "bytes", configuration: { endian: "little" } }, { name: "gzip", configuration: { level } }],
      attributes: t.shape.length === 0 ? { scalar: true } : {},
    });
    // deno-lint-ignore no-explicit-any
    await zarr.set(arr, null, { data: t.data as any, shape, stride: strides(shape) });
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
}

function strides(shape: number[]): number[] {
  const s = new Array(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
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
  registerGzipCodec();
  const s = strictStore(store, source);
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
  if (a.format_version !== CHECKPOINT_FORMAT_VERSION) {
    throw fail(`format version is ${a.format_version}, this build reads ${CHECKPOINT_FORMAT_VERSION}`);
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
      // The last chunk must exist before the whole array is allocated (a corrupt shape fails here).
      const last = arr.shape.map((d, i) => Math.max(1, Math.ceil(d / arr.chunks[i])) - 1);
      if (arr.shape.length > 0 && !(await hasKey(store, `${arr.path}/c/${last.join("/")}`))) {
        throw fail(`chunk "${arr.path.slice(1)}/c/${last.join("/")}" is missing`);
      }
      const chunk = await zarr.get(arr, null) as { data: unknown; shape: number[] };
      const scalar = (arr.attrs as Record<string, unknown>).scalar === true;
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
  const { default: FileSystemStore } = await import("@zarrita/storage/fs");
  await writeDirAtomic(path, async (tmp) => {
    await writeCheckpointToStore(new FileSystemStore(tmp), ckpt, opts);
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
  const { default: FileSystemStore } = await import("@zarrita/storage/fs");
  return readCheckpointFromStore(new FileSystemStore(path), path);
}
