/**
 * Preprocess speed against UER-py, and how it scales with threads.
 *
 * Against UER-py: `CLUECorpusSmall_sampled.txt` (1.9 MB), `--seq_length 128 --dup_factor 5`, static
 * masking, with `--processes_num` 1 and 2 (2 ranges run on one thread for a corpus this small, and
 * once forced onto 2 threads to show what a Worker costs), against UER-py's own `preprocess.py
 * --processes_num 1` on the same corpus and flags, run in the same bench as a fresh process (the best
 * of 2) when `UER_DIR` names a UER-py checkout and a python with torch is found (one line says so when
 * not, and the UER-py column is left out). Wall time is the best of N warm runs in this process (the first run pays
 * the JIT warm-up and is shown as "cold"); CPU time is the whole process's user+system time over a
 * run (all threads), split into the main thread's share (Linux `/proc/thread-self`) and the rest. A
 * last row runs the CLI as a fresh process (start-up, module loading and JIT included).
 *
 * Scaling: the sample repeated to `--scale-mb` MB (64 by default; made in a temp dir) with
 * `--processes_num P` (`--processes`, the core count by default, at least 2) run on 1, 2, 4 … P
 * threads: the same P ranges and the same instances each time (checked), so the speed-up is the
 * threads' alone. A `--processes_num 1` row gives the user's view (different ranges, so a slightly
 * different instance count). The ceiling column is the machine's own: k copies of the same
 * single-range CLI run (a k-th of the corpus, each a process of its own, nothing shared) at once, as
 * k × (time of one alone) / (time of k at once) — memory bandwidth, shared caches, SMT siblings or a
 * CPU quota show there, and preprocess cannot beat it. The load average is printed with the figures.
 * Figures are printed, never judged pass/fail on time (instance counts are checked). Runnable:
 * Weak scaling: `--processes_num k` on k threads over k × `--weak-mb` MB (32 by default), k = 1, 2, 4
 * … P, so each thread has the same work as the single thread; efficiency = wall(1) / wall(k), next
 * to the ceiling of k single-range CLI processes on that much corpus each (one alone / k at once).
 * This is the case of a large corpus (the model card's 14 GB over 32 processes is 440 MB a range),
 * where start-up costs (Worker start, JIT warm-up, the scan) are small next to a range.
 * `deno run -A bench/preprocess_bench.ts [--reps N] [--scale-mb M] [--processes P] [--scale-reps R]
 * [--weak-mb W] [--no-large]` (R rounds of the scaling rows in turn, the best of each; 1 by
 * default; M or W 0 leaves that table out).
 * @module
 */
import {
  type PreprocessConfig,
  preprocessCorpus,
  type PreprocessSummary,
  threadCount,
} from "../core/data/preprocess.ts";
import { refPath } from "../tests/reference.ts";
import { parseOptions } from "../cli/options.ts";
import process from "node:process";
import { torchPython } from "./_torch_albert.ts";
import { dropScratch, outputOf, scratchDir } from "./_scratch.ts";
const EXPECTED_INSTANCES = 20515;

/**
 * Seconds of UER-py's `preprocess.py` on the small corpus with the bench's flags (1 process, a fresh
 * python each time, the best of `reps`), or undefined without `UER_DIR` or a python with torch.
 */
async function uerPyPreprocessSeconds(corpus: string, dir: string, reps = 2): Promise<number | undefined> {
  const uerDir = Deno.env.get("UER_DIR");
  const python = await torchPython();
  if (!uerDir || !python) {
    console.log(
      !uerDir
        ? "UER_DIR is not set: no UER-py column (set it to a UER-py checkout to measure UER-py itself)"
        : "no python with torch (UER_TS_PYTHON, /usr/bin/python3, python3): no UER-py column",
    );
    return undefined;
  }
  let best = Infinity;
  for (let rep = 0; rep < reps; rep++) {
    const args = [
      "preprocess.py",
      ...["--corpus_path", corpus, "--vocab_path", refPath("vocab/google_zh_vocab.txt")],
      ...["--dataset_path", `${dir}/uer_py_dataset.pt`, "--seq_length", "128", "--dup_factor", "5"],
      ...["--processes_num", "1", "--data_processor", "albert"],
    ];
    const t0 = performance.now();
    const r = await outputOf(python, { args, cwd: uerDir, stdout: "null", stderr: "piped" });
    const seconds = (performance.now() - t0) / 1000;
    if (!r.success) {
      throw new Error(`UER-py preprocess.py failed: ${new TextDecoder().decode(r.stderr).slice(-800)}`);
    }
    best = Math.min(best, seconds);
  }
  return best;
}

/** The bench's `preprocess` flags: seq 128, dup_factor 5, static masking, `processesNum` ranges. */
function flags(corpusPath: string, datasetPath: string, processesNum: number): string[] {
  return [
    ...["--corpus_path", corpusPath, "--vocab_path", refPath("vocab/google_zh_vocab.txt")],
    ...["--dataset_path", datasetPath, "--seq_length", "128", "--dup_factor", "5"],
    ...["--processes_num", String(processesNum), "--target", "albert", "--overwrite", "--quiet"],
  ];
}

/** The settings of `flags()` as the CLI parses them, on `threads` threads. */
async function config(
  corpusPath: string,
  datasetPath: string,
  processesNum: number,
  threads?: number,
): Promise<PreprocessConfig> {
  return { ...await parseOptions("preprocess", flags(corpusPath, datasetPath, processesNum)), threads };
}

function loadAvg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

function cpuSeconds(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
}

/** CPU seconds of the calling thread (Linux; NaN elsewhere). Clock ticks of 10 ms. */
function threadCpuSeconds(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/thread-self/stat");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return NaN;
  }
}

/** One row of the table. */
export interface PreprocessRow {
  corpus: string;
  mb: number;
  processes: number;
  /** Threads the ranges ran on (preprocess picks one per 4 MiB of corpus unless told). */
  threads: number;
  instances: number;
  /** First run of this configuration in the process (includes JIT warm-up for the first row). */
  coldSeconds: number;
  /** Best wall time of the warm runs. */
  seconds: number;
  /** Whole-process CPU time of the warm run with the least of it. */
  cpuSeconds: number;
  /** The main thread's share of `cpuSeconds` (same run; NaN where /proc is missing). */
  mainCpuSeconds: number;
  instancesPerSecond: number;
  instancesPerCpuSecond: number;
  load: string;
}

async function measure(
  corpus: string,
  name: string,
  dir: string,
  processes: number,
  reps: number,
  threads?: number,
) {
  const mb = (await Deno.stat(corpus)).size / 1e6;
  const walls: number[] = [];
  const cpus: number[] = [];
  const mains: number[] = [];
  let instances = 0;
  for (let run = 0; run <= reps; run++) {
    await removeOutput(`${dir}/out_p${processes}`);
    const t0 = performance.now();
    const c0 = cpuSeconds();
    const m0 = threadCpuSeconds();
    const s = await preprocessCorpus(await config(corpus, `${dir}/out_p${processes}`, processes, threads));
    walls.push((performance.now() - t0) / 1000);
    cpus.push(cpuSeconds() - c0);
    mains.push(threadCpuSeconds() - m0);
    instances = s.count;
  }
  const seconds = Math.min(...walls.slice(1));
  const cpu = Math.min(...cpus.slice(1));
  const least = cpus.indexOf(cpu, 1);
  const row: PreprocessRow = {
    corpus: name,
    mb,
    processes,
    threads: Math.min(processes, threads ?? threadCount(processes, mb * 1e6)),
    instances,
    coldSeconds: walls[0],
    seconds,
    cpuSeconds: cpu,
    mainCpuSeconds: mains[least],
    instancesPerSecond: instances / seconds,
    instancesPerCpuSecond: instances / cpu,
    load: loadAvg(),
  };
  return row;
}

/** `deno run -A cli/main.ts preprocess …` arguments for the bench's settings, one range. */
function cliArgs(corpus: string, datasetPath: string): string[] {
  return [
    "run",
    "-A",
    new URL("../cli/main.ts", import.meta.url).pathname,
    "preprocess",
    ...flags(corpus, datasetPath, 1),
  ];
}

/** The CLI as a fresh process (bash's `time` gives its user+sys); null where bash is missing. */
async function cliColdRun(corpus: string, dir: string): Promise<{ wall: number; cpu: number } | null> {
  const args = [Deno.execPath(), ...cliArgs(corpus, `${dir}/cli_out`)].map((a) => `'${a.replaceAll("'", "'\\''")}'`)
    .join(" ");
  try {
    const out = await outputOf("bash", {
      args: ["-c", `TIMEFORMAT='%R %U %S'; time (${args} > /dev/null)`],
      stdout: "null",
      stderr: "piped",
    });
    if (!out.success) return null;
    const [wall, user, sys] = new TextDecoder().decode(out.stderr).trim().split("\n").pop()!.split(" ").map(Number);
    return { wall, cpu: user + sys };
  } catch {
    return null;
  }
}

/** One row of the scaling table: `processes` ranges on `threads` threads. */
export interface ScalingRow {
  processes: number;
  threads: number;
  instances: number;
  seconds: number;
  cpuSeconds: number;
  /** k copies of a single-range job at once: k × alone / together (threads > 1 only). */
  ceiling: number;
  timeline: PreprocessSummary["timeline"];
  load: string;
}

/** Writes `copies` copies of `bytes` to `path`. */
async function repeatFile(path: string, bytes: Uint8Array, copies: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let i = 0; i < copies; i++) await f.write(bytes);
  } finally {
    f.close();
  }
}

/**
 * Removes the last run's dataset before the next is timed: `--overwrite` deletes the old dataset
 * after the new one is in place, which for a large one is seconds of file removal, not preprocessing.
 */
async function removeOutput(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

/** Wall and CPU time of one preprocess run, and its timeline. */
async function timed(
  cfg: PreprocessConfig,
): Promise<{ seconds: number; cpu: number; count: number; timeline: PreprocessSummary["timeline"] }> {
  await removeOutput(cfg.datasetPath);
  const t0 = performance.now();
  const c0 = cpuSeconds();
  const s = await preprocessCorpus(cfg);
  return { seconds: (performance.now() - t0) / 1000, cpu: cpuSeconds() - c0, count: s.count, timeline: s.timeline };
}

/** Wall time of `n` single-range CLI runs over `corpus` started at once, each a process of its own. */
async function concurrentCli(dir: string, corpus: string, n: number): Promise<number> {
  const t0 = performance.now();
  const outs = await Promise.all(
    Array.from(
      { length: n },
      (_, i) => outputOf(Deno.execPath(), { args: cliArgs(corpus, `${dir}/ceiling_${i}`), stdout: "null" }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (!outs.every((o) => o.success)) throw new Error("preprocess bench: a ceiling run failed");
  for (let i = 0; i < n; i++) await Deno.remove(`${dir}/ceiling_${i}`, { recursive: true });
  return seconds;
}

/**
 * The machine's ceiling for k threads of this work: the same single-range CLI run (a k-th of the
 * corpus) as one process alone, then k such processes at once; k × alone / together.
 */
async function ceiling(dir: string, sample: Uint8Array, copies: number, k: number): Promise<number> {
  const slice = `${dir}/slice_${k}.txt`;
  await repeatFile(slice, sample, Math.max(1, Math.round(copies / k)));
  const alone = await concurrentCli(dir, slice, 1);
  const together = await concurrentCli(dir, slice, k);
  await Deno.remove(slice);
  return k * alone / together;
}

/** One row of the weak-scaling table: k ranges of about the same size on k threads. */
export interface WeakRow {
  threads: number;
  mb: number;
  instances: number;
  seconds: number;
  cpuSeconds: number;
  /** alone / together for k single-range CLI processes on one range's worth of corpus each. */
  ceiling: number;
  timeline: PreprocessSummary["timeline"];
}

/**
 * Weak scaling: `--processes_num k` on k threads over k × `mb` MB (the sample repeated), for k = 1, 2,
 * 4 … p; efficiency = wall(k = 1) / wall(k). The ceiling: one single-range CLI process on `mb` MB
 * alone, then k of them at once.
 */
async function weakScaling(dir: string, sample: Uint8Array, mb: number, p: number): Promise<WeakRow[]> {
  const copies = Math.max(1, Math.round(mb * 1e6 / sample.length));
  const slice = `${dir}/weak_slice.txt`;
  await repeatFile(slice, sample, copies);
  const alone = await concurrentCli(dir, slice, 1);
  const rows: WeakRow[] = [];
  for (const k of threadSteps(p)) {
    const corpus = `${dir}/weak_${k}.txt`;
    await repeatFile(corpus, sample, copies * k);
    const r = await timed(await config(corpus, `${dir}/weak_out`, k, k));
    await Deno.remove(corpus);
    const together = k > 1 ? await concurrentCli(dir, slice, k) : alone;
    rows.push({
      threads: k,
      mb: copies * k * sample.length / 1e6,
      instances: r.count,
      seconds: r.seconds,
      cpuSeconds: r.cpu,
      ceiling: alone / together,
      timeline: r.timeline,
    });
  }
  await Deno.remove(`${dir}/weak_out`, { recursive: true });
  await Deno.remove(slice);
  return rows;
}

/** 1, 2, 4 … up to `p`, and `p`. */
function threadSteps(p: number): number[] {
  const out: number[] = [];
  for (let t = 1; t < p; t *= 2) out.push(t);
  out.push(p);
  return out;
}

/**
 * Runs the small corpus against UER-py, then (unless `large` is false) the scaling table, and prints
 * them (unless `quiet`). Returns the figures by name.
 */
export async function preprocessBench(
  opts: {
    reps?: number;
    large?: boolean;
    quiet?: boolean;
    scaleMb?: number;
    processes?: number;
    scaleReps?: number;
    weakMb?: number;
  } = {},
): Promise<Record<string, number>> {
  const reps = opts.reps ?? 3;
  const dir = await scratchDir("preprocess_bench");
  const small = refPath("corpora/CLUECorpusSmall_sampled.txt");
  const rows: PreprocessRow[] = [];
  const scaling: ScalingRow[] = [];
  const out: Record<string, number> = {};
  let cli: { wall: number; cpu: number } | null = null;
  let scaleMb = 0;
  let weak: WeakRow[] = [];
  let uerSeconds: number | undefined;
  try {
    uerSeconds = await uerPyPreprocessSeconds(small, dir);
    for (const p of [1, 2]) rows.push(await measure(small, "sampled", dir, p, reps));
    rows.push(await measure(small, "sampled", dir, 2, reps, 2)); // a Worker for a 1.9 MB corpus, forced
    if (rows[0].instances !== EXPECTED_INSTANCES) {
      throw new Error(`preprocess bench: ${rows[0].instances} instances, UER-py makes ${EXPECTED_INSTANCES}`);
    }
    cli = await cliColdRun(small, dir);
    if ((opts.large ?? true) && (opts.scaleMb ?? 64) > 0) {
      const sample = await Deno.readFile(small);
      const copies = Math.max(2, Math.round((opts.scaleMb ?? 64) * 1e6 / sample.length));
      const big = `${dir}/sampled_x${copies}.txt`;
      await repeatFile(big, sample, copies);
      scaleMb = copies * sample.length / 1e6;
      const p = Math.max(2, opts.processes ?? navigator.hardwareConcurrency);
      // Rows in turn, `scaleReps` rounds, the best of each: slow drifts of a shared box hit every row.
      const plan: [number, number][] = [[1, 1], ...threadSteps(p).map((t): [number, number] => [p, t])];
      for (let rep = 0; rep < (opts.scaleReps ?? 1); rep++) {
        for (const [i, [processes, threads]] of plan.entries()) {
          const r = await timed(await config(big, `${dir}/scale_p${processes}`, processes, threads));
          if (i > 1 && r.count !== scaling[1].instances) {
            throw new Error(
              `preprocess bench: ${r.count} instances on ${threads} threads, ${scaling[1].instances} on 1`,
            );
          }
          const load = loadAvg();
          const c = threads > 1 ? await ceiling(dir, sample, copies, threads) : 1;
          const row = {
            processes,
            threads,
            instances: r.count,
            seconds: r.seconds,
            cpuSeconds: r.cpu,
            ceiling: c,
            load,
            timeline: r.timeline,
          };
          if (!scaling[i] || row.seconds < scaling[i].seconds) {
            scaling[i] = { ...row, ceiling: scaling[i]?.ceiling ?? c };
          }
          scaling[i].ceiling = Math.max(scaling[i].ceiling, c);
        }
      }
      for (const p1 of [1, p]) await Deno.remove(`${dir}/scale_p${p1}`, { recursive: true });
      await Deno.remove(big);
    }
    if ((opts.large ?? true) && (opts.weakMb ?? 32) > 0) {
      const p = Math.max(2, opts.processes ?? navigator.hardwareConcurrency);
      weak = await weakScaling(dir, await Deno.readFile(small), opts.weakMb ?? 32, p);
    }
  } finally {
    await dropScratch(dir);
  }
  for (const r of rows) {
    const key = `small_p${r.processes}_t${r.threads}`;
    out[`${key}_instances`] = r.instances;
    out[`${key}_seconds`] = r.seconds;
    out[`${key}_cold_seconds`] = r.coldSeconds;
    out[`${key}_cpu_seconds`] = r.cpuSeconds;
    out[`${key}_main_cpu_seconds`] = r.mainCpuSeconds;
    out[`${key}_instances_per_second`] = r.instancesPerSecond;
  }
  if (uerSeconds !== undefined) {
    out.uer_py_seconds = uerSeconds;
    out.speedup_vs_uer_p1 = uerSeconds / out.small_p1_t1_seconds;
    out.speedup_vs_uer_p2 = uerSeconds / out.small_p2_t1_seconds;
  }
  if (cli) {
    out.cli_cold_seconds = cli.wall;
    out.cli_cold_cpu_seconds = cli.cpu;
  }
  if (scaling.length) {
    out.scale_mb = scaleMb;
    const base = scaling[1];
    for (const r of scaling) {
      const key = `scale_p${r.processes}_t${r.threads}`;
      out[`${key}_seconds`] = r.seconds;
      out[`${key}_instances`] = r.instances;
      if (r.processes === base.processes) {
        out[`${key}_speedup`] = base.seconds / r.seconds;
        if (r.threads > 1) out[`${key}_ceiling`] = r.ceiling;
      }
    }
  }
  for (const r of weak) {
    out[`weak_t${r.threads}_seconds`] = r.seconds;
    out[`weak_t${r.threads}_efficiency`] = weak[0].seconds / r.seconds;
    out[`weak_t${r.threads}_ceiling`] = r.ceiling;
  }
  if (!opts.quiet) {
    printTable(rows, cli, reps, uerSeconds);
    if (scaling.length) printScaling(scaling, scaleMb, opts.scaleReps ?? 1);
    if (weak.length) printWeak(weak);
  }
  return out;
}

/** The row with the same corpus and processes_num on 1 thread (the row itself on 1 thread). */
function baseline(rows: PreprocessRow[], r: PreprocessRow): PreprocessRow | null {
  if (r.threads === 1) return r;
  return rows.find((x) => x.corpus === r.corpus && x.processes === r.processes && x.threads === 1) ?? null;
}

function printTable(
  rows: PreprocessRow[],
  cli: { wall: number; cpu: number } | null,
  reps: number,
  uerSeconds: number | undefined,
): void {
  const f = (x: number, d = 2) => x.toFixed(d);
  const vsUer = (seconds: number) => (uerSeconds === undefined ? "–" : `${f(uerSeconds / seconds, 1)}x`);
  console.log(
    `preprocess --seq_length 128 --dup_factor 5 (static masking); UER-py --processes_num 1 on sampled: ` +
      (uerSeconds === undefined
        ? "not run (no UER_DIR)"
        : `${f(uerSeconds)} s (its preprocess.py as a fresh process, best of 2, this run)`),
  );
  console.log(
    `wall = best of ${reps} warm runs, CPU = least whole-process CPU time of those runs (all threads; ` +
      `main = the main thread's part of it)`,
  );
  console.log("");
  console.log(
    "| corpus | MB | processes | threads | instances | wall s (cold) | CPU s (main) | cores used | instances/s " +
      "| vs UER-py | load avg |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const cells = [
      r.corpus,
      f(r.mb, 1),
      r.processes,
      r.threads,
      r.instances,
      `${f(r.seconds)} (${f(r.coldSeconds)})`,
      `${f(r.cpuSeconds)} (${f(r.mainCpuSeconds)})`,
      f(r.cpuSeconds / r.seconds),
      Math.round(r.instancesPerSecond),
      vsUer(r.seconds),
      r.load,
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  if (cli) {
    const cells = [
      "sampled, CLI fresh process",
      "1.9",
      1,
      1,
      EXPECTED_INSTANCES,
      f(cli.wall),
      `${f(cli.cpu)} (-)`,
      f(cli.cpu / cli.wall),
      Math.round(EXPECTED_INSTANCES / cli.wall),
      vsUer(cli.wall),
      loadAvg(),
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  console.log("");
  for (const t2 of rows.filter((r) => r.threads === 2)) {
    const base = baseline(rows, t2);
    if (!base) continue;
    console.log(
      `${t2.corpus}: the same ${t2.processes} ranges on 2 threads use ${f(t2.cpuSeconds / base.cpuSeconds)}x the CPU ` +
        `of 1 thread (${f(t2.cpuSeconds - base.cpuSeconds)} s more) and run ${
          f(base.seconds / t2.seconds)
        }x as fast: ` +
        "a Worker is a fresh isolate that JIT-compiles the hot code again, which the warm 1-thread rows do not pay; " +
        "--processes_num N runs one thread per 4 MiB of corpus, so this corpus stays on one thread unless forced.",
    );
  }
}

function printScaling(rows: ScalingRow[], mb: number, reps: number): void {
  const f = (x: number, d = 2) => x.toFixed(d);
  const base = rows[1];
  console.log("");
  console.log(
    `scaling: the sample repeated to ${f(mb, 1)} MB, --processes_num ${base.processes} on 1 … ${
      rows[rows.length - 1].threads
    } threads (same ranges, same instances), best of ${reps} round(s); ${navigator.hardwareConcurrency} cores here`,
  );
  console.log("");
  console.log("| processes | threads | instances | wall s | CPU s | speed-up | efficiency | ceiling | load avg |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const same = r.processes === base.processes;
    const speedup = base.seconds / r.seconds;
    const cells = [
      r.processes,
      r.threads,
      r.instances,
      f(r.seconds),
      f(r.cpuSeconds),
      same ? `${f(speedup)}x` : "-",
      same ? `${Math.round(100 * speedup / r.threads)} %` : "-",
      same && r.threads > 1 ? `${f(r.ceiling)}x` : "-",
      r.load,
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  console.log("");
  for (const r of rows.filter((x) => x.threads > 1)) printTimeline(r.threads, r.seconds, r.timeline);
  console.log(
    "\nspeed-up = wall(1 thread) / wall(k threads) for the same ranges; efficiency = speed-up / k; ceiling = k copies\n" +
      "of a single-range CLI run (a k-th of the corpus, a process each, nothing shared) at once: k × alone /\n" +
      "together, the most k threads of this work get from this machine. The --processes_num 1 row is the corpus as\n" +
      "one range (UER-py's ranges change the instances, so it is not in the speed-up).",
  );
}

/** Prints the range timeline of a run on several threads. */
function printTimeline(threads: number, seconds: number, t: PreprocessSummary["timeline"]): void {
  const f = (x: number) => x.toFixed(2);
  const spans = t.ranges.map((x) => x.end - x.start);
  const busy = spans.reduce((a, b) => a + b, 0);
  const starts = t.ranges.map((x) => x.start), ends = t.ranges.map((x) => x.end);
  console.log(
    `${threads} threads: scan done at ${f(t.scanned)} s; ranges started ${f(Math.min(...starts))}–` +
      `${f(Math.max(...starts))} s, ended ${f(Math.min(...ends))}–${f(Math.max(...ends))} s, each ` +
      `${f(Math.min(...spans))}–${f(Math.max(...spans))} s; threads busy with ranges ` +
      `${Math.round(100 * busy / (threads * seconds))} % of ${f(seconds)} s`,
  );
}

function printWeak(rows: WeakRow[]): void {
  const f = (x: number, d = 2) => x.toFixed(d);
  const mb = rows[0].mb;
  console.log("");
  console.log(
    `weak scaling: --processes_num k on k threads over k × ${f(mb, 1)} MB (the sample repeated), one run each; ` +
      `${navigator.hardwareConcurrency} cores here`,
  );
  console.log("");
  console.log("| processes = threads | MB | instances | wall s | CPU s | MB/s | efficiency | ceiling |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const cells = [
      r.threads,
      f(r.mb, 1),
      r.instances,
      f(r.seconds),
      f(r.cpuSeconds),
      f(r.mb / r.seconds, 1),
      `${Math.round(100 * rows[0].seconds / r.seconds)} %`,
      r.threads > 1 ? `${Math.round(100 * r.ceiling)} %` : "-",
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  console.log("");
  for (const r of rows.filter((x) => x.threads > 1)) printTimeline(r.threads, r.seconds, r.timeline);
  console.log(
    "\nefficiency = wall(1 thread, 1 range) / wall(k threads, k ranges), each range about the same size; ceiling =\n" +
      "the same for k single-range CLI processes (nothing shared): one alone / k at once.",
  );
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Number(Deno.args[i + 1]) : undefined;
  };
  await preprocessBench({
    reps: arg("--reps"),
    scaleMb: arg("--scale-mb"),
    processes: arg("--processes"),
    scaleReps: arg("--scale-reps"),
    weakMb: arg("--weak-mb"),
    large: !Deno.args.includes("--no-large"),
  });
}
