/**
 * Runtime selection: `createSession(onnxBytes, { device })` loads the onnxruntime flavour the device
 * needs (node.ts: native CPU; web.ts: WebGPU / wasm) by dynamic import, so the other is never loaded.
 * `--device auto` picks WebGPU only on a hardware adapter (`isFallbackAdapter` false) and native CPU
 * otherwise, and says which it chose; an explicit `webgpu` that cannot start is an error, never a
 * silent fallback (DESIGN.md §3). Browser compatible except that `cpu` needs onnxruntime-node.
 * @module
 */
import type { Backend, Device, Session, SessionOptions } from "./types.ts";

export * from "./types.ts";

/** What `navigator.gpu` offers here. */
export interface WebGpuProbe {
  available: boolean;
  fallback: boolean;
  description: string;
}

interface AdapterLike {
  isFallbackAdapter?: boolean;
  info?: { isFallbackAdapter?: boolean; description?: string; vendor?: string; architecture?: string; device?: string };
}

/** Asks `navigator.gpu` for an adapter (no device is created). */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  const gpu = (globalThis.navigator as unknown as { gpu?: { requestAdapter(): Promise<AdapterLike | null> } })?.gpu;
  if (!gpu) return { available: false, fallback: false, description: "navigator.gpu is missing" };
  let adapter: AdapterLike | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { available: false, fallback: false, description: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) return { available: false, fallback: false, description: "no WebGPU adapter" };
  const fallback = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
  const i = adapter.info ?? {};
  const description = [i.vendor, i.architecture, i.device, i.description].filter((s) => s).join(" ") || "adapter";
  return { available: true, fallback, description };
}

/** Resolves `--device` to a backend; `auto` reports its choice through `log`. */
export async function pickBackend(device: Device, log: (line: string) => void = console.error): Promise<Backend> {
  if (device === "cpu" || device === "wasm") return device;
  const probe = await probeWebGpu();
  if (device === "webgpu") {
    if (!probe.available) {
      throw new RangeError(
        `Cannot start --device webgpu: ${probe.description}\n  hint: use --device cpu (or run where a WebGPU adapter exists)`,
      );
    }
    return "webgpu";
  }
  if (device !== "auto") {
    throw new TypeError(`Cannot use --device "${device}": expected auto, cpu, webgpu or wasm`);
  }
  if (probe.available && !probe.fallback) {
    log(`device: webgpu (${probe.description})`);
    return "webgpu";
  }
  log(
    `device: cpu (onnxruntime-node; ${
      probe.available ? `WebGPU adapter "${probe.description}" is a software fallback` : probe.description
    })`,
  );
  return "cpu";
}

/**
 * Creates a session for an ONNX model on the requested device.
 *
 * @example
 * ```ts
 * const s = await createSession(toOnnx(g).model, { device: "cpu" });
 * const { mlm_logits } = await s.run({ src, seg, ...params });
 * ```
 */
export async function createSession(model: Uint8Array, opts: SessionOptions = {}): Promise<Session> {
  const backend = await pickBackend(opts.device ?? "auto", opts.log);
  if (backend === "cpu") {
    const { createNodeSession } = await import("./node.ts");
    return createNodeSession(model, opts);
  }
  const { createWebSession } = await import("./web.ts");
  try {
    return await createWebSession(model, backend, opts);
  } catch (e) {
    const msg = (e as Error).message?.split("\n")[0] ?? String(e);
    throw new RangeError(
      `Cannot start --device ${backend}: ${msg}\n  hint: use --device cpu`,
    );
  }
}
