/**
 * Atomic file and folder writes: everything is written under a temporary sibling name and renamed
 * into place, so a killed process never leaves a partial file under the final name (DESIGN.md §4).
 * Not browser compatible: this is the file-system edge of `core/`.
 * @module
 */

/** A temporary sibling of `path`, unique to this process and call. */
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
 * Writes `data` to `path` atomically (temp file + rename); missing parent folders are created.
 *
 * @example
 * ```ts
 * await writeFileAtomic("out/model.safetensors", bytes);
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await ensureParentDir(path);
  const tmp = tempSibling(path);
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Builds a directory atomically: `fill` writes into a temporary sibling directory, which is then
 * renamed to `path` (missing parent folders are created). With `overwrite`, an existing `path` is replaced only after `fill` succeeded.
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
  await ensureParentDir(path);
  const tmp = tempSibling(path);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    if (opts.overwrite && (await exists(path))) {
      const old = tempSibling(path) + ".old";
      await Deno.rename(path, old);
      await Deno.rename(tmp, path);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(tmp, path);
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
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
