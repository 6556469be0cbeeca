/**
 * This process's command line as a shell command a user can paste: the exact program and arguments
 * that run the CLI again (the deno binary, `run -A`, the main module), each quoted where the shell
 * needs it. Used to print the command that resumes an interrupted run.
 * @module
 */
import { selfArgv } from "../core/parallel/launch.ts";

/** One word for a POSIX shell: as is when safe, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_\-+=.,/:@%]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command that runs the CLI with `args` (default: this process's arguments).
 *
 * @example
 * ```ts
 * shellCommand(["pretrain", "--output_model_path", "my model"]);
 * // "/path/to/deno run -A /path/to/cli/main.ts pretrain --output_model_path 'my model'"
 * ```
 */
export function shellCommand(args: readonly string[] = Deno.args): string {
  return selfArgv([...args]).map(shellQuote).join(" ");
}
