/**
 * Pretraining speed: tokens/s of `Trainer.step` (forward + backward + AdamW, one fused ONNX graph)
 * on onnxruntime-node CPU with 2 intra-op threads, for the reference albert-tiny config (batch 16,
 * seq 128) and an ALBERT-base-shaped config (batch 8, seq 128; emb 128, hidden 768, ff 3072,
 * 12 heads, 12 layers, vocab 21128), beside baselines measured in the same run on the same machine:
 * - a PyTorch step of the same model on the same batch (bench/_torch_albert.ts, 2 threads), once with
 *   glibc's defaults and once with glibc keeping freed memory (`GLIBC_KEEP_MEMORY`: on a VM where a
 *   fresh page is slow, PyTorch's per-tensor mmaps dominate its step); ratios use the faster of the two;
 * - UER-py itself (`preprocess.py` + `pretrain.py` on the reference corpus, its own tokens/s report
 *   lines, the first one dropped as warm-up; run with both glibc settings, the faster counts) when
 *   `UER_DIR` names a checkout (its python packages: Debian's python3-torch, -packaging, -regex); one
 *   line says so when not. For a fair PyTorch, torch should load an optimised BLAS (Debian:
 *   `libopenblas0-pthread`; the reference BLAS is ~8× slower at GEMM).
 * Every uer-ts step is timed: it prints tokens/s of the best, the median and the mean step (the 2 cores
 * are shared, so the best is the uncontended figure, the median the typical one, the mean includes the
 * slow steps), process CPU ms per step (user + system, all threads) and the RSS at steps 1, 10, 100, …
 * and the last (it should stay flat).
 * Prints figures; never passes or fails on time (DESIGN.md §2).
 *
 * Run: `deno run -A bench/pretrain_bench.ts [--tiny-steps N] [--base-steps N] [--no-spin] [--no-probe]`
 * (defaults 300 and 3; `--no-spin` makes onnxruntime's worker threads sleep between ops, kinder to a
 * shared box; `--no-probe` keeps 2 threads on every step instead of timing 1 thread now and then and
 * running the faster, state_store.ts `threadProbe`; it prints how many runs went to each).
 * @module
 */
import process from "node:process";
import type { AlbertConfig } from "../core/config.ts";
import { BASE, TINY } from "./_shapes.ts";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { OrtStateStore } from "../core/train/state_store.ts";
import { paramShapes, pretrainTask } from "../core/train/pretrain_task.ts";
import { GLIBC_KEEP_MEMORY, torchAlbertSteps, torchPython, uerPyPretrain } from "./_torch_albert.ts";
import { syntheticBatch } from "../tests/webgpu_steps.ts";
import { dropScratch, scratchDir } from "./_scratch.ts";

interface Figures {
  steps: number;
  tokensPerStep: number;
  /** Wall ms of each timed step (the first two, session-creating and warm-up, excluded). */
  wallMs: number[];
  /** Process CPU ms (user + system, all threads) per timed step, averaged over the run. */
  cpuMsPerStep: number;
  firstStepMs: number;
  /** [step, RSS bytes] at steps 1, 10, 100, 1000, … and the last. */
  rss: [number, number][];
  /** Runs on 2 intra-op threads and on 1 (the store's `threadProbe`). */
  runsByThreads: { threads: number; runs: number }[];
}

async function measure(
  cfg: AlbertConfig,
  batchSize: number,
  seqLength: number,
  steps: number,
  spinning: boolean,
  probe: boolean,
): Promise<Figures> {
  const params = initParams(paramShapes(cfg), 7);
  const store = new OrtStateStore("cpu", { threads: 2, spinning, threadProbe: probe ? undefined : false });
  const trainer = await Trainer.create({ task: pretrainTask(cfg), params, store });
  const batches = [0, 1, 2, 3].map((s) => syntheticBatch(batchSize, seqLength, cfg.vocab_size!, s));
  const rss: [number, number][] = [];
  let t = performance.now();
  await trainer.step(batches[0], 1e-4);
  const firstStepMs = performance.now() - t;
  rss.push([1, Deno.memoryUsage().rss]);
  // Step 2 first-touches the trainer's second set of state buffers and grows onnxruntime's arena.
  await trainer.step(batches[1], 1e-4);
  const wallMs: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) {
    t = performance.now();
    await trainer.step(batches[i % batches.length], 1e-4);
    wallMs.push(performance.now() - t);
    const step = i + 3;
    if (i === steps - 1 || (Number.isInteger(Math.log10(step)) && step > 1)) rss.push([step, Deno.memoryUsage().rss]);
  }
  const cpu = process.cpuUsage(cpu0);
  const runsByThreads = store.runsByThreads;
  await trainer.dispose();
  await store.dispose();
  return {
    runsByThreads,
    steps,
    tokensPerStep: batchSize * seqLength,
    wallMs,
    cpuMsPerStep: (cpu.user + cpu.system) / 1000 / steps,
    firstStepMs,
    rss,
  };
}

function argNumber(name: string, dflt: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;
const mib = (b: number) => round(b / 2 ** 20, 1);

/** tokens/s of the best and the median of `ms` (per-step wall times) for `tokens` per step. */
function rates(tokens: number, ms: number[]): { best: number; median: number } {
  return { best: tokens / (Math.min(...ms) / 1000), median: tokens / (median(ms) / 1000) };
}

/** Baselines of one config, tokens/s (best, median); null where not measured. */
interface Baselines {
  torch: { best: number; median: number } | null;
  torchKeep: { best: number; median: number } | null;
  uerPy: { best: number; median: number } | null;
}

async function baselines(
  name: string,
  cfg: AlbertConfig,
  batchSize: number,
  steps: number,
  uer: { python: string; dir: string; work: string } | undefined,
): Promise<Baselines> {
  const py = await torchPython();
  const out: Baselines = { torch: null, torchKeep: null, uerPy: null };
  if (py) {
    const batch = syntheticBatch(batchSize, 128, cfg.vocab_size!, 0);
    const n = Math.max(3, Math.min(steps, 40));
    const drop = (ms: number[]) => ms.slice(1); // the first step allocates the optimizer state
    out.torch = rates(batchSize * 128, drop((await torchAlbertSteps(py, cfg, batch, { steps: n })).ms));
    const keep = await torchAlbertSteps(py, cfg, batch, { steps: n, env: GLIBC_KEEP_MEMORY });
    out.torchKeep = rates(batchSize * 128, drop(keep.ms));
  }
  if (uer) {
    const report = name === "tiny" ? 20 : 1;
    for (const env of [undefined, GLIBC_KEEP_MEMORY]) {
      const tps = await uerPyPretrain(uer.python, uer.dir, uer.work, cfg, {
        corpus: new URL("../../shared/reference/corpora/CLUECorpusSmall_sampled.txt", import.meta.url).pathname,
        vocab: new URL("../../shared/reference/vocab/google_zh_vocab.txt", import.meta.url).pathname,
        batch: batchSize,
        seq: 128,
        steps: report * Math.max(3, Math.min(6, Math.ceil(steps / report))),
        reportSteps: report,
        env,
      });
      const rest = tps.slice(1); // the first report includes start-up
      if (rest.length && median(rest) > (out.uerPy?.median ?? 0)) {
        out.uerPy = { best: Math.max(...rest), median: median(rest) };
      }
    }
  }
  return out;
}

/** Runs the benchmark, prints its table and returns the figures (tokens/s, ratios to the baselines, CPU ms, RSS MiB). */
export async function pretrainBench(
  opts: { tinySteps?: number; baseSteps?: number; spinning?: boolean; probe?: boolean } = {},
): Promise<Record<string, number>> {
  const spin = opts.spinning ?? true, probe = opts.probe ?? true;
  const uerDir = Deno.env.get("UER_DIR");
  const py = await torchPython();
  const work = uerDir && py ? await scratchDir("uer-ts-uerpy-") : undefined;
  const uer = uerDir && py && work ? { python: py, dir: uerDir, work } : undefined;
  if (!uerDir) {
    console.log("UER_DIR is not set: no UER-py column (set it to a UER-py checkout to measure UER-py itself)");
  }
  if (!py) console.log("no python with torch (UER_TS_PYTHON, /usr/bin/python3, python3): no PyTorch column");
  const runs: [string, Figures, Baselines][] = [];
  try {
    const tinySteps = opts.tinySteps ?? 300;
    runs.push([
      "tiny",
      await measure(TINY, 16, 128, tinySteps, spin, probe),
      await baselines("tiny", TINY, 16, tinySteps, uer),
    ]);
    const baseSteps = opts.baseSteps ?? 3;
    if (baseSteps > 0) {
      runs.push([
        "base",
        await measure(BASE, 8, 128, baseSteps, spin, probe),
        await baselines("base", BASE, 8, baseSteps, uer),
      ]);
    }
  } finally {
    if (work) await dropScratch(work);
  }

  const out: Record<string, number> = {};
  const rows: string[][] = [[
    "config",
    "steps",
    "tok/s best",
    "tok/s median",
    "tok/s mean",
    "PyTorch median",
    "PyTorch median (glibc keeps)",
    "× PyTorch (median)",
    "UER-py median",
    "× UER-py (median)",
    "CPU ms/step",
    "first step ms",
  ]];
  const fmt = (x: number | undefined) => (x === undefined ? "–" : String(round(x)));
  for (const [name, f, b] of runs) {
    const { best, median: med } = rates(f.tokensPerStep, f.wallMs);
    const mean = (f.tokensPerStep * f.wallMs.length) / (f.wallMs.reduce((a, b) => a + b, 0) / 1000);
    const torch = Math.max(b.torch?.median ?? 0, b.torchKeep?.median ?? 0) || undefined;
    Object.assign(out, {
      [`${name}_tokens_per_s_best`]: round(best),
      [`${name}_tokens_per_s_median`]: round(med),
      [`${name}_tokens_per_s_mean`]: round(mean),
      [`${name}_cpu_ms_per_step`]: round(f.cpuMsPerStep, 1),
      [`${name}_first_step_ms`]: round(f.firstStepMs),
    });
    if (b.torch) out[`${name}_torch_tokens_per_s_median`] = round(b.torch.median);
    if (b.torchKeep) out[`${name}_torch_keep_tokens_per_s_median`] = round(b.torchKeep.median);
    if (torch) out[`${name}_vs_torch_median`] = round(med / torch, 2);
    if (b.uerPy) {
      out[`${name}_uer_py_tokens_per_s_median`] = round(b.uerPy.median);
      out[`${name}_vs_uer_py_median`] = round(med / b.uerPy.median, 2);
    }
    rows.push([
      name === "tiny" ? "tiny (B16 T128)" : "base-shaped (B8 T128)",
      String(f.steps),
      String(round(best)),
      String(round(med)),
      String(round(mean)),
      fmt(b.torch?.median),
      fmt(b.torchKeep?.median),
      torch ? (med / torch).toFixed(2) : "–",
      fmt(b.uerPy?.median),
      b.uerPy ? (med / b.uerPy.median).toFixed(2) : "–",
      String(round(f.cpuMsPerStep, 1)),
      String(round(f.firstStepMs)),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c])).join(" | ")} |`;
  console.log(
    `pretrain step (forward + backward + AdamW) on onnxruntime-node CPU, 2 intra-op threads${
      probe ? " (or 1 where timed faster: threadProbe)" : ""
    }, spinning ${spin ? "on" : "off"}; baselines in the same run (torch at its default threads, as UER-py)`,
  );
  console.log(line(rows[0]));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows.slice(1)) console.log(line(r));
  const tiny = runs[0][1];
  console.log(`RSS over the tiny run: ${tiny.rss.map(([s, b]) => `step ${s} ${mib(b)} MiB`).join(", ")}`);
  for (const [name, f] of runs) {
    const [two, one] = f.runsByThreads;
    console.log(`${name}: ${two.runs} runs on ${two.threads} threads, ${one.runs} on ${one.threads}`);
    out[`${name}_runs_on_1_thread`] = one.runs;
  }
  for (const [s, b] of tiny.rss) out[`tiny_rss_step${s}_mib`] = mib(b);
  return out;
}

if (import.meta.main) {
  await pretrainBench({
    tinySteps: argNumber("--tiny-steps", 300),
    baseSteps: argNumber("--base-steps", 3),
    spinning: !Deno.args.includes("--no-spin"),
    probe: !Deno.args.includes("--no-probe"),
  });
}
