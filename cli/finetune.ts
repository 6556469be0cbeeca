/**
 * `finetune` (UER-py `finetune/run_classifier.py`): flags → `runFinetune` (core/train/finetune_run.ts)
 * → print. Report lines (UER-py's `Epoch id: …, Avg loss: …`, the evaluations) go to stdout, the run's
 * messages to stderr, a progress line to a terminal's stderr.
 * @module
 */
import type { FinetuneOptions } from "../core/flags/mod.ts";
import { runFinetune } from "../core/train/finetune_run.ts";
import { exitCodeFor, Interrupted, interrupts } from "./interrupt.ts";

/** Runs `finetune`. */
export async function run(opts: FinetuneOptions): Promise<void> {
  const enc = new TextEncoder();
  let shown = false;
  const tty = Deno.stderr.isTerminal();
  const signal = interrupts.graceful(() => [`the best epoch so far, if any, is saved in "${opts.outputModelPath}"`]);
  const r = await runFinetune(opts, {
    signal,
    info: (l) => console.error(l),
    report: (l) => console.log(l),
    progress: tty
      ? (line) => {
        if (line === null) {
          if (shown) Deno.stderr.writeSync(enc.encode("\r\x1b[2K"));
          shown = false;
          return;
        }
        Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line}`));
        shown = true;
      }
      : undefined,
  });
  if (r.stopped) throw new Interrupted("", exitCodeFor(interrupts.reason ?? "SIGINT"));
}
