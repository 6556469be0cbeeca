/**
 * Data-parallel speed on the CPU (DESIGN.md §5): the in-place all-reduce of the ALBERT-base gradient
 * buffer (every parameter of `configs/albert/base_config.json` with the 21128-token Chinese vocab,
 * ≈13.4M floats, 53 MB) between 2 ranks, and real training steps of an ALBERT-base-shaped model on 1
 * rank and on 2 ranks under `mpirun` (same per-rank batch): tokens/s, step time, all-reduce time per
 * step and its share of the step, and the time a rank waits for the slower one before it (measured
 * apart with a barrier, since 2 ranks share 2 busy cores). The first step of each run (graph build, session start) is left out.
 * Needs Open MPI (`apt-get install -y openmpi-bin libopenmpi-dev`). Prints figures, never passes or
 * fails on time. Run: `deno run -A bench/dist_bench.ts [--batch 2] [--seq 128] [--steps 3] [--device cpu|webgpu]`.
 * With `--device webgpu` the training steps run on WebGPU (the ranks of a 2-rank run share the one GPU
 * of the machine; gradients travel through host memory for the MPI all-reduce, which stays on the CPU).
 * @module
 */
import { isRoot, mpirunArgv } from "../core/parallel/launch.ts";
import { ALBERT_BASE } from "../core/config.ts";
import { paramShapes } from "../core/train/pretrain_task.ts";
import { outputOf } from "./_scratch.ts";

const PROBE = new URL("../core/parallel/rank_probe.ts", import.meta.url).pathname;
const VOCAB = 21128;

interface StepOut {
  ms: number;
  allreduceMs: number;
  waitMs: number;
}

async function run(argv: string[]): Promise<string> {
  const out = await outputOf(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "piped" });
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    throw new Error(
      `Bench run failed (exit ${out.code}): ${argv.slice(0, 8).join(" ")} …\n${
        new TextDecoder().decode(out.stderr).slice(-2000)
      }`,
    );
  }
  return text;
}

function ranks(n: number, args: string[]): string[] {
  const rank = [Deno.execPath(), "run", "-A", PROBE, ...args];
  return n === 1 ? rank : mpirunArgv({ worldSize: n, rankArgv: rank, isRoot: isRoot() });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Runs the benchmark and returns its figures (ms, tokens/s, fractions), also printed as a table.
 *
 * @example
 * ```ts
 * const r = await distBench({ steps: 3 });
 * console.log(r.allreduce_fraction_2);
 * ```
 */
export async function distBench(
  opts: { batch?: number; seq?: number; steps?: number; device?: "cpu" | "webgpu"; log?: (s: string) => void } = {},
): Promise<Record<string, number>> {
  const batch = opts.batch ?? 2, seq = opts.seq ?? 128, steps = opts.steps ?? 3, device = opts.device ?? "cpu";
  if (device !== "cpu" && device !== "webgpu") {
    throw new RangeError(`Invalid --device "${device}": expected cpu or webgpu`);
  }
  const log = opts.log ?? console.log;
  const config = { ...ALBERT_BASE, vocab_size: VOCAB };
  const floats = paramShapes(config).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  const r: Record<string, number> = { gradient_floats: floats };
  let deviceName: string = device;

  // 1. The bare all-reduce of one ALBERT-base gradient buffer, 2 ranks.
  const t = JSON.parse(await run(ranks(2, ["time", String(floats), "7"]))) as { ms: number[] };
  r.allreduce_ms_2 = median(t.ms);
  r.allreduce_gb_s_2 = (floats * 4) / (r.allreduce_ms_2 / 1000) / 1e9;

  // 2. Training steps of ALBERT-base: 1 rank (2 threads) and 2 ranks (1 thread each) on the 2 cores.
  for (const n of [1, 2]) {
    const job = JSON.stringify({
      config,
      batch,
      seq,
      steps: steps + 1,
      acc: 1,
      lr: 1e-4,
      seed: 7,
      threads: 2 / n,
      separateWait: true,
      device,
    });
    const lines = (await run(ranks(n, ["train", job]))).trim().split("\n").map((l) => JSON.parse(l));
    const rank0 = lines.find((l) => l.rank === 0) as { steps: StepOut[]; device?: string };
    if (n === 1) deviceName = rank0.device ?? device;
    const timed = rank0.steps.slice(1);
    const stepMs = timed.reduce((a, s) => a + s.ms, 0) / timed.length;
    const arMs = timed.reduce((a, s) => a + s.allreduceMs, 0) / timed.length;
    r[`step_wait_ms_${n}`] = timed.reduce((a, s) => a + s.waitMs, 0) / timed.length;
    r[`step_ms_${n}`] = stepMs;
    r[`tokens_per_s_${n}`] = (n * batch * seq) / (stepMs / 1000);
    r[`step_allreduce_ms_${n}`] = arMs;
    r[`allreduce_fraction_${n}`] = arMs / stepMs;
  }
  r.speedup_2_over_1 = r.tokens_per_s_2 / r.tokens_per_s_1;

  log(
    `dist bench: ALBERT-base shape, ${floats} gradient floats (${(floats * 4 / 1e6).toFixed(1)} MB), ` +
      `batch ${batch} x seq ${seq} per rank, ${steps} timed steps, ${
        device === "cpu" ? "CPU" : `${deviceName}, ranks share the GPU`
      }`,
  );
  log(`  all-reduce alone, 2 ranks: ${r.allreduce_ms_2.toFixed(1)} ms (${r.allreduce_gb_s_2.toFixed(2)} GB/s)`);
  for (const n of [1, 2]) {
    log(
      `  ${n} rank${n > 1 ? "s" : " "}: ${r[`step_ms_${n}`].toFixed(0)} ms/step, ` +
        `${r[`tokens_per_s_${n}`].toFixed(1)} tokens/s, all-reduce ${r[`step_allreduce_ms_${n}`].toFixed(1)} ms/step ` +
        `(${(100 * r[`allreduce_fraction_${n}`]).toFixed(1)} % of the step), ` +
        `waiting for the other rank ${r[`step_wait_ms_${n}`].toFixed(0)} ms/step`,
    );
  }
  log(`  2 ranks / 1 rank tokens/s: ${r.speedup_2_over_1.toFixed(2)}x`);
  return r;
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Number(Deno.args[i + 1]) : undefined;
  };
  const d = Deno.args.indexOf("--device");
  const device = (d >= 0 ? Deno.args[d + 1] : "cpu") as "cpu" | "webgpu";
  await distBench({ batch: arg("batch"), seq: arg("seq"), steps: arg("steps"), device });
}
