/**
 * How every subcommand stops when asked to: Ctrl-C (SIGINT), SIGTERM, or the death of the wrapper
 * that started it (`npx` = `npm exec` → `sh -c deno …` → `node …/.bin/deno` → this process: killing
 * `npx` leaves the chain below it running, re-parented, so the chain is watched once a second).
 * By default the process removes its temporary outputs (core/io/atomic.ts registers them), says so,
 * and exits 130 (SIGINT) or 143 (SIGTERM, dead parent). A subcommand that can stop cleanly (pretrain:
 * after the current step, with a checkpoint) takes the signal with `graceful()`; a second interrupt
 * then exits at once, printing the subcommand's last words. Under mpirun, a rank also takes SIGUSR2 (which
 * mpirun forwards to its ranks; the `--world_size N` launcher sends it when interrupted) as a request to
 * stop cleanly, and stops the same way when the launcher that started it dies. Not browser compatible
 * (signals, /proc).
 * @module
 */
import { processAlive, removeActiveTempsSync } from "../core/io/atomic.ts";
import { LAUNCHER_PID_ENV } from "../core/parallel/launch.ts";

/** A subcommand that stopped because it was interrupted: the CLI prints `message` and exits with `code`. */
export class Interrupted extends Error {
  readonly code: number;
  constructor(message: string, code: number) {
    super(message);
    this.name = "Interrupted";
    this.code = code;
  }
}

/** Why the process is asked to stop. */
export type StopReason = "SIGINT" | "SIGTERM" | "parent" | "launcher" | "request";

/**
 * The exit code of a process stopped for `reason`: 128 + the signal number, as shells report it
 * (a dead parent counts as SIGTERM); 0 for a rank that stopped on mpirun's request (SIGUSR2), so that
 * mpirun ends the job normally and the launcher reports the stop.
 */
export function exitCodeFor(reason: StopReason): number {
  return reason === "SIGINT" ? 130 : reason === "request" ? 0 : 143;
}

/** How the reason reads in messages. */
export function describe(reason: StopReason): string {
  return {
    SIGINT: "SIGINT",
    SIGTERM: "SIGTERM",
    parent: "the death of its parent process (npx)",
    launcher: "the death of the launcher that started the ranks",
    request: "a stop request (SIGUSR2 from mpirun)",
  }[reason];
}

/** A process's parent pid (Linux /proc), or null when it is gone or unreadable. */
function parentOf(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

function commandLine(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
  } catch {
    return [];
  }
}

/** Whether `argv` is one of the processes `npx deno …` puts between the user and deno. */
export function isWrapper(argv: string[]): boolean {
  const joined = argv.join(" ");
  if (/^npm( exec)?\b|^npx\b|npm-cli\.js|npx-cli\.js/.test(joined)) return true; // npm exec (its process title)
  const exe = (argv[0] ?? "").split("/").pop()!;
  if (/^(sh|bash|dash)$/.test(exe) && argv[1] === "-c" && /^'?deno'?\s/.test(argv[2] ?? "")) return true;
  return /^node(js)?$/.test(exe) && /node_modules\/(\.bin\/deno|deno\/)/.test(argv[1] ?? "");
}

/** The wrapper processes above this one (pid and parent), nearest first; empty when deno runs directly. */
export function wrapperChain(): { pid: number; ppid: number }[] {
  const chain: { pid: number; ppid: number }[] = [];
  let pid = Deno.ppid;
  while (pid > 1 && chain.length < 8 && isWrapper(commandLine(pid))) {
    const ppid = parentOf(pid);
    if (ppid === null) break;
    chain.push({ pid, ppid });
    pid = ppid;
  }
  return chain;
}

class Interrupts {
  #controller = new AbortController();
  #lastWords: (() => string[]) | null = null;
  #reason: StopReason | undefined;

  /** Aborted by the first interrupt of a graceful subcommand. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the process was interrupted, if it was. */
  get reason(): StopReason | undefined {
    return this.#reason;
  }

  /**
   * The calling subcommand stops on its own when `signal` aborts; a second interrupt exits at once,
   * after printing `lastWords()` (e.g. the last checkpoint and the command that resumes it).
   */
  graceful(lastWords: () => string[]): AbortSignal {
    this.#lastWords = lastWords;
    return this.#controller.signal;
  }

  #fire(reason: StopReason): void {
    if (this.#lastWords && !this.#controller.signal.aborted) {
      this.#reason = reason;
      this.#controller.abort();
      console.error(
        `interrupted by ${describe(reason)}: stopping after the current step` +
          (reason === "SIGINT" ? " (Ctrl-C again stops at once)" : ""),
      );
      return;
    }
    this.#reason ??= reason;
    const removed = removeActiveTempsSync();
    const lines = this.#lastWords?.() ?? [];
    console.error(
      `interrupted by ${describe(reason)}` + (removed.length ? `: removed ${removed.join(", ")}` : ""),
    );
    for (const l of lines) console.error(l);
    Deno.exit(exitCodeFor(this.#reason));
  }

  /** Starts listening (signals, and the wrapper chain once a second); returns the function that stops it. */
  install(): () => void {
    const onInt = () => this.#fire("SIGINT");
    const onTerm = () => this.#fire("SIGTERM");
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    const rank = Deno.env.get("OMPI_COMM_WORLD_SIZE") !== undefined;
    const onUsr1 = () => this.#fire("request");
    if (rank) Deno.addSignalListener("SIGUSR2", onUsr1);
    const chain = wrapperChain();
    const launcher = rank ? Number(Deno.env.get(LAUNCHER_PID_ENV) ?? 0) : 0;
    let watching = chain.length > 0 || launcher > 0;
    const timer = !watching ? undefined : setInterval(() => {
      if (!watching) return;
      if (chain.some((w) => parentOf(w.pid) !== w.ppid)) {
        watching = false;
        this.#fire("parent");
      } else if (launcher > 0 && !processAlive(launcher)) {
        watching = false;
        this.#fire("launcher");
      }
    }, 1000);
    if (timer !== undefined) Deno.unrefTimer(timer);
    return () => {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
      if (rank) Deno.removeSignalListener("SIGUSR2", onUsr1);
      if (timer !== undefined) clearInterval(timer);
    };
  }
}

/** This process's interrupts. */
export const interrupts = new Interrupts();
