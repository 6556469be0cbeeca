/**
 * Native CPU backend: onnxruntime-node, loaded by dynamic import so a WebGPU/wasm run never loads
 * it. NOT browser compatible (native addon). onnxruntime-node copies outputs into new buffers;
 * inputs are zero-copy.
 * @module
 */
import type { Tensor } from "../tensor.ts";
import {
  type DeviceTensor,
  isDeviceTensor,
  type OrtTensorLike,
  ortType,
  type Session,
  type SessionOptions,
  wrapOrt,
} from "./types.ts";

type OrtNode = typeof import("onnxruntime-node");

let ortPromise: Promise<OrtNode> | undefined;
function loadOrt(): Promise<OrtNode> {
  ortPromise ??= import("onnxruntime-node");
  return ortPromise;
}

/** Creates an onnxruntime-node CPU session. */
export async function createNodeSession(model: Uint8Array, opts: SessionOptions = {}): Promise<Session> {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    ...(opts.externalData ? { externalData: opts.externalData } : {}),
  });
  const toOrt = (feeds: Record<string, Tensor | DeviceTensor>) => {
    const out: Record<string, InstanceType<OrtNode["Tensor"]>> = {};
    for (const [k, t] of Object.entries(feeds)) {
      out[k] = isDeviceTensor(t)
        ? t.handle as unknown as InstanceType<OrtNode["Tensor"]>
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
    backend: "cpu",
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    runDevice,
    async run(feeds, fetches) {
      const res = await runDevice(feeds, fetches);
      const out: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(res)) out[k] = await v.download();
      return out;
    },
    release: () => session.release(),
  };
}
