/**
 * onnxruntime-web backends: the native WebGPU execution provider (`onnxruntime-web/webgpu`, through
 * `navigator.gpu`) and wasm (`onnxruntime-web`, which under Deno resolves to its Node build). Each
 * flavour is loaded by dynamic import only when asked for. Browser compatible.
 *
 * Outputs can stay on the GPU (`gpu-buffer`) and be fed back as inputs (trainer params/moments).
 * @module
 */
import type { Tensor } from "../tensor.ts";
import {
  type Backend,
  type DeviceTensor,
  isDeviceTensor,
  type OrtTensorLike,
  ortType,
  type Session,
  type SessionOptions,
  wrapOrt,
} from "./types.ts";

type OrtWeb = typeof import("onnxruntime-web");

let webgpuOrt: Promise<OrtWeb> | undefined;
let wasmOrt: Promise<OrtWeb> | undefined;

function loadOrt(backend: "webgpu" | "wasm"): Promise<OrtWeb> {
  const load = async (p: Promise<unknown>) => {
    const ort = (await p) as OrtWeb;
    // Single-threaded wasm: the multi-threaded build needs a worker shim under Deno (DESIGN.md §3).
    ort.env.wasm.numThreads = 1;
    return ort;
  };
  if (backend === "webgpu") return webgpuOrt ??= load(import("onnxruntime-web/webgpu"));
  return wasmOrt ??= load(import("onnxruntime-web"));
}

/** Creates an onnxruntime-web session on WebGPU or wasm. */
export async function createWebSession(
  model: Uint8Array,
  backend: Exclude<Backend, "cpu">,
  opts: SessionOptions = {},
): Promise<Session> {
  const ort = await loadOrt(backend);
  let preferredOutputLocation: "gpu-buffer" | Record<string, "gpu-buffer" | "cpu"> | undefined;
  if (backend === "webgpu" && opts.gpuOutputs) {
    preferredOutputLocation = opts.gpuOutputs === true
      ? "gpu-buffer"
      : Object.fromEntries(opts.gpuOutputs.map((n) => [n, "gpu-buffer" as const]));
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [backend],
    graphOptimizationLevel: "all",
    ...(preferredOutputLocation ? { preferredOutputLocation } : {}),
    ...(opts.externalData ? { externalData: opts.externalData } : {}),
  });
  const toOrt = (feeds: Record<string, Tensor | DeviceTensor>) => {
    const out: Record<string, InstanceType<OrtWeb["Tensor"]>> = {};
    for (const [k, t] of Object.entries(feeds)) {
      out[k] = isDeviceTensor(t)
        ? t.handle as unknown as InstanceType<OrtWeb["Tensor"]>
        : new ort.Tensor(ortType(t.dtype) as "float32", t.data as Float32Array, t.shape);
    }
    return out;
  };
  const runDevice = async (feeds: Record<string, Tensor | DeviceTensor>, fetches?: string[]) => {
    const res = fetches ? await session.run(toOrt(feeds), fetches) : await session.run(toOrt(feeds));
    const out: Record<string, DeviceTensor> = {};
    for (const [k, v] of Object.entries(res)) out[k] = wrapOrt(v as unknown as OrtTensorLike);
    return out;
  };
  return {
    backend,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    runDevice,
    async run(feeds, fetches) {
      const res = await runDevice(feeds, fetches);
      const out: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(res)) {
        out[k] = await v.download();
        if (v.location !== "cpu") v.dispose();
      }
      return out;
    },
    release: () => session.release(),
  };
}
