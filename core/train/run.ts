/**
 * A pretraining run from start to end (UER-py `pretrain.py` → `trainer.train_and_validate` →
 * `worker`): checks the dataset against the vocab and the model config, decides how the run starts in
 * its `--output_model_path` (core/train/run_rules.ts: fresh, resumed, already complete, or refused),
 * builds the model (fresh, or the weights of `--pretrained_model_path` at step 1, as UER-py), the
 * trainer, the loader and the schedule, runs core/train/loop.ts, and writes what the run leaves:
 * zarr checkpoints `<out>-<step>` (params, Adam moments and `extra`: the run's settings, loader
 * position and RNG of every rank, report sums, seconds so far), the metrics
 * (core/train/metrics_log.ts), `<out>.run.json` (core/train/run_files.ts) and `--log_path`. An
 * `AbortSignal` stops the run after the current step with a checkpoint of it.
 *
 * Data parallel (core/parallel, UER-py's DDP): `--world_size N` without `mpirun` re-runs the command as
 * N ranks under `mpirun`; under `mpirun` each process is one rank: instance i goes to rank i mod N,
 * gradients are averaged over the ranks, rank 0 alone decides how the run starts, reports, writes
 * metrics and checkpoints (with every rank's loader position), and the ranks agree at every step on
 * whether to stop. Not browser compatible (files, MPI).
 * @module
 */
import type { PretrainOptions } from "../flags/mod.ts";
import type { AlbertConfig } from "../config.ts";
import { modelConfigOf } from "../flags/model_config.ts";
import type { Tensor } from "../tensor.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { removeStaleTemps } from "../io/atomic.ts";
import { BertTokenizer, vocabHash } from "../tokenizer/mod.ts";
import { type DatasetReader, openDataset } from "../data/dataset_zarr.ts";
import { Masker } from "../data/masking.ts";
import { wholeWordSupport } from "../data/word_segmenter.ts";
import { PyRandom } from "../data/py_random.ts";
import { readCheckpoint, writeCheckpoint } from "../checkpoint/zarr.ts";
import {
  allgatherJson,
  anyRank,
  type Comm,
  DataParallelTrainer,
  gradientAverager,
  launchFailure,
  paramChecksum,
  type RankDevice,
  startDistributed,
  syncParams,
} from "../parallel/mod.ts";
import { AlbertLoader, type InstanceSource, type LoaderState } from "./loader.ts";
import { makeSchedule } from "./schedule.ts";
import { type ResumeState, type StepInfo, trainLoop } from "./loop.ts";
import { formatReport, type ReportRecord, reportRecord, type ReportSums } from "./metrics.ts";
import { MetricsLog } from "./metrics_log.ts";
import { initialiseAbsent, initParams, Trainer } from "./trainer.ts";
import { paramShapes, pretrainTask } from "./pretrain_task.ts";
import { RunFiles } from "./run_files.ts";
import { decideStart, type RunSettings, type StartDecision } from "./run_rules.ts";

/** The `extra` attributes of a pretraining checkpoint. */
export interface CheckpointExtra {
  run: RunSettings;
  /** Rank 0's loader position. */
  loader: LoaderState;
  /** Data-parallel runs: every rank's loader position, by rank. */
  loaders?: LoaderState[];
  /** Report sums since the last report. */
  sums: ReportSums;
  total_steps: number;
  /** Seconds of training up to this checkpoint, over every part of the run. */
  elapsed_s: number;
}

/** A checkpoint's `extra` as a pretraining run wrote it, or an error naming the checkpoint. */
function checkpointExtra(extra: Record<string, unknown> | undefined, path: string): CheckpointExtra {
  const x = extra ?? {};
  for (const key of ["run", "loader", "sums", "total_steps"]) {
    if (!(key in x)) fail(`Cannot resume "${path}": its attributes hold no "${key}"\n  hint: pass --overwrite`);
  }
  return { elapsed_s: 0, ...x } as CheckpointExtra;
}

/** Reads `--pretrained_model_path` into UER names (convert/mod.ts `loadModel` fits). */
export type WeightsLoader = (
  path: string,
  opts: { configPath?: string },
) => Promise<{ format: string; params: Map<string, Tensor>; vocabHash?: string }>;

/** What the run tells its caller as it goes (rank 0 only). */
export interface PretrainEvents {
  /** A status line (what the run does, checkpoints saved, warnings). */
  info(line: string): void;
  /** A report: its metrics record and UER-py's report line. */
  report(record: ReportRecord, line: string): void;
  /** After every step, for a progress line. */
  step?(info: StepInfo): void;
  /** The run's last complete checkpoint is now `path` (a resumed one at the start, then each save). */
  checkpoint?(path: string): void;
}

/** What the run needs besides its options. */
export interface PretrainContext {
  events: PretrainEvents;
  loadWeights: WeightsLoader;
  /** Aborted: stop after the current step, with a checkpoint of it. */
  signal?: AbortSignal;
}

/** How a run ended. */
export interface PretrainResult {
  /** finished: reached `--total_steps`; stopped: by the signal; complete: nothing was left to do. */
  outcome: "finished" | "stopped" | "complete";
  /** Steps done. */
  step: number;
  totalSteps: number;
  /** The last complete checkpoint, if any. */
  checkpoint: string | null;
  /** This process is rank 0 (or the launcher): it speaks for the run. */
  lead: boolean;
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
    // UER-py's loader masks only datasets preprocessed with --dynamic_masking: with static masks these
    // flags would do nothing.
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

/** Checks names and shapes of loaded params against the run's config, naming the flag to change. */
/**
 * `--pretrained_model_path`'s weights as the run's parameters, as UER-py's `load_model`
 * (`load_state_dict(strict=False)`): what the file has is used; what a head lacks (`target.mlm.*` of an
 * `AlbertModel` folder, `target.sp.*` of an `AlbertForMaskedLM` one) keeps the value UER-py's freshly
 * built module has, which `initialiseAbsent` reproduces. A missing embedding or encoder weight, or a shape
 * that differs from the run's config, is an error naming the flag.
 * NOTE: UER-py also leaves missing embedding/encoder weights at torch's init and trains on; uer-ts refuses, since
 * such a file was written for another model config.
 * Returns the groups (`target.sp.linear_1`, …) that were initialised.
 */
function fitParams(params: Map<string, Tensor>, cfg: AlbertConfig, source: string, seed: number): string[] {
  const specs = paramShapes(cfg);
  const absent: string[] = [];
  for (const { name, shape } of specs) {
    const t = params.get(name);
    if (!t) {
      if (!name.startsWith("target.")) {
        fail(`Cannot start from "${source}": parameter "${name}" is missing\n  hint: check --config_path`);
      }
      absent.push(name);
      continue;
    }
    if (t.shape.join(",") !== shape.join(",")) {
      // the first dimension of these is the vocabulary or the positions; another size is the config's
      const rows = t.shape[0] !== shape[0];
      const flag = rows && (name.startsWith("embedding.word") || name.startsWith("target.mlm.linear_2"))
        ? "--vocab_path"
        : rows && name.startsWith("embedding.pos")
        ? "--config_path (max_seq_length)"
        : "--config_path";
      fail(
        `Cannot start from "${source}": "${name}" has shape [${t.shape}], the run's config needs [${shape}]` +
          `\n  hint: check ${flag}`,
      );
    }
  }
  for (const [name, t] of initialiseAbsent(specs, absent, seed)) params.set(name, t);
  return [...new Set(absent.map((n) => n.slice(0, n.lastIndexOf("."))))];
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
    readMany: (indices) => ds.readMany(indices), // dynamic masking: rows without targets (masked 0)
  };
}

/** The settings that make this run this run (run_rules.ts). */
function runSettings(opts: PretrainOptions, ds: DatasetReader, config: AlbertConfig, ranks: number): RunSettings {
  const a = ds.attrs;
  return {
    identity: {
      dataset: {
        vocab_hash: a.vocab_hash,
        seq_length: a.seq_length,
        count: ds.count,
        corpus: a.corpus,
        seed: a.seed,
        dup_factor: a.dup_factor,
        dynamic_masking: a.dynamic_masking,
      },
      model: { ...config },
      pretrained_model_path: opts.pretrainedModelPath ?? null,
      batch_size: opts.batchSize,
      seed: opts.seed,
      instances_buffer_size: opts.instancesBufferSize,
      world_size: ranks,
      accumulation_steps: opts.accumulationSteps,
      masking: ds.staticMasking ? {} : {
        do_lower_case: opts.doLowerCase,
        whole_word_masking: opts.wholeWordMasking,
        span_masking: opts.spanMasking,
        span_geo_prob: opts.spanGeoProb,
        span_max_length: opts.spanMaxLength,
      },
    },
    schedule: {
      total_steps: opts.totalSteps,
      learning_rate: opts.learningRate,
      warmup: opts.warmup,
      scheduler: opts.scheduler,
      dropout: opts.dropout,
    },
  };
}

/**
 * Runs `pretrain`: the whole lifecycle of one run.
 *
 * @example
 * ```ts
 * const opts = await parseOptions("pretrain", ["--dataset_path", "ds", "--vocab_path", "v.txt", "--output_model_path", "m"]);
 * const r = await pretrain(opts, { loadWeights: loadModel, events: { info: console.error, report: (_, l) => console.log(l) } });
 * ```
 */
export async function pretrain(opts: PretrainOptions, ctx: PretrainContext): Promise<PretrainResult> {
  const dist = await startDistributed({
    worldSize: opts.worldSize,
    gpuRanks: opts.gpuRanks,
    device: opts.device,
    signal: ctx.signal,
  });
  if (dist.kind === "launched") {
    // This process started the ranks under mpirun and waited: the files say where the run got to.
    const files = new RunFiles(opts.outputModelPath);
    const last = (await files.checkpoints()).at(-1);
    const checkpoint = last === undefined ? null : files.checkpointPath(last);
    if (dist.result.terminated || ctx.signal?.aborted) {
      return { outcome: "stopped", step: last ?? 0, totalSteps: opts.totalSteps, checkpoint, lead: true };
    }
    const err = launchFailure(dist.result, opts.worldSize);
    if (err) throw err;
    return { outcome: "finished", step: last ?? 0, totalSteps: opts.totalSteps, checkpoint, lead: true };
  }
  const result = await runRank(opts, ctx, dist.comm, dist.device);
  // Only after success: a failing rank exits without finalizing, and mpirun then ends the others.
  dist.comm.finalize();
  return result;
}

/** One rank's run (the whole run with one rank). */
async function runRank(
  opts: PretrainOptions,
  ctx: PretrainContext,
  comm: Comm,
  rankDevice: RankDevice,
): Promise<PretrainResult> {
  const lead = comm.rank === 0; // UER-py: `global_rank == 0` reports and saves
  const files = new RunFiles(opts.outputModelPath);
  const logFile = opts.logPath && lead ? await Deno.open(opts.logPath, { create: true, append: true }) : undefined;
  const enc = new TextEncoder();
  const log = async (line: string) => void (await logFile?.write(enc.encode(line + "\n")));
  const info = async (line: string) => {
    if (!lead) return;
    ctx.events.info(line);
    await log(line);
  };
  try {
    if (lead) {
      for (const t of await removeStaleTemps(files.out, { family: true })) {
        await info(`removed ${t.name}, left by process ${t.pid} which is no longer running`);
      }
    }
    if (rankDevice.note) await info(rankDevice.note);
    if (rankDevice.gpuName) await info(`device: webgpu, rank 0 on GPU ${rankDevice.gpuName} (--gpu_ranks)`);
    if (comm.size > 1) {
      await info(
        `data parallel: ${comm.size} ranks under mpirun, ${opts.batchSize} instances per rank and step ` +
          `(${opts.batchSize * comm.size * opts.accumulationSteps} per update)`,
      );
    }
    if (opts.saveCheckpointSteps % opts.accumulationSteps !== 0) {
      // A checkpoint inside an accumulation window holds no partial gradients: resuming from it is not exact.
      await info(
        `warning: --save_checkpoint_steps ${opts.saveCheckpointSteps} is not a multiple of --accumulation_steps ` +
          `${opts.accumulationSteps}; resuming from such a checkpoint restarts its accumulation window`,
      );
    }

    const vocab = await readVocabFile(opts.vocabPath, "uer");
    const hash = await vocabHash(vocab);
    const config = modelConfigOf(opts, vocab.size);
    const ds = await openDataset(opts.datasetPath);
    checkDataset(ds, opts, hash, config);
    const settings = runSettings(opts, ds, config, comm.size);

    // How the run starts: rank 0 decides from what is in --output_model_path and tells the others.
    let decision: StartDecision | null = null;
    if (lead) {
      decision = decideStart({
        out: files.out,
        settings,
        found: await files.find(),
        resume: opts.resume,
        overwrite: opts.overwrite,
      });
    }
    decision = allgatherJson(comm, decision)[0]!;
    if (decision.kind === "complete") {
      await info(
        `the run in "${files.out}" is complete: ${files.checkpointPath(decision.step)} is at step ${decision.step} ` +
          `of --total_steps ${opts.totalSteps}; nothing to do (raise --total_steps and pass --resume to go on)`,
      );
      return {
        outcome: "complete",
        step: decision.step,
        totalSteps: opts.totalSteps,
        checkpoint: files.checkpointPath(decision.step),
        lead,
      };
    }

    // The weights: a resumed run's checkpoint, --pretrained_model_path's (step 1, UER-py), or fresh ones.
    let params: Map<string, Tensor>;
    let moments: { m: Map<string, Tensor>; v: Map<string, Tensor> } | undefined;
    let resume: CheckpointExtra | undefined;
    let startStep = 0;
    if (decision.kind === "resume") {
      const path = files.checkpointPath(decision.step);
      const ckpt = await readCheckpoint(path);
      if (!ckpt.moments) fail(`Cannot resume "${path}": it holds no optimizer state\n  hint: pass --overwrite`);
      params = ckpt.params;
      moments = ckpt.moments;
      resume = checkpointExtra(ckpt.extra, path);
      startStep = ckpt.step;
      await info(
        `resuming the run in "${files.out}" from ${path} (step ${startStep})` +
          (decision.changed.length ? ` with ${decision.changed.join(", ")}` : ""),
      );
    } else {
      if (decision.replace && lead) {
        const removed = await files.remove();
        if (decision.note) await info(`${decision.note}: ${removed.length} files removed`);
      }
      const from = opts.pretrainedModelPath;
      if (from !== undefined) {
        const m = await ctx.loadWeights(from, { configPath: opts.configPath });
        if (m.vocabHash !== undefined && m.vocabHash !== hash) {
          fail(
            `Cannot start from "${from}": it was trained with another vocabulary than --vocab_path "${opts.vocabPath}"` +
              `\n  hint: pass the --vocab_path of that run`,
          );
        }
        const initialised = fitParams(m.params, config, from, opts.seed);
        params = m.params;
        await info(
          `starting a new run at step 1 from the weights of "${from}" (${m.format}); as in UER-py, its optimizer ` +
            `state and step are not used (to continue a run, re-run its command or pass --resume)`,
        );
        if (initialised.length) {
          await info(
            `"${from}" has no ${initialised.join(", ")}: initialised as UER-py's load_state_dict(strict=False) ` +
              `leaves them (nn.Linear's uniform init, LayerNorm gamma 1 and beta 0), seed ${opts.seed}`,
          );
        }
      } else {
        params = initParams(paramShapes(config), opts.seed);
      }
    }
    if (lead) await files.writeSettings(settings);
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
      recompute: opts.recomputeActivations,
      // Data parallel: ranks on one machine share its cores; gradients are averaged between the halves.
      ...(comm.size > 1
        ? {
          threads: Math.max(1, Math.floor(navigator.hardwareConcurrency / comm.localSize)),
          // spinning intra-op threads would steal the cores the all-reduce of the other ranks needs
          spinning: false,
          averageGradients: gradientAverager(comm, paramShapes(config)),
          log: lead ? (l: string) => void info(l) : () => {},
        }
        : { log: (l: string) => void info(l) }),
    });
    try {
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
        rng: new PyRandom(opts.seed), // set_seed(seed): python `random`
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
      const metrics = lead
        ? await MetricsLog.open(files.out, { keepUpTo: resume ? startStep : undefined, title: `pretrain ${files.out}` })
        : undefined;
      let lastSaved: string | null = resume ? files.checkpointPath(startStep) : null;
      if (lastSaved && lead) ctx.events.checkpoint?.(lastSaved);

      const onCheckpoint = async (step: number, state: ResumeState) => {
        // Every rank hands its loader position to rank 0, which alone writes the checkpoint.
        const loaders = comm.size > 1 ? allgatherJson(comm, state.loader) : undefined;
        if (!lead) return;
        const path = files.checkpointPath(step);
        const extra: CheckpointExtra = {
          run: settings,
          loader: state.loader,
          ...(loaders ? { loaders } : {}),
          sums: state.sums,
          total_steps: opts.totalSteps,
          elapsed_s: state.elapsedS,
        };
        await writeCheckpoint(path, {
          params: await trainer.params(),
          moments: await trainer.moments(),
          config,
          step,
          vocabHash: hash,
          extra: { ...extra },
        }, { overwrite: true });
        lastSaved = path;
        ctx.events.checkpoint?.(path);
        await info(`saved checkpoint ${path}`);
        if (opts.keepCheckpoints > 0) {
          for (const old of await files.prune(opts.keepCheckpoints)) {
            await info(`removed checkpoint ${old} (--keep_checkpoints ${opts.keepCheckpoints})`);
          }
        }
      };

      await info(
        `pretraining ${ds.count} instances of seq_length ${ds.seqLength}${dynamic ? " (dynamic masking)" : ""}, ` +
          `steps ${startStep + 1}..${opts.totalSteps}, batch ${opts.batchSize}, lr ${opts.learningRate} ` +
          `(${opts.scheduler})`,
      );
      const signal = ctx.signal;
      const loop = await trainLoop({
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
        elapsedS: resume?.elapsed_s ?? 0,
        onStep: lead ? ctx.events.step : undefined,
        onReport: async (r) => {
          if (!lead) return;
          const record = reportRecord(r);
          const line = formatReport(r);
          ctx.events.report(record, line);
          await log(line);
          await metrics!.append(record);
        },
        onCheckpoint,
        // Every rank must stop at the same step: they agree (one small all-reduce per step).
        stop: signal ? () => comm.size > 1 ? anyRank(comm, signal.aborted) : signal.aborted : undefined,
      });
      if (comm.size > 1) {
        // DDP keeps parameters identical on every rank; say so (or fail) once, at the end.
        const sums = allgatherJson(comm, paramChecksum(await trainer.params()));
        if (new Set(sums).size !== 1) {
          throw new Error(`Data-parallel ranks diverged: parameter checksums by rank ${sums.join(" ")}`);
        }
        await info(`ranks in sync: parameter checksum ${sums[0]} on all ${comm.size} ranks`);
      }
      return {
        outcome: loop.stopped ? "stopped" : "finished",
        step: loop.step,
        totalSteps: opts.totalSteps,
        checkpoint: lastSaved,
        lead,
      };
    } finally {
      ds.close();
      await trainer.dispose();
    }
  } finally {
    logFile?.close();
  }
}
