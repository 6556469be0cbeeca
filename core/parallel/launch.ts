/**
 * Single-machine launcher for data-parallel runs: `pretrain --world_size N` started without `mpirun`
 * re-executes itself as `mpirun -np N <deno> run -A <main> <same args>` and waits, so users need not type
 * the `mpirun` line (UER-py's `pretrain.py` likewise spawns its ranks itself with
 * `torch.multiprocessing.spawn`). As root, Open MPI refuses to start without `--allow-run-as-root`;
 * `--oversubscribe` lets N exceed the core count; `--bind-to none` leaves each rank's onnxruntime
 * threads free to use any core (Open MPI binds each rank to one core by default for N ≤ 2).
 * When `mpirun` dies of a signal or one rank exits abnormally, `mpirun` ends the others and names the
 * rank; this launcher passes its exit code on.
 * Not browser compatible: spawns processes with `Deno.Command`.
 * @module
 */

import { MPI_PACKAGES } from "./mpi.ts";

/** Options of `mpirunArgv`. */
export interface MpirunOptions {
  /** Number of ranks (`-np`). */
  worldSize: number;
  /** The command each rank runs (program and arguments). */
  rankArgv: string[];
  /** Running as root adds `--allow-run-as-root`. */
  isRoot: boolean;
  /** Extra `mpirun` options placed before the rank command. */
  extra?: string[];
}

/**
 * The `mpirun` command line (program first) that starts `worldSize` copies of `rankArgv`.
 *
 * @example
 * ```ts
 * mpirunArgv({ worldSize: 2, rankArgv: ["deno", "run", "-A", "cli/main.ts", "pretrain"], isRoot: false });
 * // ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", "2", "deno", "run", "-A", "cli/main.ts", "pretrain"]
 * ```
 */
export function mpirunArgv(opts: MpirunOptions): string[] {
  if (!Number.isInteger(opts.worldSize) || opts.worldSize < 1) {
    throw new RangeError(`Cannot launch --world_size ${opts.worldSize}: expected a positive integer`);
  }
  return [
    "mpirun",
    ...(opts.isRoot ? ["--allow-run-as-root"] : []),
    "--oversubscribe",
    "--bind-to",
    "none",
    ...(opts.extra ?? []),
    "-np",
    String(opts.worldSize),
    ...opts.rankArgv,
  ];
}

/**
 * The command that re-runs this very process's CLI invocation in each rank: `<deno> run -A <main
 * module> <args>` (or `<binary> <args>` for a `deno compile`d binary).
 */
export function selfArgv(args: string[] = Deno.args): string[] {
  const exe = Deno.execPath();
  const main = Deno.mainModule;
  // A compiled binary's main module lives in its embedded file system (…/deno-compile-…/).
  if (main.includes("deno-compile-")) return [exe, ...args];
  const path = main.startsWith("file://") ? decodeURIComponent(new URL(main).pathname) : main;
  return [exe, "run", "-A", path, ...args];
}

/** True when this process runs as root (Open MPI then needs `--allow-run-as-root`). */
export function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/** How a launched job ended. */
export interface LaunchResult {
  /** `mpirun`'s exit code (128 + n when it died of signal n). */
  code: number;
  /** The first rank that failed, as `mpirun` named it. */
  failedRank?: number;
  /** How that rank ended, e.g. "exit code 1" or "signal 9 (Killed)". */
  how?: string;
  /** The launcher was asked to stop (its stop signal, or a SIGTERM) and passed it on to mpirun. */
  terminated?: boolean;
}

/**
 * Finds the failed rank in `mpirun`'s error report ("Process name: [[job,1],R]" + "Exit code: c", or
 * "process rank R … exited on signal n (Name)").
 */
export function parseMpirunFailure(text: string): { failedRank?: number; how?: string } {
  const signal = text.match(/process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+) \(([^)]*)\)/);
  if (signal) return { failedRank: Number(signal[1]), how: `signal ${signal[2]} (${signal[3]})` };
  const name = text.match(/Process name: \[\[\d+,\d+\],(\d+)\]\s*\n\s*(Exit code|Signal):\s*(.+)/);
  if (name) return { failedRank: Number(name[1]), how: `${name[2].toLowerCase()} ${name[3].trim()}` };
  const rank = text.match(/process rank (\d+)/);
  return rank ? { failedRank: Number(rank[1]) } : {};
}

/**
 * Starts `worldSize` ranks of this CLI invocation under `mpirun`, forwards their output, and resolves
 * to how the job ended (with the failed rank named from `mpirun`'s report). A missing `mpirun` is a
 * one-line error naming the packages to install.
 *
 * @example
 * ```ts
 * const r = await launchRanks(2); // runs `mpirun -np 2 deno run -A cli/main.ts <Deno.args>`
 * if (r.code !== 0) console.error(`rank ${r.failedRank} failed`);
 * ```
 */
export async function launchRanks(
  worldSize: number,
  opts: { rankArgv?: string[]; extra?: string[]; env?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<LaunchResult> {
  const argv = mpirunArgv({ worldSize, rankArgv: opts.rankArgv ?? selfArgv(), isRoot: isRoot(), extra: opts.extra });
  if (!onPath("mpirun")) {
    throw new Deno.errors.NotFound(
      `Cannot launch --world_size ${worldSize}: "mpirun" is not on PATH\n  hint: install Open MPI with \`apt-get install -y ${MPI_PACKAGES}\``,
    );
  }
  // With a stop signal, mpirun runs in a session of its own (setsid), so that a terminal's Ctrl-C reaches
  // this launcher only: mpirun would end the ranks 1 s after its own SIGINT, before their checkpoint.
  // The launcher then asks for a clean stop with SIGUSR2, which mpirun forwards to the ranks.
  const own = opts.signal !== undefined && onPath("setsid");
  const child = new Deno.Command(own ? "setsid" : argv[0], {
    args: own ? argv : argv.slice(1),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "piped",
    env: { ...opts.env, [LAUNCHER_PID_ENV]: String(Deno.pid) },
  }).spawn();
  // A stop request (`signal`) becomes SIGUSR2 to mpirun: every rank stops after the same step with a
  // checkpoint. Without `signal`, a SIGTERM to this launcher is passed on as SIGTERM (mpirun ends the job).
  let terminated = false;
  const forward = () => {
    terminated = true;
    try {
      child.kill(opts.signal ? "SIGUSR2" : "SIGTERM");
    } catch { /* already gone */ }
  };
  if (opts.signal) opts.signal.addEventListener("abort", forward, { once: true });
  else Deno.addSignalListener("SIGTERM", forward);
  try {
    // Pass the ranks' stderr through as it comes, keeping the tail to find the failed rank.
    let tail = "";
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) {
      await Deno.stderr.write(chunk);
      tail = (tail + dec.decode(chunk, { stream: true })).slice(-65536);
    }
    const status = await child.status;
    const code = status.code !== 0 ? status.code : status.signal ? 128 : 0;
    if (code === 0 || terminated) return terminated ? { code, terminated } : { code };
    return { code, ...parseMpirunFailure(tail) };
  } finally {
    if (opts.signal) opts.signal.removeEventListener("abort", forward);
    else Deno.removeSignalListener("SIGTERM", forward);
  }
}

/** The environment variable that gives ranks the launcher's pid (they stop if it dies). */
export const LAUNCHER_PID_ENV = "UER_TS_LAUNCHER_PID";

/** Whether an executable `name` is on PATH. */
function onPath(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (dir && Deno.statSync(`${dir}/${name}`).isFile) return true;
    } catch {
      // not there
    }
  }
  return false;
}
