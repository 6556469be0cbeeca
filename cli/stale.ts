/**
 * Removes what interrupted runs of earlier, dead processes left beside an output (temporary files and
 * folders named `.<output>.tmp-<pid>-…`, core/io/atomic.ts), saying so on stderr unless `quiet`.
 * Subcommands call it before they write `path`.
 * @module
 */
import { removeStaleTemps } from "../core/io/atomic.ts";

/**
 * Removes stale temporaries of `path` and prints one line for each.
 *
 * @example
 * ```ts
 * await removeStale(opts.datasetPath, opts.quiet);
 * ```
 */
export async function removeStale(path: string, quiet: boolean): Promise<void> {
  for (const t of await removeStaleTemps(path)) {
    if (!quiet) console.error(`removed ${t.name}, left by process ${t.pid} which is no longer running`);
  }
}
