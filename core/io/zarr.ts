/**
 * The project's one zarr v3 layer (https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html),
 * used by checkpoints (core/checkpoint/zarr.ts) and datasets (core/data/): metadata written by the
 * spec (numeric `fill_value`, `attributes`, a `zarr.json` for every group), chunks encoded through
 * zarrita's codec registry, and reading through zarrita with what it lacks filled in:
 * - codecs that encode (`gzip`, `zstd` with `checksum`, `crc32c` that verifies), `blosc` with its
 *   v3 configuration (`shuffle` as a word), all registered in `zarr.registry`;
 * - `specStore()`: a store wrapper that bounds metadata size, turns the spec's hex-string float fill
 *   values into numbers and serves `sharding_indexed` shards whose index sits at the start
 *   (`index_location: "start"`; zarrita reads only the default "end").
 * Omitted chunks read as the fill value (zarrita), as tensorstore and zarr-python write them.
 *
 * Compression runs where it is fastest: `node:zlib`'s native gzip/zstd when `useNativeCodecs()` found
 * it (Deno, Node; under Deno its async API too runs the codec on the calling JS thread, measured, so a
 * reader that must not hold its thread decodes on a worker: dataset_worker.ts), else
 * CompressionStream / fflate for gzip and numcodecs' wasm build for zstd and blosc. Browser compatible (the `node:zlib` import is
 * dynamic and optional).
 * @module
 */
import * as zarr from "zarrita";
import { gunzipSync, gzipSync } from "fflate";

/** Data types the project writes and reads. */
export type ZarrDtype = "uint8" | "uint16" | "int32" | "int16" | "int8" | "int64" | "float32" | "float64";

/** One codec entry of `codecs` (zarr v3 `{name, configuration}`). */
export interface CodecSpec {
  name: string;
  configuration?: Record<string, unknown>;
}

/** What an array is made of. */
export interface ArraySpec {
  shape: number[];
  chunkShape: number[];
  dtype: ZarrDtype;
  /** After `bytes` (little-endian), e.g. `[{ name: "zstd", configuration: { level: 3, checksum: false } }]`. */
  compressors?: CodecSpec[];
  /** Default 0 (the spec requires a value of the data type). */
  fillValue?: number;
  attributes?: Record<string, unknown>;
}

/** The `zarr.json` object of an array (regular grid, "/" chunk keys, `bytes` little-endian then `compressors`). */
export function arrayMetadata(spec: ArraySpec): Record<string, unknown> {
  return {
    zarr_format: 3,
    node_type: "array",
    shape: spec.shape,
    data_type: spec.dtype,
    chunk_grid: { name: "regular", configuration: { chunk_shape: spec.chunkShape } },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    codecs: [{ name: "bytes", configuration: { endian: "little" } }, ...(spec.compressors ?? [])],
    fill_value: spec.fillValue ?? 0,
    attributes: spec.attributes ?? {},
  };
}

/** The `zarr.json` object of a group. */
export function groupMetadata(attributes: Record<string, unknown> = {}): Record<string, unknown> {
  return { zarr_format: 3, node_type: "group", attributes };
}

/** Metadata as bytes (2-space JSON, as zarrita and zarr-python write it). */
export function metadataBytes(meta: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(meta, null, 2));
}

/** The key of a chunk under an array folder (`c/1/0`). */
export function chunkKey(coords: readonly number[]): string {
  return coords.length === 0 ? "c" : `c/${coords.join("/")}`;
}

// ---------------------------------------------------------------------------------------------
// Codecs

/** A compressor pair; results may be synchronous (native) or not (wasm, streams). */
export interface CompressImpl {
  compress(bytes: Uint8Array, level: number): Uint8Array | Promise<Uint8Array>;
  decompress(bytes: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

const portableGzip: CompressImpl = {
  compress(bytes, level) {
    if (typeof CompressionStream === "undefined") return gzipSync(bytes, { level: level as 1, mtime: 0 });
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
    return new Response(stream).arrayBuffer().then((b) => new Uint8Array(b));
  },
  decompress: (bytes) => gunzipSync(bytes),
};

interface NumcodecsCodec {
  encode(b: Uint8Array): Promise<Uint8Array>;
  decode(b: Uint8Array): Promise<Uint8Array>;
}
let wasmZstd: Promise<{ fromConfig(c: { level: number }): NumcodecsCodec }> | undefined;
const portableZstd: CompressImpl = {
  async compress(bytes, level) {
    wasmZstd ??= import("numcodecs/zstd").then((m) => m.default as never);
    return await (await wasmZstd).fromConfig({ level }).encode(bytes);
  },
  async decompress(bytes) {
    wasmZstd ??= import("numcodecs/zstd").then((m) => m.default as never);
    return await (await wasmZstd).fromConfig({ level: 0 }).decode(bytes);
  },
};

/** The implementations in use (see `useNativeCodecs`). */
const impls: { gzip: CompressImpl; zstd: CompressImpl } = { gzip: portableGzip, zstd: portableZstd };

/** Sets the gzip / zstd implementation (`undefined`: the portable one). */
export function useCodecImpl(name: "gzip" | "zstd", impl: CompressImpl | undefined): void {
  impls[name] = impl ?? (name === "gzip" ? portableGzip : portableZstd);
}

/** The gzip / zstd implementation in use. */
export function codecImpl(name: "gzip" | "zstd"): CompressImpl {
  return impls[name];
}

const u8 = (b: Uint8Array) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

let nativeTried: Promise<void> | undefined;
/**
 * Switches gzip and zstd to `node:zlib`'s native code where it exists (once; a no-op in browsers or
 * where `useCodecImpl` already chose). Encoding is synchronous (one output buffer, no chunk list);
 * decoding uses the async API (off the calling thread in Node; Deno runs it on the calling thread).
 * gzip uses the RLE strategy (float weights gain nothing from LZ matches; as small as level 9,
 * several times faster); any decoder reads it.
 */
export function useNativeCodecs(): Promise<void> {
  nativeTried ??= (async () => {
    let zlib: typeof import("node:zlib");
    try {
      zlib = await import("node:zlib");
    } catch {
      return; // no node:zlib here: keep the portable codecs
    }
    const cb = (fn: (b: Uint8Array, done: (e: Error | null, out: Uint8Array) => void) => void) => (b: Uint8Array) =>
      new Promise<Uint8Array>((resolve, reject) => fn(b, (e, out) => e ? reject(e) : resolve(u8(out))));
    if (impls.gzip === portableGzip) {
      impls.gzip = {
        compress: (bytes, l) =>
          u8(zlib.gzipSync(bytes, {
            level: Math.max(0, Math.min(9, Math.round(l))),
            strategy: zlib.constants.Z_RLE,
            chunkSize: bytes.byteLength + (bytes.byteLength >> 12) + 4096,
          })),
        decompress: cb((b, done) => zlib.gunzip(b, done)),
      };
    }
    // deno-lint-ignore no-explicit-any
    const z = zlib as any;
    if (impls.zstd === portableZstd && typeof z.zstdCompressSync === "function") {
      impls.zstd = {
        compress: (bytes, l) =>
          u8(z.zstdCompressSync(bytes, {
            params: { [z.constants.ZSTD_c_compressionLevel]: l },
            chunkSize: bytes.byteLength + (bytes.byteLength >> 7) + 4096,
          })),
        decompress: cb((b, done) => z.zstdDecompress(b, done)),
      };
    }
  })();
  return nativeTried;
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as the `crc32c` codec appends it. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type Bytes2Bytes = {
  kind: "bytes_to_bytes";
  encode(b: Uint8Array): Promise<Uint8Array>;
  decode(b: Uint8Array): Promise<Uint8Array>;
  computeEncodedSize?(n: number): number;
};

/** The bytes-to-bytes codec of a spec entry (our registrations). */
function bytesCodec(spec: CodecSpec): Bytes2Bytes {
  const c = spec.configuration ?? {};
  if (spec.name === "gzip" || spec.name === "numcodecs.gzip") {
    const level = typeof c.level === "number" ? c.level : 1;
    return {
      kind: "bytes_to_bytes",
      encode: async (b) => await impls.gzip.compress(b, level),
      decode: async (b) => await impls.gzip.decompress(b),
    };
  }
  if (spec.name === "zstd" || spec.name === "numcodecs.zstd") {
    const level = typeof c.level === "number" ? c.level : 0;
    return {
      kind: "bytes_to_bytes",
      // A zstd frame carries its own content checksum flag; `checksum` only asks the writer for one.
      encode: async (b) => await impls.zstd.compress(b, level),
      decode: async (b) => await impls.zstd.decompress(b),
    };
  }
  if (spec.name === "crc32c") {
    return {
      kind: "bytes_to_bytes",
      encode(b) {
        const out = new Uint8Array(b.byteLength + 4);
        out.set(b);
        new DataView(out.buffer).setUint32(b.byteLength, crc32c(b), true);
        return Promise.resolve(out);
      },
      decode(b) {
        if (b.byteLength < 4) return Promise.reject(new RangeError("crc32c: fewer than 4 bytes"));
        const body = b.subarray(0, b.byteLength - 4);
        const want = new DataView(b.buffer, b.byteOffset + body.byteLength, 4).getUint32(0, true);
        if (crc32c(body) !== want) return Promise.reject(new RangeError("crc32c checksum mismatch (corrupt chunk)"));
        return Promise.resolve(body);
      },
      computeEncodedSize: (n) => n + 4,
    };
  }
  throw new TypeError(`zarr codec "${spec.name}" is not registered`);
}

const BLOSC_SHUFFLE: Record<string, number> = { noshuffle: 0, shuffle: 1, bitshuffle: 2 };

let registered = false;
/**
 * Registers the codecs above in zarrita's registry (idempotent): `gzip` and `zstd` that encode, a
 * verifying `crc32c`, and `blosc` with the v3 configuration (decoding reads any blosc frame; its
 * header carries type size and shuffle).
 */
export function registerCodecs(): void {
  if (registered) return;
  registered = true;
  for (const name of ["gzip", "numcodecs.gzip", "zstd", "numcodecs.zstd", "crc32c"]) {
    // deno-lint-ignore no-explicit-any
    zarr.registry.set(name, () => ({ fromConfig: (cfg: any) => bytesCodec({ name, configuration: cfg }) }) as any);
  }
  const blosc = async () => {
    const Blosc = (await import("numcodecs/blosc")).default;
    return {
      kind: "bytes_to_bytes" as const,
      fromConfig(cfg: Record<string, unknown> = {}) {
        const shuffle = typeof cfg.shuffle === "string" ? BLOSC_SHUFFLE[cfg.shuffle] : cfg.shuffle;
        const codec = Blosc.fromConfig({ ...cfg, shuffle: shuffle as number } as never);
        return Object.assign(codec, { kind: "bytes_to_bytes" as const });
      },
    };
  };
  // deno-lint-ignore no-explicit-any
  zarr.registry.set("blosc", blosc as any);
  // deno-lint-ignore no-explicit-any
  zarr.registry.set("numcodecs.blosc", blosc as any);
}

type IntOrFloat = Uint8Array | Uint16Array | Int32Array | Int16Array | Int8Array | Float32Array | Float64Array;

/**
 * Encodes one chunk's values (row-major, the chunk's full shape) as `bytes` little-endian followed
 * by `compressors`; synchronous when every compressor is (native), else a promise. The result may
 * be a view of `values` when there is no compressor.
 *
 * @example
 * ```ts
 * const z = await encodeChunk(new Uint16Array(1024), [{ name: "zstd", configuration: { level: 3 } }]);
 * ```
 */
export function encodeChunk(
  values: IntOrFloat | BigInt64Array,
  compressors: readonly CodecSpec[] = [],
): Uint8Array | Promise<Uint8Array> {
  // NOTE: typed arrays are host-endian; every platform JS runs on is little-endian (checked once).
  if (!LITTLE_ENDIAN) throw new RangeError("Cannot write zarr chunks on a big-endian host");
  let bytes: Uint8Array = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  for (let i = 0; i < compressors.length; i++) {
    const c = compressors[i];
    const level = typeof c.configuration?.level === "number" ? c.configuration.level : undefined;
    const impl = c.name === "gzip" ? impls.gzip : c.name === "zstd" ? impls.zstd : undefined;
    const out = impl ? impl.compress(bytes, level ?? (c.name === "gzip" ? 1 : 0)) : bytesCodec(c).encode(bytes);
    if (out instanceof Promise) {
      const rest = compressors.slice(i + 1);
      return out.then((b) => encodeChunk(b, rest));
    }
    bytes = out;
  }
  return bytes;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Reading

/** Largest `zarr.json` accepted (bytes): metadata is small; a huge one is not metadata. */
const MAX_METADATA_BYTES = 16 << 20;

/**
 * A read-only view of `store` that makes what other writers produce readable by zarrita: bounded
 * metadata, hex/NaN float fill values as numbers, and shards with the index at the start.
 * `source` names the store in errors.
 */
export function specStore(store: zarr.Readable, source: string): zarr.Readable {
  // deno-lint-ignore no-explicit-any
  const s = store as any;
  const indexAtStart = new Map<string, boolean>(); // array path -> index_location "start"
  const arrayOf = (key: string) => key.replace(/\/c(\/\d+)*$/, "");
  const wrapped: Record<string, unknown> = {
    async get(key: `/${string}`, opts?: unknown) {
      const v: Uint8Array | undefined = await s.get(key, opts);
      if (v === undefined || !key.endsWith("zarr.json")) return v;
      if (v.byteLength > MAX_METADATA_BYTES) {
        throw new RangeError(`Cannot read zarr "${source}": "${key.slice(1)}" is ${v.byteLength} bytes, not metadata`);
      }
      let meta: Record<string, unknown>;
      try {
        meta = JSON.parse(new TextDecoder().decode(v));
      } catch {
        throw new SyntaxError(`Cannot read zarr "${source}": "${key.slice(1)}" is not valid JSON`);
      }
      if (meta?.node_type !== "array") return v;
      const fixed = normalizeArrayMetadata(meta, `${source}${key}`);
      const sharding = (fixed.codecs as CodecSpec[]).find((c) => c.name === "sharding_indexed");
      indexAtStart.set(key.slice(0, -"/zarr.json".length), sharding?.configuration?.index_location === "start");
      return metadataBytes(fixed);
    },
  };
  if (typeof s.getRange === "function") {
    wrapped.getRange = (
      key: string,
      range: { suffixLength?: number; offset?: number; length?: number },
      o?: unknown,
    ) => {
      if (range.suffixLength !== undefined && indexAtStart.get(arrayOf(key))) {
        return s.getRange(key, { offset: 0, length: range.suffixLength }, o);
      }
      return s.getRange(key, range, o);
    };
  }
  return wrapped as unknown as zarr.Readable;
}

/** Checks an array's metadata and rewrites the spec's float fill value spellings zarrita lacks. */
function normalizeArrayMetadata(meta: Record<string, unknown>, where: string): Record<string, unknown> {
  const fail = (what: string) => new TypeError(`Cannot read zarr array "${where}": ${what}`);
  if (meta.zarr_format !== 3) throw fail(`zarr_format is ${JSON.stringify(meta.zarr_format)}, not 3`);
  const shape = meta.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw fail("bad shape");
  const dt = String(meta.data_type);
  let fill = meta.fill_value;
  if (typeof fill === "string" && /^0x[0-9a-fA-F]+$/.test(fill) && dt.startsWith("float")) {
    // The spec's exact bit pattern of a float fill value; zarrita knows only numbers and NaN/±Infinity.
    const bits = BigInt(fill);
    let v = fill as unknown as number;
    if (dt === "float64") v = new Float64Array(new BigUint64Array([bits]).buffer)[0];
    else if (dt === "float32") v = new Float32Array(new Uint32Array([Number(bits)]).buffer)[0];
    fill = Number.isFinite(v) ? v : String(v);
  }
  // NOTE: checkpoints of uer-ts before format 2 wrote null (against the spec); read it as 0.
  if (fill === null) fill = 0;
  if (fill === undefined) throw fail("fill_value is missing (the spec needs a value)");
  const codecs = meta.codecs;
  if (!Array.isArray(codecs) || codecs.length === 0) throw fail("no codecs");
  const sharding = codecs.find((c) => c?.name === "sharding_indexed");
  if (sharding) {
    const loc = sharding.configuration?.index_location ?? "end";
    if (loc !== "start" && loc !== "end") throw fail(`sharding index_location ${JSON.stringify(loc)}`);
  }
  return { ...meta, fill_value: fill };
}
