/**
 * Native CPU backend: onnxruntime-node, loaded by dynamic import so a WebGPU/wasm run never loads
 * it. NOT browser compatible (native addon). onnxruntime-node copies outputs into new buffers (so
 * fetch only the outputs needed, and make graphs output only the rows needed); inputs are zero-copy.
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
type OrtSessionOptions = import("onnxruntime-node").InferenceSession.SessionOptions;

let ortPromise: Promise<OrtNode> | undefined;
function loadOrt(): Promise<OrtNode> {
  ortPromise ??= import("onnxruntime-node");
  return ortPromise;
}

/**
 * The onnxruntime-node session options `createNodeSession` uses (exported so a benchmark can build
 * a raw session configured exactly like ours).
 *
 * @example
 * ```ts
 * const raw = await ort.InferenceSession.create(bytes, nodeSessionOptions({ threads: 2 }));
 * ```
 */
export function nodeSessionOptions(opts: SessionOptions = {}): OrtSessionOptions {
  return {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    ...(opts.memPattern === false ? { enableMemPattern: false } : {}),
    ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    // Worker threads sleep between parallel ops instead of spinning (see SessionOptions.spinning).
    ...(opts.spinning
      ? {}
      : { extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } } }),
    ...(opts.externalData ? { externalData: opts.externalData } : {}),
  };
}

/** Creates an onnxruntime-node CPU session. */
export async function createNodeSession(model: Uint8Array, opts: SessionOptions = {}): Promise<Session> {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(model, nodeSessionOptions(opts));
  type OrtTensor = InstanceType<OrtNode["Tensor"]>;
  // A host tensor fed or filled again and again (a training store's state buffers) keeps its
  // onnxruntime wrapper: ~160 wrappers per training step are not rebuilt (DESIGN.md §6.5).
  const wrappers = new WeakMap<Tensor, { data: Tensor["data"]; shape: number[]; ort: OrtTensor }>();
  const wrap = (t: Tensor): OrtTensor => {
    const c = wrappers.get(t);
    if (c && c.data === t.data && sameShape(c.shape, t.shape)) return c.ort;
    const o = new ort.Tensor(ortType(t.dtype) as "float32", t.data as Float32Array, t.shape);
    wrappers.set(t, { data: t.data, shape: [...t.shape], ort: o });
    return o;
  };
  const toOrt = (feeds: Record<string, Tensor | DeviceTensor>) => {
    const out: Record<string, OrtTensor> = {};
    for (const k in feeds) {
      const t = feeds[k];
      out[k] = isDeviceTensor(t) ? t.handle as unknown as OrtTensor : wrap(t);
    }
    return out;
  };
  const runOrt = (feeds: Record<string, Tensor | DeviceTensor>, fetches?: string[]) =>
    fetches ? session.run(toOrt(feeds), fetches) : session.run(toOrt(feeds));
  return {
    backend: "cpu",
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    handle: session,
    async runDevice(feeds, fetches) {
      const res = await runOrt(feeds, fetches);
      const out: Record<string, DeviceTensor> = {};
      for (const [k, v] of Object.entries(res)) out[k] = wrapOrt(v as unknown as OrtTensorLike);
      return out;
    },
    async run(feeds, fetches) {
      // CPU outputs are plain typed arrays already: hand them over without another copy.
      const res = await runOrt(feeds, fetches);
      const out: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(res)) {
        const t = wrapOrt(v as unknown as OrtTensorLike);
        out[k] = { dtype: t.dtype, shape: t.shape, data: v.data as Tensor["data"] };
      }
      return out;
    },
    async runInto(feeds, into, fetches) {
      // onnxruntime-node writes a pre-allocated output tensor in place (no per-call copy).
      const want: Record<string, OrtTensor | null> = {};
      for (const k of fetches) want[k] = null;
      for (const k in into) want[k] = wrap(into[k]);
      const res = await session.run(toOrt(feeds), want);
      const out: Record<string, Tensor> = {};
      for (const k of fetches) {
        const t = wrapOrt(res[k] as unknown as OrtTensorLike);
        out[k] = { dtype: t.dtype, shape: t.shape, data: res[k].data as Tensor["data"] };
      }
      return out;
    },
    release: () => session.release(),
  };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
