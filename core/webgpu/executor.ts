/**
 * Runs a lowered program (core/webgpu/lower.ts) on a WebGPU device: one GPU buffer per arena
 * (activations as placed by the memory plan, constants uploaded once, and the caller's fixed arenas:
 * parameters, moments, gradients, statistics, double-buffered inputs), one pipeline per distinct
 * kernel text, and one bind group per kernel (per input slot) made once, with the buffer offsets of
 * every kernel in one uniform buffer written once. `encode()` records the whole program into a
 * compute pass: nothing is allocated or written per step but the inputs. Browser compatible.
 * @module
 */
import type { Buf } from "./expr.ts";
import { type Kernel, type KernelCode, kernelCode } from "./kernels.ts";
import type { Program } from "./lower.ts";
import { planMemory } from "./plan.ts";

/** A fixed arena the caller lays out (parameters, inputs, …). */
export interface ArenaSpec {
  name: string;
  dt: "f32" | "i32";
  /** Elements (per slot). */
  size: number;
  /** Input arenas: copies used in turn (double-buffering); default 1. */
  slots?: number;
}

interface ArenaGpu {
  spec: ArenaSpec;
  /** Undefined for external arenas (bound per run). */
  buffer?: GPUBuffer;
  /** Bytes per slot (aligned). */
  slotBytes: number;
}

interface Prepared {
  kernel: Kernel;
  code: KernelCode;
  pipeline: GPUComputePipeline;
  /** This kernel's slice of the offsets uniform. */
  uniform: { offset: number; size: number };
  /** Bind groups by input slot and external buffers. */
  groups: Map<string, GPUBindGroup>;
  /** Whether the kernel reads a double-buffered input arena or an external one. */
  slotted: boolean;
  external: string[];
}

/** Identity numbers of GPU buffers (bind-group cache keys). */
const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;
function bufferId(b: GPUBuffer): number {
  let id = bufferIds.get(b);
  if (id === undefined) bufferIds.set(b, id = nextBufferId++);
  return id;
}

/** Options of `GpuRunner.create`. */
export interface RunnerOptions {
  /** Labels pipelines and buffers (debugging). */
  label?: string;
  /**
   * Arenas whose buffers are given at each `encode` (a state store's parameters, moments, …, which it
   * double-buffers: a step reads one copy and writes the other).
   */
  external?: ArenaSpec[];
}

/**
 * A program resident on a device.
 *
 * @example
 * ```ts
 * const r = await GpuRunner.create(device, prog, [{ name: "P", dt: "f32", size: nParams }]);
 * const enc = device.createCommandEncoder();
 * const pass = enc.beginComputePass();
 * r.encode(pass, 0);
 * pass.end();
 * device.queue.submit([enc.finish()]);
 * ```
 */
export class GpuRunner {
  readonly arenas = new Map<string, ArenaGpu>();
  readonly kernels: Prepared[] = [];
  /** Distinct pipelines compiled. */
  pipelines = 0;
  /** Peak bytes of activations (the plan's). */
  activationBytes = 0;

  private constructor(readonly device: GPUDevice, readonly program: Program) {}

  static async create(
    device: GPUDevice,
    program: Program,
    fixed: ArenaSpec[],
    opts: RunnerOptions = {},
  ): Promise<GpuRunner> {
    const r = new GpuRunner(device, program);
    const lim = device.limits;
    const plan = planMemory(program, Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize));
    r.activationBytes = plan.activationBytes;
    const align = lim.minStorageBufferOffsetAlignment;
    for (const spec of opts.external ?? []) r.arenas.set(spec.name, { spec, slotBytes: spec.size * 4 });
    for (const spec of [...fixed, ...plan.arenas] as ArenaSpec[]) {
      const slots = spec.slots ?? 1;
      const slotBytes = Math.ceil((Math.max(spec.size, 1) * 4) / align) * align;
      const buffer = device.createBuffer({
        label: `${opts.label ?? "uer"}:${spec.name}`,
        size: slotBytes * slots,
        usage: USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC,
      });
      r.arenas.set(spec.name, { spec, buffer, slotBytes });
    }
    for (const b of program.consts) {
      const a = r.arenas.get(b.arena)!;
      device.queue.writeBuffer(a.buffer!, b.offset * 4, gpuData(b.data!));
    }
    const codes = program.kernels.map((k) => kernelCode(k));
    // One pipeline per distinct text (the shared layer's kernels differ only in their offsets).
    const byCode = new Map<string, { module: GPUShaderModule; pipeline: Promise<GPUComputePipeline> }>();
    for (const c of codes) {
      if (byCode.has(c.code)) continue;
      const module = device.createShaderModule({ code: c.code });
      const pipeline = device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
      pipeline.catch(() => {}); // reported below with the compiler's messages
      byCode.set(c.code, { module, pipeline });
    }
    r.pipelines = byCode.size;
    const pipes = new Map<string, GPUComputePipeline>();
    for (const [code, { module, pipeline }] of byCode) {
      try {
        pipes.set(code, await pipeline);
      } catch (e) {
        const info = await module.getCompilationInfo();
        const msgs = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("\n");
        throw new Error(`Cannot compile a WebGPU kernel: ${(e as Error).message}\n${msgs}\n--- kernel ---\n${code}`);
      }
    }
    // Uniform: each kernel's buffer offsets, one aligned slot per kernel.
    const ualign = lim.minUniformBufferOffsetAlignment;
    const usz = (c: KernelCode) => Math.max(16, Math.ceil(c.bufs.length / 4) * 16);
    const uslot = codes.map((c) => Math.ceil(usz(c) / ualign) * ualign);
    const ubytes = uslot.reduce((a, b) => a + b, 0);
    const ubuf = device.createBuffer({
      label: "uer:offsets",
      size: Math.max(ubytes, 16),
      usage: USAGE.UNIFORM | USAGE.COPY_DST,
    });
    const udata = new Uint32Array(Math.max(ubytes, 16) / 4);
    let at = 0;
    codes.forEach((c, i) => {
      c.bufs.forEach((b, s) => {
        if (b.offset < 0) throw new Error(`internal: buffer "${b.name}" was never placed`);
        udata[at / 4 + s] = b.offset;
      });
      at += uslot[i];
    });
    device.queue.writeBuffer(ubuf, 0, gpuData(udata));
    r.#ubuf = ubuf;
    at = 0;
    program.kernels.forEach((k, i) => {
      const c = codes[i];
      for (const an of c.arenas) {
        if (!r.arenas.has(an.name)) {
          throw new Error(`internal: kernel ${i} uses arena "${an.name}" that does not exist`);
        }
      }
      r.kernels.push({
        kernel: k,
        code: c,
        pipeline: pipes.get(c.code)!,
        uniform: { offset: at, size: usz(c) },
        groups: new Map(),
        slotted: c.arenas.some((a) => (r.arenas.get(a.name)!.spec.slots ?? 1) > 1),
        external: c.arenas.filter((a) => !r.arenas.get(a.name)!.buffer).map((a) => a.name),
      });
      at += uslot[i];
    });
    return r;
  }

  #ubuf!: GPUBuffer;

  /** The bind group of kernel `k` for input slot `slot` and the external arenas' buffers `ext`. */
  #group(k: Prepared, slot: number, ext?: ReadonlyMap<string, GPUBuffer>): GPUBindGroup {
    const s = k.slotted ? slot : 0;
    let key = String(s);
    for (const n of k.external) {
      const b = ext?.get(n);
      if (!b) throw new Error(`internal: no buffer given for arena "${n}"`);
      key += `:${bufferId(b)}`;
    }
    let g = k.groups.get(key);
    if (g) return g;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.#ubuf, ...k.uniform } }];
    k.code.arenas.forEach((an, j) => {
      const a = this.arenas.get(an.name)!;
      const buffer = a.buffer ?? ext!.get(an.name)!;
      const sl = a.spec.slots ?? 1;
      entries.push({ binding: j + 1, resource: { buffer, offset: sl > 1 ? s * a.slotBytes : 0, size: a.slotBytes } });
    });
    g = this.device.createBindGroup({ layout: k.pipeline.getBindGroupLayout(0), entries });
    k.groups.set(key, g);
    return g;
  }

  /** Records every kernel into `pass`, reading input arenas from `slot` and external arenas from `ext`. */
  encode(pass: GPUComputePassEncoder, slot = 0, ext?: ReadonlyMap<string, GPUBuffer>): void {
    let last: GPUComputePipeline | undefined;
    for (const k of this.kernels) {
      if (k.pipeline !== last) pass.setPipeline(last = k.pipeline);
      pass.setBindGroup(0, this.#group(k, slot, ext));
      const [x, y, z] = k.code.grid;
      pass.dispatchWorkgroups(x, y, z);
    }
  }

  /** Records every kernel in its own compute pass (so per-pass timestamps time each kernel). */
  encodeEach(enc: GPUCommandEncoder, slot = 0, ext?: ReadonlyMap<string, GPUBuffer>): void {
    for (const k of this.kernels) {
      const pass = enc.beginComputePass();
      pass.setPipeline(k.pipeline);
      pass.setBindGroup(0, this.#group(k, slot, ext));
      const [x, y, z] = k.code.grid;
      pass.dispatchWorkgroups(x, y, z);
      pass.end();
    }
  }

  /** One line per kernel: kind, grid and shape (for profiles). */
  describe(i: number): string {
    const { kernel: k, code } = this.kernels[i];
    const shape = k.k === "mm"
      ? `[${k.batch}] ${k.M}x${k.N}x${k.K}`
      : k.k === "reduce"
      ? `keep [${k.keep}] red [${k.red}] phases ${k.phases.length} outs ${k.outs.length}`
      : k.k === "ew"
      ? k.ranges.map((r) => `[${r.shape}]x${r.outs.length}`).join(" ")
      : `${k.V}x${k.R} from ${k.N}`;
    return `${k.k} grid ${code.grid.join("x")} ${shape}`;
  }

  /** The GPU buffer of an arena. */
  buffer(arena: string): GPUBuffer {
    const a = this.arenas.get(arena);
    if (!a?.buffer) throw new RangeError(`No arena "${arena}" owned by this program`);
    return a.buffer;
  }

  /** Byte offset of `buf` in its arena's GPU buffer (slot 0 for input arenas). */
  byteOffset(buf: Buf, slot = 0): number {
    const a = this.arenas.get(buf.arena)!;
    return (a.spec.slots ?? 1) > 1 ? slot * a.slotBytes + buf.offset * 4 : buf.offset * 4;
  }

  /** Bytes per slot of an arena. */
  slotBytes(arena: string): number {
    return this.arenas.get(arena)!.slotBytes;
  }

  /** Copies byte ranges of arenas to the host in one submit and one readback. */
  async read(ranges: { arena: string; byteOffset: number; bytes: number }[]): Promise<ArrayBuffer[]> {
    const total = ranges.reduce((a, r) => a + Math.ceil(r.bytes / 4) * 4, 0);
    const staging = this.device.createBuffer({
      size: Math.max(total, 4),
      usage: USAGE.MAP_READ | USAGE.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    let at = 0;
    for (const r of ranges) {
      if (r.bytes > 0) enc.copyBufferToBuffer(this.buffer(r.arena), r.byteOffset, staging, at, r.bytes);
      at += Math.ceil(r.bytes / 4) * 4;
    }
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ);
    const all = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    at = 0;
    return ranges.map((r) => {
      const out = all.slice(at, at + r.bytes);
      at += Math.ceil(r.bytes / 4) * 4;
      return out;
    });
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    for (const a of this.arenas.values()) a.buffer?.destroy();
    this.arenas.clear();
  }
}

/**
 * WebGPU's buffer usage and map mode flags (spec values; the `GPUBufferUsage`/`GPUMapMode` globals are
 * not declared by the DOM typings the browser check uses).
 */
export const USAGE = {
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  QUERY_RESOLVE: 0x0200,
} as const;
/** `MAP_READ`. */
export const MAP_READ = 0x0001;

/** A typed array as `writeBuffer` takes it (the project's arrays are never shared). */
export function gpuData(x: ArrayBufferView): ArrayBufferView<ArrayBuffer> {
  return x as unknown as ArrayBufferView<ArrayBuffer>;
}

/** Options of `openDevice`. */
export interface DeviceOptions {
  /** Passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
}

/** Asks for an adapter and a device with the adapter's largest storage limits. */
export async function openDevice(opts: DeviceOptions = {}): Promise<{ adapter: GPUAdapter; device: GPUDevice }> {
  const gpu = (globalThis.navigator as Navigator & { gpu?: GPU })?.gpu;
  if (!gpu) throw new RangeError("Cannot start WebGPU: navigator.gpu is missing\n  hint: use --device cpu");
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : {});
  if (!adapter) throw new RangeError("Cannot start WebGPU: no adapter\n  hint: use --device cpu");
  const l = adapter.limits;
  // Some drivers report a u64 maximum (2^64 − 1) that a JS number cannot give back exactly: ask for at most 2^52.
  const safe = (x: number) => Math.min(x, 2 ** 52);
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: safe(l.maxStorageBufferBindingSize),
      maxBufferSize: safe(l.maxBufferSize),
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    },
  });
  return { adapter, device };
}
