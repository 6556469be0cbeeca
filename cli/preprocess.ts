/**
 * `preprocess` subcommand (UER-py `preprocess.py --data_processor albert`): flags → one
 * `preprocessCorpus` call → a one-line summary on stdout (`--json`: a JSON object). A progress bar
 * (lines/s, ETA) goes to stderr when it is a terminal, unless `--quiet`.
 * @module
 */
import type { PreprocessOptions } from "../core/flags/mod.ts";
import { removeStale } from "./stale.ts";
import { preprocessCorpus, type PreprocessProgress } from "../core/data/preprocess.ts";

function progressBar(): ((p: PreprocessProgress) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const t0 = performance.now();
  let last = 0;
  const enc = new TextEncoder();
  return (p) => {
    const now = performance.now();
    if (now - last < 200 && p.lines < p.totalLines) return;
    last = now;
    const s = (now - t0) / 1000;
    const frac = p.totalLines ? Math.min(1, p.lines / p.totalLines) : 1;
    const rate = p.lines / Math.max(s, 1e-3);
    const eta = rate > 0 ? (p.totalLines - p.lines) / rate : 0;
    const width = 30;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const line = `\r[${bar}] ${(frac * 100).toFixed(1)}% ${p.lines}/${p.totalLines} lines ` +
      `${Math.round(rate)} lines/s ETA ${eta.toFixed(0)}s `;
    Deno.stderr.writeSync(enc.encode(line + (p.lines >= p.totalLines ? "\n" : "")));
  };
}

/** Runs `preprocess`. */
export async function run(opts: PreprocessOptions): Promise<void> {
  await removeStale(opts.datasetPath, opts.quiet);
  const summary = await preprocessCorpus(opts, opts.quiet ? undefined : progressBar());
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
