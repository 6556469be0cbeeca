/**
 * Counting and timing WebGPU work from outside, whatever engine does it (onnxruntime-web's WebGPU EP
 * or the project's own executor, core/webgpu/executor.ts): `WebGpuRecorder.install()` wraps the
 * WebGPU prototypes once (`GPUQueue.submit`, `GPUQueue.writeBuffer`, `GPUBuffer.mapAsync`,
 * `GPUComputePassEncoder.dispatchWorkgroups`, `GPUCommandEncoder.beginComputePass/finish`,
 * `GPUAdapter.requestDevice`) and counts calls and bytes between `reset()`s. With `timestamps`, every
 * compute pass an engine opens gets begin/end timestamp writes (when the adapter offers
 * `timestamp-query`, the feature is added to the devices created afterwards), so GPU busy time, the
 * span from the first pass to the last and the idle gaps in between can be read per step (`gpuTimes()`)
 * without the engine's cooperation. The recorder's own readbacks go through the unwrapped functions
 * and are not counted. Used by the counting test (core/webgpu/counts_test.ts) and
 * bench/webgpu_step_bench.ts. Browser compatible: no Deno APIs.
 * @module
 */

import { USAGE } from "./executor.ts";

/** Calls and bytes counted since the last `reset()`. */
export interface GpuCounts {
  /** `GPUQueue.submit` calls. */
  submits: number;
  /** Command buffers submitted. */
  commandBuffers: number;
  /** Compute passes begun. */
  passes: number;
  /** `dispatchWorkgroups` + `dispatchWorkgroupsIndirect` calls. */
  dispatches: number;
  /** `GPUQueue.writeBuffer` calls. */
  writeBuffers: number;
  /** Bytes written by them (host → GPU). */
  writeBytes: number;
  /** `GPUBuffer.mapAsync` calls (readbacks). */
  mapAsyncs: number;
  /** Bytes mapped by them (GPU → host). */
  mapBytes: number;
  /** Wall ms spent between each `mapAsync` call and its resolution, summed. */
  mapWaitMs: number;
  /** Wall ms spent inside `submit` calls, summed (the host side of handing work over). */
  submitMs: number;
  /** Each `writeBuffer`: the buffer's label, byte offset and bytes. */
  writes: { label: string; offset: number; bytes: number }[];
}

/** GPU time of the compute passes recorded since the last `reset()`, from timestamp queries. */
export interface GpuTimes {
  /** Passes timed. */
  passes: number;
  /** Sum of pass durations (ms): time the GPU spent in compute passes. */
  busyMs: number;
  /** From the first pass's start to the last pass's end (ms). */
  spanMs: number;
  /** `spanMs - busyMs`: time between passes (submission gaps, readback round trips, host work). */
  idleMs: number;
  /** Per-pass durations (ms) in submission order. */
  passMs: number[];
}

interface TimedSet {
  set: GPUQuerySet;
  used: number;
}

interface DeviceTimer {
  device: GPUDevice;
  /** Query set currently being filled (2 queries per pass). */
  current?: TimedSet;
  /** Per encoder: the query ranges its passes used, resolved at finish(). */
  readbacks: { buffer: GPUBuffer; count: number }[];
}

const QUERIES_PER_SET = 512;

type Proto = Record<string, unknown>;
type MapAsync = (this: GPUBuffer, mode: number, offset?: number, size?: number) => Promise<void>;

function protoOf(name: string): Proto | undefined {
  const ctor = (globalThis as Record<string, unknown>)[name] as { prototype?: Proto } | undefined;
  return ctor?.prototype;
}

/**
 * Wraps the WebGPU prototypes to count calls and time passes; one per process.
 *
 * @example
 * ```ts
 * const rec = WebGpuRecorder.install({ timestamps: true });
 * rec.reset();
 * await trainer.step(batch, lr);
 * console.log(rec.counts().submits, (await rec.gpuTimes())?.busyMs);
 * rec.uninstall();
 * ```
 */
export class WebGpuRecorder {
  static #active: WebGpuRecorder | undefined;
  #restore: (() => void)[] = [];
  #counts: GpuCounts = zeroCounts();
  #timestamps: boolean;
  #deviceOf = new WeakMap<object, DeviceTimer>();
  #timers = new Map<GPUDevice, DeviceTimer>();
  #pendingPass = new WeakMap<
    object,
    { timer: DeviceTimer; sets: { set: GPUQuerySet; first: number; count: number }[] }
  >();
  /** Unwrapped functions the recorder uses for its own readbacks. */
  #mapAsync!: MapAsync;

  private constructor(timestamps: boolean) {
    this.#timestamps = timestamps;
  }

  /** Installs the wrappers (or returns the recorder already installed, with timestamps if either asked). */
  static install(opts: { timestamps?: boolean } = {}): WebGpuRecorder {
    if (WebGpuRecorder.#active) {
      if (opts.timestamps) WebGpuRecorder.#active.#timestamps = true;
      return WebGpuRecorder.#active;
    }
    const r = new WebGpuRecorder(opts.timestamps ?? false);
    r.#wrapAll();
    WebGpuRecorder.#active = r;
    return r;
  }

  /** True when `navigator.gpu` and the prototypes exist (Deno, browsers). */
  static available(): boolean {
    return protoOf("GPUQueue") !== undefined && protoOf("GPUBuffer") !== undefined;
  }

  /** The counts since the last reset (a copy). */
  counts(): GpuCounts {
    return { ...this.#counts, writes: [...this.#counts.writes] };
  }

  /** Starts a new measurement window (counts and timestamps). */
  reset(): void {
    this.#counts = zeroCounts();
    for (const t of this.#timers.values()) {
      for (const r of t.readbacks) r.buffer.destroy();
      t.readbacks = [];
    }
  }

  /**
   * Reads the pass timestamps recorded since the last reset (waits for the GPU), or undefined when
   * no device had timestamps. The readback is not counted.
   */
  async gpuTimes(): Promise<GpuTimes | undefined> {
    const spans: [bigint, bigint][] = [];
    let any = false;
    for (const t of this.#timers.values()) {
      for (const r of t.readbacks) {
        any = true;
        await this.#mapAsync.call(r.buffer, 1 /* MAP_READ */);
        const v = new BigUint64Array(r.buffer.getMappedRange().slice(0));
        r.buffer.unmap();
        for (let i = 0; i + 1 < r.count; i += 2) spans.push([v[i], v[i + 1]]);
      }
    }
    if (!any) return undefined;
    const passMs = spans.map(([a, b]) => Number(b - a) / 1e6);
    const busyMs = passMs.reduce((a, b) => a + b, 0);
    const valid = spans.filter(([a, b]) => a > 0n && b >= a);
    const first = valid.reduce((m, [a]) => (a < m ? a : m), valid[0]?.[0] ?? 0n);
    const last = valid.reduce((m, [, b]) => (b > m ? b : m), 0n);
    const spanMs = valid.length ? Number(last - first) / 1e6 : 0;
    return { passes: spans.length, busyMs, spanMs, idleMs: Math.max(0, spanMs - busyMs), passMs };
  }

  /** Restores the original prototypes. */
  uninstall(): void {
    for (const f of this.#restore.reverse()) f();
    this.#restore = [];
    this.reset();
    if (WebGpuRecorder.#active === this) WebGpuRecorder.#active = undefined;
  }

  #wrap(protoName: string, method: string, make: (orig: (...a: unknown[]) => unknown) => (...a: unknown[]) => unknown) {
    const proto = protoOf(protoName);
    if (!proto) return;
    const orig = proto[method] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof orig !== "function") return;
    proto[method] = make(orig);
    this.#restore.push(() => (proto[method] = orig));
  }

  #wrapAll(): void {
    const c = () => this.#counts;
    const wantTimestamps = () => this.#timestamps;
    const timers = this.#timers, deviceOf = this.#deviceOf, pendingPass = this.#pendingPass;
    this.#mapAsync = protoOf("GPUBuffer")!.mapAsync as MapAsync;
    this.#wrap("GPUQueue", "submit", (orig) =>
      function (this: unknown, ...a: unknown[]) {
        const t0 = performance.now();
        try {
          return orig.apply(this, a);
        } finally {
          c().submitMs += performance.now() - t0;
          c().submits++;
          c().commandBuffers += Array.isArray(a[0]) ? a[0].length : 0;
        }
      });
    this.#wrap("GPUQueue", "writeBuffer", (orig) =>
      function (this: unknown, ...a: unknown[]) {
        const bytes = writeSize(a);
        c().writeBuffers++;
        c().writeBytes += bytes;
        c().writes.push({ label: (a[0] as GPUBuffer)?.label ?? "", offset: Number(a[1] ?? 0), bytes });
        return orig.apply(this, a);
      });
    this.#wrap("GPUBuffer", "mapAsync", (orig) =>
      function (this: GPUBuffer, ...a: unknown[]) {
        c().mapAsyncs++;
        c().mapBytes += typeof a[2] === "number" ? a[2] : this.size - (typeof a[1] === "number" ? a[1] : 0);
        const t0 = performance.now();
        const counts = c();
        return (orig.apply(this, a) as Promise<void>).finally(() => (counts.mapWaitMs += performance.now() - t0));
      });
    for (const m of ["dispatchWorkgroups", "dispatchWorkgroupsIndirect"]) {
      this.#wrap("GPUComputePassEncoder", m, (orig) =>
        function (this: unknown, ...a: unknown[]) {
          c().dispatches++;
          return orig.apply(this, a);
        });
    }
    this.#wrap("GPUAdapter", "requestDevice", (orig) =>
      async function (this: GPUAdapter, ...a: unknown[]) {
        const desc = { ...(a[0] as GPUDeviceDescriptor | undefined) };
        const want = wantTimestamps() && this.features.has("timestamp-query");
        if (want) {
          const req = new Set<GPUFeatureName>(desc.requiredFeatures ?? []);
          req.add("timestamp-query");
          desc.requiredFeatures = [...req];
        }
        const device = (await orig.call(this, desc, ...a.slice(1))) as GPUDevice;
        if (want && device.features.has("timestamp-query")) {
          const timer: DeviceTimer = { device, readbacks: [] };
          timers.set(device, timer);
          device.lost.then(() => timers.delete(device));
        }
        return device;
      });
    this.#wrap("GPUDevice", "createCommandEncoder", (orig) =>
      function (this: GPUDevice, ...a: unknown[]) {
        const enc = orig.apply(this, a) as object;
        const timer = timers.get(this);
        if (timer) deviceOf.set(enc, timer);
        return enc;
      });
    this.#wrap("GPUCommandEncoder", "beginComputePass", (orig) =>
      function (this: object, ...a: unknown[]) {
        c().passes++;
        const timer = deviceOf.get(this);
        const desc = (a[0] ?? {}) as GPUComputePassDescriptor;
        if (!timer || !wantTimestamps() || desc.timestampWrites) return orig.apply(this, a);
        let cur = timer.current;
        if (!cur || cur.used + 2 > QUERIES_PER_SET) {
          cur = timer.current = {
            set: timer.device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET }),
            used: 0,
          };
        }
        const first = cur.used;
        cur.used += 2;
        let pend = pendingPass.get(this);
        if (!pend) pendingPass.set(this, pend = { timer, sets: [] });
        const last = pend.sets.at(-1);
        if (last && last.set === cur.set && last.first + last.count === first) last.count += 2;
        else pend.sets.push({ set: cur.set, first, count: 2 });
        return orig.call(this, {
          ...desc,
          timestampWrites: { querySet: cur.set, beginningOfPassWriteIndex: first, endOfPassWriteIndex: first + 1 },
        });
      });
    this.#wrap("GPUCommandEncoder", "finish", (orig) =>
      function (this: GPUCommandEncoder, ...a: unknown[]) {
        const pend = pendingPass.get(this);
        if (pend) {
          pendingPass.delete(this);
          const dev = pend.timer.device;
          for (const s of pend.sets) {
            const bytes = s.count * 8;
            const resolve = dev.createBuffer({
              size: bytes,
              usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC,
            });
            const read = dev.createBuffer({ size: bytes, usage: USAGE.MAP_READ | USAGE.COPY_DST });
            this.resolveQuerySet(s.set, s.first, s.count, resolve, 0);
            this.copyBufferToBuffer(resolve, 0, read, 0, bytes);
            pend.timer.readbacks.push({ buffer: read, count: s.count });
            queueMicrotask(() => resolve.destroy());
          }
        }
        return orig.apply(this, a);
      });
  }
}

function zeroCounts(): GpuCounts {
  return {
    submits: 0,
    commandBuffers: 0,
    passes: 0,
    dispatches: 0,
    writeBuffers: 0,
    writeBytes: 0,
    mapAsyncs: 0,
    mapBytes: 0,
    mapWaitMs: 0,
    submitMs: 0,
    writes: [],
  };
}

/** Bytes a `writeBuffer(buffer, offset, data, dataOffset?, size?)` call writes. */
function writeSize(a: unknown[]): number {
  const data = a[2] as ArrayBufferView | ArrayBuffer | undefined;
  if (!data) return 0;
  const elemBytes = ArrayBuffer.isView(data) && "BYTES_PER_ELEMENT" in data
    ? (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT
    : 1;
  const total = ArrayBuffer.isView(data) ? data.byteLength : (data as ArrayBuffer).byteLength;
  const dataOffset = typeof a[3] === "number" ? a[3] * elemBytes : 0;
  return typeof a[4] === "number" ? a[4] * elemBytes : total - dataOffset;
}
