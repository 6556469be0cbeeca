/**
 * The one in-memory tensor type shared by readers, writers, graphs and checkpoints: a flat typed
 * array, a shape and a dtype name (safetensors spelling). Browser compatible: no Deno APIs.
 * @module
 */

/** Element types the project reads and writes (safetensors names). */
export type DType = "F32" | "F64" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Typed array per dtype; F16/BF16 stay raw `Uint16Array` bits. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** A dense row-major tensor. */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Record<DType, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Views `bytes` (little-endian) as a typed array of `dtype`, copying only when unaligned.
 *
 * @example
 * ```ts
 * const t = typedFromBytes("F32", new Uint8Array(8)); // Float32Array(2)
 * ```
 */
export function typedFromBytes(dtype: DType, bytes: Uint8Array): TensorData {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`Cannot view ${bytes.byteLength} bytes as ${dtype}: not a multiple of ${size}`);
  }
  const src = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = src.byteLength / size;
  switch (dtype) {
    case "F32":
      return new Float32Array(src.buffer, src.byteOffset, n);
    case "F64":
      return new Float64Array(src.buffer, src.byteOffset, n);
    case "F16":
    case "BF16":
    case "I16":
      return dtype === "I16"
        ? new Int16Array(src.buffer, src.byteOffset, n)
        : new Uint16Array(src.buffer, src.byteOffset, n);
    case "I64":
      return new BigInt64Array(src.buffer, src.byteOffset, n);
    case "I32":
      return new Int32Array(src.buffer, src.byteOffset, n);
    case "I8":
      return new Int8Array(src.buffer, src.byteOffset, n);
    case "U8":
    case "BOOL":
      return new Uint8Array(src.buffer, src.byteOffset, n);
  }
}

/** The bytes of a tensor's data (a view, no copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** A float32 tensor. */
export function f32(shape: number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  const d = data ?? new Float32Array(n);
  if (d.length !== n) throw new RangeError(`Shape [${shape}] needs ${n} elements, got ${d.length}`);
  return { dtype: "F32", shape, data: d };
}
