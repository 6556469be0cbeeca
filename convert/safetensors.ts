/**
 * safetensors read and write (the HF format; `hf/model.safetensors`), parsed defensively: the header
 * length is bounded, every dtype, shape and offset is checked against the buffer before a view is made.
 * Browser compatible: works on bytes, no Deno APIs.
 * @module
 */
import { type DType, DTYPE_SIZE, numel, type Tensor, tensorBytes, typedFromBytes } from "../core/tensor.ts";

/** Largest JSON header accepted (the format's own reference limit is 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** A parsed file: tensors in header order plus the free-text `__metadata__`. */
export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function bad(source: string, what: string): SyntaxError {
  return new SyntaxError(`Cannot read safetensors "${source}": ${what}`);
}

/** Options of `readSafetensors`. */
export interface ReadSafetensorsOptions {
  /** Only these tensors are returned (and their bytes read); every entry of the header is still checked. */
  names?: ReadonlySet<string>;
  /**
   * `bytes` is a file-sized buffer filled on demand: `ensure(offset, length)` is called before a range is
   * first read (the header, then each returned tensor's data).
   */
  ensure?: (offset: number, length: number) => void;
}

/**
 * Parses a safetensors buffer. Tensor data are views into `bytes` where aligned.
 *
 * @example
 * ```ts
 * const { tensors } = readSafetensors(await Deno.readFile("model.safetensors"), "model.safetensors");
 * ```
 */
export function readSafetensors(
  bytes: Uint8Array,
  source: string,
  opts: ReadSafetensorsOptions = {},
): SafetensorsFile {
  opts.ensure?.(0, 8);
  if (bytes.byteLength < 8) {
    throw bad(source, `file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, bytes.byteLength - 8))) {
    throw bad(
      source,
      `header length ${headerLen} exceeds the file (${bytes.byteLength} bytes) or the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const n = Number(headerLen);
  opts.ensure?.(8, n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(source, `header is not UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw bad(source, "header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) throw bad(source, `entry "${name}" is not an object`);
    if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_SIZE)) {
      throw bad(source, `tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
    }
    const dtype = e.dtype as DType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(source, `tensor "${name}" has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[0] > off[1]
    ) {
      throw bad(source, `tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataLen) throw bad(source, `tensor "${name}" ends at byte ${end}, past the ${dataLen} data bytes`);
    const count = numel(shape);
    if (!Number.isSafeInteger(count) || count * DTYPE_SIZE[dtype] !== end - begin) {
      throw bad(
        source,
        `tensor "${name}" has ${end - begin} bytes but shape [${shape}] of ${dtype} needs ${count * DTYPE_SIZE[dtype]}`,
      );
    }
    spans.push([begin, end, name]);
    if (opts.names && !opts.names.has(name)) continue;
    opts.ensure?.(dataStart + begin, end - begin);
    tensors.set(name, {
      dtype,
      shape,
      data: typedFromBytes(dtype, bytes.subarray(dataStart + begin, dataStart + end)),
    });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) throw bad(source, `tensors "${spans[i - 1][2]}" and "${spans[i][2]}" overlap`);
  }
  return { tensors, metadata };
}

/**
 * Serializes tensors (in iteration order) the way HF's writer does: u64 header length, JSON header
 * padded with spaces to a multiple of 8, then the data back to back.
 *
 * @example
 * ```ts
 * const bytes = writeSafetensors(new Map([["w", f32([2], new Float32Array([1, 2]))]]), { format: "pt" });
 * ```
 */
export function writeSafetensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const { parts, size } = safetensorsParts(tensors, metadata);
  const out = new Uint8Array(size);
  let pos = 0;
  for (const b of parts) {
    out.set(b, pos);
    pos += b.byteLength;
  }
  return out;
}

/**
 * `writeSafetensors` as parts (the length + header buffer, then views of the tensors' data) whose
 * concatenation is the file, so a writer can stream them without building the file in memory.
 *
 * @example
 * ```ts
 * const { parts, size } = safetensorsParts(tensors, { format: "pt" });
 * ```
 */
export function safetensorsParts(
  tensors: Map<string, Tensor>,
  metadata?: Record<string, string>,
): { parts: Uint8Array[]; size: number } {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    const size = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  if (metadata) header.__metadata__ = metadata; // last, as HF's writer orders it
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  const parts: Uint8Array[] = [head];
  for (const t of tensors.values()) parts.push(tensorBytes(t));
  return { parts, size: head.byteLength + offset };
}

/**
 * Whether a file starting with `head` (at least its first 9 bytes) and `size` bytes long is
 * safetensors: a little-endian u64 header length that fits the file, then a JSON object `{`. Checked
 * before torch's formats: a header length whose low byte is 0x80 makes the file start like a legacy
 * torch pickle (PROTO 0x80).
 */
export function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < 9 || size < 9 || head[8] !== 0x7b) return false;
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  return n <= BigInt(size - 8);
}
