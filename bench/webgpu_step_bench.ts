/**
 * Where a WebGPU training step's time goes, step by step, for both engines on the same device:
 * onnxruntime-web's WebGPU EP running the ONNX step graph (`ort`, core/train/state_store.ts) and the
 * project's executor (`executor`, core/webgpu/state_store.ts). Counted from outside by wrapping the
 * WebGPU prototypes (core/webgpu/instrument.ts): submits, compute passes and dispatches, host→GPU
 * writes and bytes, readbacks (`mapAsync`) with their bytes and wall wait; with timestamp queries where
 * the adapter offers them, GPU busy time (sum of passes), the GPU span and the idle time between passes.
 * Both engines run the same pretraining `update` step graph (training_graph.ts) over their state store.
 * The executor's host time is split into packing the batch, encoding the command buffer and submitting.
 * Prints a table of medians over the timed steps (the first step, which compiles, is shown apart) and
 * `--json` the per-step timeline. `--profile` adds the executor's slowest kernels (one pass per kernel).
 * Never passes or fails on time.
 *
 * Run: `deno run -A bench/webgpu_step_bench.ts [--engine ort|executor|both] [--config tiny|base]
 * [--layers 2] [--batch 4] [--seq 64] [--steps 6] [--report 3] [--profile] [--json]`
 * (defaults: both engines, the counting shape: tiny config, 2 layers, batch 4, seq 64;
 * both read the statistics every `--report` steps).
 * @module
 */
import { Command } from "commander";
import type { AlbertConfig } from "../core/config.ts";
import { createStateStore, type StateStore } from "../core/train/state_store.ts";
import { names } from "../core/train/training_graph.ts";
import { type GpuCounts, WebGpuRecorder } from "../core/webgpu/instrument.ts";
import { WebGpuStateStore } from "../core/webgpu/state_store.ts";
import { BASE_SHAPE, pretrainStep, syntheticBatch, tinyConfigLayers } from "../tests/webgpu_steps.ts";

/** One step of the timeline. */
export interface StepTimeline {
  step: number;
  wallMs: number;
  /** Executor: packing inputs, encoding, submitting (host ms); ort: undefined. */
  feedMs?: number;
  encodeMs?: number;
  submitMs: number;
  mapWaitMs: number;
  gpuBusyMs?: number;
  gpuSpanMs?: number;
  gpuIdleMs?: number;
  submits: number;
  passes: number;
  dispatches: number;
  writeBuffers: number;
  upBytes: number;
  readbacks: number;
  downBytes: number;
  reported: boolean;
}

interface Engine {
  name: string;
  device: string;
  /** Step `i`; reads the statistics when `report` says so (or every `--report` steps). */
  step(i: number, report?: boolean): Promise<boolean>;
  last?: () => { feedMs: number; encodeMs: number };
  profile?: () => Promise<string[]>;
  dispose(): Promise<void>;
}

/** One engine running the same pretraining step graph over its state store (`ort`: onnxruntime-web's WebGPU EP). */
async function makeEngine(
  name: "ort" | "executor",
  cfg: AlbertConfig,
  B: number,
  T: number,
  report: number,
): Promise<Engine> {
  const step = pretrainStep(cfg, B, T);
  const store: StateStore = name === "ort"
    ? await createStateStore({ device: "webgpu", engine: "ort" })
    : await WebGpuStateStore.create();
  step.init(store);
  const prog = await store.compile(step.graph);
  const feeds = [0, 1, 2, 3].map((s) => step.feeds(syntheticBatch(B, T, cfg.vocab_size!, s), 1e-4));
  const gpu = store instanceof WebGpuStateStore ? store : undefined;
  return {
    name,
    device: name === "ort" ? "onnxruntime-web WebGPU EP" : store.deviceName,
    step: async (i, now) => {
      await store.run(prog, feeds[i % feeds.length]);
      if (!(now ?? (i + 1) % report === 0)) return false;
      await store.read([names.stats]); // a report: the statistics' sums, nothing else
      return true;
    },
    ...(gpu ? { last: () => gpu.lastRun } : {}),
    ...(gpu
      ? {
        profile: async () => {
          const rec = WebGpuRecorder.install({ timestamps: true });
          gpu.profile = true;
          rec.reset();
          await gpu.run(prog, feeds[0]);
          gpu.profile = false;
          const t = await rec.gpuTimes();
          const p = prog as import("../core/webgpu/state_store.ts").GpuStepProgram;
          if (!t) return ["(no timestamp queries on this adapter)"];
          const rows = t.passMs.map((ms, i) => [ms, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 15);
          return [
            `kernels ${p.dispatches}, sum ${t.busyMs.toFixed(2)} ms (one pass each); slowest:`,
            ...rows.map(([ms, i]) => `  ${ms.toFixed(3).padStart(9)} ms  #${i} ${p.runner.describe(i)}`),
          ];
        },
      }
      : {}),
    dispose: () => store.dispose(),
  };
}

async function timeline(e: Engine, rec: WebGpuRecorder, steps: number): Promise<StepTimeline[]> {
  const out: StepTimeline[] = [];
  for (let i = 0; i < steps; i++) {
    rec.reset();
    const t0 = performance.now();
    const reported = await e.step(i);
    const wallMs = performance.now() - t0;
    const c: GpuCounts = rec.counts();
    const g = await rec.gpuTimes();
    const host = e.last?.();
    out.push({
      step: i + 1,
      wallMs,
      ...(host ? { feedMs: host.feedMs, encodeMs: host.encodeMs } : {}),
      submitMs: c.submitMs,
      mapWaitMs: c.mapWaitMs,
      ...(g ? { gpuBusyMs: g.busyMs, gpuSpanMs: g.spanMs, gpuIdleMs: g.idleMs } : {}),
      submits: c.submits,
      passes: c.passes,
      dispatches: c.dispatches,
      writeBuffers: c.writeBuffers,
      upBytes: c.writeBytes,
      readbacks: c.mapAsyncs,
      downBytes: c.mapBytes,
      reported,
    });
  }
  return out;
}

/** Mean ms per step over `steps` back-to-back steps, the statistics read once at the end (GPU included). */
async function throughput(e: Engine, steps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await e.step(i, i === steps - 1);
  return (performance.now() - t0) / steps;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs the bench and returns its figures (the per-step timelines by engine). */
export async function webgpuStepBench(args: string[] = []): Promise<Record<string, unknown>> {
  const o = new Command()
    .option("--engine <e>", "ort, executor or both", "both")
    .option("--config <c>", "tiny or base", "tiny")
    .option("--layers <n>", "layer applications (tiny default 2, base 12)")
    .option("--batch <n>", "rows", "4")
    .option("--seq <n>", "tokens per row", "64")
    .option("--steps <n>", "steps per engine", "6")
    .option("--report <n>", "read the statistics every n steps", "3")
    .option("--profile", "executor: also time each kernel")
    .option("--json", "print the per-step timeline as JSON")
    .exitOverride()
    .parse(args, { from: "user" })
    .opts();
  const layers = Number(o.layers ?? (o.config === "base" ? 12 : 2));
  const cfg = o.config === "base" ? { ...BASE_SHAPE, layers_num: layers } : await tinyConfigLayers(layers);
  const B = Number(o.batch), T = Number(o.seq), steps = Number(o.steps);
  const rec = WebGpuRecorder.install({ timestamps: true });
  const result: Record<string, unknown> = { config: o.config, layers, batch: B, seq: T };
  const rows: string[][] = [];
  const head = [
    "engine",
    "step ms",
    "call ms",
    "host pack/encode/submit ms",
    "GPU busy ms",
    "GPU idle ms",
    "readback wait ms",
    "submits",
    "passes",
    "dispatches",
    "writes (bytes)",
    "readbacks (bytes): step / report step",
  ];
  for (const name of o.engine === "both" ? ["ort", "executor"] : [o.engine]) {
    const e = await makeEngine(name as "ort" | "executor", cfg, B, T, Number(o.report));
    const tl = await timeline(e, rec, steps);
    const meanMs = await throughput(e, steps);
    const prof = o.profile && e.profile ? await e.profile() : [];
    await e.dispose();
    result[name] = { device: e.device, meanStepMs: meanMs, first: tl[0], steps: tl.slice(1) };
    const t = tl.slice(1);
    const m = (f: (s: StepTimeline) => number | undefined) => {
      const xs = t.map(f).filter((x): x is number => x !== undefined);
      return xs.length ? median(xs) : NaN;
    };
    const f1 = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(1));
    const quiet = t.filter((s) => !s.reported), loud = t.filter((s) => s.reported);
    const q = (f: (s: StepTimeline) => number) => (quiet.length ? median(quiet.map(f)) : NaN);
    const r = (f: (s: StepTimeline) => number) => (loud.length ? median(loud.map(f)) : NaN);
    rows.push([
      name,
      f1(meanMs),
      f1(m((s) => s.wallMs)),
      e.last
        ? `${f1(m((s) => s.feedMs))}/${f1(m((s) => s.encodeMs))}/${f1(m((s) => s.submitMs))}`
        : `-/-/${f1(m((s) => s.submitMs))}`,
      f1(m((s) => s.gpuBusyMs)),
      f1(m((s) => s.gpuIdleMs)),
      f1(m((s) => s.mapWaitMs)),
      String(m((s) => s.submits)),
      String(m((s) => s.passes)),
      String(m((s) => s.dispatches)),
      `${m((s) => s.writeBuffers)} (${m((s) => s.upBytes)})`,
      `${q((s) => s.readbacks)} (${q((s) => s.downBytes)}) / ${r((s) => s.readbacks)} (${r((s) => s.downBytes)})`,
    ]);
    if (prof.length) result[`${name}_profile`] = prof;
    console.error(`${name} on ${e.device}: first step ${tl[0].wallMs.toFixed(0)} ms (compiles)`);
    for (const l of prof) console.error(l);
  }
  if (o.json) {
    console.log(JSON.stringify(result));
    return result;
  }
  const all = [head, ...rows];
  const widths = head.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c])).join(" | ")} |`;
  console.log(
    `WebGPU training step, ${o.config} config, ${layers} layers, batch ${B} × seq ${T}: medians of ${steps - 1} steps`,
  );
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
  console.log(
    "step ms: mean of back-to-back steps (GPU included); call ms: median time until step() returns (the rest overlaps). readbacks: medians over steps without and with a report. GPU busy = sum of compute passes (timestamp queries).",
  );
  return result;
}

if (import.meta.main) await webgpuStepBench(Deno.args);
