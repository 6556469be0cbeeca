/**
 * Feature files of `infer --task feature-extraction --output_path` (UER-py `scripts/extract_features.py`
 * saves one torch tensor; HF's pipeline returns arrays): the same three arrays in every format —
 * `last_hidden_state` [N, L, H] float32 (rows zero-padded past their length), `pooled_output` [N, H]
 * float32 (when the model has a pooler) and `lengths` [N] int64:
 * - `.safetensors`: one file, three tensors;
 * - `.npz`: numpy's zip of `.npy` files (`np.load(path)["lengths"]`), stored, one entry per array;
 * - `.npy`: `last_hidden_state` itself, and beside it `<stem>.pooled_output.npy` and `<stem>.lengths.npy`.
 * Browser compatible (bytes only; cli/infer.ts writes them).
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import { writeSafetensors } from "./safetensors.ts";
import { writeTorchZip } from "./zip.ts";

/** What feature extraction produced, per text. */
export interface FeatureRows {
  /** [L_i * H] each. */
  lastHiddenStates: Float32Array[];
  /** [H] each; undefined when the model has no pooler. */
  pooledOutputs?: Float32Array[];
  lengths: number[];
  hiddenSize: number;
}

const NPY_DESCR: Partial<Record<Tensor["dtype"], string>> = { F32: "<f4", I64: "<i8" };

/**
 * A `.npy` (format 1.0) file of a float32 or int64 tensor.
 *
 * @example
 * ```ts
 * const bytes = encodeNpy({ dtype: "F32", shape: [2, 3], data: new Float32Array(6) });
 * ```
 */
export function encodeNpy(t: Tensor): Uint8Array {
  const descr = NPY_DESCR[t.dtype];
  if (!descr) throw new TypeError(`Cannot write .npy: dtype ${t.dtype} is not supported`);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const bytes = new Uint8Array(10 + header.length + t.data.byteLength);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  bytes.set(new TextEncoder().encode(header), 10);
  bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), 10 + header.length);
  return bytes;
}

/** The three arrays as tensors (`pooled_output` absent without a pooler). */
export function featureTensors(f: FeatureRows): Map<string, Tensor> {
  const N = f.lengths.length, H = f.hiddenSize;
  const L = Math.max(0, ...f.lengths);
  const hidden = new Float32Array(N * L * H);
  f.lastHiddenStates.forEach((h, i) => hidden.set(h, i * L * H));
  const out = new Map<string, Tensor>([["last_hidden_state", { dtype: "F32", shape: [N, L, H], data: hidden }]]);
  if (f.pooledOutputs) {
    const pooled = new Float32Array(N * H);
    f.pooledOutputs.forEach((p, i) => pooled.set(p, i * H));
    out.set("pooled_output", { dtype: "F32", shape: [N, H], data: pooled });
  }
  out.set("lengths", { dtype: "I64", shape: [N], data: BigInt64Array.from(f.lengths, (n) => BigInt(n)) });
  return out;
}

/**
 * The files to write for `path` (by its extension): `[path, bytes]` pairs.
 *
 * @example
 * ```ts
 * for (const [p, bytes] of featureFiles("f.npz", rows)) await Deno.writeFile(p, bytes);
 * ```
 */
export function featureFiles(path: string, f: FeatureRows): [string, Uint8Array][] {
  const t = featureTensors(f);
  if (path.endsWith(".safetensors")) {
    return [[
      path,
      writeSafetensors(t, { format: "pt", note: "uer-ts infer feature-extraction; rows zero-padded beyond lengths" }),
    ]];
  }
  if (path.endsWith(".npz")) {
    return [[path, writeTorchZip([...t].map(([name, v]) => ({ name: `${name}.npy`, data: encodeNpy(v) })))]];
  }
  if (path.endsWith(".npy")) {
    const stem = path.slice(0, -".npy".length);
    return [...t].map(([name, v]) => [name === "last_hidden_state" ? path : `${stem}.${name}.npy`, encodeNpy(v)]);
  }
  throw new TypeError(
    `Cannot write --output_path "${path}": unknown extension\n  hint: use .safetensors, .npz or .npy`,
  );
}
