/**
 * How long a training step waits for its batch, with the dataset compressed (zstd, as preprocess
 * writes it) and uncompressed (the same instances, same writer, `bytes` only): DESIGN.md §2.3.
 *
 * The reference corpus (`CLUECorpusSmall_sampled.txt`, or `--corpus`) is preprocessed at seq 128 and
 * 512 (dup 5, one part, as bench/dataset_codec_bench.ts). A run draws batches from `AlbertLoader`
 * (batch 64, `--instances_buffer_size` one chunk's rows: 4096 at 128, 1024 at 512, so that a run
 * crosses `--fills` fills within one pass, each decoding chunks not read before, as at scale; UER-py's
 * 25,600 only makes fills rarer) and after each batch runs a training step, timing `await
 * loader.next()` per step (the wait). Every run opens the dataset afresh (no chunk cached). Two kinds
 * of step:
 * - simulated (default): the JS thread held busy for `--step-ms` ms. This is what onnxruntime-node's
 *   `run` does (it runs the whole step on the calling thread), so a loader working on that thread can
 *   never overlap a step; on a GPU the thread is mostly free, which only helps;
 * - `--real`: the tiny ALBERT (emb 32, hidden 64, 3 layers) trained on onnxruntime-node CPU, 2
 *   threads: the step then competes for the cores with whatever reads.
 * Two ways of reading, both with the loader's read-ahead:
 * - "worker": `DatasetReader.readMany`, what pretrain uses (fills read and decoded on a worker thread);
 * - "this thread": `instance(i)` one by one on the training thread (how fills were read before).
 * Runs alternate codecs and readers, `--rounds` rounds (3); it prints per setting the median over
 * rounds of the mean wait per step (the first step excluded: the first fill always waits), the
 * 99th percentile and the worst step, the first step's wait and the mean step time (wait + step).
 * Figures only, never pass/fail on time.
 * `deno run -A bench/loader_bench.ts [--corpus FILE] [--step-ms 20] [--fills 4] [--rounds 3]
 * [--seq 128,512] [--real]`
 * @module
 */
import { openDataset } from "../core/data/dataset_zarr.ts";
import { AlbertLoader, type Batch, type InstanceSource } from "../core/train/loader.ts";
import { preprocessCorpus } from "../core/data/preprocess.ts";
import type { AlbertConfig } from "../core/config.ts";
import { TINY as TINY_128 } from "./_shapes.ts";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { paramShapes, pretrainTask } from "../core/train/pretrain_task.ts";
import { config, uncompressedCopy } from "./dataset_codec_bench.ts";
import { refPath } from "../tests/reference.ts";
import { dropScratch, scratchDir } from "./_scratch.ts";

function arg(name: string, dflt: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : dflt;
}

/** The benches' tiny ALBERT, with positions for seq 512. */
const TINY: AlbertConfig = { ...TINY_128, max_seq_length: 512 };

/** A training step: the simulated busy one or the tiny trainer's. */
type Step = (batch: Batch) => Promise<void> | void;

function busyStep(ms: number): Step {
  return () => {
    const end = performance.now() + ms;
    while (performance.now() < end) { /* holds the thread, as onnxruntime-node's run */ }
  };
}

interface Run {
  /** Wait per step (ms), in step order. */
  waits: number[];
  /** Wall ms per step (wait + step), first step excluded. */
  stepMs: number;
}

async function run(source: InstanceSource, buffer: number, steps: number, step: Step): Promise<Run> {
  const loader = new AlbertLoader(source, { batchSize: 64, instancesBufferSize: buffer, seed: 7 });
  const waits: number[] = [];
  let t1 = 0;
  for (let k = 0; k < steps; k++) {
    const t = performance.now();
    if (k === 1) t1 = t;
    const { batch } = await loader.next();
    waits.push(performance.now() - t);
    await step(batch);
  }
  return { waits, stepMs: (performance.now() - t1) / (steps - 1) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function loadAvg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

/** Runs the bench; returns its figures. */
export async function loaderBench(): Promise<unknown> {
  const corpus = arg("corpus", refPath("corpora/CLUECorpusSmall_sampled.txt"));
  const stepMs = Number(arg("step-ms", "20"));
  const fills = Number(arg("fills", "4"));
  const rounds = Number(arg("rounds", "3"));
  const seqs = arg("seq", "128,512").split(",").map(Number);
  const real = Deno.args.includes("--real");
  const tmp = await scratchDir("uer-ts-loader-bench-");
  const out: Record<string, unknown> = { corpus: corpus.split("/").pop(), load: loadAvg() };
  try {
    for (const seq of seqs) {
      await preprocessCorpus(await config(corpus, `${tmp}/zstd${seq}`, seq));
      const zstd = await openDataset(`${tmp}/zstd${seq}`);
      await uncompressedCopy(zstd, `${tmp}/plain${seq}`);
      const buffer = zstd.attrs.chunk_rows;
      const n = Math.max(1, Math.min(fills, Math.floor(zstd.count / buffer)));
      const steps = Math.ceil(n * buffer / 64) + 1;
      let trainer: Awaited<ReturnType<typeof Trainer.create>> | undefined;
      let step: Step = busyStep(stepMs);
      if (real) {
        const t = trainer = await Trainer.create({
          task: pretrainTask(TINY),
          params: initParams(paramShapes(TINY), 7),
          device: "cpu",
          threads: 2,
        });
        step = (batch) => t.step(batch, 1e-4);
      }
      console.log(
        `\nseq ${seq}: ${zstd.count} instances, batch 64, buffer ${buffer}, ${steps} steps per run ` +
          `(${n} fills), step ${real ? "tiny ALBERT on CPU, 2 threads" : `busy ${stepMs} ms`}`,
      );
      const settings = [
        ["zstd", "worker", `${tmp}/zstd${seq}`],
        ["none", "worker", `${tmp}/plain${seq}`],
        ["zstd", "this thread", `${tmp}/zstd${seq}`],
        ["none", "this thread", `${tmp}/plain${seq}`],
      ] as const;
      const results = new Map<string, Run[]>();
      for (let r = 0; r < rounds; r++) {
        for (const [codec, reader, dir] of settings) {
          const ds = await openDataset(dir);
          const source: InstanceSource = reader === "worker"
            ? ds
            : { count: ds.count, seqLength: ds.seqLength, instance: (i) => ds.instance(i) };
          const key = `${codec}|${reader}`;
          results.set(key, [...results.get(key) ?? [], await run(source, buffer, steps, step)]);
          ds.close();
        }
      }
      await trainer?.dispose();
      const rows: Record<string, unknown>[] = [];
      for (const [codec, reader] of settings) {
        const runs = results.get(`${codec}|${reader}`)!;
        const row = {
          codec,
          reader,
          meanWaitMs: median(runs.map((x) => mean(x.waits.slice(1)))),
          p99WaitMs: median(runs.map((x) => quantile(x.waits.slice(1), 0.99))),
          maxWaitMs: median(runs.map((x) => Math.max(...x.waits.slice(1)))),
          firstWaitMs: median(runs.map((x) => x.waits[0])),
          stepMs: median(runs.map((x) => x.stepMs)),
        };
        rows.push(row);
        console.log(
          `  ${codec.padEnd(4)} ${reader.padEnd(11)} wait per step: mean ${row.meanWaitMs.toFixed(3)} ms, ` +
            `p99 ${row.p99WaitMs.toFixed(2)}, max ${row.maxWaitMs.toFixed(1)} (first step ${
              row.firstWaitMs.toFixed(0)
            } ms); step with wait ${row.stepMs.toFixed(2)} ms`,
        );
      }
      out[`seq${seq}`] = { instances: zstd.count, buffer, steps, stepMs: real ? "tiny" : stepMs, rows };
    }
  } finally {
    await dropScratch(tmp);
  }
  console.log(`load average ${loadAvg()}`);
  return out;
}

if (import.meta.main) console.log(JSON.stringify(await loaderBench()));
