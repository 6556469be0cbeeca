/**
 * Reads the weights back out of an ONNX model (`onnx/model.onnx` of a transformers.js folder):
 * ModelProto → GraphProto.initializer (TensorProto: dims, data_type, name, raw_data or float_data /
 * int64_data / int32_data, or external data by `location` / `offset` / `length` beside the model) and
 * ModelProto.metadata_props, by the field numbers of onnx/onnx.proto. A minimal protobuf reader:
 * bounded by the buffer, no recursion beyond the three message levels it needs, unknown fields
 * skipped; a malformed file is an error naming it. Browser compatible except `readOnnxFolderWeights`.
 * @module
 */
import type { DType, Tensor } from "../core/tensor.ts";
import { numel } from "../core/tensor.ts";
import { ONNX_TO_DTYPE } from "../core/graph/shapes.ts";

/** ONNX TensorProto.DataType → our dtype, for the ones a weight can be (core/graph/shapes.ts' table less BOOL). */
const FROM_ONNX: Record<number, DType> = Object.fromEntries(
  Object.entries(ONNX_TO_DTYPE).filter(([, d]) => d !== "BOOL"),
);

/** What an ONNX file holds that a model loader needs. */
export interface OnnxWeights {
  /** Initializers by name (external ones filled by `readOnnxFolderWeights`). */
  tensors: Map<string, Tensor>;
  /** Initializers stored outside the model: name → location/offset/length. */
  external: Map<string, { location: string; offset: number; length: number; dtype: DType; shape: number[] }>;
  metadata: Record<string, string>;
  /** Graph output names. */
  outputs: string[];
}

class Reader {
  pos: number;
  constructor(readonly b: Uint8Array, readonly source: string, start = 0, readonly end = b.length) {
    this.pos = start;
  }
  fail(what: string): never {
    throw new SyntaxError(`Cannot read ONNX model "${this.source}": ${what} at byte ${this.pos}`);
  }
  varint(): number {
    let v = 0, mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const c = this.b[this.pos++];
      v += (c & 0x7f) * mul;
      if (!(c & 0x80)) return v;
      mul *= 128;
    }
    this.fail("varint too long");
  }
  /** [field, wire type], or null at the end. */
  tag(): [number, number] | null {
    if (this.pos >= this.end) return null;
    const t = this.varint();
    return [Math.floor(t / 8), t % 8];
  }
  bytes(): [number, number] {
    const n = this.varint();
    if (n > this.end - this.pos) this.fail(`length ${n} past the end`);
    const start = this.pos;
    this.pos += n;
    return [start, this.pos];
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail(`wire type ${wire}`);
    if (this.pos > this.end) this.fail("truncated field");
  }
  string(): string {
    const [a, b] = this.bytes();
    return new TextDecoder().decode(this.b.subarray(a, b));
  }
  sub(): Reader {
    const [a, b] = this.bytes();
    return new Reader(this.b, this.source, a, b);
  }
}

/** A StringStringEntryProto (`key` = 1, `value` = 2): TensorProto.external_data and ModelProto.metadata_props. */
function stringEntry(s: Reader): [string, string] {
  let k = "", v = "";
  for (let e = s.tag(); e; e = s.tag()) {
    if (e[0] === 1 && e[1] === 2) k = s.string();
    else if (e[0] === 2 && e[1] === 2) v = s.string();
    else s.skip(e[1]);
  }
  return [k, v];
}

function readTensor(r: Reader, out: OnnxWeights): void {
  const dims: number[] = [];
  let dtype = 0, name = "";
  let raw: Uint8Array | undefined;
  const floats: number[] = [], ints: number[] = [];
  const ext: Record<string, string> = {};
  let location = 0;
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 1 && w === 0) dims.push(r.varint());
    else if (f === 1 && w === 2) {
      const s = r.sub();
      while (s.pos < s.end) dims.push(s.varint());
    } else if (f === 2 && w === 0) dtype = r.varint();
    else if (f === 8 && w === 2) name = r.string();
    else if (f === 9 && w === 2) {
      const [a, b] = r.bytes();
      raw = r.b.subarray(a, b);
    } else if (f === 4 && w === 2) {
      const [a, b] = r.bytes();
      const v = new DataView(r.b.buffer, r.b.byteOffset + a, b - a);
      for (let i = 0; i + 4 <= b - a; i += 4) floats.push(v.getFloat32(i, true));
    } else if ((f === 5 || f === 7) && w === 2) {
      const s = r.sub();
      while (s.pos < s.end) ints.push(s.varint());
    } else if (f === 13 && w === 2) {
      const [k, v] = stringEntry(r.sub());
      ext[k] = v;
    } else if (f === 14 && w === 0) location = r.varint();
    else r.skip(w);
  }
  const dt = FROM_ONNX[dtype];
  if (!dt) return; // not a weight type (strings, bools…): not a parameter
  const n = numel(dims);
  if (!Number.isSafeInteger(n) || n > 2 ** 31) r.fail(`tensor "${name}" has an implausible shape [${dims}]`);
  if (location === 1) {
    const offset = Number(ext.offset ?? 0), length = Number(ext.length ?? NaN);
    if (!ext.location || !Number.isSafeInteger(offset) || offset < 0) r.fail(`tensor "${name}" has bad external data`);
    out.external.set(name, { location: ext.location, offset, length, dtype: dt, shape: dims });
    return;
  }
  let data: Tensor["data"];
  if (raw) {
    const bytes = raw.slice(); // aligned copy
    const size = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 }[dt];
    if (bytes.byteLength !== n * size) r.fail(`tensor "${name}" has ${bytes.byteLength} bytes for [${dims}]`);
    data = typedView(dt, bytes.buffer);
  } else if (dt === "F32") {
    if (floats.length !== n) r.fail(`tensor "${name}" has ${floats.length} floats for [${dims}]`);
    data = Float32Array.from(floats);
  } else if (dt === "I64" || dt === "I32") {
    if (ints.length !== n) r.fail(`tensor "${name}" has ${ints.length} ints for [${dims}]`);
    data = dt === "I64" ? BigInt64Array.from(ints, (x) => BigInt(x)) : Int32Array.from(ints);
  } else r.fail(`tensor "${name}" has no data`);
  out.tensors.set(name, { dtype: dt, shape: dims, data });
}

function typedView(dt: DType, b: ArrayBufferLike): Tensor["data"] {
  switch (dt) {
    case "F32":
      return new Float32Array(b);
    case "F64":
      return new Float64Array(b);
    case "F16":
    case "BF16":
      return new Uint16Array(b);
    case "I64":
      return new BigInt64Array(b);
    case "I32":
      return new Int32Array(b);
    case "I16":
      return new Int16Array(b);
    case "I8":
      return new Int8Array(b);
    default:
      return new Uint8Array(b);
  }
}

/**
 * Parses an ONNX model's initializers, metadata and output names.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = parseOnnxWeights(await Deno.readFile("m/onnx/model.onnx"), "m/onnx/model.onnx");
 * ```
 */
export function parseOnnxWeights(bytes: Uint8Array, source: string): OnnxWeights {
  const out: OnnxWeights = { tensors: new Map(), external: new Map(), metadata: {}, outputs: [] };
  const r = new Reader(bytes, source);
  let graphs = 0;
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 7 && w === 2) {
      graphs++;
      const g = r.sub();
      for (let u = g.tag(); u; u = g.tag()) {
        if (u[0] === 5 && u[1] === 2) readTensor(g.sub(), out);
        else if (u[0] === 12 && u[1] === 2) {
          const v = g.sub();
          for (let e = v.tag(); e; e = v.tag()) {
            if (e[0] === 1 && e[1] === 2) out.outputs.push(v.string());
            else v.skip(e[1]);
          }
        } else g.skip(u[1]);
      }
    } else if (f === 14 && w === 2) {
      const [k, v] = stringEntry(r.sub());
      out.metadata[k] = v;
    } else r.skip(w);
  }
  if (graphs !== 1) throw new SyntaxError(`Cannot read ONNX model "${source}": no graph (not an ONNX model?)`);
  return out;
}

/**
 * Reads `<dir>/onnx/<file>` (default `model.onnx`) and its external data file(s) (only files inside `<dir>/onnx`).
 *
 * @example
 * ```ts
 * const w = await readOnnxFolderWeights("models/albert_onnx");
 * ```
 */
export async function readOnnxFolderWeights(dir: string, file = "model.onnx"): Promise<OnnxWeights> {
  const path = `${dir}/onnx/${file}`;
  const w = parseOnnxWeights(await Deno.readFile(path), path);
  for (const [name, e] of w.external) {
    if (e.location.includes("/") || e.location.includes("\\") || e.location.startsWith(".")) {
      throw new SyntaxError(`Cannot read ONNX model "${path}": "${name}" points outside the folder (${e.location})`);
    }
    const size = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 }[e.dtype];
    const length = numel(e.shape) * size;
    if (Number.isFinite(e.length) && e.length !== length) {
      throw new SyntaxError(
        `Cannot read ONNX model "${path}": "${name}" has ${e.length} external bytes for [${e.shape}]`,
      );
    }
    using f = await Deno.open(`${dir}/onnx/${e.location}`, { read: true });
    await f.seek(e.offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(length);
    let off = 0;
    while (off < length) {
      const n = await f.read(buf.subarray(off));
      if (n === null) {
        throw new SyntaxError(`Cannot read ONNX model "${path}": external data of "${name}" is cut short`);
      }
      off += n;
    }
    w.tensors.set(name, { dtype: e.dtype, shape: e.shape, data: typedView(e.dtype, buf.buffer) });
  }
  return w;
}
