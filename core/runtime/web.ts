/**
 * onnxruntime-web backends: the native WebGPU execution provider (`onnxruntime-web/webgpu`, through
 * `navigator.gpu`) and wasm (`onnxruntime-web`, which under Deno resolves to its Node build). Each
 * flavour is loaded by dynamic import only when asked for. Browser compatible.
 *
 * Outputs can stay on the GPU (`gpu-buffer`) and be fed back as inputs (trainer params/moments).
 *
 * Node placement (`reportPlacement`): onnxruntime only tells which execution provider runs each node
 * in its verbose log ("Node(s) placed on [WebGpuExecutionProvider]…"), which the wasm module prints
 * on stderr: `console.error` in a browser, `fs.writeSync(2, …)` under Deno/Node (ort_log_tap.ts).
 * Before the first import that sink is wrapped once in a pass-through: while such a session is
 * being created it collects onnxruntime's log lines for parsing; onnxruntime's verbose/info lines
 * (seen only because of that verbose creation) are never printed; everything else passes unchanged.
 * The Deno/Node half (node:fs) is a separate module, imported only where `process.versions.node`
 * exists, so this file stays browser compatible.
 * @module
 */
import type { Tensor } from "../tensor.ts";
import {
  type Backend,
  type DeviceTensor,
  isDeviceTensor,
  type OrtTensorLike,
  ortType,
  type Placement,
  type Session,
  type SessionOptions,
  wrapOrt,
} from "./types.ts";

type OrtWeb = typeof import("onnxruntime-web");

let webgpuOrt: Promise<OrtWeb> | undefined;
let wasmOrt: Promise<OrtWeb> | undefined;

/** Collects the onnxruntime log lines of the session being created with `reportPlacement`. */
let capture: string[] | undefined;
/**
 * Takes a stderr line; true = do not print it. onnxruntime's verbose and info lines are consumed:
 * they appear only because a session was created at verbose level (which also makes its WebGPU
 * context log every kernel launch afterwards). Warnings and errors are printed, except the
 * "nodes were not assigned" hint that `reportPlacement` answers.
 */
function onLine(line: string): boolean {
  if (!ORT_LOG.test(line)) return false;
  capture?.push(line);
  return /\[[VI]:onnxruntime/.test(line) || (capture !== undefined && /VerifyEachNodeIsAssignedToAnEp/.test(line));
}
let tapped: Promise<void> | undefined;
function tapStderr(): Promise<void> {
  return tapped ??= (async () => {
    const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
    if (proc?.versions?.node) {
      const { installFsLogTap } = await import("./ort_log_tap.ts");
      installFsLogTap(onLine);
      return;
    }
    const original = console.error;
    console.error = (...args: unknown[]) => {
      if (!(args.length === 1 && onLine(String(args[0])))) original.apply(console, args);
    };
  })();
}

/** onnxruntime's log line format: `<date> <time> [V:onnxruntime:…, file.cc:123 Function] message`. */
const ORT_LOG = /\[[VIWEF]:onnxruntime:[^\]]*\]/;

/**
 * Parses onnxruntime's verbose "Node placements" block: `All nodes placed on [EP]. Number of nodes: N`,
 * or per EP `Node(s) placed on [EP]. Number of nodes: N` followed by one `  Op (name)` line per node.
 */
export function parsePlacement(lines: string[]): Placement {
  const out: Placement = { counts: {}, nodes: {} };
  let ep: string | undefined;
  for (const line of lines) {
    const m = line.match(/(All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/);
    if (m) {
      ep = m[2];
      out.counts[ep] = Number(m[3]);
      out.nodes[ep] ??= [];
      continue;
    }
    const node = line.match(/VerifyEachNodeIsAssignedToAnEp\] {3}(\S.*?)\s*$/);
    if (node && ep) out.nodes[ep].push(node[1]);
  }
  return out;
}

// Placement-reporting creations run one at a time, so their log lines cannot interleave.
let placementQueue: Promise<unknown> = Promise.resolve();

function loadOrt(backend: "webgpu" | "wasm"): Promise<OrtWeb> {
  const load = async (p: () => Promise<unknown>) => {
    await tapStderr();
    const ort = (await p()) as OrtWeb;
    // Single-threaded wasm: the multi-threaded build needs a worker shim under Deno (DESIGN.md §3).
    ort.env.wasm.numThreads = 1;
    return ort;
  };
  if (backend === "webgpu") return webgpuOrt ??= load(() => import("onnxruntime-web/webgpu"));
  return wasmOrt ??= load(() => import("onnxruntime-web"));
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
  const sessionOptions = {
    executionProviders: [backend],
    graphOptimizationLevel: "all" as const,
    ...(preferredOutputLocation ? { preferredOutputLocation } : {}),
    ...(opts.externalData ? { externalData: opts.externalData } : {}),
  };
  let placement: Placement | undefined;
  let session: import("onnxruntime-web").InferenceSession;
  if (opts.reportPlacement) {
    const create = async () => {
      const lines: string[] = capture = [];
      try {
        return await ort.InferenceSession.create(model, { ...sessionOptions, logSeverityLevel: 0 });
      } finally {
        capture = undefined;
        placement = parsePlacement(lines);
      }
    };
    const turn = placementQueue.then(create);
    placementQueue = turn.catch(() => {});
    session = await turn;
  } else {
    session = await ort.InferenceSession.create(model, sessionOptions);
  }
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
    handle: session,
    ...(placement ? { placement } : {}),
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
