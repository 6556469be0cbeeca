/**
 * `pretrain` (UER-py `pretrain.py` → `trainer.train_and_validate` → `worker`): checks the dataset
 * against the vocab and config, builds or loads the model, the trainer, the loader and the schedule,
 * and runs `core/train/loop.ts`. Prints UER-py's report lines (or JSON lines with `--json`), appends
 * every report to `<output_model_path>.metrics.jsonl`, redraws `<output_model_path>.loss.svg`, and
 * writes zarr checkpoints `<output_model_path>-<step>` (params, Adam moments, step, loader position
 * and RNG state, report sums), atomically.
 *
 * Resume rule: `--pretrained_model_path` naming a zarr checkpoint that holds Adam moments and a loader
 * state made with the same dataset (vocab hash, seq_length, instance count), `--batch_size`, `--seed`,
 * `--instances_buffer_size`, `--world_size` and `--accumulation_steps` RESUMES: params, moments, step,
 * loader position, RNG and report sums are restored and the run continues to `--total_steps`
 * exactly as if it had never stopped. Anything else (a UER `.bin`, an HF folder, a zarr checkpoint
 * without moments, or one made for another dataset/batch — e.g. stage 2 at seq 512 from a seq 128
 * checkpoint) starts a new run at step 0 from those weights, and says so.
 *
 * Data parallel (core/parallel, UER-py's DDP): `--world_size N` without `mpirun` re-runs this command as N
 * ranks under `mpirun`; under `mpirun` each process is one rank: instance i goes to rank i mod N, the
 * gradients are averaged over the ranks between the gradient and update graphs, rank 0 alone prints,
 * writes metrics and checkpoints (with every rank's loader position), and reports cover all ranks.
 * @module
 */
import type { PretrainOptions } from "../core/flags/mod.ts";
import type { AlbertConfig } from "../core/config.ts";
import { modelConfigOf } from "../core/flags/model_config.ts";
import type { Tensor } from "../core/tensor.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { exists, writeFileAtomic } from "../core/io/atomic.ts";
import { BertTokenizer, vocabHash } from "../core/tokenizer/mod.ts";
import { type DatasetReader, openDataset } from "../core/data/dataset_zarr.ts";
import { Masker } from "../core/data/masking.ts";
import { wholeWordSupport } from "../core/data/word_segmenter.ts";
import { PyRandom } from "../core/data/py_random.ts";
import { readCheckpoint, writeCheckpoint } from "../core/checkpoint/zarr.ts";
import { detectFormat, loadModel } from "../convert/mod.ts";
import { nameTable } from "../convert/names.ts";
import { AlbertLoader, type InstanceSource, type LoaderState } from "../core/train/loader.ts";
import { makeSchedule } from "../core/train/schedule.ts";
import { type StepInfo, trainLoop } from "../core/train/loop.ts";
import {
  formatReport,
  lossCurveSvg,
  parseRecords,
  type Report,
  type ReportRecord,
  reportRecord,
  type ReportSums,
} from "../core/train/metrics.ts";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { paramShapes, pretrainTask } from "../core/train/pretrain_task.ts";
import {
  allgatherJson,
  type Comm,
  DataParallelTrainer,
  gradientAverager,
  launchFailure,
  paramChecksum,
  type RankDevice,
  startDistributed,
  syncParams,
} from "../core/parallel/mod.ts";

/** What must match for a checkpoint to resume rather than start a new run. */
interface RunIdentity {
  dataset: { vocab_hash: string; seq_length: number; count: number };
  batch_size: number;
  seed: number;
  instances_buffer_size: number;
  world_size: number;
  accumulation_steps: number;
}

/** The `extra` attributes pretrain writes into each checkpoint. */
interface CheckpointExtra {
  run: RunIdentity;
  loader: LoaderState;
  /** Data-parallel runs: every rank's loader position, by rank (`loader` is rank 0's). */
  loaders?: LoaderState[];
  sums: ReportSums;
  total_steps: number;
}

/** Where the metrics of a run live. */
export function metricsPaths(outputModelPath: string): { jsonl: string; svg: string } {
  return { jsonl: `${outputModelPath}.metrics.jsonl`, svg: `${outputModelPath}.loss.svg` };
}

function fail(msg: string): never {
  throw new TypeError(msg);
}

/** Checks that the dataset fits the run (vocab, seq_length, masking), naming the flag to change. */
function checkDataset(ds: DatasetReader, opts: PretrainOptions, hash: string, cfg: AlbertConfig): void {
  const a = ds.attrs;
  if (a.vocab_hash !== hash) {
    fail(
      `Cannot pretrain on dataset "${opts.datasetPath}": it was made with another vocabulary than --vocab_path "${opts.vocabPath}"` +
        `\n  hint: pass the --vocab_path used by preprocess, or preprocess again with this vocab`,
    );
  }
  if (a.seq_length > cfg.max_seq_length) {
    fail(
      `Cannot pretrain on dataset "${opts.datasetPath}": its seq_length ${a.seq_length} exceeds max_seq_length ` +
        `${cfg.max_seq_length} of the model config` +
        `\n  hint: use a --config_path (or --max_seq_length) with max_seq_length >= ${a.seq_length}`,
    );
  }
  if (ds.staticMasking) {
    // UER-py's loader masks only datasets preprocessed with --dynamic_masking; with static masks the
    // masking flags would do nothing.
    for (const [flag, on] of [["whole_word_masking", opts.wholeWordMasking], ["span_masking", opts.spanMasking]]) {
      if (!on) continue;
      fail(
        `Cannot pretrain with --${flag} on dataset "${opts.datasetPath}": its masks were drawn by preprocess ` +
          `(static masking), so the flag would have no effect` +
          `\n  hint: preprocess with --dynamic_masking --${flag}, or drop --${flag}`,
      );
    }
  }
}

/** Checks names and shapes of loaded params against the run's config. */
function checkParams(params: Map<string, Tensor>, cfg: AlbertConfig, vocabSize: number, source: string): void {
  for (const row of nameTable(cfg, vocabSize)) {
    if (row.uer === "") continue;
    const t = params.get(row.uer);
    if (!t) fail(`Cannot start from "${source}": parameter "${row.uer}" is missing\n  hint: check --config_path`);
    if (t.shape.join(",") !== row.shape.join(",")) {
      const flag = row.uer.startsWith("embedding.word") || row.uer.startsWith("target.mlm.linear_2")
        ? "--vocab_path"
        : row.uer.startsWith("embedding.pos")
        ? "--config_path (max_seq_length)"
        : "--config_path";
      fail(
        `Cannot start from "${source}": "${row.uer}" has shape [${t.shape}], the run's config needs [${row.shape}]` +
          `\n  hint: check ${flag}`,
      );
    }
  }
}

/** The dataset as the loader's instance source (dynamic datasets: no targets, masked in the loader). */
function instanceSource(ds: DatasetReader): InstanceSource {
  return {
    count: ds.count,
    seqLength: ds.seqLength,
    instance: async (i) => {
      const x = await ds.instance(i);
      return ds.staticMasking ? x : { ...x, tgtMlm: null };
    },
  };
}

function sameIdentity(a: unknown, b: RunIdentity): string | null {
  const x = a as RunIdentity | undefined;
  if (!x?.dataset) return "it records no run settings";
  if (x.dataset.vocab_hash !== b.dataset.vocab_hash) return "its dataset used another vocabulary";
  if (x.dataset.seq_length !== b.dataset.seq_length) {
    return `its dataset had seq_length ${x.dataset.seq_length}, this one ${b.dataset.seq_length}`;
  }
  if (x.dataset.count !== b.dataset.count) {
    return `its dataset had ${x.dataset.count} instances, this one ${b.dataset.count}`;
  }
  for (const k of ["batch_size", "seed", "instances_buffer_size", "world_size", "accumulation_steps"] as const) {
    if (x[k] !== b[k]) return `it used --${k} ${x[k]}, this run ${b[k]}`;
  }
  return null;
}

function duration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

/** Runs `pretrain`. */
export async function run(opts: PretrainOptions): Promise<void> {
  // Data parallel (core/parallel): outside mpirun, --world_size N > 1 re-runs this command as N ranks under
  // mpirun and waits; under mpirun (or with one rank) this process trains as its rank.
  const dist = await startDistributed({ worldSize: opts.worldSize, gpuRanks: opts.gpuRanks, device: opts.device });
  if (dist.kind === "launched") {
    const err = launchFailure(dist.result, opts.worldSize);
    if (err) throw err;
    return;
  }
  await runRank(opts, dist.comm, dist.device);
  // Only after success: a failing rank exits without finalizing, and mpirun then ends the others.
  dist.comm.finalize();
}

/** One rank's run (the whole run with one rank). Rank 0 alone prints, writes metrics and checkpoints. */
async function runRank(opts: PretrainOptions, comm: Comm, rankDevice: RankDevice): Promise<void> {
  const lead = comm.rank === 0; // UER-py: `global_rank == 0` reports and saves
  const info = (s: string) => void (lead && !opts.quiet && console.error(s));
  if (rankDevice.note) info(rankDevice.note);
  if (comm.size > 1) {
    info(
      `data parallel: ${comm.size} ranks under mpirun, ${opts.batchSize} instances per rank and step ` +
        `(${opts.batchSize * comm.size * opts.accumulationSteps} per update)`,
    );
  }
  if (opts.saveCheckpointSteps % opts.accumulationSteps !== 0) {
    // A checkpoint inside an accumulation window holds no partial gradients: resuming from it is not exact.
    info(
      `warning: --save_checkpoint_steps ${opts.saveCheckpointSteps} is not a multiple of --accumulation_steps ` +
        `${opts.accumulationSteps}; resuming from such a checkpoint restarts its accumulation window`,
    );
  }
  const enc = new TextEncoder();

  const vocab = await readVocabFile(opts.vocabPath!, "uer");
  const hash = await vocabHash(vocab);
  const config = modelConfigOf(opts, vocab.size);
  const ds = await openDataset(opts.datasetPath);
  checkDataset(ds, opts, hash, config);

  const identity: RunIdentity = {
    dataset: { vocab_hash: ds.attrs.vocab_hash, seq_length: ds.seqLength, count: ds.count },
    batch_size: opts.batchSize,
    seed: opts.seed,
    instances_buffer_size: opts.instancesBufferSize,
    world_size: comm.size,
    accumulation_steps: opts.accumulationSteps,
  };

  // Model: a zarr checkpoint (maybe resumed), a UER .bin / HF folder, or a fresh initialization.
  let params: Map<string, Tensor>;
  let moments: { m: Map<string, Tensor>; v: Map<string, Tensor> } | undefined;
  let resume: CheckpointExtra | undefined;
  let startStep = 0;
  const from = opts.pretrainedModelPath;
  if (from !== undefined) {
    const format = await detectFormat(from);
    if (format === "zarr") {
      const ckpt = await readCheckpoint(from);
      if (ckpt.vocabHash !== hash) {
        fail(
          `Cannot start from "${from}": it was trained with another vocabulary than --vocab_path "${opts.vocabPath}"` +
            `\n  hint: pass the --vocab_path of that run`,
        );
      }
      params = ckpt.params;
      const extra = ckpt.extra as Partial<CheckpointExtra>;
      const why = !ckpt.moments
        ? "it holds no optimizer state"
        : !extra.loader
        ? "it holds no loader state"
        : sameIdentity(extra.run, identity);
      if (why === null) {
        if (ckpt.step >= opts.totalSteps) {
          fail(
            `Cannot resume "${from}": it is at step ${ckpt.step}, --total_steps is ${opts.totalSteps}; nothing to do` +
              `\n  hint: raise --total_steps`,
          );
        }
        moments = ckpt.moments;
        resume = extra as CheckpointExtra;
        startStep = ckpt.step;
        info(`resuming from step ${ckpt.step} of "${from}"`);
      } else {
        info(`starting a new run at step 0 from the weights of "${from}" (not resumed: ${why})`);
      }
    } else {
      const m = await loadModel(from, { configPath: opts.configPath });
      params = m.params;
      info(`starting a new run at step 0 from the weights of "${from}" (${format})`);
    }
    checkParams(params, config, vocab.size, from);
  } else {
    params = initParams(paramShapes(config), opts.seed);
  }
  syncParams(comm, params); // every rank starts from rank 0's weights, as DDP does

  const trainer = await Trainer.create({
    task: pretrainTask(config),
    params,
    moments,
    device: rankDevice.device,
    accumulationSteps: opts.accumulationSteps,
    weightDecay: 0.01,
    dropout: opts.dropout,
    seed: opts.seed,
    startMicroStep: startStep,
    // Data parallel: ranks on one machine share its cores; gradients are averaged between the halves.
    ...(comm.size > 1
      ? {
        threads: Math.max(1, Math.floor(navigator.hardwareConcurrency / comm.localSize)),
        // spinning intra-op threads would steal the cores the all-reduce of the other ranks needs
        spinning: false,
        averageGradients: gradientAverager(comm, paramShapes(config)),
        log: lead ? undefined : () => {},
      }
      : {}),
  });
  try {
    const rng = new PyRandom(opts.seed); // set_seed(seed): python `random`
    const dynamic = !ds.staticMasking;
    const masker = dynamic
      ? new Masker(vocab, {
        wholeWordMasking: opts.wholeWordMasking,
        spanMasking: opts.spanMasking,
        spanGeoProb: opts.spanGeoProb,
        spanMaxLength: opts.spanMaxLength,
        wholeWord: opts.wholeWordMasking
          ? await wholeWordSupport(new BertTokenizer(vocab, { mode: "uer", doLowerCase: opts.doLowerCase }))
          : undefined,
      })
      : undefined;
    const loader = new AlbertLoader(instanceSource(ds), {
      batchSize: opts.batchSize,
      instancesBufferSize: opts.instancesBufferSize,
      rank: comm.rank,
      worldSize: comm.size,
      rng,
      masker,
      padId: vocab.padId,
    });
    if (resume) loader.restore(resume.loaders?.[comm.rank] ?? resume.loader);
    const schedule = makeSchedule({
      scheduler: opts.scheduler,
      learningRate: opts.learningRate,
      totalSteps: opts.totalSteps,
      warmup: opts.warmup,
      accumulationSteps: opts.accumulationSteps,
    });

    // Metrics: a new run starts a new file; a resumed one keeps the reports up to its step.
    const paths = metricsPaths(opts.outputModelPath);
    const slash = opts.outputModelPath.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(opts.outputModelPath.slice(0, slash), { recursive: true });
    let records: ReportRecord[] = [];
    if (resume && (await exists(paths.jsonl))) {
      records = parseRecords(await Deno.readTextFile(paths.jsonl)).filter((r) => r.step <= startStep);
    }
    if (lead) await writeFileAtomic(paths.jsonl, records.map((r) => JSON.stringify(r) + "\n").join(""));
    const title = `pretrain ${opts.outputModelPath}`;
    const logFile = opts.logPath && lead ? await Deno.open(opts.logPath, { create: true, append: true }) : undefined;

    const tty = lead && !opts.quiet && !opts.json && Deno.stderr.isTerminal();
    let progressShown = false;
    const clearProgress = () => {
      if (progressShown) Deno.stderr.writeSync(enc.encode("\r\x1b[2K"));
      progressShown = false;
    };
    const onStep = tty
      ? (s: StepInfo) => {
        const left = (s.totalSteps - s.step) / s.stepsPerS;
        const line = `  step ${s.step}/${s.totalSteps}  ${s.stepsPerS.toFixed(2)} steps/s  ETA ${duration(left)}` +
          (Number.isNaN(s.lastLoss) ? "" : `  loss ${s.lastLoss.toFixed(3)}`) + `  lr ${s.lr.toExponential(2)}`;
        Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line}`));
        progressShown = true;
      }
      : undefined;

    const onReport = async (r: Report) => {
      if (!lead) return;
      const rec = reportRecord(r);
      records.push(rec);
      const line = formatReport(r);
      clearProgress();
      if (!opts.quiet) console.log(opts.json ? JSON.stringify(rec) : line);
      if (logFile) await logFile.write(enc.encode(line + "\n"));
      const f = await Deno.open(paths.jsonl, { append: true, create: true });
      try {
        await f.write(enc.encode(JSON.stringify(rec) + "\n"));
      } finally {
        f.close();
      }
      await writeFileAtomic(paths.svg, lossCurveSvg(records, { title }));
    };

    const onCheckpoint = async (step: number, state: { loader: LoaderState; sums: ReportSums }) => {
      // Every rank hands its loader position to rank 0, which alone writes the checkpoint.
      const loaders = comm.size > 1 ? allgatherJson(comm, state.loader) : undefined;
      if (!lead) return;
      const path = `${opts.outputModelPath}-${step}`;
      const extra: CheckpointExtra = {
        run: identity,
        loader: state.loader,
        ...(loaders ? { loaders } : {}),
        sums: state.sums,
        total_steps: opts.totalSteps,
      };
      await writeCheckpoint(path, {
        params: await trainer.params(),
        moments: await trainer.moments(),
        config,
        step,
        vocabHash: hash,
        extra: extra as unknown as Record<string, unknown>,
      }, { overwrite: true });
      clearProgress();
      info(`saved checkpoint ${path}`);
    };

    info(
      `pretraining ${ds.count} instances of seq_length ${ds.seqLength}${dynamic ? " (dynamic masking)" : ""}, ` +
        `steps ${
          startStep + 1
        }..${opts.totalSteps}, batch ${opts.batchSize}, lr ${opts.learningRate} (${opts.scheduler})`,
    );
    try {
      await trainLoop({
        trainer: comm.size > 1 ? new DataParallelTrainer(trainer, comm) : trainer,
        loader,
        schedule,
        totalSteps: opts.totalSteps,
        reportSteps: opts.reportSteps,
        saveCheckpointSteps: opts.saveCheckpointSteps,
        batchSize: opts.batchSize,
        worldSize: comm.size,
        startStep,
        sums: resume?.sums,
        onStep,
        onReport,
        onCheckpoint,
      });
      if (comm.size > 1) {
        // DDP keeps parameters identical on every rank; say so (or fail) once, at the end.
        const sums = allgatherJson(comm, paramChecksum(await trainer.params()));
        if (new Set(sums).size !== 1) {
          throw new Error(`Data-parallel ranks diverged: parameter checksums by rank ${sums.join(" ")}`);
        }
        info(`ranks in sync: parameter checksum ${sums[0]} on all ${comm.size} ranks`);
      }
    } finally {
      clearProgress();
      logFile?.close();
    }
  } finally {
    await trainer.dispose();
  }
}
