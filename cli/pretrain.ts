/**
 * `pretrain` (UER-py `pretrain.py`): flags → `pretrain()` of core/train/run.ts, which owns the run
 * (how it starts, resumes or is refused; checkpoints, metrics, data parallelism) → print. Report lines
 * (UER-py's format, or JSON lines with `--json`) go to stdout, status lines to stderr, a progress line
 * (steps/s, ETA, loss, lr) to a terminal's stderr; `--quiet` keeps only errors. Ctrl-C or SIGTERM stops
 * the run after the current step with a checkpoint, and names it with the command that resumes it.
 * @module
 */
import type { PretrainOptions } from "../core/flags/mod.ts";
import { pretrain } from "../core/train/run.ts";
import { progressLine } from "../core/train/metrics.ts";
import { loadModel } from "../convert/mod.ts";
import { describe, exitCodeFor, Interrupted, interrupts } from "./interrupt.ts";
import { shellCommand } from "./command.ts";
import { LAUNCHER_PID_ENV } from "../core/parallel/launch.ts";

/** The command that continues this run: the same one (a run resumes itself), without `--overwrite`. */
export function resumeCommand(args: readonly string[] = Deno.args): string {
  return shellCommand(args.filter((a) => a !== "--overwrite"));
}

/** Runs `pretrain`. */
export async function run(opts: PretrainOptions): Promise<void> {
  const enc = new TextEncoder();
  const tty = !opts.quiet && !opts.json && Deno.stderr.isTerminal();
  let progressShown = false;
  const clearProgress = () => {
    if (progressShown) Deno.stderr.writeSync(enc.encode("\r\x1b[2K"));
    progressShown = false;
  };
  let lastCheckpoint: string | null = null;
  const signal = interrupts.graceful(() => [
    lastCheckpoint
      ? `the last checkpoint is ${lastCheckpoint}; resume with:`
      : "no checkpoint was saved; start again with:",
    `  ${resumeCommand()}`,
  ]);
  const result = await pretrain(opts, {
    loadWeights: loadModel,
    signal,
    events: {
      checkpoint: (path) => void (lastCheckpoint = path),
      info: (line) => {
        if (opts.quiet) return;
        clearProgress();
        console.error(line);
      },
      report: (record, line) => {
        if (opts.quiet) return;
        clearProgress();
        console.log(opts.json ? JSON.stringify(record) : line);
      },
      step: tty
        ? (s) => {
          Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${progressLine(s)}`));
          progressShown = true;
        }
        : undefined,
    },
  });
  clearProgress();
  // A rank started by this CLI's own launcher leaves the last words to the launcher.
  const launched = Deno.env.get(LAUNCHER_PID_ENV) !== undefined && Deno.env.get("OMPI_COMM_WORLD_SIZE") !== undefined;
  if (result.outcome === "stopped" && result.lead && !launched) {
    const reason = interrupts.reason ?? "SIGTERM";
    throw new Interrupted(
      [
        `stopped by ${describe(reason)} at step ${result.step} of ${result.totalSteps}` +
        (result.checkpoint ? `; the last checkpoint is ${result.checkpoint}` : "; no checkpoint was saved"),
        `resume with:\n  ${resumeCommand()}`,
      ].join("\n"),
      exitCodeFor(reason),
    );
  }
  // Another rank that stopped with rank 0 (they agree at every step) may not have seen a signal itself.
  if (result.outcome === "stopped") throw new Interrupted("", exitCodeFor(interrupts.reason ?? "request"));
}
