/**
 * `preprocess` subcommand (UER-py `preprocess.py --data_processor albert`): flags → one
 * `preprocessCorpus` call → a one-line summary on stdout (`--json`: a JSON object). A progress bar
 * (lines/s, ETA) goes to stderr when it is a terminal, unless `--quiet`.
 * @module
 */
import type { PreprocessOptions } from "../core/flags/mod.ts";
import { removeStale } from "./stale.ts";
import { preprocessCorpus, type PreprocessProgress } from "../core/data/preprocess.ts";
import { progressBar } from "./progress.ts";

function progress(): ((p: PreprocessProgress) => void) | undefined {
  const bar = progressBar("lines");
  return bar && ((p) => bar(p.lines, p.totalLines));
}

/** Runs `preprocess`. */
export async function run(opts: PreprocessOptions): Promise<void> {
  await removeStale(opts.datasetPath, opts.quiet);
  const summary = await preprocessCorpus(opts, opts.quiet ? undefined : progress());
  if (opts.json) {
    console.log(JSON.stringify(summary));
    return;
  }
  const replaced = summary.replacedLines ? `, ${summary.replacedLines} lines with invalid UTF-8 replaced` : "";
  console.log(
    `Wrote ${summary.count} instances from ${summary.corpusLines} lines (${summary.parts} part` +
      `${summary.parts === 1 ? "" : "s"}${replaced}) to ${summary.datasetPath} in ${summary.seconds.toFixed(2)}s ` +
      `on ${summary.timeline.threads} thread${summary.timeline.threads === 1 ? "" : "s"}`,
  );
}
