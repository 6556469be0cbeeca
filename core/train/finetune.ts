/**
 * Fine-tuning a sentence classifier step for step as UER-py's `finetune/run_classifier.py` `main()`:
 * `train_steps = int(n_train * epochs_num / batch_size) + 1` sizes the schedule (warmup a float
 * fraction of it); each epoch CPython-`random.shuffle`s the SAME training list again (seeded once
 * by `set_seed(seed)`; core/data/py_random.ts), cuts it into consecutive batches (the last one
 * smaller), runs one optimizer step per batch (`train_model`: loss, backward, AdamW, scheduler step,
 * so step 1 runs at lr 0 under `linear`), logs `Avg loss` every `report_steps` batches of the epoch
 * (the running loss is NOT reset at an epoch's end, as in UER-py), evaluates the dev set after each
 * epoch (accuracy, confusion `[pred][gold]`, per-label precision/recall/F1 with UER-py's eps 1e-9),
 * keeps the FIRST epoch with the highest dev accuracy (strictly greater than the best so far, which
 * starts at 0) as the saved model, and finally evaluates the test set with that model.
 *
 * Evaluation runs the task's gradient-free graph (`Trainer.evaluate`); the prediction is torch's
 * `argmax(softmax(logits))`, the first maximum. All I/O goes through the hooks, so this module is
 * browser compatible.
 * @module
 */
import type { Tensor } from "../tensor.ts";
import { type EncodedRows, sliceRows } from "../data/classifier_data.ts";
import { PyRandom } from "../data/py_random.ts";
import type { ClassifierBatch } from "./classifier_task.ts";
import { makeSchedule, type SchedulerName } from "./schedule.ts";
import type { Trainer } from "./trainer.ts";

/** One evaluation, as UER-py's `evaluate` prints it. */
export interface EvalResult {
  /** correct / n. */
  acc: number;
  correct: number;
  n: number;
  /** `confusion[pred][gold]`. */
  confusion: number[][];
  /** Per label: precision = c[i][i]/(Σ_j c[i][j] + 1e-9), recall = c[i][i]/(Σ_j c[j][i] + 1e-9), f1. */
  labels: { precision: number; recall: number; f1: number }[];
}

/** One training step's numbers (what the metrics file records). */
export interface FinetuneStep {
  /** 1-based over the whole run. */
  step: number;
  epoch: number;
  loss: number;
  lr: number;
}

/** Settings of a fine-tuning run (UER-py flag names in camelCase). */
export interface FinetuneOptions {
  /** A classifier trainer (core/train/classifier_task.ts) holding the starting weights. */
  trainer: Trainer<ClassifierBatch>;
  train: EncodedRows;
  dev: EncodedRows;
  test?: EncodedRows;
  labelsNum: number;
  batchSize: number;
  epochsNum: number;
  learningRate: number;
  warmup: number;
  scheduler: SchedulerName;
  seed: number;
  reportSteps: number;
  /** Called with each step's numbers whenever the device statistics are read (reports, epoch ends). */
  onSteps?: (steps: FinetuneStep[]) => void | Promise<void>;
  /** UER-py's report: `Epoch id: {epoch}, Training steps: {steps}, Avg loss: {avg:.3f}`. */
  onReport?: (r: { epoch: number; steps: number; avgLoss: number }) => void | Promise<void>;
  /** After every step (progress lines). */
  onProgress?: (p: { step: number; totalSteps: number; epoch: number; lr: number }) => void;
  /** After each evaluation. */
  onEval?: (split: "dev" | "test", epoch: number, r: EvalResult) => void | Promise<void>;
  /** A new best dev accuracy: the caller saves these parameters (UER-py's `save_model`). */
  onBest?: (epoch: number, params: Map<string, Tensor>) => void | Promise<void>;
  /** Each epoch's training order (row indexes), after its shuffle. */
  onShuffle?: (epoch: number, order: readonly number[]) => void;
  /** Stops after the current step. */
  signal?: AbortSignal;
  /** Run only the first k epochs of the `epochsNum`-epoch schedule (default all). */
  epochsToRun?: number;
}

/** What the run did. */
export interface FinetuneResult {
  /** `int(n_train * epochs_num / batch_size) + 1`, the schedule's length. */
  trainSteps: number;
  steps: number;
  dev: EvalResult[];
  /** The saved epoch (first best dev accuracy); null when no epoch beat accuracy 0. */
  bestEpoch: number | null;
  test?: EvalResult;
  /** True when `signal` stopped the run early. */
  stopped: boolean;
}

/** The per-step statistic rows a fine-tuning trainer must keep (`TrainerOptions.statSlots`). */
export function finetuneStatSlots(reportSteps: number, instances: number, batchSize: number): number {
  return Math.max(1, Math.min(reportSteps, Math.ceil(instances / batchSize)));
}

/** UER-py's `train_steps` for the schedule. */
export function trainSteps(instances: number, epochsNum: number, batchSize: number): number {
  return Math.floor((instances * epochsNum) / batchSize) + 1;
}

/**
 * UER-py's `evaluate(args, dataset)`: batches of `batchSize` in file order (the last smaller), the
 * predictions against the gold labels.
 */
export async function evaluate(
  trainer: Trainer<ClassifierBatch>,
  data: EncodedRows,
  batchSize: number,
  labelsNum: number,
): Promise<EvalResult> {
  const confusion = Array.from({ length: labelsNum }, () => new Array<number>(labelsNum).fill(0));
  let correct = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    const b = sliceRows(data, start, Math.min(start + batchSize, data.count));
    const preds = argmaxRows((await trainer.evaluate(b)).probs, b.batchSize);
    for (let r = 0; r < b.batchSize; r++) {
      confusion[preds[r]][b.labels[r]]++;
      if (preds[r] === b.labels[r]) correct++;
    }
  }
  return { acc: correct / data.count, correct, n: data.count, confusion, labels: perLabel(confusion) };
}

/** The first index of each row's maximum (torch.argmax), for the first `rows` rows of [B,C]. */
export function argmaxRows(t: Tensor, rows: number): number[] {
  const C = t.shape[1];
  const d = t.data as Float32Array;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (d[r * C + c] > d[r * C + best]) best = c;
    out.push(best);
  }
  return out;
}

function perLabel(c: number[][]): EvalResult["labels"] {
  const eps = 1e-9;
  return c.map((row, i) => {
    const p = c[i][i] / (row.reduce((a, b) => a + b, 0) + eps);
    const r = c[i][i] / (c.reduce((a, rw) => a + rw[i], 0) + eps);
    return { precision: p, recall: r, f1: (2 * p * r) / (p + r + eps) };
  });
}

/**
 * Runs the fine-tuning (see the module doc).
 *
 * @example
 * ```ts
 * const r = await finetune({ trainer, train, dev, labelsNum: 2, batchSize: 32, epochsNum: 3,
 *   learningRate: 2e-5, warmup: 0.1, scheduler: "linear", seed: 7, reportSteps: 100,
 *   onBest: (epoch, params) => save(params) });
 * ```
 */
export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  for (const [flag, v] of [["batch_size", o.batchSize], ["epochs_num", o.epochsNum], ["report_steps", o.reportSteps]]) {
    if (!(Number.isInteger(v) && (v as number) > 0)) {
      throw new RangeError(`Invalid --${flag} ${v}: must be a positive integer`);
    }
  }
  const n = o.train.count;
  const total = trainSteps(n, o.epochsNum, o.batchSize);
  const schedule = makeSchedule({
    scheduler: o.scheduler,
    learningRate: o.learningRate,
    totalSteps: total,
    warmup: o.warmup,
  });
  const rng = new PyRandom(o.seed); // set_seed(args.seed): the first shuffle draws right after seeding
  const order = Array.from({ length: n }, (_, i) => i);
  const perEpoch = Math.ceil(n / o.batchSize);
  const dev: EvalResult[] = [];
  let best = 0.0, bestEpoch: number | null = null;
  let bestParams: Map<string, Tensor> | undefined;
  let step = 0;
  let totalLoss = 0.0; // UER-py's total_loss: summed per step, reset only after a report
  let pending: FinetuneStep[] = [];
  let stopped = false;
  const trainer = o.trainer;

  const take = async () => {
    const taken = await trainer.takeStats();
    if (taken.rows === null) {
      // More steps than per-step rows kept (cannot happen with the trainer's statSlots ≥ steps per read).
      throw new RangeError("Cannot read per-step losses: the trainer keeps fewer statSlots than steps between reads");
    }
    taken.rows.forEach((r, i) => {
      pending[i].loss = r.loss;
      totalLoss += r.loss;
    });
    const done = pending;
    pending = [];
    await o.onSteps?.(done);
  };

  const last = Math.min(o.epochsToRun ?? o.epochsNum, o.epochsNum);
  for (let epoch = 1; epoch <= last && !stopped; epoch++) {
    rng.shuffle(order); // random.shuffle(trainset): the same list, again every epoch
    o.onShuffle?.(epoch, [...order]);
    for (let i = 0; i < perEpoch; i++) {
      const rows = order.slice(i * o.batchSize, Math.min((i + 1) * o.batchSize, n));
      const batch = gatherRows(o.train, rows);
      step++;
      const lr = schedule.lrAt(step);
      await trainer.step(batch, lr);
      pending.push({ step, epoch, loss: NaN, lr });
      o.onProgress?.({ step, totalSteps: perEpoch * o.epochsNum, epoch, lr });
      const report = (i + 1) % o.reportSteps === 0;
      if (report || i === perEpoch - 1) await take();
      if (report) {
        await o.onReport?.({ epoch, steps: i + 1, avgLoss: totalLoss / o.reportSteps });
        totalLoss = 0.0;
      }
      if (o.signal?.aborted) {
        if (pending.length) await take();
        stopped = true;
        break;
      }
    }
    if (stopped) break;
    const r = await evaluate(trainer, o.dev, o.batchSize, o.labelsNum);
    dev.push(r);
    await o.onEval?.("dev", epoch, r);
    if (r.acc > best) {
      best = r.acc;
      bestEpoch = epoch;
      bestParams = await trainer.params();
      await o.onBest?.(epoch, bestParams);
    }
  }
  const result: FinetuneResult = { trainSteps: total, steps: step, dev, bestEpoch, stopped };
  if (o.test && bestParams && !stopped && last === o.epochsNum) {
    // UER-py reloads output_model_path (the best epoch) before the test evaluation.
    trainer.setParams(bestParams);
    result.test = await evaluate(trainer, o.test, o.batchSize, o.labelsNum);
    await o.onEval?.("test", bestEpoch!, result.test);
  }
  return result;
}

/** The training rows `rows` (indexes into `data`) as one batch, in that order. */
export function gatherRows(data: EncodedRows, rows: readonly number[]): ClassifierBatch {
  const T = data.seqLength, B = rows.length;
  const src = new Int32Array(B * T), seg = new Int32Array(B * T), labels = new Int32Array(B);
  rows.forEach((r, j) => {
    src.set(data.src.subarray(r * T, (r + 1) * T), j * T);
    seg.set(data.seg.subarray(r * T, (r + 1) * T), j * T);
    labels[j] = data.labels[r];
  });
  return { src, seg, labels, batchSize: B, seqLength: T };
}
