/**
 * Learning-rate schedules of UER-py (`uer/utils/optimizers.py`: `get_linear_schedule_with_warmup`,
 * `get_cosine_schedule_with_warmup`, `get_cosine_with_hard_restarts_schedule_with_warmup`,
 * `get_polynomial_decay_schedule_with_warmup`, `get_constant_schedule`,
 * `get_constant_schedule_with_warmup`, `get_inverse_square_root_schedule_with_warmup`,
 * `get_tri_stage_schedule`, as built by `init_optimizer` in `uer/trainer.py` and `build_optimizer` in
 * `finetune/run_classifier.py`): torch `LambdaLR` multiplies the base lr by a factor of the number of
 * optimizer steps already taken. The warmup length is `total_steps * warmup` as a FLOAT (never
 * rounded), so the first optimizer step runs with lr 0 under `linear`. Everything is computed in
 * double with the same operations, in the same order, as Python (`math.cos`/`exp`/`log` may differ
 * from V8's in the last bit). Where UER-py's lambda raises (a zero warmup under `inverse_sqrt` or
 * `tri_stage`, `polynomial` with lr ≤ its end lr 1e-7), this throws naming the flag. Browser compatible.
 * @module
 */

/** Scheduler names (UER-py `--scheduler`, in its choice order). */
export const SCHEDULERS = [
  "linear",
  "cosine",
  "cosine_with_restarts",
  "polynomial",
  "constant",
  "constant_with_warmup",
  "inverse_sqrt",
  "tri_stage",
] as const;

/** Scheduler names (UER-py `--scheduler`) that uer-ts builds. */
export type SchedulerName = typeof SCHEDULERS[number];

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
  /** `--lr_decay` (tri_stage: the decay phase is `total_steps * lr_decay` steps; default 0.5). */
  lrDecay?: number;
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
  const factor = lambdaOf(scheduler, learningRate, totalSteps, w, totalSteps * (options.lrDecay ?? 0.5));
  factor(0); // torch's LambdaLR evaluates the lambda once when it is built: UER-py fails there
  return {
    options: { ...options, accumulationSteps: acc },
    warmupSteps: w,
    factor,
    // Step t's optimizer update (if any) is preceded by floor((t-1)/acc) scheduler steps.
    lrAt: (step) => learningRate * factor(Math.floor((step - 1) / acc)),
  };
}

function bad(flag: string, value: number, why: string, hint: string): never {
  throw new RangeError(`Invalid ${flag} ${value}: ${why}\n  hint: ${hint}`);
}

/** UER-py's `lr_lambda` of `scheduler` (uer/utils/optimizers.py), W the float warmup, D the tri_stage decay. */
function lambdaOf(scheduler: SchedulerName, lr: number, T: number, W: number, D: number): (k: number) => number {
  const warm = (k: number) => k / Math.max(1, W); // float(current_step) / float(max(1, num_warmup_steps))
  switch (scheduler) {
    case "linear":
      return (k) => (k < W ? warm(k) : Math.max(0.0, (T - k) / Math.max(1, T - W)));
    case "cosine":
      return (k) => {
        if (k < W) return warm(k);
        const progress = (k - W) / Math.max(1, T - W);
        return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress))); // num_cycles 0.5
      };
    case "cosine_with_restarts":
      return (k) => {
        if (k < W) return warm(k);
        const progress = (k - W) / Math.max(1, T - W);
        if (progress >= 1.0) return 0.0;
        return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * ((1.0 * progress) % 1.0)))); // num_cycles 1
      };
    case "polynomial": {
      const lrEnd = 1e-7, power = 1.0;
      if (!(lr > lrEnd)) {
        bad("--learning_rate", lr, `the polynomial scheduler decays to ${lrEnd} and needs a larger lr`, "raise it");
      }
      return (k) => {
        if (k < W) return warm(k);
        if (k > T) return lrEnd / lr;
        const pctRemaining = 1 - (k - W) / (T - W);
        return ((lr - lrEnd) * pctRemaining ** power + lrEnd) / lr;
      };
    }
    case "constant":
      return () => 1;
    case "constant_with_warmup":
      return (k) => (k < W ? k / Math.max(1.0, W) : 1.0);
    case "inverse_sqrt":
      if (!(lr > 0)) bad("--learning_rate", lr, "inverse_sqrt needs a positive lr", "raise it");
      if (W === 0) {
        bad("--warmup", 0, "inverse_sqrt divides by the warmup at step 0 (UER-py fails too)", "pass --warmup > 0");
      }
      return (k) => {
        if (k < W) return (0.0 + k * ((lr - 0.0) / W)) / lr; // warmup_init_lr 0
        if (k > T) return 1e-7 / lr;
        return (lr * W ** 0.5 * k ** -0.5) / lr;
      };
    case "tri_stage": {
      if (W === 0) {
        bad("--warmup", 0, "tri_stage divides by the warmup (UER-py fails too)", "pass --warmup > 0");
      }
      const lrInt = lr * 0.01, lrEnd = lr * 0.05; // init_lr_scale 0.01, final_lr_scale 0.05
      return (k) => {
        const warmupRate = (lr - lrInt) / W;
        const decayFactor = -Math.log(0.05) / Math.max(D, 1);
        if (k < W) return (lrInt + k * warmupRate) / lr;
        if (k >= W && k < T - D) return 1;
        if (k <= T) return Math.exp(-decayFactor * (k - T + D));
        return lrEnd / lr;
      };
    }
    default:
      throw new RangeError(
        `Unknown --scheduler "${scheduler}": expected one of ${SCHEDULERS.join(", ")}`,
      );
  }
}
