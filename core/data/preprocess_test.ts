import assert from "node:assert/strict";
import {
  largestFirst,
  lineRanges,
  MIN_BYTES_PER_THREAD,
  parseShard,
  type PreprocessConfig,
  preprocessCorpus,
  threadCount,
  tokenCacheLimit,
} from "./preprocess.ts";
import { openDataset } from "./dataset_zarr.ts";
import { UsageError } from "../errors.ts";
import { refJsonl, refPath } from "../../tests/reference.ts";
import { parseOptions } from "../../cli/options.ts";

interface RefInstance {
  src: number[];
  pad_num: number;
  tgt_mlm: [number, number][];
  is_wrong_order: number;
  seg_pos: [number, number];
}

/** The CLI's options for these flags (seq 48, dup_factor 1 unless `argv` says otherwise), plus test knobs. */
async function config(
  corpusPath: string,
  datasetPath: string,
  argv: string[] = [],
  knobs: Partial<PreprocessConfig> = {},
): Promise<PreprocessConfig> {
  const opts = await parseOptions("preprocess", [
    ...[
      "--corpus_path",
      corpusPath,
      "--dataset_path",
      datasetPath,
      "--vocab_path",
      refPath("vocab/google_zh_vocab.txt"),
    ],
    ...["--target", "albert", "--seq_length", "48", "--dup_factor", "1", ...argv],
  ]);
  return { ...opts, ...knobs };
}

async function readAll(path: string) {
  const ds = await openDataset(path);
  const out = [];
  for (let i = 0; i < ds.count; i++) {
    const g = await ds.instance(i);
    out.push({ src: Array.from(g.src), tgt_mlm: g.tgtMlm, is_wrong_order: g.isWrongOrder, seg_pos: g.segPos });
  }
  return { ds, out };
}

const tmp = await Deno.makeTempDir();

for (const [dir, seqLength] of [["train_trace", 64], ["train_trace_docs", 48]] as const) {
  Deno.test(`preprocessCorpus() writes UER-py's instances for ${dir} (--processes_num 1 --seed 7 --dup_factor 1)`, async () => {
    const out = `${tmp}/${dir}`;
    const s = await preprocessCorpus(
      await config(refPath(`albert-tiny/${dir}/corpus.txt`), out, ["--seq_length", String(seqLength)]),
    );
    const ref = await refJsonl<RefInstance>(`albert-tiny/${dir}/instances.jsonl`);
    const { ds, out: got } = await readAll(out);
    assert.equal(s.count, ref.length);
    assert.deepEqual(
      got,
      ref.map((r) => ({ src: r.src, tgt_mlm: r.tgt_mlm, is_wrong_order: r.is_wrong_order, seg_pos: r.seg_pos })),
    );
    for (const r of ref) assert.equal(r.pad_num, seqLength - r.src.length);
    assert.equal(ds.attrs.seq_length, seqLength);
    assert.equal(ds.attrs.seed, 7);
    assert.equal(ds.attrs.token_dtype, "uint16");
    assert.match(ds.attrs.vocab_hash, /^[0-9a-f]{64}$/);
  });
}

Deno.test("preprocessCorpus() splits --processes_num N like UER-py and equals the N shards combined", async () => {
  const corpus = refPath("albert-tiny/train_trace_docs/corpus.txt");
  await preprocessCorpus(await config(corpus, `${tmp}/p2`, ["--processes_num", "2", "--dup_factor", "2"]));
  await preprocessCorpus(await config(corpus, `${tmp}/shards/a`, ["--shard", "1/2", "--dup_factor", "2"]));
  await preprocessCorpus(
    await config(corpus, `${tmp}/shards/b`, ["--shard", "0/2", "--dup_factor", "2"], {
      forceWorkers: true,
      threads: 1,
    }),
  );
  const p2 = await readAll(`${tmp}/p2`);
  const shards = await readAll(`${tmp}/shards`);
  assert.deepEqual(p2.ds.attrs.parts.map((p) => p.lines), lineRanges(240, 2));
  assert.deepEqual(shards.out, p2.out);
  assert.ok(p2.out.length > 0);
  // Worker 0 reads lines [0, 120) re-seeded with 7: the same as a single-process run on those lines.
  const head = (await Deno.readTextFile(corpus)).split("\n").slice(0, 120).join("\n") + "\n";
  await Deno.writeTextFile(`${tmp}/head.txt`, head);
  await preprocessCorpus(await config(`${tmp}/head.txt`, `${tmp}/head`, ["--dup_factor", "2"]));
  const headOut = (await readAll(`${tmp}/head`)).out;
  assert.deepEqual(p2.out.slice(0, headOut.length), headOut);
  assert.equal(p2.ds.attrs.parts[0].count, headOut.length);
});

Deno.test("preprocessCorpus() reads CRLF line ends and a BOM as UER-py's text mode does", async () => {
  const corpus = refPath("albert-tiny/train_trace_docs/corpus.txt");
  const text = await Deno.readTextFile(corpus);
  await Deno.writeTextFile(`${tmp}/crlf.txt`, "\ufeff" + text.replaceAll("\n", "\r\n"));
  await preprocessCorpus(await config(`${tmp}/crlf.txt`, `${tmp}/crlf`));
  const ref = await refJsonl<RefInstance>("albert-tiny/train_trace_docs/instances.jsonl");
  const got = (await readAll(`${tmp}/crlf`)).out;
  assert.deepEqual(got.map((g) => g.src), ref.map((r) => r.src));
});

Deno.test("preprocessCorpus() with --dynamic_masking stores unmasked instances and forces dup_factor 1", async () => {
  const corpus = refPath("albert-tiny/train_trace_docs/corpus.txt");
  await preprocessCorpus(await config(corpus, `${tmp}/dyn`, ["--dynamic_masking", "--dup_factor", "5"]));
  const { ds, out } = await readAll(`${tmp}/dyn`);
  assert.equal(ds.attrs.dup_factor, 1);
  assert.equal(ds.staticMasking, false);
  assert.ok(out.every((o) => o.tgt_mlm.length === 0 && !o.src.includes(103)));
});

Deno.test("preprocessCorpus() leaves nothing under --dataset_path when it fails, and replaces bad UTF-8 on request", async () => {
  const good = new TextEncoder().encode(await Deno.readTextFile(refPath("albert-tiny/train_trace_docs/corpus.txt")));
  const bad = new Uint8Array([...good, 0xff, 0x41, 0x0a]);
  await Deno.writeFile(`${tmp}/bad.txt`, bad);
  const before = [...Deno.readDirSync(tmp)].length;
  await assert.rejects(
    async () => preprocessCorpus(await config(`${tmp}/bad.txt`, `${tmp}/bad_ds`)),
    /line 241 is not valid UTF-8/,
  );
  assert.equal([...Deno.readDirSync(tmp)].length, before, "no dataset and no temporary folder left");
  const s = await preprocessCorpus(await config(`${tmp}/bad.txt`, `${tmp}/bad_ds`, ["--encoding_errors", "replace"]));
  assert.equal(s.replacedLines, 1);
  assert.equal((await openDataset(`${tmp}/bad_ds`)).attrs.replaced_lines, 1);
});

Deno.test("parseShard() and lineRanges() follow UER-py's split", () => {
  assert.deepEqual(parseShard("2/4"), { index: 2, count: 4 });
  assert.throws(() => parseShard("4/4"), /--shard "4\/4"/);
  assert.throws(() => parseShard("x"), UsageError);
  assert.deepEqual(lineRanges(10, 3), [[0, 3], [3, 6], [6, 10]]);
});

Deno.test("threadCount() puts UER-py's ranges on one thread per 4 MiB and core; largestFirst() orders them", () => {
  assert.equal(threadCount(2, 1_948_408), 1); // the 1.9 MB sample: a Worker would cost more than it saves
  assert.equal(threadCount(2, 15_587_264, 16), 2);
  assert.equal(threadCount(8, 9 * MIN_BYTES_PER_THREAD, 16), 8);
  assert.equal(threadCount(8, 3 * MIN_BYTES_PER_THREAD, 16), 3);
  assert.equal(threadCount(32, 14e9, 16), 16); // the model card's 32 processes on 16 cores
  assert.equal(threadCount(32, 14e9, 2), 2);
  assert.equal(threadCount(3, 0), 1);
  assert.deepEqual(largestFirst([5, 9, 5, 1, 9]), [1, 4, 0, 2, 3]);
  assert.equal(tokenCacheLimit(16, 128e9), Math.floor(128e9 / 2 / 16 / 1.6)); // 2.5 GB ranges on a 128 GB box
  assert.equal(tokenCacheLimit(2, 0), 64 << 20); // memory unknown
});

/** Every file under `dir` by relative path, with its bytes. */
function filesOf(dir: string, at = ""): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const e of Deno.readDirSync(`${dir}${at}`)) {
    const rel = `${at}/${e.name}`;
    if (e.isDirectory) { for (const [k, v] of filesOf(dir, rel)) out.set(k, v); }
    else out.set(rel, Deno.readFileSync(`${dir}${rel}`));
  }
  return out;
}

Deno.test("preprocessCorpus() gives the same dataset however ranges and scan are spread, with or without the id cache", async () => {
  const corpus = refPath("albert-tiny/train_trace_docs/corpus.txt");
  const base = ["--processes_num", "3", "--dup_factor", "2"];
  // one thread runs the 3 ranges and compresses their chunks
  await preprocessCorpus(await config(corpus, `${tmp}/t1`, base, { compressingThreads: 0 }));
  // This thread and a worker take the 3 ranges as they free up; both scan the corpus in 1 kB pieces;
  // each hands its chunks to a compressing thread of its own.
  await preprocessCorpus(
    await config(corpus, `${tmp}/t2`, base, { threads: 2, scanPieceBytes: 1000, compressingThreads: 2 }),
  );
  await preprocessCorpus(
    await config(corpus, `${tmp}/t3`, base, {
      threads: 2,
      forceWorkers: true,
      scanPieceBytes: 999,
      compressingThreads: 1,
    }),
  );
  // The same bytes on disk, whichever thread compressed a chunk.
  const files = filesOf(`${tmp}/t1`);
  assert.ok(files.size > 10);
  assert.deepEqual(filesOf(`${tmp}/t2`), files);
  assert.deepEqual(filesOf(`${tmp}/t3`), files);
  // No range keeps its token ids: the second pass reads and tokenizes again.
  await preprocessCorpus(await config(corpus, `${tmp}/t4`, base, { tokenCacheBytes: 0 }));
  const [a, b, c, d] = await Promise.all(["t1", "t2", "t3", "t4"].map((t) => readAll(`${tmp}/${t}`)));
  assert.deepEqual(a.ds.attrs.parts.map((p) => p.lines), lineRanges(240, 3));
  assert.ok(a.out.length > 0);
  assert.deepEqual(b.out, a.out);
  assert.deepEqual(c.out, a.out);
  assert.deepEqual(d.out, a.out);
  assert.deepEqual(b.ds.attrs.parts, a.ds.attrs.parts);
});

Deno.test({
  name: "preprocess_test cleanup",
  fn: async () => await Deno.remove(tmp, { recursive: true }),
});
