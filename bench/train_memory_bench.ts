/**
 * Training memory: the peak RSS of ALBERT-base training steps (forward + backward + AdamW, onnxruntime-node
 * CPU, 2 threads) beside a PyTorch step of the same model on the same batch (bench/_torch_albert.ts), each
 * in a fresh process, for the model card's shapes: batch 64 × 128 (stage 1), 16 × 512 and 64 × 512
 * (stage 2). Also prints the step graph's memory plan (core/graph/memory_plan.ts: the largest live set of
 * intermediates) and, for a shape whose predicted peak does not fit the machine's free memory, the
 * figure computed instead of run: uer-ts from the plan plus the fixed part measured on the smallest shape
 * run; PyTorch from its bytes per row at the same sequence length (said so in the table).
 *
 * Run: `deno run -A bench/train_memory_bench.ts [--shapes 64x128,16x512,64x512] [--steps 2] [--json]`;
 * `--plan 64x128` prints that shape's plan (the 30 largest tensors alive at the peak) and exits.
 * Prints figures; never passes or fails.
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { formatMemoryPlan, memoryPlan } from "../core/graph/memory_plan.ts";
import { defaultMaskedSlots, paramShapes, pretrainTask } from "../core/train/pretrain_task.ts";
import { stepGraph } from "../core/train/training_graph.ts";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { syntheticBatch } from "../tests/webgpu_steps.ts";
import { torchAlbertSteps, torchPython } from "./_torch_albert.ts";

const BASE: AlbertConfig = { ...ALBERT_BASE, max_seq_length: 512, vocab_size: 21128 };
const MIB = 2 ** 20;

function parseShape(s: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new TypeError(`Invalid shape "${s}": expected BATCHxSEQ, e.g. 64x128`);
  return [Number(m[1]), Number(m[2])];
}

function planOf(batch: number, seq: number) {
  const g = stepGraph(pretrainTask(BASE), { batch, seq, slots: defaultMaskedSlots(batch, seq) }, {
    kind: "update",
    scatter: "scatter",
  });
  return memoryPlan(g);
}

function rss(): { peak: number; now: number } {
  const s = Deno.readTextFileSync("/proc/self/status");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)![1]) * 1024;
  return { peak: kb("VmHWM"), now: kb("VmRSS") };
}

function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/meminfo"));
  return m ? Number(m[1]) * 1024 : Infinity;
}

/** Child: `steps` uer-ts steps; prints {before, peak, ms}. */
async function child(batch: number, seq: number, steps: number): Promise<void> {
  const trainer = await Trainer.create({
    task: pretrainTask(BASE),
    params: initParams(paramShapes(BASE), 7),
    device: "cpu",
    threads: 2,
  });
  const b = syntheticBatch(batch, seq, BASE.vocab_size!, 0);
  const before = rss().now;
  const ms: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await trainer.step(b, 1e-4);
    ms.push(performance.now() - t0);
  }
  console.log(JSON.stringify({ before, peak: rss().peak, ms }));
}

interface Row {
  shape: string;
  planMib: number;
  oursMib: number;
  oursRun: boolean;
  torchMib: number | null;
  torchRun: boolean;
}

/** Runs the benchmark and returns its figures (MiB, ratios). */
export async function trainMemoryBench(
  opts: { shapes?: string[]; steps?: number; json?: boolean } = {},
): Promise<Record<string, number>> {
  const shapes = (opts.shapes ?? ["64x128", "16x512", "64x512"]).map(parseShape);
  const steps = opts.steps ?? 2;
  const py = await torchPython();
  if (!py) console.log("no python with torch found (UER_TS_PYTHON, /usr/bin/python3, python3): PyTorch column empty");
  const rows: Row[] = [];
  let fixed: number | undefined; // measured peak minus plan, from the first shape run
  const torchPerRow = new Map<number, { before: number; perRow: number }>(); // by seq
  const out: Record<string, number> = {};
  for (const [batch, seq] of shapes) {
    const plan = planOf(batch, seq);
    const shape = `${batch}x${seq}`;
    const predicted = plan.peakBytes + (fixed ?? 2 * plan.inputBytes + 600 * MIB);
    const fits = predicted < 0.8 * memAvailable();
    let ours: number, oursRun = false;
    if (fits) {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, "--child", shape, "--steps", String(steps)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      if (!r.success) throw new Error(`uer-ts ${shape} failed: ${dec.decode(r.stderr).slice(-600)}`);
      const o = JSON.parse(dec.decode(r.stdout).trim().split("\n").pop()!);
      ours = o.peak;
      oursRun = true;
      fixed ??= o.peak - plan.peakBytes;
    } else {
      ours = predicted;
    }
    let torch: number | null = null, torchRun = false;
    if (py) {
      const perRow = torchPerRow.get(seq);
      if (fits || perRow === undefined) {
        const f = await torchAlbertSteps(py, BASE, syntheticBatch(batch, seq, BASE.vocab_size!, 0), {
          steps,
        });
        torch = f.peakRss;
        torchRun = true;
        torchPerRow.set(seq, { before: f.rssBefore, perRow: (f.peakRss - f.rssBefore) / batch });
        out[`torch_${shape}_before_mib`] = Math.round(f.rssBefore / MIB);
      } else {
        torch = perRow.before + perRow.perRow * batch; // computed: RSS before the step + bytes per row
      }
    }
    rows.push({
      shape,
      planMib: plan.peakBytes / MIB,
      oursMib: ours / MIB,
      oursRun,
      torchMib: torch && torch / MIB,
      torchRun,
    });
    out[`plan_${shape}_mib`] = Math.round(plan.peakBytes / MIB);
    out[`uer_ts_${shape}_peak_mib`] = Math.round(ours / MIB);
    if (torch) {
      out[`torch_${shape}_peak_mib`] = Math.round(torch / MIB);
      out[`uer_ts_${shape}_vs_torch`] = Math.round((ours / torch) * 100) / 100;
    }
  }
  console.log("peak RSS of ALBERT-base training steps (CPU, 2 threads, same synthetic batch), MiB");
  console.log("| batch × seq | plan: live intermediates | uer-ts peak RSS | PyTorch peak RSS | uer-ts / PyTorch |");
  console.log("|---|---|---|---|---|");
  for (const r of rows) {
    const f = (x: number | null, run: boolean) => x === null ? "–" : `${Math.round(x)}${run ? "" : " (computed)"}`;
    const ratio = r.torchMib ? (r.oursMib / r.torchMib).toFixed(2) : "–";
    console.log(
      `| ${r.shape} | ${Math.round(r.planMib)} | ${f(r.oursMib, r.oursRun)} | ${
        f(r.torchMib, r.torchRun)
      } | ${ratio} |`,
    );
  }
  if (opts.json) console.log(JSON.stringify(out));
  return out;
}

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

if (import.meta.main) {
  const c = arg("--child"), p = arg("--plan");
  const steps = Number(arg("--steps") ?? 2);
  if (c) await child(...parseShape(c), steps);
  else if (p) console.log(formatMemoryPlan(planOf(...parseShape(p)), 30));
  else await trainMemoryBench({ shapes: arg("--shapes")?.split(","), steps, json: Deno.args.includes("--json") });
}
