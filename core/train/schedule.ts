/**
 * Learning-rate schedules of UER-py's pretraining (`uer/utils/optimizers.py`
 * `get_linear_schedule_with_warmup`, `get_constant_schedule`, `get_constant_schedule_with_warmup`, as
 * built by `init_optimizer` in `uer/trainer.py`): torch `LambdaLR` multiplies the base lr by a factor
 * of the number of optimizer steps already taken. The warmup length is `total_steps * warmup` as a
 * FLOAT (never rounded), so the first optimizer step runs with lr 0 under `linear`. Everything is
 * computed in double with the same operations, in the same order, as Python. Browser compatible.
 * @module
 */

/** Scheduler names (UER-py `--scheduler`) that uer-ts builds. */
export type SchedulerName = "linear" | "constant" | "constant_with_warmup";

/** What shapes the schedule (UER-py flag names in camelCase). */
export interface ScheduleOptions {
  scheduler: SchedulerName;
  /** `--learning_rate`. */
  learningRate: number;
  /** `--total_steps` (counted in batches, as UER-py passes it to the scheduler). */
  totalSteps: number;
  /** `--warmup`, a fraction of total_steps. */
  warmup: number;
  /** `--accumulation_steps`: the scheduler advances once per optimizer step. */
  accumulationSteps?: number;
}

/** A learning-rate schedule: the factor after `k` optimizer steps and the lr of a training step. */
export interface Schedule {
  readonly options: Readonly<ScheduleOptions>;
  /** Warmup length in optimizer steps (`total_steps * warmup`, a float). */
  readonly warmupSteps: number;
  /** LambdaLR's multiplier once `k` optimizer steps were taken (`lr_lambda(k)`). */
  factor(k: number): number;
  /** The lr the optimizer uses at 1-based training step `step` (the batch count, as UER-py's `current_step`). */
  lrAt(step: number): number;
}

/**
 * Builds a schedule.
 *
 * @example
 * ```ts
 * const s = makeSchedule({ scheduler: "linear", learningRate: 1e-3, totalSteps: 30, warmup: 0.1 });
 * s.lrAt(1); // 0: the first step runs at lr 0, as in UER-py
 * s.lrAt(4); // 0.001
 * ```
 */
export function makeSchedule(options: ScheduleOptions): Schedule {
  const { scheduler, learningRate, totalSteps, warmup } = options;
  const acc = options.accumulationSteps ?? 1;
  if (!(Number.isInteger(totalSteps) && totalSteps > 0)) {
    throw new RangeError(`Invalid --total_steps ${totalSteps}: must be a positive integer`);
  }
  if (!(Number.isInteger(acc) && acc > 0)) {
    throw new RangeError(`Invalid --accumulation_steps ${acc}: must be a positive integer`);
  }
  if (!(Number.isFinite(warmup) && warmup >= 0)) {
    throw new RangeError(`Invalid --warmup ${warmup}: must be a non-negative number`);
  }
  if (!Number.isFinite(learningRate)) throw new RangeError(`Invalid --learning_rate ${learningRate}`);
  // NOTE: UER-py passes `args.total_steps*args.warmup` unrounded (a Python float).
  const w = totalSteps * warmup;
  let factor: (k: number) => number;
  switch (scheduler) {
    case "linear":
      factor = (k) => {
        if (k < w) return k / Math.max(1, w);
        return Math.max(0.0, (totalSteps - k) / Math.max(1, totalSteps - w));
      };
      break;
    case "constant":
      factor = () => 1;
      break;
    case "constant_with_warmup":
      factor = (k) => (k < w ? k / Math.max(1.0, w) : 1.0);
      break;
    default:
      throw new RangeError(
        `Unknown --scheduler "${scheduler}": uer-ts builds linear, constant and constant_with_warmup`,
      );
  }
  return {
    options: { ...options, accumulationSteps: acc },
    warmupSteps: w,
    factor,
    // Step t's optimizer update (if any) is preceded by floor((t-1)/acc) scheduler steps.
    lrAt: (step) => learningRate * factor(Math.floor((step - 1) / acc)),
  };
}
