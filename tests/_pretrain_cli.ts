/**
 * Helpers for end-to-end CLI tests: run `cli/main.ts` as a subprocess (the way users do) and collect
 * its output.
 * @module
 */

/** Absolute path of `cli/main.ts`. */
export const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;

/** The finished command. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run -A cli/main.ts <args>`; resolves when it exits. */
export async function cli(args: string[], opts: { cwd?: string } = {}): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs a command that must succeed; throws with its stderr otherwise. */
export async function cliOk(args: string[]): Promise<CliResult> {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`${args[0]} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return r;
}
