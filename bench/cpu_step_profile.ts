/**
 * Where one CPU training step of the reference tiny config goes (#14 point 6; DESIGN.md §6.5): the
 * same shapes as bench/pretrain_bench.ts (batch 16 × seq 128, its synthetic batches), onnxruntime-node.
 * 1. `Trainer.step` timed in pieces: the whole step, the time inside onnxruntime's `session.run`
 *    (feeds wrapped, kernels run, gradients written in place into the host AdamW's memory), the host
 *    AdamW pass (core/train/adamw_host.ts, WebAssembly) and the JS around them (feeds, the state
 *    store's bookkeeping).
 * 2. The same `gradients` graph in a raw session with onnxruntime's profiler on: each kernel's median
 *    time, summed by phase (forward, backward) and by size (nodes reading or writing a
 *    vocabulary-sized tensor: the MLM output layer, its softmax, the embeddings' gradient), against
 *    the run's wall time (the rest is onnxruntime's per-node scheduling).
 * Figures are milliseconds on this machine; on a shared box read the shares, not the absolutes.
 * Prints figures; never passes or fails on time (DESIGN.md §2).
 *
 * Run: `deno run -A bench/cpu_step_profile.ts [--steps N] [--threads N] [--json]` (defaults 60 and 2).
 * @module
 */
import process from "node:process";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { HostAdamw } from "../core/train/adamw_host.ts";
import { paramShapes, pretrainTask } from "../core/train/pretrain_task.ts";
import { stepGraph } from "../core/train/training_graph.ts";
import { Graph } from "../core/graph/builder.ts";
import { toOnnx } from "../core/graph/onnx_proto.ts";
import { nodeSessionOptions } from "../core/runtime/node.ts";
import { TINY } from "./_shapes.ts";
import { syntheticBatch } from "../tests/webgpu_steps.ts";
import { dropScratch, scratchDir } from "./_scratch.ts";

type Ort = typeof import("onnxruntime-node");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : 0;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** Part 1: the trainer's step, split into onnxruntime's run and the JS around it (ms, medians). */
async function trainerSplit(ort: Ort, threads: number, steps: number): Promise<Record<string, number>> {
  const task = pretrainTask(TINY);
  const params = initParams(paramShapes(TINY), 7);
  // A fixed thread count (no threadProbe): the figures are for `threads`.
  const trainer = await Trainer.create({ task, params, device: "cpu", threads, threadProbe: false });
  const batches = [0, 1, 2, 3].map((s) => syntheticBatch(16, 128, TINY.vocab_size!, s));
  // The class behind the factory type: its prototype's run is what every session calls.
  const proto = (ort.InferenceSession as unknown as { prototype: { run: (...a: unknown[]) => Promise<unknown> } })
    .prototype;
  const run = proto.run;
  let inRun = 0, inAdamw = 0;
  proto.run = async function (this: unknown, ...a: unknown[]) {
    const t = performance.now();
    try {
      return await run.apply(this, a);
    } finally {
      inRun += performance.now() - t;
    }
  };
  const hostStep = HostAdamw.prototype.step;
  HostAdamw.prototype.step = function (this: HostAdamw, ...a: Parameters<HostAdamw["step"]>) {
    const t = performance.now();
    try {
      return hostStep.apply(this, a);
    } finally {
      inAdamw += performance.now() - t;
    }
  };
  const total: number[] = [], ort_: number[] = [], adamw: number[] = [], js: number[] = [];
  try {
    for (let i = 0; i < 3; i++) await trainer.step(batches[i % 4], 1e-4);
    for (let i = 0; i < steps; i++) {
      inRun = 0;
      inAdamw = 0;
      const t = performance.now();
      await trainer.step(batches[i % 4], 1e-4);
      const dt = performance.now() - t;
      total.push(dt);
      ort_.push(inRun);
      adamw.push(inAdamw);
      js.push(dt - inRun - inAdamw);
    }
  } finally {
    proto.run = run;
    HostAdamw.prototype.step = hostStep;
    await trainer.dispose();
  }
  return {
    step_ms: median(total),
    session_run_ms: median(ort_),
    host_adamw_ms: median(adamw),
    js_around_run_ms: median(js),
  };
}

interface Phase {
  ms: number;
  nodes: number;
}

/** Part 2: onnxruntime's profiler over the same graph; kernel medians summed by phase. */
async function kernelPhases(ort: Ort, threads: number, steps: number) {
  const task = pretrainTask(TINY);
  const batch = syntheticBatch(16, 128, TINY.vocab_size!, 0);
  const shape = task.shapeFor(batch, []);
  // What a CPU trainer runs: the gradients straight into the host AdamW's memory (AdamW is not in it).
  const opts = { kind: "gradients" as const, eachGradient: true, scatter: "scatter" as const, statSlots: 1 };
  // Node ids are creation order: the task's forward first, then the gradient.
  const fwd = new Graph();
  task.build(fwd, shape, { scatter: "scatter" });
  const graph = stepGraph(task, shape, opts);
  const dir = await scratchDir("uer-ts-profile-");
  try {
    const session = await ort.InferenceSession.create(toOnnx(graph).model, {
      ...nodeSessionOptions({ threads, memPattern: false, spinning: true }),
      enableProfiling: true,
      profileFilePrefix: `${dir}/ort`,
    });
    const params = initParams(task.params, 7);
    const host = task.feeds(batch, shape);
    const feeds: Record<string, InstanceType<Ort["Tensor"]>> = {};
    for (const n of session.inputNames) {
      const h = host[n];
      if (h) {
        feeds[n] = new ort.Tensor(h.dtype === "I32" ? "int32" : "float32", h.data as Int32Array, h.shape);
        continue;
      }
      const shapeOf = graph.inputs().find((v) => v.name === n)?.shape ?? graph.paramByName(n)?.shape ?? [];
      const dims = shapeOf as number[];
      const data = params.get(n)?.data as Float32Array | undefined ??
        new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(n.startsWith("neg_lr") ? -1e-4 : 0);
      feeds[n] = new ort.Tensor("float32", data, dims);
    }
    for (let i = 0; i < steps + 3; i++) await session.run(feeds);
    await session.release();
    let file = "";
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".json")) file = `${dir}/${e.name}`;
    if (!file) throw new Error("onnxruntime wrote no profile");
    type Ev = { cat?: string; name: string; dur: number; args?: Record<string, unknown> };
    const events = JSON.parse(await Deno.readTextFile(file)) as Ev[];
    const runs = events.filter((e) => e.name === "model_run").map((e) => e.dur / 1000).slice(3);
    const byNode = new Map<string, { durs: number[]; op: string; big: boolean }>();
    const V = TINY.vocab_size!;
    const hasVocab = (x: unknown) =>
      Array.isArray(x) && x.some((d) => Object.values(d as Record<string, number[]>).some((s) => s.includes(V)));
    for (const e of events) {
      if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
      let n = byNode.get(e.name);
      if (!n) {
        const big = hasVocab(e.args?.output_type_shape) || hasVocab(e.args?.input_type_shape);
        byNode.set(e.name, n = { durs: [], op: String(e.args?.op_name), big });
      }
      n.durs.push(e.dur / 1000);
    }
    const phases: Record<string, Phase> = {};
    let kernels = 0;
    for (const [name, n] of byNode) {
      const id = Number(/^[A-Za-z]+_(\d+)/.exec(name)?.[1] ?? -1);
      const phase = id < 0 ? "fused by onnxruntime" : id < fwd.nodes.length ? "forward" : "backward";
      const key = phase.startsWith("fused") ? phase : `${phase}, ${n.big ? "vocab-sized" : "rest"}`;
      const ms = median(n.durs.slice(3));
      phases[key] ??= { ms: 0, nodes: 0 };
      phases[key].ms += ms;
      phases[key].nodes++;
      kernels += ms;
    }
    return { runMs: median(runs), kernels, nodes: byNode.size, phases };
  } finally {
    await dropScratch(dir);
  }
}

/** Runs both parts, prints a table (or JSON) and returns the figures. */
export async function cpuStepProfile(
  opts: { steps?: number; threads?: number; json?: boolean } = {},
): Promise<Record<string, unknown>> {
  const steps = opts.steps ?? 60, threads = opts.threads ?? 2;
  const ort = await import("onnxruntime-node");
  const cpu0 = process.cpuUsage();
  const split = await trainerSplit(ort, threads, steps);
  const k = await kernelPhases(ort, threads, steps);
  const out = {
    threads,
    steps,
    trainer: split,
    session: {
      run_ms: round(k.runMs),
      kernels_ms: round(k.kernels),
      nodes: k.nodes,
      phases: Object.fromEntries(Object.entries(k.phases).map(([p, v]) => [p, { ms: round(v.ms), nodes: v.nodes }])),
    },
    process_cpu_s: round((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6, 1),
  };
  if (opts.json) {
    console.log(JSON.stringify(out));
    return out;
  }
  const pct = (x: number, of: number) => `${(100 * x / of).toFixed(1)} %`;
  console.log(`tiny config (B16 T128), onnxruntime-node CPU, ${threads} intra-op threads, ${steps} steps, medians`);
  console.log(
    `Trainer.step ${round(split.step_ms)} ms: inside session.run ${round(split.session_run_ms)} ms ` +
      `(${pct(split.session_run_ms, split.step_ms)}), host AdamW ${round(split.host_adamw_ms)} ms ` +
      `(${pct(split.host_adamw_ms, split.step_ms)}), JS around them ${round(split.js_around_run_ms)} ms ` +
      `(${pct(split.js_around_run_ms, split.step_ms)})`,
  );
  console.log(
    `raw session.run of the gradients graph ${round(k.runMs)} ms; ${k.nodes} kernels, ` +
      `sum of their medians ${round(k.kernels)} ms:`,
  );
  for (const [p, v] of Object.entries(k.phases).sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(
      `  ${p.padEnd(28)} ${round(v.ms).toFixed(2).padStart(8)} ms ${pct(v.ms, k.kernels).padStart(7)}` +
        `  ${String(v.nodes).padStart(4)} kernels`,
    );
  }
  return out;
}

function argNumber(name: string, dflt: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
}

if (import.meta.main) {
  await cpuStepProfile({
    steps: argNumber("--steps", 60),
    threads: argNumber("--threads", 2),
    json: Deno.args.includes("--json"),
  });
}
