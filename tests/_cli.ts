/**
 * Helpers for end-to-end CLI tests: run `cli/main.ts` as a subprocess (the way users do), collect its
 * output, and the set-up several tests share (the demo corpus preprocessed, a run's checkpoints).
 * Assertions on stderr use `ownLines`: processes that touch WebGPU may print mesa's own
 * `error: XDG_RUNTIME_DIR is invalid…` lines first on machines without a user session.
 * @module
 */
import { readCheckpoint } from "../core/checkpoint/zarr.ts";

/** Absolute path of `cli/main.ts`. */
export const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;
/** The demo fixtures and configs the project writes itself. */
export const DEMO_CORPUS = new URL("../fixtures/demo_corpus.txt", import.meta.url).pathname;
export const DEMO_VOCAB = new URL("../fixtures/demo_vocab.txt", import.meta.url).pathname;
export const TINY_CONFIG = new URL("../configs/albert/tiny_config.json", import.meta.url).pathname;

/** The finished command. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of a CLI subprocess. */
export interface CliOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Written to its stdin, which is then closed (default: no stdin). */
  stdin?: Uint8Array | string;
}

/** Starts `deno run -A cli/main.ts <args>` with piped output. */
export function spawnCli(args: string[], opts: CliOptions = {}): Deno.ChildProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    const bytes = typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin;
    w.write(bytes).then(() => w.close()).catch(() => {});
  }
  return child;
}

/** Waits for a spawned command and decodes its output. */
export async function finish(child: Deno.ChildProcess): Promise<CliResult> {
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `deno run -A cli/main.ts <args>`; resolves when it exits. */
export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return finish(spawnCli(args, opts));
}

/** Runs a command that must succeed; throws with its stderr otherwise. */
export async function cliOk(args: string[]): Promise<CliResult> {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`${args[0]} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** Lines of stderr that are the program's own (mesa's XDG_RUNTIME_DIR complaint left out). */
export function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l !== "" && !/XDG_RUNTIME_DIR/.test(l));
}

/** Steps of the complete checkpoints `<out>-<step>` (temporary folders start with a dot). */
export async function checkpoints(out: string): Promise<number[]> {
  const slash = out.lastIndexOf("/");
  const folder = out.slice(0, slash), base = out.slice(slash + 1);
  const steps: number[] = [];
  for await (const e of Deno.readDir(folder)) {
    const m = new RegExp(`^${base}-(\\d+)$`).exec(e.name);
    if (m && e.isDirectory) steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

/**
 * The demo corpus preprocessed (demo vocab, `--seq_length seqLength`, `--dup_factor 1`, seed 7) into
 * `path`: 259 instances at seq_length 64.
 */
export async function demoDataset(path: string, seqLength = 64): Promise<string> {
  await cliOk([
    "preprocess",
    ...["--corpus_path", DEMO_CORPUS, "--vocab_path", DEMO_VOCAB, "--dataset_path", path],
    ...["--seq_length", String(seqLength), "--dup_factor", "1", "--target", "albert", "--quiet"],
  ]);
  return path;
}

/** The largest |difference| of two checkpoints' parameters (same names required). */
export async function maxParamDiff(a: string, b: string): Promise<number> {
  const x = await readCheckpoint(a), y = await readCheckpoint(b);
  if ([...x.params.keys()].sort().join() !== [...y.params.keys()].sort().join()) {
    throw new Error(`${a} and ${b} hold other parameters`);
  }
  let max = 0;
  for (const [name, t] of x.params) {
    const u = y.params.get(name)!.data as Float32Array, v = t.data as Float32Array;
    for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i] - u[i]));
  }
  return max;
}
