/**
 * The file-system edge of `convert/`, written for speed on large weight files: a whole-file read
 * into one buffer of the file's size (`Deno.readFile` grows and copies, several times slower here),
 * and a streaming write of parts (header buffers + views of tensor storages, as `torchBinParts` /
 * `safetensorsParts` return them) straight to a file handle, so no second copy of the weights is
 * ever built in memory; and a lazy state-dict reader whose storages are read only when written
 * (`LazyWeights`), so a `.bin` → `.bin` conversion holds one storage at a time, not the file.
 * Importing it makes `zip.ts`'s `crc32` use `node:zlib`'s native CRC-32.
 * Not browser compatible: Deno file APIs and `node:zlib`.
 * @module
 */
import * as zlib from "node:zlib";
import type { Tensor } from "../core/tensor.ts";
import { withTempSibling } from "../core/io/atomic.ts";
import { crc32, setNativeCrc32 } from "./zip.ts";
import { type LazyStorages, readTorchStateDict } from "./torch_bin.ts";
import { looksLikeSafetensors, readSafetensors } from "./safetensors.ts";

// deno-lint-ignore no-explicit-any
const nativeCrc = (zlib as any).crc32 as ((b: Uint8Array, c: number) => number) | undefined;
if (typeof nativeCrc === "function") setNativeCrc32(nativeCrc);

/**
 * Reads a whole file into one exactly sized buffer.
 *
 * @example
 * ```ts
 * const bytes = await readFileBytes("uer_model.bin");
 * ```
 */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  using f = await Deno.open(path, { read: true });
  const size = (await f.stat()).size;
  const buf = new Uint8Array(size);
  let off = 0;
  while (off < size) {
    const n = f.readSync(buf.subarray(off));
    if (n === null) break;
    off += n;
  }
  if (off !== size || f.readSync(new Uint8Array(1)) !== null) {
    return await Deno.readFile(path); // the file changed while being read: take what is there now
  }
  return buf;
}

/** Reads exactly `into.byteLength` bytes of `file` at `offset` into `into`. */
function readAt(file: Deno.FsFile, offset: number, into: Uint8Array, source: string): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let off = 0;
  while (off < into.byteLength) {
    const n = file.readSync(into.subarray(off));
    if (n === null) throw new SyntaxError(`Cannot read "${source}": the file ended early (changed while read?)`);
    off += n;
  }
}

/**
 * The unread storages of a state dict read by `readStateDictLazy`, with the open file they come
 * from: `load` fills a storage's buffer (checking its CRC-32), `release` frees it for good (its
 * tensors become empty), `close` closes the file.
 */
export class LazyWeights {
  readonly #file: Deno.FsFile;
  readonly #storages: LazyStorages;
  readonly #source: string;
  readonly #loaded = new Set<ArrayBufferLike>();

  constructor(file: Deno.FsFile, storages: LazyStorages, source: string) {
    this.#file = file;
    this.#storages = storages;
    this.#source = source;
  }

  /** Whether `buffer` is a storage of this file (loaded or not, not yet released). */
  has(buffer: ArrayBufferLike): boolean {
    return this.#storages.has(buffer);
  }

  /**
   * The CRC-32 of a whole storage (`torchBinParts`' `crcOf`), known without reading it; for a part
   * of one, the storage is loaded and `undefined` returned, so the caller computes it.
   */
  crcOf = (bytes: Uint8Array): number | undefined => {
    const e = this.#storages.get(bytes.buffer);
    if (!e) return undefined;
    if (bytes.byteOffset === 0 && bytes.byteLength === e.length) return e.crc32;
    this.load(bytes.buffer);
    return undefined;
  };

  /** Reads a storage's bytes into its buffer (once), checking them against the archive's CRC-32. */
  load(buffer: ArrayBufferLike): void {
    const e = this.#storages.get(buffer);
    if (!e || this.#loaded.has(buffer)) return;
    const bytes = new Uint8Array(buffer, 0, e.length);
    readAt(this.#file, e.offset, bytes, this.#source);
    if (crc32(bytes) !== e.crc32) {
      throw new SyntaxError(`Cannot read zip archive "${this.#source}": entry "${e.name}" fails its CRC-32 check`);
    }
    this.#loaded.add(buffer);
  }

  /**
   * Copies a storage that was never loaded straight from the input file to `out` through `scratch`
   * (its buffer is never touched, so never becomes resident), checking the CRC-32 on the way; false
   * when `bytes` is not a whole unloaded storage. A mismatch throws after the bytes went out: write
   * to a temporary file.
   */
  copyTo(bytes: Uint8Array, out: Deno.FsFile, scratch: Uint8Array): boolean {
    const e = this.#storages.get(bytes.buffer);
    if (!e || this.#loaded.has(bytes.buffer) || bytes.byteOffset !== 0 || bytes.byteLength !== e.length) return false;
    let crc = 0;
    for (let off = 0; off < e.length; off += scratch.byteLength) {
      const piece = scratch.subarray(0, Math.min(scratch.byteLength, e.length - off));
      readAt(this.#file, e.offset + off, piece, this.#source);
      crc = crc32(piece, crc);
      writeAll(out, piece);
    }
    if (crc !== e.crc32) {
      throw new SyntaxError(`Cannot read zip archive "${this.#source}": entry "${e.name}" fails its CRC-32 check`);
    }
    return true;
  }

  /** Loads every storage (before anything reads tensor values). */
  loadAll(): void {
    for (const b of this.#storages.keys()) this.load(b);
  }

  /** Frees a storage's memory now (detaching its buffer); its tensors must not be used after. */
  release(buffer: ArrayBufferLike): void {
    if (!this.#storages.delete(buffer)) return;
    this.#loaded.delete(buffer);
    const ab = buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
    if (typeof ab.transfer === "function") ab.transfer(0);
  }

  /** Closes the file (unloaded storages can no longer be read). */
  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

/**
 * Reads a state-dict file (torch zip or legacy, or safetensors) like `readStateDictFile`, but leaves
 * the storages of a torch zip unread: only the directory, local headers and pickle are read, and
 * each storage's zeroed buffer is listed in `lazy` (whose file stays open; `close` it). Tensor
 * values must not be read before `lazy.load`/`loadAll`; shapes, names and dtypes are final.
 *
 * @example
 * ```ts
 * const { tensors, lazy } = await readStateDictLazy("uer_model.bin");
 * try { lazy?.loadAll(); } finally { lazy?.close(); }
 * ```
 */
export async function readStateDictLazy(
  path: string,
  opts: { names?: ReadonlySet<string> } = {},
): Promise<{ tensors: Map<string, Tensor>; lazy?: LazyWeights }> {
  const file = await Deno.open(path, { read: true });
  let keepOpen = false;
  try {
    const size = (await file.stat()).size;
    const bytes = new Uint8Array(size); // file-sized but untouched: only what is read becomes resident
    const loaded: [number, number][] = [];
    const ensure = (offset: number, length: number) => {
      const end = Math.min(size, offset + length);
      if (end <= offset || loaded.some(([a, b]) => a <= offset && end <= b)) return;
      readAt(file, offset, bytes.subarray(offset, end), path);
      loaded.push([offset, end]);
    };
    ensure(0, 9);
    if (looksLikeSafetensors(bytes, size)) {
      if (!opts.names) ensure(0, size);
      return { tensors: readSafetensors(bytes, path, { ensure, names: opts.names }).tensors };
    }
    const d = readTorchStateDict(bytes, path, { ensure, lazy: true });
    if (opts.names) {
      // only the storages of the tensors asked for are read; the others' zeroed buffers are dropped unread
      const tensors = new Map([...d.tensors].filter(([k]) => opts.names!.has(k)));
      if (d.lazy) {
        const lazy = new LazyWeights(file, d.lazy, path);
        for (const t of tensors.values()) lazy.load(t.data.buffer);
      }
      return { tensors };
    }
    if (!d.lazy || d.lazy.size === 0) return { tensors: d.tensors };
    keepOpen = true; // LazyWeights reads the storages later and closes the file
    return { tensors: d.tensors, lazy: new LazyWeights(file, d.lazy, path) };
  } finally {
    if (!keepOpen) file.close();
  }
}

/** Options of `writeParts`. */
export interface WritePartsOptions {
  /** Lazily read storages among the parts: each is loaded just before it is written. */
  lazy?: LazyWeights;
  /** Free each lazy storage right after its last part is written (nothing may use it after). */
  release?: boolean;
}

/**
 * Writes `parts` one after another to `path` (created or truncated), each straight from its buffer.
 *
 * @example
 * ```ts
 * const { parts } = torchBinParts(tensors, { archiveName: "pytorch_model" });
 * await writeParts("out/pytorch_model.bin", parts);
 * ```
 */
export async function writeParts(path: string, parts: Uint8Array[], opts: WritePartsOptions = {}): Promise<void> {
  const lazy = opts.lazy;
  const last = new Map<ArrayBufferLike, number>();
  if (lazy) parts.forEach((p, i) => lazy.has(p.buffer) && last.set(p.buffer, i));
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  let scratch: Uint8Array | undefined;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (!last.has(p.buffer)) {
      writeAll(f, p);
      continue;
    }
    const final = opts.release === true && last.get(p.buffer) === i;
    // a storage needed only here goes file to file, never into memory; else it is loaded
    scratch ??= final ? new Uint8Array(SCRATCH_BYTES) : undefined;
    if (!(final && lazy!.copyTo(p, f, scratch!))) {
      lazy!.load(p.buffer);
      writeAll(f, p);
    }
    if (final) lazy!.release(p.buffer);
  }
}

/** Buffer of file-to-file storage copies. */
const SCRATCH_BYTES = 1 << 20;

function writeAll(f: Deno.FsFile, p: Uint8Array): void {
  let off = 0;
  while (off < p.byteLength) off += f.writeSync(p.subarray(off));
}

/**
 * `writeParts` into a temporary sibling, renamed to `path` once complete (a killed run never
 * leaves a partial file under the final name).
 *
 * @example
 * ```ts
 * await writePartsAtomic("uer_model.bin", torchBinParts(params, { archiveName: "uer_model" }).parts);
 * ```
 */
export async function writePartsAtomic(
  path: string,
  parts: Uint8Array[],
  opts: WritePartsOptions = {},
): Promise<void> {
  await withTempSibling(path, async (tmp) => {
    await writeParts(tmp, parts, opts);
    await Deno.rename(tmp, path);
  });
}
