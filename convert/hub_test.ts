import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { refPath } from "../tests/reference.ts";
import { cachedSnapshot, hubCacheDir, parseModelId, resolveModelId } from "./hub.ts";
import { loadModel } from "./mod.ts";

// A local server speaking the hub's `resolve/<revision>/<file>` protocol (HEAD with X-Repo-Commit and
// ETag; LFS files answered with a 302 to a CDN path, their ETag the sha256; others the git blob sha1).

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const HF = refPath("albert-tiny/hf");
const FILES = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"];

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitSha1 = (b: Uint8Array) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

interface Served {
  url: string;
  requests: { method: string; path: string; range: string | null }[];
  /** Files whose next body is cut after half its bytes. */
  cut: Set<string>;
  /** Files served with other bytes than their ETag says. */
  corrupt: Set<string>;
  close(): Promise<void>;
}

async function serve(): Promise<Served> {
  const content = new Map<string, Uint8Array>();
  for (const f of FILES) content.set(f, await Deno.readFile(`${HF}/${f}`));
  const lfs = (f: string) => f.endsWith(".safetensors");
  const etag = (f: string) => (lfs(f) ? sha256(content.get(f)!) : gitSha1(content.get(f)!));
  const s: Omit<Served, "url" | "close"> = { requests: [], cut: new Set(), corrupt: new Set() };
  const body = (f: string, range: string | null): Response => {
    let b = content.get(f)!;
    if (s.corrupt.has(f)) b = b.map((x, i) => (i === 100 ? x ^ 1 : x));
    let start = 0;
    const m = range && /^bytes=(\d+)-$/.exec(range);
    if (m) start = Number(m[1]);
    const part = b.subarray(start);
    const headers = { "content-length": String(part.length) } as Record<string, string>;
    if (s.cut.has(f)) {
      s.cut.delete(f);
      const half = part.subarray(0, part.length >> 1);
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(half);
            setTimeout(() => c.error(new Error("connection reset")), 10);
          },
        }),
        { status: m ? 206 : 200, headers },
      );
    }
    return new Response(part as Uint8Array<ArrayBuffer>, { status: m ? 206 : 200, headers });
  };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const u = new URL(req.url);
    s.requests.push({ method: req.method, path: u.pathname, range: req.headers.get("range") });
    const cdn = /^\/cdn\/(.+)$/.exec(u.pathname);
    if (cdn) return body(cdn[1], req.headers.get("range"));
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
    if (!m || m[1] !== "org/tiny" || !(m[2] === "main" || m[2] === COMMIT) || !content.has(m[3])) {
      return new Response("Entry not found", { status: 404 });
    }
    const f = m[3];
    const headers: Record<string, string> = { "x-repo-commit": COMMIT };
    if (lfs(f)) {
      headers["x-linked-etag"] = `"${etag(f)}"`;
      headers["x-linked-size"] = String(content.get(f)!.length);
      headers.location = `/cdn/${f}`;
      return new Response(null, { status: 302, headers });
    }
    headers.etag = `"${etag(f)}"`;
    if (req.method === "HEAD") {
      headers["content-length"] = String(content.get(f)!.length);
      return new Response(null, { status: 200, headers });
    }
    return body(f, req.headers.get("range"));
  });
  const addr = server.addr as Deno.NetAddr;
  return { ...s, url: `http://127.0.0.1:${addr.port}`, close: () => server.shutdown() } as Served;
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(`${d}/${e.name}`, r);
      else out.push(r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

Deno.test("parseModelId() and hubCacheDir() follow huggingface_hub", () => {
  assert.deepEqual(parseModelId("uer/albert-base-chinese-cluecorpussmall"), {
    repo: "uer/albert-base-chinese-cluecorpussmall",
    revision: "main",
  });
  assert.deepEqual(parseModelId("a/b@v1.0"), { repo: "a/b", revision: "v1.0" });
  for (const bad of ["a", "/abs/path", "a/b/c", "../x/y", "a/..", "./a"]) {
    assert.equal(parseModelId(bad), undefined, bad);
  }
  const env = (o: Record<string, string>) => (n: string) => o[n];
  assert.equal(hubCacheDir(env({ HF_HUB_CACHE: "/c", HF_HOME: "/h", HOME: "/u" })), "/c");
  assert.equal(hubCacheDir(env({ HF_HOME: "/h", HOME: "/u" })), "/h/hub");
  assert.equal(hubCacheDir(env({ HOME: "/u" })), "/u/.cache/huggingface/hub");
});

Deno.test("a model id downloads into the HF cache layout (refs, snapshots -> blobs), then loads offline", async () => {
  const cache = await Deno.makeTempDir();
  const srv = await serve();
  try {
    const seen: string[] = [];
    const dir = await resolveModelId(
      { repo: "org/tiny", revision: "main" },
      { cacheDir: cache, endpoint: srv.url, offline: false, progress: (p) => seen.push(p.file) },
    );
    assert.equal(dir, `${cache}/models--org--tiny/snapshots/${COMMIT}`);
    assert.equal(await Deno.readTextFile(`${cache}/models--org--tiny/refs/main`), COMMIT);
    for (const f of FILES) {
      assert.deepEqual(await Deno.readFile(`${dir}/${f}`), await Deno.readFile(`${HF}/${f}`), f);
      assert.ok((await Deno.lstat(`${dir}/${f}`)).isSymlink, `${f} is a link into blobs/`);
    }
    const st = await Deno.readFile(`${HF}/model.safetensors`);
    assert.ok((await Deno.stat(`${cache}/models--org--tiny/blobs/${sha256(st)}`)).isFile);
    assert.ok(!(await listTree(cache)).some((f) => f.includes("incomplete") || f.includes(".tmp-")));
    assert.ok(seen.includes("model.safetensors"));
    // the LFS file came from the redirect target
    assert.ok(srv.requests.some((r) => r.method === "GET" && r.path === "/cdn/model.safetensors"));
    // offline: no request, same folder; by branch and by commit
    const before = srv.requests.length;
    assert.equal(await resolveModelId({ repo: "org/tiny", revision: "main" }, { cacheDir: cache, offline: true }), dir);
    assert.equal(await resolveModelId({ repo: "org/tiny", revision: COMMIT }, { cacheDir: cache, offline: true }), dir);
    assert.equal(srv.requests.length, before);
    await assert.rejects(
      () => resolveModelId({ repo: "org/other", revision: "main" }, { cacheDir: cache, offline: true }),
      /"org\/other@main": not in the HF cache .* HF_HUB_OFFLINE is set\n {2}hint:/,
    );
    // loadModel takes the id (HF_HUB_CACHE / HF_HUB_OFFLINE from the environment) and equals the folder
    const prev = { c: Deno.env.get("HF_HUB_CACHE"), o: Deno.env.get("HF_HUB_OFFLINE") };
    Deno.env.set("HF_HUB_CACHE", cache);
    Deno.env.set("HF_HUB_OFFLINE", "1");
    try {
      const m = await loadModel("org/tiny");
      const ref = await loadModel(HF);
      assert.equal(m.path, dir);
      for (const [k, t] of ref.params) assert.deepEqual(m.params.get(k)!.data, t.data, k);
    } finally {
      prev.c === undefined ? Deno.env.delete("HF_HUB_CACHE") : Deno.env.set("HF_HUB_CACHE", prev.c);
      prev.o === undefined ? Deno.env.delete("HF_HUB_OFFLINE") : Deno.env.set("HF_HUB_OFFLINE", prev.o);
    }
  } finally {
    await srv.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("an interrupted transfer resumes with a Range request; a wrong hash leaves no file; 404 names the id", async () => {
  const cache = await Deno.makeTempDir();
  const srv = await serve();
  const opts = { cacheDir: cache, endpoint: srv.url, offline: false };
  try {
    srv.cut.add("model.safetensors");
    const dir = await resolveModelId({ repo: "org/tiny", revision: "main" }, opts);
    assert.deepEqual(await Deno.readFile(`${dir}/model.safetensors`), await Deno.readFile(`${HF}/model.safetensors`));
    const gets = srv.requests.filter((r) => r.path === "/cdn/model.safetensors");
    assert.equal(gets.length, 2);
    assert.equal(gets[0].range, null);
    assert.match(gets[1].range!, /^bytes=\d+-$/);
    assert.ok(Number(gets[1].range!.slice(6, -1)) > 0, "resumed past 0");

    const cache2 = await Deno.makeTempDir();
    try {
      srv.corrupt.add("model.safetensors");
      await assert.rejects(
        () => resolveModelId({ repo: "org/tiny", revision: "main" }, { ...opts, cacheDir: cache2 }),
        /Cannot download "model.safetensors": its content does not match the server's sha256 [0-9a-f]{64}/,
      );
      const left = await listTree(cache2);
      assert.ok(!left.some((f) => f.includes("incomplete") || f.endsWith("model.safetensors")), left.join(", "));
      srv.corrupt.clear();
      srv.cut.add("vocab.txt"); // a small git-hashed file resumed too
      const d2 = await resolveModelId({ repo: "org/tiny", revision: "main" }, { ...opts, cacheDir: cache2 });
      assert.deepEqual(await Deno.readFile(`${d2}/vocab.txt`), await Deno.readFile(`${HF}/vocab.txt`));
    } finally {
      await Deno.remove(cache2, { recursive: true });
    }
    await assert.rejects(
      () => resolveModelId({ repo: "org/missing", revision: "main" }, opts),
      /"org\/missing@main": no config.json at .*\n {2}hint: check the model id and revision/,
    );
    assert.equal(await cachedSnapshot({ repo: "org/missing", revision: "main" }, cache), undefined);
  } finally {
    await srv.close();
    await Deno.remove(cache, { recursive: true });
  }
});
