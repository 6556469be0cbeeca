/**
 * torch `.bin` state dicts (what UER-py's `model_saver.py` and HF's `pytorch_model.bin` hold), both
 * containers: zip (torch ≥ 1.6: `<stem>/data.pkl`, `<stem>/data/<key>`, `<stem>/version`) and the
 * legacy stream (magic, protocol, sys_info, the pickle, storage keys, raw storages). The pickle is
 * read by the restricted VM of `pickle.ts` with an allow-list of exactly what a state dict needs:
 * `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`,
 * `_rebuild_parameter`), and the typed storage classes. The writer reproduces `torch.save` byte for
 * byte (torch 1.13, protocol 2, stored zip entries 64-byte aligned, `version` = "3\n").
 * Browser compatible: works on bytes, no Deno APIs.
 * @module
 */
import {
  type DType,
  DTYPE_SIZE,
  numel,
  type Tensor,
  tensorBytes,
  type TensorData,
  typedFromBytes,
} from "../core/tensor.ts";
import { type PyCallable, PyDict, type PyTuple, typeName, unpickle } from "./pickle.ts";
import { concatParts, isZip, torchZipParts, ZipReader } from "./zip.ts";

/**
 * A tensor that may be a view of a larger storage (as `seg.embedding.weight[1:]` in UER-py's
 * converter output): `storage.data` is the whole storage, `storage.offset` the first element.
 * Writers save the whole storage and the offset, as `torch.save` does; readers set it for views.
 */
export type TorchTensor = Tensor & { storage?: { data: TensorData; offset: number } };

/** A state dict read from a torch file, with what a byte-identical rewrite needs. */
export interface TorchStateDict {
  tensors: Map<string, TorchTensor>;
  /** `state_dict()._metadata` (module name → version), present in files written from a module. */
  metadata?: [string, number][];
  /** "zip" or "legacy". */
  container: "zip" | "legacy";
  /** With `ReadTorchOptions.lazy`: the storages left unread (their buffers still zero). */
  lazy?: LazyStorages;
}

/**
 * Storages of a zip checkpoint that were not read (`ReadTorchOptions.lazy`): each storage's own
 * `ArrayBuffer` (still zeros) → where its bytes lie in the file and their CRC-32. Whoever fills a
 * buffer must check the CRC-32 (`convert/files.ts` `LazyWeights` does).
 */
export type LazyStorages = Map<ArrayBufferLike, { offset: number; length: number; crc32: number; name: string }>;

/** Options of `readTorchStateDict`. */
export interface ReadTorchOptions {
  /**
   * `bytes` is a file-sized buffer filled on demand: `ensure(offset, length)` is called before a
   * range is first read (a non-zip file is then loaded whole).
   */
  ensure?: (offset: number, length: number) => void;
  /**
   * Leave the stored storages of a zip unread: each tensor's storage gets its own zeroed buffer,
   * listed in `TorchStateDict.lazy` (storages of strided tensors are read at once).
   */
  lazy?: boolean;
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: "F32",
  DoubleStorage: "F64",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};
const DTYPE_STORAGE: Record<string, string> = Object.fromEntries(
  Object.entries(STORAGE_DTYPES).map(([k, v]) => [v, k]),
);

interface StorageType {
  readonly kind: "storage-type";
  readonly dtype: DType;
}
interface StorageRef {
  readonly kind: "storage";
  readonly key: string;
  readonly dtype: DType;
  readonly numel: number;
  /** Legacy view storages: (root key, offset, size). */
  readonly view?: { offset: number; size: number };
}
interface TensorRef {
  readonly kind: "tensor";
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const MAX_DIMS = 64;

function fail(source: string, what: string): SyntaxError {
  return new SyntaxError(`Cannot read torch checkpoint "${source}": ${what}`);
}

function intArg(x: unknown, what: string): number {
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) {
    throw new TypeError(`${what} must be a non-negative int, got ${typeName(x)} ${String(x).slice(0, 20)}`);
  }
  return x;
}

function intTuple(x: unknown, what: string): number[] {
  if (!Array.isArray(x)) throw new TypeError(`${what} must be a tuple, got ${typeName(x)}`);
  if (x.length > MAX_DIMS) throw new TypeError(`${what} has ${x.length} dimensions`);
  return x.map((d, i) => intArg(d, `${what}[${i}]`));
}

function callable(qualname: string, call: (args: PyTuple) => unknown): PyCallable {
  return { kind: "callable", qualname, call };
}

function rebuild(args: PyTuple, n: number): TensorRef {
  if (args.length < n) throw new TypeError(`expects at least ${n} arguments, got ${args.length}`);
  const s = args[0] as StorageRef;
  if (typeof s !== "object" || s === null || s.kind !== "storage") {
    throw new TypeError(`expects a storage, got ${typeName(s)}`);
  }
  return {
    kind: "tensor",
    storage: s,
    offset: intArg(args[1], "storage_offset"),
    size: intTuple(args[2], "size"),
    stride: intTuple(args[3], "stride"),
  };
}

/** The allow-list: every global a state dict may name. Anything else is refused. */
function findGlobal(module: string, name: string): unknown {
  const q = `${module}.${name}`;
  if (q === "collections.OrderedDict") {
    return callable(q, (args) => {
      if (args.length !== 0) throw new TypeError("OrderedDict() takes no arguments here");
      return new PyDict();
    });
  }
  if (q === "torch._utils._rebuild_tensor_v2") return callable(q, (a) => rebuild(a, 4));
  if (q === "torch._utils._rebuild_tensor") return callable(q, (a) => rebuild(a, 4));
  if (q === "torch._utils._rebuild_parameter") {
    return callable(q, (a) => {
      const t = a[0] as TensorRef;
      if (typeof t !== "object" || t === null || t.kind !== "tensor") throw new TypeError("expects a tensor");
      return t;
    });
  }
  if (module === "torch" && name in STORAGE_DTYPES) {
    return { kind: "storage-type", dtype: STORAGE_DTYPES[name] } satisfies StorageType;
  }
  throw new TypeError(`refers to global "${q}", which a state dict never needs (refused)`);
}

function storageFromPid(pid: unknown, legacy: boolean): StorageRef {
  if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== "storage") {
    throw new TypeError(`expected ('storage', type, key, location, numel), got ${typeName(pid)}`);
  }
  const t = pid[1] as StorageType;
  if (typeof t !== "object" || t === null || t.kind !== "storage-type") {
    throw new TypeError(`storage type is ${typeName(t)}`);
  }
  const key = pid[2];
  if (typeof key !== "string" || !/^[A-Za-z0-9_]{1,64}$/.test(key)) {
    throw new TypeError(`storage key ${JSON.stringify(key)?.slice(0, 70)} is not a plain name`);
  }
  if (typeof pid[3] !== "string") throw new TypeError("storage location is not a string");
  const count = intArg(pid[4], "storage numel");
  let view: StorageRef["view"];
  if (legacy && pid.length > 5 && pid[5] !== null) {
    const vm = pid[5];
    if (!Array.isArray(vm) || vm.length !== 3) throw new TypeError("storage view metadata is malformed");
    view = { offset: intArg(vm[1], "view offset"), size: intArg(vm[2], "view size") };
    if (vm[0] !== key) {
      // view of another root storage: key the view by its root
      return { kind: "storage", key: String(vm[0]), dtype: t.dtype, numel: count, view };
    }
  }
  return { kind: "storage", key, dtype: t.dtype, numel: count, view };
}

/** The state dict's top-level object → name → tensor reference. */
function collect(value: unknown, source: string): { refs: Map<string, TensorRef>; metadata?: [string, number][] } {
  if (!(value instanceof PyDict)) throw fail(source, `holds a ${typeName(value)}, not a state dict`);
  const refs = new Map<string, TensorRef>();
  for (const [k, v] of value) {
    if (typeof k !== "string") throw fail(source, `has a non-string key ${String(k)}`);
    const t = v as TensorRef;
    if (typeof t !== "object" || t === null || t.kind !== "tensor") {
      throw fail(source, `entry "${k}" is a ${typeName(v)}, not a tensor`);
    }
    refs.set(k, t);
  }
  let metadata: [string, number][] | undefined;
  const st = value.state;
  if (st instanceof PyDict && st.get("_metadata") instanceof PyDict) {
    metadata = [];
    for (const [m, info] of st.get("_metadata") as PyDict) {
      const ver = info instanceof PyDict ? info.get("version") : undefined;
      if (typeof m === "string" && typeof ver === "number") metadata.push([m, ver]);
    }
  } else if (st !== undefined && st !== null) {
    throw fail(source, `state dict has unexpected BUILD state (${typeName(st)})`);
  }
  return { refs, metadata };
}

/** Builds tensors from references and the storages' bytes (views when contiguous and aligned). */
function materialize(
  refs: Map<string, TensorRef>,
  storageBytes: (ref: StorageRef) => Uint8Array,
  source: string,
): Map<string, TorchTensor> {
  const storages = new Map<string, TensorData>();
  const made = new Map<TensorRef, TorchTensor>();
  const out = new Map<string, TorchTensor>();
  for (const [name, r] of refs) {
    const seen = made.get(r);
    if (seen) {
      out.set(name, seen);
      continue;
    }
    const s = r.storage;
    let data = storages.get(s.key);
    if (!data) {
      const b = storageBytes(s);
      const expect = s.numel * DTYPE_SIZE[s.dtype];
      if (b.byteLength !== expect) {
        throw fail(
          source,
          `storage "${s.key}" of tensor "${name}" declares ${s.numel} ${s.dtype} elements (${expect} bytes) but has ${b.byteLength} bytes`,
        );
      }
      data = typedFromBytes(s.dtype, b);
      storages.set(s.key, data);
    } else if (data.length !== s.numel && !s.view) {
      throw fail(source, `storage "${s.key}" is declared with two sizes`);
    }
    let base = data;
    if (s.view) {
      if (s.view.offset + s.view.size > data.length) throw fail(source, `storage view of "${name}" exceeds its root`);
      base = data.subarray(s.view.offset, s.view.offset + s.view.size);
    }
    const count = numel(r.size);
    let maxIndex = r.offset;
    for (let d = 0; d < r.size.length; d++) {
      if (r.size.length !== r.stride.length) {
        throw fail(source, `tensor "${name}" has size and stride of different rank`);
      }
      if (r.size[d] === 0) maxIndex = -1;
      if (maxIndex >= 0) maxIndex += (r.size[d] - 1) * r.stride[d];
    }
    if (count > 0 && (!Number.isSafeInteger(maxIndex) || maxIndex >= base.length)) {
      throw fail(
        source,
        `tensor "${name}" (offset ${r.offset}, size [${r.size}], stride [${r.stride}]) reaches past its storage of ${base.length} elements`,
      );
    }
    const contiguous = isContiguous(r);
    let t: TorchTensor;
    if (count === 0) {
      t = { dtype: s.dtype, shape: r.size, data: base.subarray(0, 0) };
    } else if (contiguous) {
      const sub = r.offset === 0 && count === base.length ? base : base.subarray(r.offset, r.offset + count);
      t = { dtype: s.dtype, shape: r.size, data: sub };
      if (sub !== base) t.storage = { data: base, offset: r.offset };
    } else {
      t = { dtype: s.dtype, shape: r.size, data: gather(base, r) };
    }
    made.set(r, t);
    out.set(name, t);
  }
  return out;
}

/** Whether a tensor is a dense row-major run of its storage. */
function isContiguous(r: TensorRef): boolean {
  let expectStride = 1;
  for (let d = r.size.length - 1; d >= 0; d--) {
    if (r.size[d] !== 1 && r.stride[d] !== expectStride) return false;
    expectStride *= r.size[d];
  }
  return true;
}

/** Copies a strided view into a new contiguous array. */
function gather(base: TensorData, r: TensorRef): TensorData {
  const count = numel(r.size);
  // deno-lint-ignore no-explicit-any
  const out = new (base.constructor as any)(count) as TensorData;
  const idx = new Array(r.size.length).fill(0);
  let src = r.offset;
  for (let i = 0; i < count; i++) {
    (out as unknown as number[])[i] = (base as unknown as number[])[src];
    for (let d = r.size.length - 1; d >= 0; d--) {
      idx[d]++;
      src += r.stride[d];
      if (idx[d] < r.size[d]) break;
      src -= r.stride[d] * r.size[d];
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Reads a torch state dict (zip or legacy container) with its `_metadata`.
 *
 * @example
 * ```ts
 * const { tensors } = readTorchStateDict(await Deno.readFile("uer_model.bin"), "uer_model.bin");
 * ```
 */
export function readTorchStateDict(bytes: Uint8Array, source: string, opts: ReadTorchOptions = {}): TorchStateDict {
  try {
    return readAny(bytes, source, opts);
  } catch (e) {
    if (e instanceof Error && e.message.includes(`"${source}"`)) throw e;
    // an unexpected internal failure still becomes one clean line naming the file
    throw fail(source, String((e as Error)?.message ?? e).split("\n")[0]);
  }
}

function readAny(bytes: Uint8Array, source: string, opts: ReadTorchOptions): TorchStateDict {
  opts.ensure?.(0, Math.min(4, bytes.length));
  if (isZip(bytes)) return readZip(bytes, source, opts);
  opts.ensure?.(0, bytes.length); // the legacy stream is read as a whole
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) return readLegacy(bytes, source);
  if (bytes.length > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar") {
    throw fail(
      source,
      "is a tar checkpoint (torch < 0.4), which is not supported\n  hint: re-save it with torch ≥ 1.6",
    );
  }
  throw fail(source, "is neither a zip nor a legacy torch file");
}

/**
 * Reads a torch state dict into tensors keyed by name.
 *
 * @example
 * ```ts
 * const tensors = readTorchBin(await Deno.readFile("pytorch_model.bin"), "pytorch_model.bin");
 * ```
 */
export function readTorchBin(bytes: Uint8Array, source: string): Map<string, Tensor> {
  return readTorchStateDict(bytes, source).tensors;
}

function readZip(bytes: Uint8Array, source: string, opts: ReadTorchOptions = {}): TorchStateDict {
  const zip = ZipReader.open(bytes, source, { ensure: opts.ensure });
  const first = zip.entries.keys().next().value as string | undefined;
  const slash = first?.indexOf("/") ?? -1;
  if (first === undefined || slash <= 0) throw fail(source, "zip has no top-level folder with data.pkl");
  const prefix = first.slice(0, slash + 1);
  if (!zip.entries.has(`${prefix}data.pkl`)) throw fail(source, `zip has no "${prefix}data.pkl"`);
  const bo = zip.entries.get(`${prefix}byteorder`);
  if (bo && new TextDecoder().decode(zip.read(bo.name)).trim() !== "little") {
    throw fail(source, "is a big-endian checkpoint, which is not supported");
  }
  const { value } = unpickle(zip.read(`${prefix}data.pkl`), source, {
    findGlobal,
    persistentLoad: (pid) => storageFromPid(pid, false),
  });
  const { refs, metadata } = collect(value, source);
  let lazy: LazyStorages | undefined;
  const strided = new Set<string>();
  if (opts.lazy) {
    lazy = new Map();
    for (const r of refs.values()) if (!isContiguous(r)) strided.add(r.storage.key);
  }
  const tensors = materialize(refs, (s) => {
    const name = `${prefix}data/${s.key}`;
    const e = zip.entries.get(name);
    if (!e) throw fail(source, `storage record "${name}" is missing`);
    if (lazy && e.method === 0 && !strided.has(s.key)) {
      const buf = new Uint8Array(e.size); // zeros, not even resident until filled
      lazy.set(buf.buffer, { offset: e.dataOffset, length: e.size, crc32: e.crc32, name });
      return buf;
    }
    return zip.read(name);
  }, source);
  return { tensors, metadata, container: "zip", lazy };
}

function readLegacy(bytes: Uint8Array, source: string): TorchStateDict {
  const none = { findGlobal: (m: string, n: string) => findGlobal(m, n) };
  const magic = unpickle(bytes, source, { findGlobal: () => undefined });
  if (typeof magic.value !== "bigint" || magic.value !== LEGACY_MAGIC) {
    throw fail(source, "does not start with torch's legacy magic number");
  }
  const proto = unpickle(bytes, source, none, {}, magic.end);
  if (proto.value !== 1001) throw fail(source, `legacy protocol ${String(proto.value)} is not 1001`);
  const info = unpickle(bytes, source, none, {}, proto.end);
  if (info.value instanceof PyDict && info.value.get("little_endian") === false) {
    throw fail(source, "is a big-endian checkpoint, which is not supported");
  }
  const main = unpickle(
    bytes,
    source,
    { findGlobal, persistentLoad: (pid) => storageFromPid(pid, true) },
    {},
    info.end,
  );
  const { refs, metadata } = collect(main.value, source);
  const keysPickle = unpickle(bytes, source, { findGlobal: () => undefined }, {}, main.end);
  const keys = keysPickle.value;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
    throw fail(source, "legacy storage key list is malformed");
  }
  // Declared element types/sizes per key, from the tensors that use them.
  const declared = new Map<string, StorageRef>();
  for (const r of refs.values()) {
    const prev = declared.get(r.storage.key);
    if (!prev || (prev.view && !r.storage.view)) declared.set(r.storage.key, r.storage);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const raw = new Map<string, Uint8Array>();
  let p = keysPickle.end;
  for (const key of keys as string[]) {
    if (p + 8 > bytes.length) throw fail(source, `storage "${key}" is truncated (no element count)`);
    const count = view.getBigUint64(p, true);
    p += 8;
    const d = declared.get(key);
    const size = d ? DTYPE_SIZE[d.dtype] : 1;
    if (count > BigInt(bytes.length - p) / BigInt(size)) {
      throw fail(source, `storage "${key}" declares ${count} elements, past the end of the file`);
    }
    const len = Number(count) * size;
    if (!d) throw fail(source, `storage "${key}" is not used by any tensor`);
    raw.set(key, bytes.subarray(p, p + len));
    p += len;
  }
  if (p !== bytes.length) throw fail(source, `has ${bytes.length - p} unexpected bytes after the last storage`);
  const tensors = materialize(refs, (s) => {
    const b = raw.get(s.key);
    if (!b) throw fail(source, `storage "${s.key}" is missing from the key list`);
    if (s.view) {
      // legacy views: the root's declared numel is what the data holds
      return b;
    }
    return b;
  }, source);
  return { tensors, metadata, container: "legacy" };
}

// ---------------------------------------------------------------------------------------------
// Writer: a pickler that emits exactly what CPython's `pickle` (protocol 2) emits for torch.save.

class PickleWriter {
  #buf = new Uint8Array(1 << 12);
  #len = 0;
  #memo = 0;

  #grow(k: number): void {
    if (this.#len + k <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + k));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }
  byte(...bs: number[]): void {
    this.#grow(bs.length);
    for (const b of bs) this.#buf[this.#len++] = b;
  }
  u32(v: number): void {
    this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  raw(b: Uint8Array): void {
    this.#grow(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  /** BINPUT / LONG_BINPUT of the next memo slot; returns it. */
  put(): number {
    const i = this.#memo++;
    if (i < 256) this.byte(0x71, i);
    else {
      this.byte(0x72);
      this.u32(i);
    }
    return i;
  }
  get(i: number): void {
    if (i < 256) this.byte(0x68, i);
    else {
      this.byte(0x6a);
      this.u32(i);
    }
  }
  /** A fresh string object: BINUNICODE + memo. */
  str(s: string): number {
    const b = new TextEncoder().encode(s);
    this.byte(0x58);
    this.u32(b.length);
    this.raw(b);
    return this.put();
  }
  global(module: string, name: string): number {
    this.byte(0x63);
    this.raw(new TextEncoder().encode(`${module}\n${name}\n`));
    return this.put();
  }
  int(v: number): void {
    if (v >= 0 && v <= 0xff) this.byte(0x4b, v);
    else if (v >= 0 && v <= 0xffff) this.byte(0x4d, v & 0xff, v >>> 8);
    else if (v >= -0x80000000 && v <= 0x7fffffff) {
      this.byte(0x4a);
      this.u32(v >>> 0);
    } else {
      // LONG1: minimal two's complement little-endian
      let x = BigInt(v);
      const out: number[] = [];
      while (true) {
        out.push(Number(x & 0xffn));
        x >>= 8n;
        const sign = out[out.length - 1] & 0x80;
        if ((x === 0n && !sign) || (x === -1n && sign)) break;
      }
      this.byte(0x8a, out.length, ...out);
    }
  }
  /** A tuple of ints: EMPTY_TUPLE (no memo), TUPLE1-3, or MARK … TUPLE. */
  intTuple(xs: number[]): void {
    if (xs.length === 0) {
      this.byte(0x29);
      return;
    }
    if (xs.length > 3) this.byte(0x28);
    for (const x of xs) this.int(x);
    this.byte(xs.length === 1 ? 0x85 : xs.length === 2 ? 0x86 : xs.length === 3 ? 0x87 : 0x74);
    this.put();
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Options of `writeTorchBin`. */
export interface TorchWriteOptions {
  /** Top folder inside the zip; torch uses the output file's stem (`pytorch_model`). */
  archiveName?: string;
  /** `_metadata` (module name → version) to attach with BUILD, as `state_dict()` does. */
  metadata?: [string, number][];
  /** A storage's CRC-32 when already known (a lazily read one's, from its source file); else computed. */
  crcOf?: (storage: Uint8Array) => number | undefined;
}

/** Stride of a contiguous tensor of `shape`. */
function contiguousStride(shape: number[]): number[] {
  const s = new Array(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/**
 * Serializes a state dict the way `torch.save` (torch 1.13, zip format) does, so `torch.load` reads
 * it. Tensors with the same `data` object share one storage; `TorchTensor.storage` views are saved
 * as their whole storage plus an offset; the same tensor object under two names is saved once.
 *
 * @example
 * ```ts
 * const bytes = writeTorchBin(new Map([["w", f32([2], new Float32Array([1, 2]))]]), { archiveName: "model" });
 * ```
 */
export function writeTorchBin(tensors: Map<string, TorchTensor>, opts: TorchWriteOptions = {}): Uint8Array {
  const { parts, size } = torchBinParts(tensors, opts);
  return concatParts(parts, size);
}

/**
 * `writeTorchBin` as parts (small header buffers and views of the tensors' own storages) whose
 * concatenation is the file, so a writer can stream them without building the file in memory.
 *
 * @example
 * ```ts
 * const { parts, size } = torchBinParts(tensors, { archiveName: "pytorch_model" });
 * ```
 */
export function torchBinParts(
  tensors: Map<string, TorchTensor>,
  opts: TorchWriteOptions = {},
): { parts: Uint8Array[]; size: number } {
  const archive = opts.archiveName ?? "archive";
  const w = new PickleWriter();
  w.byte(0x80, 2);
  const od = w.global("collections", "OrderedDict");
  w.byte(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  w.put();
  const storages = new Map<TensorData, { key: string; memo: number; bytes: Uint8Array }>();
  const tensorMemo = new Map<Tensor, number>();
  const globals = new Map<string, number>();
  const glob = (m: string, n: string): void => {
    const k = `${m}.${n}`;
    const i = globals.get(k);
    if (i === undefined) globals.set(k, w.global(m, n));
    else w.get(i);
  };
  let storageStr = -1;
  let cpuStr = -1;
  const entries = [...tensors];
  for (let b = 0; b < entries.length; b += 1000) {
    const batch = entries.slice(b, b + 1000);
    if (batch.length > 1) w.byte(0x28);
    for (const [name, t] of batch) {
      w.str(name);
      const memo = tensorMemo.get(t);
      if (memo !== undefined) {
        w.get(memo);
        continue;
      }
      if (!(t.dtype in DTYPE_STORAGE)) throw new TypeError(`Cannot write tensor "${name}": dtype ${t.dtype}`);
      if (numel(t.shape) !== t.data.length) {
        throw new RangeError(
          `Cannot write tensor "${name}": shape [${t.shape}] does not match ${t.data.length} elements`,
        );
      }
      const base = t.storage?.data ?? t.data;
      const offset = t.storage?.offset ?? 0;
      glob("torch._utils", "_rebuild_tensor_v2");
      w.byte(0x28, 0x28); // MARK (args), MARK (pid)
      if (storageStr < 0) storageStr = w.str("storage");
      else w.get(storageStr);
      glob("torch", DTYPE_STORAGE[t.dtype]);
      let s = storages.get(base);
      if (!s) {
        const key = String(storages.size);
        s = { key, memo: w.str(key), bytes: tensorBytes({ ...t, data: base }) };
        storages.set(base, s);
      } else w.get(s.memo);
      if (cpuStr < 0) cpuStr = w.str("cpu");
      else w.get(cpuStr);
      w.int(base.length);
      w.byte(0x74); // TUPLE
      w.put();
      w.byte(0x51); // BINPERSID
      w.int(offset);
      w.intTuple(t.shape);
      w.intTuple(contiguousStride(t.shape));
      w.byte(0x89); // requires_grad False
      w.get(od);
      w.byte(0x29, 0x52); // OrderedDict() backward hooks
      w.put();
      w.byte(0x74); // TUPLE of args
      w.put();
      w.byte(0x52); // REDUCE
      tensorMemo.set(t, w.put());
    }
    w.byte(batch.length > 1 ? 0x75 : 0x73);
  }
  if (opts.metadata) {
    w.byte(0x7d); // EMPTY_DICT (state)
    w.put();
    w.str("_metadata");
    w.get(od);
    w.byte(0x29, 0x52);
    w.put();
    let versionStr = -1;
    for (let b = 0; b < opts.metadata.length; b += 1000) {
      const batch = opts.metadata.slice(b, b + 1000);
      if (batch.length > 1) w.byte(0x28);
      for (const [module, version] of batch) {
        w.str(module);
        w.byte(0x7d);
        w.put();
        if (versionStr < 0) versionStr = w.str("version");
        else w.get(versionStr);
        w.int(version);
        w.byte(0x73);
      }
      w.byte(batch.length > 1 ? 0x75 : 0x73);
    }
    w.byte(0x73, 0x62); // SETITEM (state), BUILD
  }
  w.byte(0x2e); // STOP
  const files = [{ name: `${archive}/data.pkl`, data: w.bytes() }];
  // torch writes storages in sorted key order (string sort), then `version`
  const sorted = [...storages.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of sorted) files.push({ name: `${archive}/data/${s.key}`, data: s.bytes });
  files.push({ name: `${archive}/version`, data: new TextEncoder().encode("3\n") });
  return torchZipParts(files, { crcOf: opts.crcOf });
}
