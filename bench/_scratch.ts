/**
 * A bench's temporary folders and child processes (PyTorch steps, UER-py, the CLI), cleaned up when the
 * bench is interrupted: on SIGINT or SIGTERM every child still running is sent SIGTERM, every folder made
 * by `scratchDir` and not yet dropped is removed, one line says so, and the bench exits 130 / 143. (A
 * terminal's Ctrl-C reaches the children itself; a SIGTERM to the bench alone, or a killed parent
 * script, would otherwise leave a python process running and its folder behind.)
 * @module
 */

const dirs = new Set<string>();
const children = new Set<Deno.ChildProcess>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    Deno.addSignalListener(signal, () => {
      for (const c of children) {
        try {
          c.kill("SIGTERM");
        } catch { /* already gone */ }
      }
      const removed: string[] = [];
      for (const d of dirs) {
        try {
          Deno.removeSync(d, { recursive: true });
          removed.push(d);
        } catch { /* already gone */ }
      }
      console.error(
        `interrupted by ${signal}` + (children.size ? `: stopped ${children.size} child process(es)` : "") +
          (removed.length ? `; removed ${removed.join(", ")}` : ""),
      );
      Deno.exit(code);
    });
  }
}

/** A new temporary folder (`Deno.makeTempDir`), removed if the bench is interrupted before `dropScratch`. */
export async function scratchDir(prefix?: string): Promise<string> {
  install();
  const dir = await Deno.makeTempDir(prefix ? { prefix } : {});
  dirs.add(dir);
  return dir;
}

/** Removes a `scratchDir` folder. */
export async function dropScratch(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true });
  dirs.delete(dir);
}

/** `new Deno.Command(cmd, opts).spawn()`, stopped if the bench is interrupted while it runs. */
export function spawnTracked(cmd: string | URL, opts: Deno.CommandOptions = {}): Deno.ChildProcess {
  install();
  const child = new Deno.Command(cmd, opts).spawn();
  children.add(child);
  const forget = () => children.delete(child);
  child.status.then(forget, forget);
  return child;
}

/**
 * `new Deno.Command(cmd, opts).output()` (stdout and stderr piped unless `opts` says otherwise), stopped
 * if the bench is interrupted while it runs.
 */
export async function outputOf(cmd: string | URL, opts: Deno.CommandOptions = {}): Promise<Deno.CommandOutput> {
  const child = spawnTracked(cmd, { stdout: "piped", stderr: "piped", ...opts });
  const piped = (opts.stdout ?? "piped") === "piped" && (opts.stderr ?? "piped") === "piped";
  if (piped) return await child.output();
  const [stdout, stderr] = await Promise.all([
    read(() => child.stdout, opts.stdout),
    read(() => child.stderr, opts.stderr),
  ]);
  const status = await child.status;
  return { ...status, stdout, stderr } as Deno.CommandOutput;
}

/** All of a piped stream (empty when `mode` did not pipe it: its getter would throw). */
async function read(stream: () => ReadableStream<Uint8Array>, mode: string | undefined): Promise<Uint8Array> {
  if ((mode ?? "piped") !== "piped") return new Uint8Array();
  return new Uint8Array(await new Response(stream()).arrayBuffer());
}
