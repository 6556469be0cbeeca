/**
 * Training memory: the peak RSS of ALBERT-base training steps (forward + backward + AdamW, onnxruntime-node
 * CPU, 2 threads) beside a PyTorch step of the same model on the same batch (bench/_torch_albert.ts), each
 * in a fresh process, for the model card's shapes: batch 64 × 128 (stage 1), 16 × 512 and 64 × 512
 * (stage 2). Also prints the step graph's memory plan (core/graph/memory_plan.ts: the largest live set of
 * intermediates) and, for a shape whose predicted peak does not fit the machine's free memory, the
 * figure computed instead of run: uer-ts from the plan plus the fixed part measured on the smallest shape
 * run; PyTorch from its bytes per row at the same sequence length (said so in the table).
 * Each shape runs twice: as is and with `--recompute_activations` (each layer application recomputed in
 * the backward from its kept input), with the tokens/s of the last step of each, so the recomputation's
 * cost is measured in the same run.
 *
 * Run: `deno run -A bench/train_memory_bench.ts [--shapes 64x128,16x512,64x512] [--steps 2] [--json]`;
 * `--plan 64x128` prints that shape's plan (the 30 largest tensors alive at the peak) and exits
 * (`--plan 64x512 --recompute` the plan with recomputation).
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
import { outputOf } from "./_scratch.ts";

const BASE: AlbertConfig = { ...ALBERT_BASE, max_seq_length: 512, vocab_size: 21128 };
const MIB = 2 ** 20;

function parseShape(s: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new TypeError(`Invalid shape "${s}": expected BATCHxSEQ, e.g. 64x128`);
  return [Number(m[1]), Number(m[2])];
}

/** The plan of the graph a CPU trainer runs (its gradients, AdamW on the host: DESIGN.md §6.8). */
function planOf(batch: number, seq: number, recompute = false) {
  const g = stepGraph(pretrainTask(BASE), { batch, seq, slots: defaultMaskedSlots(batch, seq) }, {
    kind: "gradients",
    eachGradient: true,
    sparseRows: true,
    scatter: "scatter",
    recompute,
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
async function child(batch: number, seq: number, steps: number, recompute: boolean): Promise<void> {
  const trainer = await Trainer.create({
    task: pretrainTask(BASE),
    params: initParams(paramShapes(BASE), 7),
    device: "cpu",
    threads: 2,
    recompute,
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

/** One uer-ts column: the plan, the peak RSS (run or computed) and the last step's tokens/s. */
interface Ours {
  planMib: number;
  mib: number;
  run: boolean;
  tokensPerS: number | null;
}

interface Row {
  shape: string;
  plain: Ours;
  recompute: Ours;
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
  const ours = async (batch: number, seq: number, recompute: boolean): Promise<Ours> => {
    const plan = planOf(batch, seq, recompute);
    const predicted = plan.peakBytes + (fixed ?? 2 * plan.inputBytes + 600 * MIB);
    if (predicted >= 0.8 * memAvailable()) {
      return { planMib: plan.peakBytes / MIB, mib: predicted / MIB, run: false, tokensPerS: null };
    }
    const args = [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      `${batch}x${seq}`,
      "--steps",
      String(steps),
    ];
    const r = await outputOf(Deno.execPath(), {
      args: recompute ? [...args, "--recompute"] : args,
      stdout: "piped",
      stderr: "piped",
    });
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`uer-ts ${batch}x${seq} failed: ${dec.decode(r.stderr).slice(-600)}`);
    const o = JSON.parse(dec.decode(r.stdout).trim().split("\n").pop()!);
    fixed ??= o.peak - plan.peakBytes;
    return {
      planMib: plan.peakBytes / MIB,
      mib: o.peak / MIB,
      run: true,
      tokensPerS: (batch * seq) / (o.ms.at(-1) / 1e3),
    };
  };
  for (const [batch, seq] of shapes) {
    const shape = `${batch}x${seq}`;
    const plain = await ours(batch, seq, false);
    const recompute = await ours(batch, seq, true);
    let torch: number | null = null, torchRun = false;
    if (py) {
      const perRow = torchPerRow.get(seq);
      if (plain.run || perRow === undefined) {
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
    rows.push({ shape, plain, recompute, torchMib: torch && torch / MIB, torchRun });
    for (const [k, o] of [["", plain], ["recompute_", recompute]] as const) {
      out[`plan_${k}${shape}_mib`] = Math.round(o.planMib);
      out[`uer_ts_${k}${shape}_peak_mib`] = Math.round(o.mib);
      if (o.tokensPerS) out[`uer_ts_${k}${shape}_tokens_per_s`] = Math.round(o.tokensPerS);
      if (torch) out[`uer_ts_${k}${shape}_vs_torch`] = Math.round((o.mib / (torch / MIB)) * 100) / 100;
    }
    if (torch) out[`torch_${shape}_peak_mib`] = Math.round(torch / MIB);
  }
  console.log(
    "peak RSS of ALBERT-base training steps (CPU, 2 threads, same synthetic batch), MiB; tokens/s of the last step",
  );
  console.log(
    "| batch × seq | plan | uer-ts peak RSS | tokens/s | plan, recompute | peak RSS, recompute | tokens/s, recompute " +
      "| PyTorch peak RSS | uer-ts / PyTorch | recompute / PyTorch |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  const f = (x: number | null, run: boolean) => x === null ? "–" : `${Math.round(x)}${run ? "" : " (computed)"}`;
  const tps = (o: Ours) => o.tokensPerS === null ? "–" : String(Math.round(o.tokensPerS));
  for (const r of rows) {
    const ratio = (o: Ours) => r.torchMib ? (o.mib / r.torchMib).toFixed(2) : "–";
    console.log(
      `| ${r.shape} | ${Math.round(r.plain.planMib)} | ${f(r.plain.mib, r.plain.run)} | ${tps(r.plain)} | ` +
        `${Math.round(r.recompute.planMib)} | ${f(r.recompute.mib, r.recompute.run)} | ${tps(r.recompute)} | ` +
        `${f(r.torchMib, r.torchRun)} | ${ratio(r.plain)} | ${ratio(r.recompute)} |`,
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
  const recompute = Deno.args.includes("--recompute");
  if (c) await child(...parseShape(c), steps, recompute);
  else if (p) console.log(formatMemoryPlan(planOf(...parseShape(p), recompute), 30));
  else await trainMemoryBench({ shapes: arg("--shapes")?.split(","), steps, json: Deno.args.includes("--json") });
}
