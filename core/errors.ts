/**
 * The one error class callers are expected to catch by kind: `UsageError`, a command line or config
 * file that cannot run as written (a bad flag value, a flag or config key uer-ts has not built, an
 * unknown config key). The CLI prints its message and exits 2; every other error exits 1 (runtime and
 * data errors). Browser compatible.
 * @module
 */

/**
 * The command line (or its config file) is wrong on its own, judged before any input file is read.
 *
 * @example
 * ```ts
 * throw new UsageError("option '--seq_length' must be at least 4, got -5\n  hint: …");
 * ```
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
