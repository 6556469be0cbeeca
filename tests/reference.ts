/**
 * Where the UER-py reference data lives for tests and benches: `../shared/reference/` beside the
 * repository (never copied into it; see ../shared/reference/README.md).
 * @module
 */

/** Absolute path of a file under `../shared/reference/`. */
export function refPath(rel: string): string {
  return new URL(`../../shared/reference/${rel}`, import.meta.url).pathname;
}

/** Reads and parses a JSON reference file. */
export async function refJson<T = unknown>(rel: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(refPath(rel))) as T;
}

/** Reads a JSON-lines reference file. */
export async function refJsonl<T = unknown>(rel: string): Promise<T[]> {
  const text = await Deno.readTextFile(refPath(rel));
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as T);
}
