/**
 * The model card's run at scale, projected from rates measured in this run: `preprocess` of the
 * reference corpus sample (1.95 MB, repeated 8 times; the CLI's own timing) at seq 128 and seq 512 (`--dup_factor 5`, the card's default, fresh CLI
 * processes) gives MB/s, instances per corpus MB and dataset bytes per instance; the step graphs' memory
 * plans (core/graph/memory_plan.ts) give the training memory of the card's batches; a few ALBERT-base
 * steps at batch 8 × 128 on this CPU give tokens/s (or pass `--tokens-per-s-128 N --tokens-per-s-512 N`,
 * e.g. a GPU's figures). Prints, for 1.5 GB and the card's 14 GB of corpus, the time, memory and disk with
 * the arithmetic shown. Linear in corpus size: preprocess scales linearly and the loader's memory is flat
 * (issue #16's measurements up to 4.5 GB).
 *
 * Run: `deno run -A bench/scale_projection.ts [--corpus-gb 1.5,14] [--tokens-per-s-128 N] [--tokens-per-s-512 N]`.
 * Prints figures; never passes or fails.
 * @module
 */
import { ALBERT_BASE } from "../core/config.ts";
import { memoryPlan } from "../core/graph/memory_plan.ts";
import { defaultMaskedSlots, paramShapes, pretrainTask } from "../core/train/pretrain_task.ts";
import { stepGraph } from "../core/train/training_graph.ts";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { syntheticBatch } from "../tests/webgpu_steps.ts";
import { dropScratch, outputOf, scratchDir } from "./_scratch.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CORPUS = new URL("../../shared/reference/corpora/CLUECorpusSmall_sampled.txt", import.meta.url).pathname;
const VOCAB = new URL("../../shared/reference/vocab/google_zh_vocab.txt", import.meta.url).pathname;
const BASE = { ...ALBERT_BASE, max_seq_length: 512, vocab_size: 21128 };
const GB = 1e9, MB = 1e6;

async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    n += e.isDirectory ? await folderBytes(p) : (await Deno.stat(p)).size;
  }
  return n;
}

/** preprocess of the sample at `seq` as a fresh CLI process: MB/s, instances per MB, bytes per instance. */
async function preprocessRates(seq: number, dir: string, corpus: string) {
  const out = `${dir}/dataset${seq}`;
  const r = await outputOf(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/main.ts`, "preprocess", "--corpus_path", corpus, "--vocab_path", VOCAB]
      .concat(["--dataset_path", out, "--seq_length", String(seq), "--dup_factor", "5", "--target", "albert"]),
    stdout: "piped",
    stderr: "piped",
  });
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  if (!r.success) throw new Error(`preprocess failed: ${text.slice(-500)}`);
  const instances = Number(/Wrote (\d+) instances/.exec(text)?.[1]);
  const s = Number(/ in ([\d.]+)s/.exec(text)?.[1]); // the CLI's own timing (start-up excluded)
  const corpusMb = (await Deno.stat(corpus)).size / MB;
  const bytes = await folderBytes(out);
  return { mbPerS: corpusMb / s, instancesPerMb: instances / corpusMb, bytesPerInstance: bytes / instances };
}

async function cpuTokensPerS(seq: number, batch: number): Promise<number> {
  const t = await Trainer.create({ task: pretrainTask(BASE), params: initParams(paramShapes(BASE), 7), device: "cpu" });
  const b = syntheticBatch(batch, seq, BASE.vocab_size, 0);
  await t.step(b, 1e-4);
  const ms: number[] = [];
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    await t.step(b, 1e-4);
    ms.push(performance.now() - t0);
  }
  await t.dispose();
  return (batch * seq) / (Math.min(...ms) / 1000);
}

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const f = (x: number, d = 0) => x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const human = (
  s: number,
) => (s > 86400 * 2 ? `${f(s / 86400, 1)} days` : s > 7200 ? `${f(s / 3600, 1)} h` : `${f(s, 0)} s`);

/** Runs the projection and returns its inputs and results. */
export async function scaleProjection(): Promise<Record<string, number>> {
  const gbs = (arg("--corpus-gb") ?? "1.5,14").split(",").map(Number);
  const dir = await scratchDir("uer-ts-scale-");
  const out: Record<string, number> = {};
  try {
    // The sample repeated to ~16 MB, so that the rate is not the start-up's (blank line between copies).
    const sample = await Deno.readTextFile(CORPUS);
    const corpus = `${dir}/corpus.txt`;
    await Deno.writeTextFile(corpus, Array(8).fill(sample.endsWith("\n") ? sample : sample + "\n").join("\n"));
    const stages = [
      { seq: 128, steps: 1_000_000, batch: 64, given: arg("--tokens-per-s-128") },
      { seq: 512, steps: 250_000, batch: 64, given: arg("--tokens-per-s-512") },
    ];
    const ranks = 8; // the card: --world_size 8, --batch_size 64 per rank
    for (const st of stages) {
      const p = await preprocessRates(st.seq, dir, corpus);
      // The graph a CPU trainer runs (its gradients; AdamW on the host, DESIGN.md §6.8).
      const plan = memoryPlan(
        stepGraph(pretrainTask(BASE), { batch: st.batch, seq: st.seq, slots: defaultMaskedSlots(st.batch, st.seq) }, {
          kind: "gradients",
          eachGradient: true,
          sparseRows: true,
          scatter: "scatter",
        }),
      );
      // The host AdamW's memory: parameters, both Adam moments and a gradient slot per parameter.
      const state = 4 * 4 * paramShapes(BASE).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
      const tps = st.given ? Number(st.given) : await cpuTokensPerS(st.seq, 8);
      const where = st.given ? "given" : "measured here: ALBERT-base, batch 8, CPU 2 threads";
      console.log(`\n== stage seq ${st.seq}: the card's ${f(st.steps)} steps × batch ${st.batch} × ${ranks} ranks`);
      console.log(
        `preprocess: ${f(p.mbPerS, 1)} MB/s on 1 process, ${f(p.instancesPerMb)} instances per corpus MB ` +
          `(dup_factor 5), ${f(p.bytesPerInstance, 1)} bytes per instance on disk`,
      );
      console.log(
        `training: ${f(tps)} tokens/s per rank (${where}); memory per rank ${f(plan.peakBytes / GB, 2)} GB of ` +
          `intermediates (memory plan) + ${f(state / GB, 2)} GB of parameters, moments and gradients (host AdamW)`,
      );
      const tokens = st.steps * st.batch * st.seq * ranks;
      const trainS = tokens / (tps * ranks);
      console.log(
        `  time to train = ${f(st.steps)} × ${st.batch} × ${st.seq} × ${ranks} tokens / (${
          f(tps)
        } × ${ranks} tokens/s) ` +
          `= ${human(trainS)} (independent of the corpus size)`,
      );
      for (const gb of gbs) {
        const mb = gb * 1000;
        const inst = mb * p.instancesPerMb;
        const disk = inst * p.bytesPerInstance;
        const epochs = (st.steps * st.batch * ranks) / inst;
        console.log(
          `  ${gb} GB corpus: preprocess ${f(mb)} MB / ${f(p.mbPerS, 1)} MB/s = ${human(mb / p.mbPerS)} on 1 process ` +
            `(÷ about 0.6·N with --processes_num N, README); ` +
            `disk ${f(mb)} MB × ${f(p.instancesPerMb)} instances/MB × ${f(p.bytesPerInstance, 1)} B = ${
              f(disk / GB, 1)
            } GB; ` +
            `${f(inst / 1e6, 1)} M instances, the run sees each ${f(epochs, 1)} times`,
        );
        out[`seq${st.seq}_${gb}gb_disk_gb`] = disk / GB;
        out[`seq${st.seq}_${gb}gb_preprocess_s`] = mb / p.mbPerS;
      }
      Object.assign(out, {
        [`seq${st.seq}_mb_per_s`]: p.mbPerS,
        [`seq${st.seq}_bytes_per_instance`]: p.bytesPerInstance,
        [`seq${st.seq}_instances_per_mb`]: p.instancesPerMb,
        [`seq${st.seq}_tokens_per_s`]: tps,
        [`seq${st.seq}_train_s`]: trainS,
        [`seq${st.seq}_memory_gb`]: (plan.peakBytes + state) / GB,
      });
    }
  } finally {
    await dropScratch(dir);
  }
  return out;
}

if (import.meta.main) await scaleProjection();
