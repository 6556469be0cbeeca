/**
 * The ONNX writer: a small protobuf encoder of our own for ModelProto / GraphProto / NodeProto /
 * TensorProto / ValueInfoProto / AttributeProto (field numbers from onnx/onnx.proto, IR version 8,
 * opset 17), and `toOnnx(graph)` that serialises a `Graph` (builder.ts). Large tensors are never
 * copied while encoding: the output is assembled from chunks once at the end. Tensors beyond the
 * 2 GB protobuf limit go to an external data file (ONNX external-data convention) that the caller
 * writes beside the model. Browser compatible: no Deno APIs.
 * @module
 */
import { numel, type Tensor, tensorBytes } from "../tensor.ts";
import type { Attr, Graph, Node, Value } from "./builder.ts";
import { type Dim, DTYPE_TO_ONNX } from "./shapes.ts";

/** ONNX IR version written (8 = ONNX 1.10+, the first with opset 17 support is 8). */
export const IR_VERSION = 8;
/** Default-domain opset written. */
export const OPSET = 17;
/** Opset versions written for other domains a graph's nodes use (others get version 1). */
export const DOMAIN_OPSETS: Readonly<Record<string, number>> = { "com.microsoft": 1 };

const te = new TextEncoder();

/** Protobuf wire writer: small fields in a growable buffer, big byte blocks kept as separate chunks. */
class PbWriter {
  chunks: Uint8Array[] = [];
  length = 0;
  #buf = new Uint8Array(256);
  #pos = 0;

  #ensure(n: number) {
    if (this.#pos + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#pos + n));
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }
  #flush() {
    if (this.#pos === 0) return;
    this.chunks.push(this.#buf.slice(0, this.#pos));
    this.#pos = 0;
  }
  byte(b: number) {
    this.#ensure(1);
    this.#buf[this.#pos++] = b;
    this.length++;
  }
  varint(v: number | bigint) {
    let x = typeof v === "bigint" ? BigInt.asUintN(64, v) : v < 0 ? BigInt.asUintN(64, BigInt(v)) : v;
    if (typeof x === "number") {
      while (x >= 0x80) {
        this.byte((x % 0x80) | 0x80);
        x = Math.floor(x / 0x80);
      }
      this.byte(x);
      return;
    }
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }
  tag(field: number, wire: number) {
    this.varint(field * 8 + wire);
  }
  /** Appends raw bytes; big blocks are referenced, not copied. */
  raw(bytes: Uint8Array) {
    if (bytes.byteLength < 1024) {
      this.#ensure(bytes.byteLength);
      this.#buf.set(bytes, this.#pos);
      this.#pos += bytes.byteLength;
    } else {
      this.#flush();
      this.chunks.push(bytes);
    }
    this.length += bytes.byteLength;
  }
  int(field: number, v: number | bigint) {
    this.tag(field, 0);
    this.varint(v);
  }
  float(field: number, v: number) {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.raw(b);
  }
  bytes(field: number, b: Uint8Array) {
    this.tag(field, 2);
    this.varint(b.byteLength);
    this.raw(b);
  }
  string(field: number, s: string) {
    this.bytes(field, te.encode(s));
  }
  packedInts(field: number, vs: number[]) {
    const w = new PbWriter();
    for (const v of vs) w.varint(v);
    this.message(field, w);
  }
  packedFloats(field: number, vs: number[]) {
    const b = new Uint8Array(vs.length * 4);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    this.bytes(field, b);
  }
  message(field: number, child: PbWriter) {
    child.#flush();
    this.tag(field, 2);
    this.varint(child.length);
    this.#flush();
    this.chunks.push(...child.chunks);
    this.length += child.length;
  }
  sub(field: number, fill: (w: PbWriter) => void) {
    const w = new PbWriter();
    fill(w);
    this.message(field, w);
  }
  finish(): Uint8Array {
    this.#flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  }
}

/** Where external tensor data goes (one file beside the model). */
export interface ExternalPlacement {
  /** File name relative to the model, e.g. `model.onnx_data`. */
  location: string;
  /** Tensors of at least this many bytes go external (default 1 MiB). */
  minBytes?: number;
}

/** Options of `toOnnx`. */
export interface ToOnnxOptions {
  /** Bake these params (by UER name) in as initializers instead of graph inputs. */
  initializers?: Map<string, Tensor>;
  /** External data: "auto" (only when the model would pass ~1.9 GB), a placement, or none (default "auto"). */
  externalData?: "auto" | "never" | ExternalPlacement;
  /** The external data file of "auto" mode (default `model.onnx_data`). */
  autoLocation?: string;
  /** Graph name (default "uer_ts"). */
  name?: string;
  /** Free-text metadata written as ModelProto.metadata_props. */
  metadata?: Record<string, string>;
}

/** An encoded model, plus the external data file's chunks when used. */
export interface OnnxModel {
  model: Uint8Array;
  external?: { location: string; chunks: Uint8Array[]; byteLength: number };
}

const PROTO_LIMIT = 1_900_000_000;

function writeTensorProto(
  w: PbWriter,
  name: string,
  t: Tensor,
  ext?: { location: string; offset: number },
) {
  for (const d of t.shape) w.int(1, d);
  w.int(2, DTYPE_TO_ONNX[t.dtype]);
  w.string(8, name);
  if (numel(t.shape) !== t.data.length) {
    throw new RangeError(`Cannot write tensor "${name}": shape [${t.shape}] does not match ${t.data.length} elements`);
  }
  if (ext) {
    const entry = (k: string, v: string) =>
      w.sub(13, (e) => {
        e.string(1, k);
        e.string(2, v);
      });
    entry("location", ext.location);
    entry("offset", String(ext.offset));
    entry("length", String(t.data.byteLength));
    w.int(14, 1); // data_location = EXTERNAL
  } else {
    w.bytes(9, tensorBytes(t)); // raw_data, little-endian
  }
}

function writeValueInfo(w: PbWriter, name: string, dtype: Value["dtype"], shape: readonly Dim[]) {
  w.string(1, name);
  w.sub(2, (type) =>
    type.sub(1, (tt) => {
      tt.int(1, DTYPE_TO_ONNX[dtype]);
      tt.sub(2, (sh) => {
        for (const d of shape) {
          sh.sub(1, (dim) => (typeof d === "number" ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }));
}

function writeAttr(w: PbWriter, name: string, a: Attr) {
  w.string(1, name);
  switch (a.type) {
    case "float":
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case "int":
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case "string":
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case "tensor":
      w.sub(5, (t) => writeTensorProto(t, "", a.value));
      w.int(20, 4);
      break;
    case "floats":
      w.packedFloats(7, a.value);
      w.int(20, 6);
      break;
    case "ints":
      w.packedInts(8, a.value);
      w.int(20, 7);
      break;
  }
}

function writeNode(w: PbWriter, n: Node) {
  for (const v of n.inputs) w.string(1, v ? v.name : "");
  for (const v of n.outputs) w.string(2, v.name);
  w.string(3, n.name);
  w.string(4, n.op);
  for (const [k, a] of Object.entries(n.attrs)) w.sub(5, (aw) => writeAttr(aw, k, a));
  if (n.domain) w.string(7, n.domain);
}

/**
 * Serialises `graph` as an ONNX ModelProto: the nodes the outputs need, the inputs/params they
 * read (data inputs first, then params in declaration order), constants and baked params as
 * initializers.
 *
 * @example
 * ```ts
 * const { model } = toOnnx(g);                                  // params stay graph inputs
 * const exp = toOnnx(g, { initializers: params });              // self-contained
 * ```
 */
export function toOnnx(graph: Graph, opts: ToOnnxOptions = {}): OnnxModel {
  const outputs = graph.outputs();
  if (outputs.length === 0) throw new RangeError("Cannot write ONNX: the graph has no outputs");
  const nodes = graph.ancestors(outputs);
  const used = new Set<Value>();
  for (const n of nodes) for (const v of n.inputs) if (v) used.add(v);
  const leaves = graph.values.filter((v) => used.has(v) && v.producer === null);
  const dataInputs = leaves.filter((v) => v.tags.has("input"));
  const params = leaves.filter((v) => v.tags.has("param"));
  const baked = opts.initializers ?? new Map<string, Tensor>();
  const inits: [string, Tensor][] = [];
  for (const v of leaves) {
    const c = graph.constants.get(v);
    if (c) inits.push([v.name, c]);
  }
  const paramInputs: Value[] = [];
  for (const p of params) {
    const t = baked.get(p.name);
    if (!t) {
      paramInputs.push(p);
      continue;
    }
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new RangeError(`Cannot bake "${p.name}": tensor shape [${t.shape}] differs from the graph's [${p.shape}]`);
    }
    if (t.dtype !== p.dtype) throw new TypeError(`Cannot bake "${p.name}": dtype ${t.dtype}, graph wants ${p.dtype}`);
    inits.push([p.name, t]);
  }

  const totalBytes = inits.reduce((s, [, t]) => s + t.data.byteLength, 0);
  const mode = opts.externalData ?? "auto";
  let placement: ExternalPlacement | undefined;
  if (typeof mode === "object") placement = mode;
  else if (mode === "auto" && totalBytes > PROTO_LIMIT) {
    placement = { location: opts.autoLocation ?? "model.onnx_data" };
  }
  const extChunks: Uint8Array[] = [];
  let extLen = 0;

  const gw = new PbWriter();
  for (const n of nodes) gw.sub(1, (nw) => writeNode(nw, n));
  gw.string(2, opts.name ?? "uer_ts");
  for (const [name, t] of inits) {
    let ext: { location: string; offset: number } | undefined;
    if (placement && t.data.byteLength >= (placement.minBytes ?? 1 << 20)) {
      const pad = (4096 - (extLen % 4096)) % 4096;
      if (pad) {
        extChunks.push(new Uint8Array(pad));
        extLen += pad;
      }
      ext = { location: placement.location, offset: extLen };
      extChunks.push(tensorBytes(t));
      extLen += t.data.byteLength;
    }
    gw.sub(5, (tw) => writeTensorProto(tw, name, t, ext));
  }
  for (const v of [...dataInputs, ...paramInputs]) gw.sub(11, (vw) => writeValueInfo(vw, v.name, v.dtype, v.shape));
  for (const v of outputs) gw.sub(12, (vw) => writeValueInfo(vw, v.name, v.dtype, v.shape));

  const mw = new PbWriter();
  mw.int(1, IR_VERSION);
  mw.string(2, "uer-ts");
  mw.string(3, "0.1.0");
  mw.message(7, gw);
  mw.sub(8, (o) => {
    o.string(1, "");
    o.int(2, OPSET);
  });
  for (const domain of new Set(nodes.flatMap((n) => (n.domain ? [n.domain] : [])))) {
    mw.sub(8, (o) => {
      o.string(1, domain);
      o.int(2, DOMAIN_OPSETS[domain] ?? 1);
    });
  }
  for (const [k, v] of Object.entries(opts.metadata ?? {})) {
    mw.sub(14, (e) => {
      e.string(1, k);
      e.string(2, v);
    });
  }
  const model = mw.finish();
  if (model.byteLength > 2 ** 31 - 1) {
    throw new RangeError(
      `Cannot write ONNX: the model is ${model.byteLength} bytes, over the 2 GB protobuf limit\n  hint: use externalData`,
    );
  }
  return placement && extLen > 0
    ? { model, external: { location: placement.location, chunks: extChunks, byteLength: extLen } }
    : { model };
}
