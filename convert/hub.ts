/**
 * Model ids (`uer/albert-base-chinese-cluecorpussmall`, optionally `@<revision>`) resolved to a local
 * folder the way `huggingface_hub` does, so transformers, transformers.js-in-Node and uer-ts share one
 * cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, laid out as
 * ```
 * models--<org>--<name>/refs/<revision>          the commit hash a branch or tag points at
 * models--<org>--<name>/snapshots/<commit>/<file>  a link to ../../blobs/<etag>
 * models--<org>--<name>/blobs/<etag>             the file (its sha256 for LFS files, git blob id else)
 * ```
 * Offline (`HF_HUB_OFFLINE=1`, or no network) only the cache is read. Online, the files a model
 * folder needs are fetched from `$HF_ENDPOINT` (default the public hub) at `<endpoint>/<repo>/resolve/
 * <revision>/<file>`: a HEAD request gives the commit (`X-Repo-Commit`), the etag (`X-Linked-Etag` /
 * `ETag`) and the size; the body goes to `blobs/<etag>.incomplete` (resumed with a Range request after an
 * interrupted transfer, up to 5 tries), is checked (sha256 for a 64-hex etag, git's blob sha1 for a
 * 40-hex one, and the size), then renamed into place and linked from the snapshot — no partial file is
 * ever visible under a final name. `HF_TOKEN` is sent as a bearer token. Not browser compatible.
 * @module
 */
import { createHash } from "node:crypto";

/** A parsed model id. */
export interface ModelId {
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit (default `main`). */
  revision: string;
}

const ID = /^([A-Za-z0-9][\w.-]{0,95})\/([A-Za-z0-9][\w.-]{0,95})(?:@([\w.\/-]{1,200}))?$/;

/**
 * Parses `org/name[@revision]`; undefined when `s` is not of that form.
 *
 * @example
 * ```ts
 * parseModelId("uer/albert-base-chinese-cluecorpussmall@main"); // { repo: "uer/albert-...", revision: "main" }
 * ```
 */
export function parseModelId(s: string): ModelId | undefined {
  const m = ID.exec(s);
  if (!m || m[1].includes("..") || m[2].includes("..") || m[3]?.includes("..")) return undefined;
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? "main" };
}

/** The hub cache folder for an environment (`huggingface_hub`'s rule). */
export function hubCacheDir(env: (name: string) => string | undefined = (n) => Deno.env.get(n)): string {
  const cache = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  if (cache) return cache;
  const home = env("HF_HOME");
  if (home) return `${home}/hub`;
  const xdg = env("XDG_CACHE_HOME");
  return `${xdg ?? `${env("HOME") ?? "."}/.cache`}/huggingface/hub`;
}

/** Download progress of one file. */
export interface HubProgress {
  file: string;
  done: number;
  total: number;
  /** Bytes per second since this file's transfer started. */
  rate: number;
}

/** Options of `resolveModelId`. */
export interface HubOptions {
  cacheDir?: string;
  /** Default `$HF_ENDPOINT` or https://huggingface.co. */
  endpoint?: string;
  /** Default `$HF_HUB_OFFLINE` is 1/true/yes/on. */
  offline?: boolean;
  /** Default `$HF_TOKEN`. */
  token?: string;
  progress?: (p: HubProgress) => void;
  /** One-line notes (which files were fetched). */
  log?: (line: string) => void;
}

/** Files a model folder may need; the first group must have one of its names. */
const CONFIG = ["config.json"];
const WEIGHTS = [
  "model.safetensors",
  "model.safetensors.index.json",
  "pytorch_model.bin",
  "pytorch_model.bin.index.json",
];
const OPTIONAL = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

function repoDir(cache: string, repo: string): string {
  return `${cache}/models--${repo.replace("/", "--")}`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

const COMMIT = /^[0-9a-f]{40}$/;

/** The snapshot folder of `id` already in the cache, or undefined. */
export async function cachedSnapshot(id: ModelId, cacheDir = hubCacheDir(env)): Promise<string | undefined> {
  const dir = repoDir(cacheDir, id.repo);
  let commit = COMMIT.test(id.revision) ? id.revision : undefined;
  if (!commit) {
    try {
      commit = (await Deno.readTextFile(`${dir}/refs/${id.revision}`)).trim();
    } catch {
      return undefined;
    }
    if (!COMMIT.test(commit)) return undefined;
  }
  const snap = `${dir}/snapshots/${commit}`;
  if (!(await exists(`${snap}/config.json`))) return undefined;
  for (const w of WEIGHTS) if (await exists(`${snap}/${w}`)) return snap;
  return undefined;
}

/** An error of the hub, phrased for the user. */
function hubError(id: ModelId, what: string, hint: string): Error {
  return new TypeError(`Cannot load model "${id.repo}@${id.revision}": ${what}\n  hint: ${hint}`);
}

interface FileMeta {
  commit: string;
  etag: string;
  size: number;
  /** Where to GET the body. */
  url: string;
}

/**
 * Resolves a model id to a local folder: the cached snapshot, else (online) a download into the
 * cache. Errors name the id and say what to do.
 *
 * @example
 * ```ts
 * const dir = await resolveModelId({ repo: "uer/albert-base-chinese-cluecorpussmall", revision: "main" });
 * ```
 */
export async function resolveModelId(id: ModelId, opts: HubOptions = {}): Promise<string> {
  const cache = opts.cacheDir ?? hubCacheDir(env);
  const offline = opts.offline ?? /^(1|true|yes|on)$/i.test(env("HF_HUB_OFFLINE") ?? "");
  if (offline) {
    const snap = await cachedSnapshot(id, cache);
    if (snap) return snap;
    throw hubError(
      id,
      `not in the HF cache "${cache}" and HF_HUB_OFFLINE is set`,
      "download it once online (uer-ts, transformers or huggingface-cli share the cache), or pass a local path",
    );
  }
  const endpoint = (opts.endpoint ?? env("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, "");
  const token = opts.token ?? env("HF_TOKEN");
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const dir = repoDir(cache, id.repo);
  let commit: string | undefined;
  const fetched: string[] = [];
  const get = async (file: string, required: boolean): Promise<boolean> => {
    let meta: FileMeta | undefined;
    try {
      meta = await headFile(endpoint, id, file, headers);
    } catch (e) {
      // no network: the cached snapshot, if any, serves
      const snap = await cachedSnapshot(id, cache);
      if (snap) throw new CachedInstead(snap);
      throw hubError(
        id,
        `cannot reach ${endpoint} (${(e as Error).message.split("\n")[0]})`,
        "check the network, or set HF_HUB_OFFLINE=1 to use the cache",
      );
    }
    if (!meta) {
      if (required) return false;
      return false;
    }
    if (commit && meta.commit !== commit) {
      throw hubError(
        id,
        `"${file}" is at commit ${meta.commit}, the others at ${commit}`,
        "retry: the revision moved while downloading",
      );
    }
    commit = meta.commit;
    const blob = `${dir}/blobs/${meta.etag}`;
    const link = `${dir}/snapshots/${commit}/${file}`;
    if (!(await exists(blob))) {
      await download(meta, blob, file, headers, opts.progress);
      fetched.push(file);
    }
    await Deno.mkdir(`${dir}/snapshots/${commit}`, { recursive: true });
    if (!(await exists(link))) {
      const tmp = `${link}.tmp-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.symlink(`../../blobs/${meta.etag}`, tmp);
      await Deno.rename(tmp, link);
    }
    return true;
  };
  try {
    if (!(await get(CONFIG[0], true))) {
      throw hubError(
        id,
        `no config.json at ${endpoint}/${id.repo} (revision ${id.revision})`,
        "check the model id and revision",
      );
    }
    let weights = false;
    for (const w of WEIGHTS) {
      if (await get(w, false)) {
        weights = true;
        if (w.endsWith(".index.json")) {
          const index = JSON.parse(await Deno.readTextFile(`${dir}/snapshots/${commit}/${w}`));
          const shards = [...new Set(Object.values(index?.weight_map ?? {}))] as string[];
          for (const s of shards) {
            if (typeof s !== "string" || s.includes("/") || s.startsWith(".")) {
              throw hubError(id, `${w} names the shard ${JSON.stringify(s)}`, "report it to the model's authors");
            }
            if (!(await get(s, true))) {
              throw hubError(id, `shard "${s}" of ${w} is missing`, "report it to the model's authors");
            }
          }
        }
        break;
      }
    }
    if (!weights) {
      throw hubError(id, `none of ${WEIGHTS.join(", ")} in the repository`, "is it an ALBERT model repository?");
    }
    for (const f of OPTIONAL) await get(f, false);
  } catch (e) {
    if (e instanceof CachedInstead) {
      opts.log?.(`note: ${endpoint} not reachable; using the cached "${id.repo}@${id.revision}"`);
      return e.snapshot;
    }
    throw e;
  }
  if (!COMMIT.test(id.revision) && commit) {
    await Deno.mkdir(`${dir}/refs`, { recursive: true });
    const ref = `${dir}/refs/${id.revision}`;
    await Deno.mkdir(ref.slice(0, ref.lastIndexOf("/")), { recursive: true });
    const tmp = `${ref}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeTextFile(tmp, commit);
    await Deno.rename(tmp, ref);
  }
  if (fetched.length) opts.log?.(`fetched ${fetched.join(", ")} of "${id.repo}@${id.revision}" into ${cache}`);
  return `${dir}/snapshots/${commit}`;
}

class CachedInstead extends Error {
  constructor(readonly snapshot: string) {
    super("cached");
  }
}

/** HEAD of one file: its commit, etag, size and body URL; undefined on 404. */
async function headFile(
  endpoint: string,
  id: ModelId,
  file: string,
  headers: Record<string, string>,
): Promise<FileMeta | undefined> {
  let url = `${endpoint}/${id.repo}/resolve/${encodeURIComponent(id.revision)}/${file}`;
  for (let hop = 0; hop < 6; hop++) {
    const r = await fetch(url, {
      method: "HEAD",
      headers: { ...headers, "accept-encoding": "identity" },
      redirect: "manual",
    });
    await r.body?.cancel();
    if (r.status === 404) return undefined;
    if (r.status === 401 || r.status === 403) {
      throw hubError(
        id,
        `access to "${file}" denied (HTTP ${r.status})`,
        "set HF_TOKEN to a token that may read the repository",
      );
    }
    const commit = r.headers.get("x-repo-commit");
    const etag = (r.headers.get("x-linked-etag") ?? r.headers.get("etag") ?? "").replace(/^W\//, "").replace(/"/g, "");
    const location = r.headers.get("location");
    if (r.status >= 300 && r.status < 400 && location && !commit) {
      url = new URL(location, url).href; // a renamed repository: follow to the new name
      continue;
    }
    if (!(r.ok || (r.status >= 300 && r.status < 400))) {
      throw new Error(`HEAD ${url}: HTTP ${r.status}`);
    }
    if (!commit || !COMMIT.test(commit) || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(etag)) {
      throw hubError(id, `the server's answer for "${file}" lacks X-Repo-Commit or an ETag`, "check HF_ENDPOINT");
    }
    const size = Number(r.headers.get("x-linked-size") ?? r.headers.get("content-length") ?? NaN);
    return { commit, etag, size, url: location ? new URL(location, url).href : url };
  }
  throw hubError(id, `too many redirects for "${file}"`, "check HF_ENDPOINT");
}

/** Downloads into `<blob>.incomplete` (resuming), checks, renames to `blob`. */
async function download(
  meta: FileMeta,
  blob: string,
  file: string,
  headers: Record<string, string>,
  progress?: (p: HubProgress) => void,
): Promise<void> {
  await Deno.mkdir(blob.slice(0, blob.lastIndexOf("/")), { recursive: true });
  const part = `${blob}.incomplete`;
  const t0 = performance.now();
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    let have = 0;
    try {
      have = (await Deno.stat(part)).size;
    } catch { /* none yet */ }
    if (Number.isFinite(meta.size) && have > meta.size) {
      await Deno.remove(part);
      have = 0;
    }
    try {
      const r = await fetch(meta.url, {
        headers: { ...headers, "accept-encoding": "identity", ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
      });
      if (r.status === 416 && have === meta.size) {
        await r.body?.cancel();
        break; // already whole
      }
      if (!(r.status === 200 || r.status === 206)) {
        await r.body?.cancel();
        throw new Error(`GET ${file}: HTTP ${r.status}`);
      }
      if (r.status === 200) have = 0; // the server ignored the range: start over
      using f = await Deno.open(part, { write: true, create: true, truncate: have === 0, append: have > 0 });
      let done = have;
      let last = 0;
      for await (const chunk of r.body!) {
        let off = 0;
        while (off < chunk.length) off += await f.write(chunk.subarray(off));
        done += chunk.length;
        const now = performance.now();
        if (progress && now - last > 100) {
          last = now;
          progress({ file, done, total: meta.size, rate: done / Math.max(1e-3, (now - t0) / 1000) });
        }
      }
      progress?.({ file, done, total: meta.size, rate: done / Math.max(1e-3, (performance.now() - t0) / 1000) });
      lastError = undefined;
      break;
    } catch (e) {
      lastError = e; // an interrupted transfer: resume from what is on disk
    }
  }
  if (lastError) {
    throw new TypeError(
      `Cannot download "${file}": ${
        (lastError as Error).message.split("\n")[0]
      } (5 tries)\n  hint: run again to resume`,
    );
  }
  const size = (await Deno.stat(part)).size;
  const ok = await verify(part, meta.etag, size);
  if ((Number.isFinite(meta.size) && size !== meta.size) || !ok) {
    await Deno.remove(part);
    throw new TypeError(
      `Cannot download "${file}": its content does not match the server's ${
        meta.etag.length === 64 ? "sha256" : "git hash"
      } ${meta.etag} (${size} bytes)\n  hint: run again; if it persists, the mirror at HF_ENDPOINT serves a corrupt file`,
    );
  }
  await Deno.rename(part, blob);
}

/** sha256 (64-hex etag, LFS files) or git's blob sha1 (40-hex etag) of the file. */
async function verify(path: string, etag: string, size: number): Promise<boolean> {
  const h = createHash(etag.length === 64 ? "sha256" : "sha1");
  if (etag.length === 40) h.update(`blob ${size}\0`);
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex") === etag;
}

/**
 * A progress printer for stderr on a terminal (one line per file, redrawn: bytes, rate, ETA);
 * undefined when stderr is not a terminal.
 */
export function ttyProgress(): ((p: HubProgress) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const enc = new TextEncoder();
  return (p) => {
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const eta = p.rate > 0 && Number.isFinite(p.total) ? Math.max(0, (p.total - p.done) / p.rate) : NaN;
    const end = p.done >= p.total ? "\n" : "";
    Deno.stderr.writeSync(
      enc.encode(
        `\r${p.file}: ${mb(p.done)}/${mb(p.total)} MB, ${mb(p.rate)} MB/s${
          Number.isFinite(eta) && !end ? `, ${eta.toFixed(0)} s left` : ""
        }\x1b[K${end}`,
      ),
    );
  };
}
