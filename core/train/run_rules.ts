/**
 * When a pretraining run starts fresh, resumes, or is refused (DESIGN.md §1.3). A run is known by
 * its settings, recorded beside its checkpoints: `identity` (what it learns from and how its batches
 * are drawn: dataset, model, batch, seed, ranks, masking, the weights it started from) and `schedule`
 * (what `--resume` may change: total steps, learning rate, warmup, scheduler, dropout). Into an
 * `--output_model_path` that holds no run, a run starts fresh (from `--pretrained_model_path`'s
 * weights, if given, at step 1: UER-py semantics). Into one that holds a run:
 * - the same command (equal settings) resumes from the last checkpoint, and says so; a run already
 *   at `--total_steps` has nothing to do;
 * - `--resume` continues it with this command's schedule (each change named); the identity must match;
 * - `--overwrite` removes the earlier run and starts fresh;
 * - anything else is refused, naming what differs.
 * Pure functions; browser compatible.
 * @module
 */

/** What must match for a run to continue another (checkpoint `extra.run`, `<out>.run.json`). */
export type RunIdentity = {
  dataset: Record<string, unknown>;
  model: Record<string, unknown>;
  pretrained_model_path: string | null;
  batch_size: number;
  seed: number;
  instances_buffer_size: number;
  world_size: number;
  accumulation_steps: number;
  masking: Record<string, unknown>;
};

/** What `--resume` may change. */
export type RunSchedule = {
  total_steps: number;
  learning_rate: number;
  warmup: number;
  scheduler: string;
  dropout: number;
};

/** The settings of a run. */
export interface RunSettings {
  identity: RunIdentity;
  schedule: RunSchedule;
}

/** What a run finds in its `--output_model_path`. */
export interface FoundRun {
  /** The recorded settings (run manifest, else the last checkpoint), null when none. */
  settings: RunSettings | null;
  /** Steps of the complete checkpoints, ascending. */
  checkpoints: number[];
  /** Files of a run there (checkpoints, metrics, manifest), as names for messages. */
  files: string[];
}

/** How a run starts. */
export type StartDecision =
  /** Fresh at step 1; `replace` removes the files of the earlier run first; `note` says why. */
  | { kind: "new"; replace: boolean; note?: string }
  /** From the checkpoint of `step`; `changed` lists the schedule settings this command changes. */
  | { kind: "resume"; step: number; changed: string[] }
  /** The run is already at `--total_steps`: nothing to do. */
  | { kind: "complete"; step: number };

function show(v: unknown): string {
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/**
 * `--flag new (was old)` for each key of `was` and `now` that differs; a nested object as
 * `key: inner new (was old), …`.
 */
export function differences(was: Record<string, unknown>, now: Record<string, unknown>, flag = "--"): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(was), ...Object.keys(now)])) {
    if (JSON.stringify(was[k]) === JSON.stringify(now[k])) continue;
    const a = was[k], b = now[k];
    if (a && b && typeof a === "object" && typeof b === "object") {
      const inner = differences(a as Record<string, unknown>, b as Record<string, unknown>, "");
      out.push(`${k}: ${inner.join(", ")}`);
    } else {
      out.push(`${flag}${k} ${show(b)} (was ${show(a)})`);
    }
  }
  return out;
}

/**
 * Decides how a run with `settings` starts in `out`, given what is there.
 *
 * @example
 * ```ts
 * decideStart({ out: "m", settings, found: { settings: null, checkpoints: [], files: [] }, resume: false, overwrite: false });
 * // { kind: "new", replace: false }
 * ```
 */
export function decideStart(a: {
  out: string;
  settings: RunSettings;
  found: FoundRun;
  resume: boolean;
  overwrite: boolean;
}): StartDecision {
  const { out, settings, found } = a;
  if (a.resume && a.overwrite) {
    throw new TypeError("Cannot pretrain with both --resume and --overwrite\n  hint: pass one of them");
  }
  if (found.files.length === 0) {
    if (a.resume) {
      throw new TypeError(
        `Cannot resume "${out}": no run there (no checkpoint ${out}-<step>)` +
          `\n  hint: drop --resume to start a new run, or pass the --output_model_path of the run to resume`,
      );
    }
    return { kind: "new", replace: false };
  }
  if (a.overwrite) return { kind: "new", replace: true, note: `removed the earlier run in "${out}" (--overwrite)` };
  const last = found.checkpoints.at(-1);
  const listed = found.checkpoints.length
    ? `checkpoints up to ${out}-${last}`
    : `${found.files.slice(0, 3).join(", ")}${found.files.length > 3 ? ", …" : ""}`;
  const hintOthers = `--overwrite replaces it; or pick another --output_model_path`;
  if (!found.settings) {
    throw new TypeError(
      `Cannot pretrain into "${out}": it holds files of a run whose settings are not recorded (${listed})` +
        `\n  hint: ${hintOthers}`,
    );
  }
  const identity = differences(found.settings.identity, settings.identity);
  const schedule = differences(found.settings.schedule, settings.schedule);
  if (identity.length > 0) {
    throw new TypeError(
      `Cannot ${a.resume ? "resume" : "pretrain into"} "${out}": it holds another run (${listed}); ` +
        `this command differs in ${identity.join("; ")}` +
        `\n  hint: ${hintOthers} (--resume continues a run only with its own dataset, model, batches and start)`,
    );
  }
  if (schedule.length > 0 && !a.resume) {
    throw new TypeError(
      `Cannot pretrain into "${out}": it holds another run (${listed}); this command differs in ` +
        `${schedule.join("; ")}\n  hint: --resume continues it with these settings; ${hintOthers}`,
    );
  }
  if (last === undefined) {
    return { kind: "new", replace: true, note: `an earlier start of this run in "${out}" saved no checkpoint` };
  }
  if (last >= settings.schedule.total_steps) return { kind: "complete", step: last };
  return { kind: "resume", step: last, changed: schedule };
}
