/**
 * Types shared by the onnxruntime backends (node.ts, web.ts) and conversions between the project's
 * `Tensor` and onnxruntime's tensor objects (the same shape in onnxruntime-node and -web).
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { DType, Tensor } from "../tensor.ts";

/** Where a session runs: native CPU (onnxruntime-node), WebGPU or wasm (onnxruntime-web). */
export type Backend = "cpu" | "webgpu" | "wasm";
/** `--device` values: `auto` = WebGPU on a hardware adapter, native CPU otherwise. */
export type Device = "auto" | Backend;

/** The subset of an onnxruntime tensor the wrappers use (node and web share it). */
export interface OrtTensorLike {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
  readonly location?: string;
  getData?(releaseData?: boolean): Promise<unknown>;
  dispose(): void;
}

/** An output left where the runtime produced it (e.g. a `gpu-buffer`), to feed back without a copy. */
export interface DeviceTensor {
  readonly kind: "device";
  readonly dtype: DType;
  readonly shape: number[];
  /** "cpu" or "gpu-buffer". */
  readonly location: string;
  /** The runtime's tensor object (opaque to callers). */
  readonly handle: OrtTensorLike;
  /** Copies it into a host Tensor. */
  download(): Promise<Tensor>;
  /** Frees device memory. */
  dispose(): void;
}

/** Options of `createSession`. */
export interface SessionOptions {
  device?: Device;
  /** Intra-op threads (CPU; default onnxruntime's choice). */
  threads?: number;
  /** Outputs to keep on the GPU (`gpu-buffer`); true = all (WebGPU only). */
  gpuOutputs?: boolean | string[];
  /** Where to report the device `auto` chose (default console.error). */
  log?: (line: string) => void;
  /** External data files: path inside the model → bytes. */
  externalData?: { path: string; data: Uint8Array }[];
  /**
   * CPU: let onnxruntime's intra-op worker threads busy-wait for work (default false). Spinning
   * saves a wake-up per parallel op on an idle machine but burns the cores other sessions and
   * processes need on a shared one (measured in bench/infer_bench.ts).
   */
  spinning?: boolean;
  /**
   * CPU: onnxruntime's memory pattern (default true, its own default): after the first runs it
   * allocates all intermediates of a run as ONE block from its arena. The block cannot reuse the
   * arena chunks the first runs freed, so the arena ends up holding the live set twice. Training
   * sessions turn it off: peak RSS then follows the graph's memory plan (core/graph/memory_plan.ts;
   * measured on ALBERT-base: 94 MB per row of 128 tokens instead of 200, no speed change; DESIGN.md §6).
   */
  memPattern?: boolean;
  /**
   * WebGPU/wasm: record which execution provider each node was placed on (read from onnxruntime's
   * verbose session-creation log, which is then not printed) in `Session.placement`.
   */
  reportPlacement?: boolean;
}

/** Where onnxruntime placed the (optimized) graph's nodes, per execution provider (e.g. `WebGpuExecutionProvider`). */
export interface Placement {
  /** Execution provider → number of nodes. */
  counts: Record<string, number>;
  /** Execution provider → its nodes as `Op (name)`; onnxruntime lists them only when the graph is split. */
  nodes: Record<string, string[]>;
}

/** A loaded model ready to run. */
export interface Session {
  readonly backend: Backend;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** The runtime's own `InferenceSession` (for benchmarks and diagnostics; opaque otherwise). */
  readonly handle?: unknown;
  /** Node placement per execution provider, when created with `reportPlacement` (WebGPU/wasm). */
  readonly placement?: Placement;
  /** Runs and copies the fetched outputs (default all) to host Tensors. */
  run(feeds: Record<string, Tensor | DeviceTensor>, fetches?: string[]): Promise<Record<string, Tensor>>;
  /** Runs and returns outputs where they were produced (GPU buffers stay on the GPU). */
  runDevice(feeds: Record<string, Tensor | DeviceTensor>, fetches?: string[]): Promise<Record<string, DeviceTensor>>;
  /**
   * CPU only: runs writing the outputs named in `into` straight into those host tensors (no
   * allocation or copy per call; they must not share memory with `feeds`) and returns the outputs
   * named in `fetches` as `run` does. For loops that feed the outputs back (training state).
   */
  runInto?(
    feeds: Record<string, Tensor | DeviceTensor>,
    into: Record<string, Tensor>,
    fetches: string[],
  ): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

const TO_ORT: Partial<Record<DType, string>> = {
  F32: "float32",
  F64: "float64",
  F16: "float16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};
const FROM_ORT: Record<string, DType> = Object.fromEntries(
  Object.entries(TO_ORT).map(([k, v]) => [v, k as DType]),
);

/** onnxruntime type name of a dtype. */
export function ortType(dtype: DType): string {
  const t = TO_ORT[dtype];
  if (!t) throw new TypeError(`Cannot feed a ${dtype} tensor to onnxruntime`);
  return t;
}

/** Project dtype of an onnxruntime type name. */
export function fromOrtType(type: string): DType {
  const t = FROM_ORT[type];
  if (!t) throw new TypeError(`Cannot read an onnxruntime ${type} tensor`);
  return t;
}

/** True for a DeviceTensor. */
export function isDeviceTensor(t: Tensor | DeviceTensor): t is DeviceTensor {
  return (t as DeviceTensor).kind === "device";
}

/** Wraps an onnxruntime output as a DeviceTensor. */
export function wrapOrt(t: OrtTensorLike): DeviceTensor {
  const dtype = fromOrtType(t.type);
  const shape = [...t.dims];
  return {
    kind: "device",
    dtype,
    shape,
    location: t.location ?? "cpu",
    handle: t,
    async download(): Promise<Tensor> {
      const data = (t.location && t.location !== "cpu" && t.getData ? await t.getData() : t.data) as Tensor["data"];
      return { dtype, shape, data };
    },
    dispose: () => t.dispose(),
  };
}
