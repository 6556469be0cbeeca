/**
 * Atomic file and folder writes: everything is written under a temporary sibling name and renamed
 * into place, so a killed process never leaves a partial file under the final name (DESIGN.md §4).
 * Temporary names carry the writer's pid (`.<name>.tmp-<pid>-<random>`): the temps of this process
 * are registered while they exist, so an interrupted CLI removes them before it exits
 * (`removeActiveTempsSync`), and the temps a dead process left behind are found and removed by the
 * next run (`removeStaleTemps`). Not browser compatible: this is the file-system edge of `core/`.
 * @module
 */
import process from "node:process";

/** Temporary paths of this process that exist now (removed on interruption). */
const active = new Set<string>();

/** A temporary sibling of `path`, unique to this process and call (`.<name>.tmp-<pid>-<8 hex>`). */
export function tempSibling(path: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  return `${dir}.${base}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Creates the folder that will hold `path` (and its parents), as `mkdir -p` would. */
export async function ensureParentDir(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
}

/**
 * Runs `body` with a fresh temporary sibling of `path`, registered for removal if the process is
 * interrupted, and removed if `body` throws. `body` renames it into place (or removes it).
 *
 * @example
 * ```ts
 * await withTempSibling("out/model.bin", async (tmp) => { await Deno.writeFile(tmp, bytes); await Deno.rename(tmp, "out/model.bin"); });
 * ```
 */
export async function withTempSibling<T>(path: string, body: (tmp: string) => Promise<T>): Promise<T> {
  await ensureParentDir(path);
  const tmp = tempSibling(path);
  active.add(tmp);
  try {
    return await body(tmp);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  } finally {
    active.delete(tmp);
  }
}

/**
 * Writes `data` to `path` atomically (temp file + rename); missing parent folders are created.
 *
 * @example
 * ```ts
 * await writeFileAtomic("out/model.safetensors", bytes);
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await withTempSibling(path, async (tmp) => {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  });
}

/**
 * Builds a directory atomically: `fill` writes into a temporary sibling directory, which is then
 * renamed to `path` (missing parent folders are created). With `overwrite`, an existing `path` is
 * replaced only after `fill` succeeded.
 *
 * @example
 * ```ts
 * await writeDirAtomic("models/hf", async (tmp) => { await Deno.writeTextFile(`${tmp}/config.json`, "{}"); });
 * ```
 */
export async function writeDirAtomic(
  path: string,
  fill: (tmpDir: string) => Promise<void>,
  opts: { overwrite?: boolean } = {},
): Promise<void> {
  await withTempSibling(path, async (tmp) => {
    await Deno.mkdir(tmp, { recursive: true });
    await fill(tmp);
    if (opts.overwrite && (await exists(path))) {
      const old = tmp + ".old";
      active.add(old);
      try {
        // No await between the two renames: an interruption never finds the output moved away.
        Deno.renameSync(path, old);
        try {
          Deno.renameSync(tmp, path);
        } catch (e) {
          Deno.renameSync(old, path); // put the earlier output back
          throw e;
        }
        await Deno.remove(old, { recursive: true });
      } finally {
        active.delete(old);
      }
    } else {
      await Deno.rename(tmp, path);
    }
  });
}

/**
 * Removes this process's temporary files and folders now (an interrupted CLI calls it before it
 * exits); returns the paths removed.
 */
export function removeActiveTempsSync(): string[] {
  const removed: string[] = [];
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const tmp of active) {
    // An asynchronous write still in flight (a worker thread, a pending mkdir or file write) may put a file
    // back into the folder, or the folder itself: look again a little later, a few times.
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        Deno.removeSync(tmp, { recursive: true });
        if (!removed.includes(tmp)) removed.push(tmp);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) continue;
      }
      Atomics.wait(pause, 0, 0, 25);
      try {
        Deno.lstatSync(tmp);
      } catch {
        break; // gone for good
      }
    }
  }
  active.clear();
  return removed;
}

/** Whether process `pid` is running (signal 0 probes without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code !== "ESRCH";
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Removes the temporary siblings that processes no longer running left beside `path` (a write
 * killed by SIGKILL, a crash), and returns their names with the dead pid. `family` also covers the
 * names `path` starts (`<path>-<step>`, `<path>.metrics.jsonl`, …: a pretraining run's files).
 *
 * @example
 * ```ts
 * for (const { name, pid } of await removeStaleTemps("out/dataset")) console.error(`removed ${name} (pid ${pid})`);
 * ```
 */
export async function removeStaleTemps(
  path: string,
  opts: { family?: boolean } = {},
): Promise<{ name: string; pid: number }[]> {
  path = path.replace(/(.)\/+$/, "$1");
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  const re = new RegExp(
    `^\\.${escapeRegExp(base)}${opts.family ? "(?:-\\d+|\\.[^/]+)?" : ""}\\.tmp-(\\d+)-[0-9a-f]{8}(?:\\.old)?$`,
  );
  const removed: { name: string; pid: number }[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed; // no folder yet: nothing stale
  }
  for (const e of entries) {
    const m = re.exec(e.name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === Deno.pid || processAlive(pid)) continue;
    const name = path.slice(0, path.length - base.length) + e.name; // as the user wrote the folder
    await Deno.remove(name || e.name, { recursive: true }).catch(() => {});
    removed.push({ name, pid });
  }
  return removed;
}

/** Whether a path exists (file or directory). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
