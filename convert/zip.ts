/**
 * The zip container of torch checkpoints (torch ≥ 1.6, `caffe2/serialize/inline_container.cc` with
 * miniz): a defensive reader (stored or deflated entries, zip64, every offset and size checked, entry
 * names confined to the archive, CRC-32 verified) and a writer that lays entries out exactly as
 * torch's `PyTorchStreamWriter` does: stored, data 64-byte aligned through an `FB` extra field, data
 * descriptors, zero dates, zip64 end records.
 * Browser compatible: works on bytes, no Deno APIs.
 * @module
 */
import { inflateSync } from "fflate";

/** One entry of a parsed archive. */
export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's data in the archive. */
  dataOffset: number;
}

const CRC_TABLE = (() => {
  // 8 tables for slicing-by-8
  const t = new Uint32Array(256 * 8);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) t[s * 256 + i] = (t[(s - 1) * 256 + i] >>> 8) ^ t[t[(s - 1) * 256 + i] & 0xff];
  }
  return t;
})();

let nativeCrc32: ((bytes: Uint8Array, crc: number) => number) | undefined;

/**
 * Lets `crc32` use a native implementation with the same contract (zip polynomial, running value as
 * the second argument), e.g. `node:zlib`'s `crc32`, which is ~30× faster than the table code here;
 * `undefined` restores the table code. The file-system edge (`files.ts`) installs it under Deno, so
 * this module stays free of runtime imports.
 */
export function setNativeCrc32(fn: ((bytes: Uint8Array, crc: number) => number) | undefined): void {
  nativeCrc32 = fn;
}

/**
 * CRC-32 (zip polynomial) of `bytes` (slicing-by-8 tables, or the native one `setNativeCrc32` gave).
 *
 * @example
 * ```ts
 * crc32(new TextEncoder().encode("123456789")); // 0xcbf43926
 * ```
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (nativeCrc32 !== undefined && bytes.length >= 256) return nativeCrc32(bytes, crc) >>> 0;
  const t = CRC_TABLE;
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  const n8 = n - (n % 8);
  for (; i < n8; i += 8) {
    const a = (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^ t[1024 + (a >>> 24)] ^
      t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function bad(source: string, what: string): SyntaxError {
  return new SyntaxError(`Cannot read zip archive "${source}": ${what}`);
}

/** Whether `bytes` starts like a zip archive. */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/**
 * A parsed zip archive; `read(name)` returns an entry's bytes (a view for stored entries).
 *
 * @example
 * ```ts
 * const zip = ZipReader.open(bytes, "model.bin");
 * const pkl = zip.read("model/data.pkl");
 * ```
 */
export class ZipReader {
  readonly entries: Map<string, ZipEntry>;
  readonly #bytes: Uint8Array;
  readonly #source: string;
  readonly #verify: boolean;
  readonly #ensure: (offset: number, length: number) => void;

  private constructor(
    bytes: Uint8Array,
    source: string,
    entries: Map<string, ZipEntry>,
    verify: boolean,
    ensure: (offset: number, length: number) => void,
  ) {
    this.#bytes = bytes;
    this.#source = source;
    this.entries = entries;
    this.#verify = verify;
    this.#ensure = ensure;
  }

  /**
   * Parses the central directory; throws a `SyntaxError` naming `source` for anything malformed.
   * `ensure(offset, length)`, when given, is called before each byte range is first looked at, so
   * `bytes` may be a file-sized buffer that is filled on demand (only the directory, the local
   * headers and the entries actually read are then loaded).
   */
  static open(
    bytes: Uint8Array,
    source: string,
    opts: { verifyCrc?: boolean; ensure?: (offset: number, length: number) => void } = {},
  ): ZipReader {
    const ensure = opts.ensure ?? (() => {});
    const n = bytes.byteLength;
    const view = new DataView(bytes.buffer, bytes.byteOffset, n);
    if (n < 22) throw bad(source, `file is ${n} bytes, too short for a zip archive`);
    const searchFrom = Math.max(0, n - 22 - 65535);
    ensure(searchFrom, n - searchFrom);
    // End of central directory: search backwards over the comment (≤ 65535 bytes).
    let eocd = -1;
    for (let p = n - 22; p >= searchFrom; p--) {
      if (view.getUint32(p, true) === 0x06054b50) {
        eocd = p;
        break;
      }
    }
    if (eocd < 0) throw bad(source, "no end-of-central-directory record (truncated file?)");
    let count = view.getUint16(eocd + 10, true);
    let cdSize = view.getUint32(eocd + 12, true);
    let cdOffset = view.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc >= 0) ensure(loc, 20);
      if (loc < 0 || view.getUint32(loc, true) !== 0x07064b50) throw bad(source, "zip64 locator missing");
      const rec = big(view.getBigUint64(loc + 8, true), n, source, "zip64 record offset");
      if (rec + 56 <= n) ensure(rec, 56);
      if (rec + 56 > n || view.getUint32(rec, true) !== 0x06064b50) throw bad(source, "zip64 end record missing");
      count = big(view.getBigUint64(rec + 32, true), n, source, "entry count");
      cdSize = big(view.getBigUint64(rec + 40, true), n, source, "central directory size");
      cdOffset = big(view.getBigUint64(rec + 48, true), n, source, "central directory offset");
    }
    if (cdOffset + cdSize > n) throw bad(source, `central directory (${cdOffset}+${cdSize}) lies past the end`);
    ensure(cdOffset, cdSize);
    const entries = new Map<string, ZipEntry>();
    let p = cdOffset;
    const dec = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdOffset + cdSize || view.getUint32(p, true) !== 0x02014b50) {
        throw bad(source, `central directory entry ${i} is malformed`);
      }
      const flags = view.getUint16(p + 8, true);
      const method = view.getUint16(p + 10, true);
      const crc = view.getUint32(p + 16, true);
      let csize = view.getUint32(p + 20, true);
      let usize = view.getUint32(p + 24, true);
      const nameLen = view.getUint16(p + 28, true);
      const extraLen = view.getUint16(p + 30, true);
      const commentLen = view.getUint16(p + 32, true);
      let local = view.getUint32(p + 42, true);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cdOffset + cdSize) throw bad(source, `central directory entry ${i} runs past the directory`);
      let name: string;
      try {
        name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
      } catch {
        throw bad(source, `entry ${i} has a name that is not UTF-8`);
      }
      // zip64 extra field: the 0xffffffff fields, in order usize, csize, offset
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = view.getUint16(e, true);
        const len = view.getUint16(e + 2, true);
        if (e + 4 + len > eEnd) throw bad(source, `entry "${name}" has a malformed extra field`);
        if (id === 0x0001) {
          let q = e + 4;
          const next = (what: string): number => {
            if (q + 8 > e + 4 + len) throw bad(source, `entry "${name}" has a short zip64 field`);
            const v = big(view.getBigUint64(q, true), 2 ** 53, source, what);
            q += 8;
            return v;
          };
          if (usize === 0xffffffff) usize = next("size");
          if (csize === 0xffffffff) csize = next("compressed size");
          if (local === 0xffffffff) local = next("offset");
        }
        e += 4 + len;
      }
      if (flags & 1) throw bad(source, `entry "${name}" is encrypted`);
      checkName(name, source);
      if (entries.has(name)) throw bad(source, `entry "${name}" appears twice`);
      if (local + 30 <= n) ensure(local, 30);
      if (local + 30 > n || view.getUint32(local, true) !== 0x04034b50) {
        throw bad(source, `entry "${name}" has no local header at offset ${local}`);
      }
      const dataOffset = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
      if (dataOffset + csize > n) {
        throw bad(source, `entry "${name}" (${csize} bytes at ${dataOffset}) lies past the end of the file`);
      }
      if (method !== 0 && method !== 8) throw bad(source, `entry "${name}" uses compression method ${method}`);
      if (method === 0 && csize !== usize) throw bad(source, `stored entry "${name}" has mismatched sizes`);
      entries.set(name, { name, method, crc32: crc, compressedSize: csize, size: usize, dataOffset });
      p = end;
    }
    return new ZipReader(bytes, source, entries, opts.verifyCrc ?? true, ensure);
  }

  /** The bytes of entry `name` (checked against its CRC-32); throws if absent. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw bad(this.#source, `entry "${name}" is missing`);
    this.#ensure(e.dataOffset, e.compressedSize);
    const raw = this.#bytes.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
    let out: Uint8Array;
    if (e.method === 0) out = raw;
    else {
      // The declared size bounds the output: a deflate bomb cannot grow past it.
      if (e.size > 64 * e.compressedSize + 1024) throw bad(this.#source, `entry "${name}" expands too much`);
      const buf = new Uint8Array(e.size);
      try {
        out = inflateSync(raw, { out: buf });
      } catch (err) {
        throw bad(this.#source, `entry "${name}" does not inflate: ${(err as Error).message}`);
      }
      if (out.length !== e.size) throw bad(this.#source, `entry "${name}" inflates to the wrong size`);
    }
    if (this.#verify && crc32(out) !== e.crc32) throw bad(this.#source, `entry "${name}" fails its CRC-32 check`);
    return out;
  }
}

function big(v: bigint, limit: number, source: string, what: string): number {
  if (v > BigInt(limit)) throw bad(source, `${what} ${v} is out of range`);
  return Number(v);
}

function checkName(name: string, source: string): void {
  if (
    name === "" || name.startsWith("/") || name.includes("\\") || name.includes("\0") ||
    name.split("/").some((s) => s === ".." || s === ".") || /^[A-Za-z]:/.test(name)
  ) {
    throw bad(source, `entry name ${JSON.stringify(name)} escapes the archive`);
  }
}

/** One file to put into a torch-style zip. */
export interface ZipInput {
  name: string;
  data: Uint8Array;
}

const ALIGN = 64;

/**
 * The bytes of a stored zip laid out exactly as torch's `PyTorchStreamWriter` (miniz) writes it, as
 * a list of parts whose concatenation is the archive: small header buffers and the entries' data
 * as the caller's own views (nothing is copied, so a writer can stream them to a file). Each local
 * header carries an `FB` extra field padding the data to a 64-byte boundary, a data descriptor
 * follows the data, dates are zero, and the archive ends with zip64 end records. `crcOf` may supply
 * an entry's CRC-32 when it is already known (its data not loaded yet); otherwise it is computed.
 *
 * @example
 * ```ts
 * const { parts, size } = torchZipParts([{ name: "archive/version", data: new TextEncoder().encode("3\n") }]);
 * ```
 */
export function torchZipParts(
  files: ZipInput[],
  opts: { crcOf?: (data: Uint8Array) => number | undefined } = {},
): { parts: Uint8Array[]; size: number } {
  const enc = new TextEncoder();
  const names = files.map((f) => enc.encode(f.name));
  const parts: Uint8Array[] = [];
  const offsets: number[] = [];
  const crcs: number[] = [];
  let cursor = 0;
  for (let i = 0; i < files.length; i++) {
    const data = files[i].data;
    const size = data.byteLength;
    const big64 = size >= 0xffffffff || cursor >= 0xffffffff;
    const bigOff = cursor >= 0xffffffff;
    let start = cursor + 30 + names[i].length + 4;
    if (big64) start += 4 + 16 + (bigOff ? 8 : 0);
    const pad = (ALIGN - (start % ALIGN)) % ALIGN;
    const headLen = start + pad - cursor;
    const head = new Uint8Array(headLen);
    const v = new DataView(head.buffer);
    const crc = opts.crcOf?.(data) ?? crc32(data);
    crcs.push(crc);
    v.setUint32(0, 0x04034b50, true);
    v.setUint16(4, big64 ? 45 : 0, true);
    v.setUint16(6, 0x0808, true); // data descriptor + UTF-8 names
    // method, time, date, crc, sizes: zero (the descriptor carries them)
    if (big64) {
      v.setUint32(18, 0xffffffff, true);
      v.setUint32(22, 0xffffffff, true);
    }
    v.setUint16(26, names[i].length, true);
    const extra = 4 + pad + (big64 ? 4 + 16 + (bigOff ? 8 : 0) : 0);
    v.setUint16(28, extra, true);
    head.set(names[i], 30);
    let p = 30 + names[i].length;
    if (big64) {
      const len = 16 + (bigOff ? 8 : 0);
      v.setUint16(p, 1, true);
      v.setUint16(p + 2, len, true);
      p += 4 + len; // sizes in the descriptor; zeros here as miniz writes them
    }
    head[p] = 0x46; // "FB"
    head[p + 1] = 0x42;
    v.setUint16(p + 2, pad, true);
    head.fill(0x5a, p + 4, p + 4 + pad); // "Z"
    const desc = new Uint8Array(big64 ? 24 : 16);
    const dv = new DataView(desc.buffer);
    dv.setUint32(0, 0x08074b50, true);
    dv.setUint32(4, crc, true);
    if (big64) {
      dv.setBigUint64(8, BigInt(size), true);
      dv.setBigUint64(16, BigInt(size), true);
    } else {
      dv.setUint32(8, size, true);
      dv.setUint32(12, size, true);
    }
    parts.push(head, data, desc);
    offsets.push(cursor);
    cursor += headLen + size + desc.length;
  }
  const cdOffset = cursor;
  let cdSize = 0;
  for (let i = 0; i < files.length; i++) {
    const needs = files[i].data.byteLength >= 0xffffffff || offsets[i] >= 0xffffffff;
    cdSize += 46 + names[i].length + (needs ? 4 + 24 : 0);
  }
  const tail = new Uint8Array(cdSize + 56 + 20 + 22);
  const v = new DataView(tail.buffer);
  let p = 0;
  for (let i = 0; i < files.length; i++) {
    const size = files[i].data.byteLength;
    const bigSize = size >= 0xffffffff;
    const bigOff = offsets[i] >= 0xffffffff;
    v.setUint32(p, 0x02014b50, true);
    v.setUint16(p + 6, bigSize || bigOff ? 45 : 0, true);
    v.setUint16(p + 8, 0x0808, true);
    v.setUint32(p + 16, crcs[i], true);
    v.setUint32(p + 20, bigSize ? 0xffffffff : size, true);
    v.setUint32(p + 24, bigSize ? 0xffffffff : size, true);
    v.setUint16(p + 28, names[i].length, true);
    const xlen = bigSize || bigOff ? 24 : 0;
    v.setUint16(p + 30, xlen ? 4 + xlen : 0, true);
    v.setUint32(p + 42, bigOff ? 0xffffffff : offsets[i], true);
    tail.set(names[i], p + 46);
    p += 46 + names[i].length;
    if (xlen) {
      v.setUint16(p, 1, true);
      v.setUint16(p + 2, xlen, true);
      v.setBigUint64(p + 4, BigInt(size), true);
      v.setBigUint64(p + 12, BigInt(size), true);
      v.setBigUint64(p + 20, BigInt(offsets[i]), true);
      p += 4 + xlen;
    }
  }
  // zip64 end of central directory record + locator, then the classic record (as miniz writes).
  const rec = cdOffset + p;
  v.setUint32(p, 0x06064b50, true);
  v.setBigUint64(p + 4, 44n, true);
  v.setUint16(p + 12, 0x031e, true);
  v.setUint16(p + 14, 45, true);
  v.setBigUint64(p + 24, BigInt(files.length), true);
  v.setBigUint64(p + 32, BigInt(files.length), true);
  v.setBigUint64(p + 40, BigInt(cdSize), true);
  v.setBigUint64(p + 48, BigInt(cdOffset), true);
  p += 56;
  v.setUint32(p, 0x07064b50, true);
  v.setBigUint64(p + 8, BigInt(rec), true);
  v.setUint32(p + 16, 1, true);
  p += 20;
  v.setUint32(p, 0x06054b50, true);
  v.setUint16(p + 8, Math.min(files.length, 0xffff), true);
  v.setUint16(p + 10, Math.min(files.length, 0xffff), true);
  v.setUint32(p + 12, Math.min(cdSize, 0xffffffff), true);
  v.setUint32(p + 16, Math.min(cdOffset, 0xffffffff), true);
  p += 22;
  if (p !== tail.length) throw new Error(`internal: zip layout ${p} != ${tail.length}`);
  parts.push(tail);
  return { parts, size: cdOffset + tail.length };
}

/** Concatenates parts (as `torchZipParts` returns them) into one buffer. */
export function concatParts(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let p = 0;
  for (const b of parts) {
    out.set(b, p);
    p += b.byteLength;
  }
  if (p !== size) throw new Error(`internal: parts hold ${p} bytes, expected ${size}`);
  return out;
}

/**
 * Writes a stored zip exactly as torch's `PyTorchStreamWriter` (miniz) does, into one buffer (see
 * `torchZipParts` for the layout and a streaming form).
 *
 * @example
 * ```ts
 * const zip = writeTorchZip([{ name: "archive/version", data: new TextEncoder().encode("3\n") }]);
 * ```
 */
export function writeTorchZip(files: ZipInput[]): Uint8Array {
  const { parts, size } = torchZipParts(files);
  return concatParts(parts, size);
}
