/**
 * The pretraining loop of UER-py's `Trainer.train` (`uer/trainer.py`): for each step from the current
 * one to `total_steps`, draw a batch, run one training step at the scheduled lr (the trainer applies the
 * optimizer update every `accumulation_steps` steps), add the step's numbers to the report sums, report
 * every `report_steps` (then reset the sums and the clock) and save a checkpoint every
 * `save_checkpoint_steps`, in that order. Unlike UER-py, the last step is also saved when `total_steps`
 * is not a multiple of `save_checkpoint_steps`, so a run always ends with its final weights on disk.
 * What a checkpoint needs to resume (loader position and RNG, the running report sums, the seconds the
 * run has taken so far) is handed to the `onCheckpoint` hook; the caller writes it. A `stop` request
 * (an interrupted run) ends the loop after the current step, saving that step first unless it was
 * just saved, so the run resumes exactly there. Browser compatible: all I/O goes through the hooks.
 * @module
 */

import type { Batch, LoadedBatch, LoaderState } from "./loader.ts";
import type { Schedule } from "./schedule.ts";
import { addSums, emptySums, makeReport, type Report, type ReportSums } from "./metrics.ts";
import type { TakenStats } from "./trainer.ts";

/** What the loop needs from a trainer (`core/train/trainer.ts`'s `Trainer` fits). */
export interface TrainerLike {
  /** One forward/backward on `batch`; the optimizer update (when due) uses `lr`. */
  step(batch: Batch, lr: number): Promise<void>;
  /** The statistics summed since the last call (read only at reports and checkpoints). */
  takeStats(): Promise<TakenStats>;
}

/** What the loop needs from a loader (`AlbertLoader` fits). */
export interface BatchSource {
  next(): Promise<LoadedBatch>;
  state(): LoaderState;
}

/** Everything besides weights and moments that a resumed run needs. */
export interface ResumeState {
  /** Steps done. */
  step: number;
  loader: LoaderState;
  /** Report sums of the steps since the last report. */
  sums: ReportSums;
  /** Seconds of training so far, over every earlier part of the run (reports' `elapsed_s`). */
  elapsedS: number;
}

/** Per-step progress for a progress bar. */
export interface StepInfo {
  step: number;
  totalSteps: number;
  lr: number;
  /** The last report's average loss (statistics are read only at reports); NaN before the first. */
  lastLoss: number;
  /** Steps per second since the loop started. */
  stepsPerS: number;
}

/** Loop settings (UER-py flag names in camelCase) and hooks. */
export interface LoopOptions {
  trainer: TrainerLike;
  loader: BatchSource;
  schedule: Schedule;
  totalSteps: number;
  reportSteps: number;
  saveCheckpointSteps: number;
  /** `--batch_size` (tokens/s counts `batch_size * seq_length * report_steps`, as UER-py). */
  batchSize: number;
  worldSize?: number;
  /** Steps already done (a resumed run); default 0. */
  startStep?: number;
  /** Report sums restored with a resumed run. */
  sums?: ReportSums;
  /** Seconds a resumed run had taken before (default 0): reports' `elapsedS` continue from there. */
  elapsedS?: number;
  /** Save the last step even if it is not a multiple of saveCheckpointSteps (default true). */
  saveFinal?: boolean;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
  onStep?: (info: StepInfo) => void;
  onReport?: (report: Report) => void | Promise<void>;
  onCheckpoint?: (step: number, state: ResumeState) => Promise<void>;
  /**
   * Asked after each step; true ends the loop there, after saving that step's checkpoint (every rank
   * of a data-parallel run must answer alike, e.g. after agreeing over MPI).
   */
  stop?: () => boolean | Promise<boolean>;
}

/** What the loop did. */
export interface LoopResult {
  /** Steps done in total (including those before a resume). */
  step: number;
  reports: Report[];
  /** Steps whose checkpoint was handed to `onCheckpoint`. */
  checkpoints: number[];
  /** The loop ended before `totalSteps` because `stop` said so. */
  stopped: boolean;
}

/**
 * Runs the loop from `startStep + 1` to `totalSteps`.
 *
 * @example
 * ```ts
 * await trainLoop({ trainer, loader, schedule, totalSteps: 30, reportSteps: 10, saveCheckpointSteps: 30,
 *   batchSize: 8, onReport: (r) => console.log(formatReport(r)) });
 * ```
 */
export async function trainLoop(opts: LoopOptions): Promise<LoopResult> {
  const { trainer, loader, schedule, totalSteps, reportSteps, saveCheckpointSteps } = opts;
  for (const [flag, v] of [["report_steps", reportSteps], ["save_checkpoint_steps", saveCheckpointSteps]] as const) {
    if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`Invalid --${flag} ${v}: must be a positive integer`);
  }
  const now = opts.now ?? (() => performance.now());
  const worldSize = opts.worldSize ?? 1;
  const saveFinal = opts.saveFinal ?? true;
  const first = (opts.startStep ?? 0) + 1;
  const sums: ReportSums = opts.sums ? { ...opts.sums } : emptySums();
  const reports: Report[] = [];
  const checkpoints: number[] = [];
  const t0 = now();
  const elapsed = (t: number) => (opts.elapsedS ?? 0) + (t - t0) / 1000;
  let windowStart = t0;
  let step = first - 1;
  let lastLoss = NaN;
  let stopped = false;
  for (let current = first; current <= totalSteps; current++) {
    const { batch } = await loader.next();
    const lr = schedule.lrAt(current);
    await trainer.step(batch, lr);
    step = current;
    const t = now();
    opts.onStep?.({ step: current, totalSteps, lr, lastLoss, stepsPerS: (current - first + 1) / ((t - t0) / 1000) });
    const report = current % reportSteps === 0;
    stopped = current < totalSteps && (await opts.stop?.()) === true;
    const save = current % saveCheckpointSteps === 0 || (saveFinal && current === totalSteps) || stopped;
    // The device sums are read only here (a report, or a checkpoint that saves the running sums).
    if (report || save) addSums(sums, (await trainer.takeStats()).sums);
    if (report) {
      const doneTokens = opts.batchSize * batch.seqLength * reportSteps * worldSize;
      const r = makeReport(sums, {
        step: current,
        totalSteps,
        reportSteps,
        doneTokens,
        seconds: (t - windowStart) / 1000,
        lr,
      }, elapsed(t));
      Object.assign(sums, emptySums());
      lastLoss = r.loss;
      reports.push(r);
      await opts.onReport?.(r);
      windowStart = now();
    }
    if (save) {
      const state = { step: current, loader: loader.state(), sums: { ...sums }, elapsedS: elapsed(t) };
      await opts.onCheckpoint?.(current, state);
      checkpoints.push(current);
    }
    if (stopped) break;
  }
  return { step, reports, checkpoints, stopped };
}
