import assert from "node:assert/strict";
import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";
import type { AlbertInstance } from "./albert_dataset.ts";
import {
  chunkRowsFor,
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  type DatasetAttributes,
  openDataset,
  partLayout,
  PartWriter,
  writeDatasetAttributes,
} from "./dataset_zarr.ts";
import { PyRandom } from "./py_random.ts";
import {
  AlbertLoader,
  type Batch,
  type InstanceSource,
  type LoaderState,
  type PackedInstances,
  packInstances,
} from "../train/loader.ts";

function randomInstances(n: number, seqLength: number, seed: number): AlbertInstance[] {
  const r = new PyRandom(seed);
  return Array.from({ length: n }, () => {
    const len = r.randint(4, seqLength);
    const a = r.randint(2, len - 1);
    const src = Array.from({ length: len }, () => r.randint(104, 21127));
    const pos = [...new Set(Array.from({ length: r.randint(1, 3) }, () => r.randint(1, len - 1)))].sort((x, y) =>
      x - y
    );
    return {
      src,
      tgtMlm: pos.map((p) => [p, r.randint(104, 21127)] as [number, number]),
      isWrongOrder: r.randint(0, 1) as 0 | 1,
      segPos: [a, len],
    };
  });
}

async function writeDataset(dir: string, parts: AlbertInstance[][], extra: Partial<DatasetAttributes>, seq = 20) {
  const layout = { ...partLayout(seq, 21128, true), chunkRows: 16 };
  const counts: number[] = [];
  for (let k = 0; k < parts.length; k++) {
    const w = await PartWriter.create(`${dir}/parts/${k}`, layout);
    for (const ins of parts[k]) await w.append(ins);
    counts.push(await w.close());
  }
  const attrs = {
    format: DATASET_FORMAT,
    format_version: DATASET_FORMAT_VERSION,
    data_processor: "albert",
    seq_length: seq,
    dynamic_masking: false,
    chunk_rows: 16,
    max_predictions: 3,
    vocab_hash: "h",
    shard: null,
    replaced_lines: 0,
    count: counts.reduce((a, b) => a + b, 0),
    parts: counts.map((c, k) => ({ path: `parts/${k}`, count: c, lines: [k, k + 1] })),
    ...extra,
  } as unknown as DatasetAttributes;
  await writeDatasetAttributes(dir, attrs);
}

function plain(ins: AlbertInstance) {
  return { src: ins.src, tgt: ins.tgtMlm, w: ins.isWrongOrder, seg: ins.segPos };
}

Deno.test("PartWriter + openDataset round-trip instances across chunks and parts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const parts = [randomInstances(37, 20, 1), randomInstances(0, 20, 2), randomInstances(16, 20, 3)];
    await writeDataset(dir, parts, {});
    const ds = await openDataset(dir);
    const all = parts.flat();
    assert.equal(ds.count, all.length);
    for (const i of [0, 15, 16, 36, 37, 52, 20, 3]) {
      const g = await ds.instance(i);
      assert.deepEqual(
        { src: Array.from(g.src), tgt: g.tgtMlm, w: g.isWrongOrder, seg: g.segPos },
        plain(all[i]),
        `#${i}`,
      );
    }
    assert.equal((await ds.instances(30, 40)).length, 10);
    await assert.rejects(() => ds.instance(all.length), RangeError);
    // Plain zarr readers see the arrays with their final shapes.
    const arr = await zarr.open.v3(zarr.root(new FileSystemStore(dir)).resolve("parts/0/src"), { kind: "array" });
    assert.deepEqual(arr.shape, [37, 20]);
    assert.equal(arr.dtype, "uint16");
    // format 2: zstd chunks; src holds the original ids, mlm_input what is fed at mlm_pos
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/parts/0/src/zarr.json`));
    assert.deepEqual(meta.codecs.map((c: { name: string }) => c.name), ["bytes", "zstd"]);
    assert.equal(meta.fill_value, 0);
    const src = (await zarr.get(arr, null)).data as Uint16Array;
    const root = zarr.root(new FileSystemStore(dir));
    const input = (await zarr.get(await zarr.open.v3(root.resolve("parts/0/mlm_input"), { kind: "array" }), null))
      .data as Uint16Array;
    const x = parts[0][3];
    const original = x.src.slice();
    x.tgtMlm!.forEach(([p, id]) => (original[p] = id));
    assert.deepEqual(Array.from(src.subarray(3 * 20, 3 * 20 + x.src.length)), original);
    assert.deepEqual(Array.from(input.subarray(3 * 3, 3 * 3 + x.tgtMlm!.length)), x.tgtMlm!.map(([p]) => x.src[p]));
    for (const g of ["", "parts", "parts/0"]) {
      assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/${g}/zarr.json`)).node_type, "group", g);
    }
    const s = await ds.summary();
    assert.equal(s.count, all.length);
    let bytes = 0;
    const walk = (d: string) => {
      for (const e of Deno.readDirSync(d)) {
        e.isDirectory ? walk(`${d}/${e.name}`) : (bytes += Deno.statSync(`${d}/${e.name}`).size);
      }
    };
    walk(dir);
    assert.equal(s.bytes, bytes);
    assert.equal(s.bytesPerInstance, bytes / all.length);
    assert.equal(s.wrongOrder, all.filter((x) => x.isWrongOrder).length);
    assert.equal(s.masked, all.reduce((a, x) => a + x.tgtMlm!.length, 0));
    assert.equal(s.lengthHistogram.reduce((a, b) => a + b.count, 0), all.length);
    // buckets tile 0..seq_length exactly: none empty-ranged, none past the end
    s.lengthHistogram.forEach((b, i) => {
      assert.ok(b.from <= b.to, `bucket ${i} is ${b.from}-${b.to}`);
      assert.equal(b.from, i === 0 ? 0 : s.lengthHistogram[i - 1].to + 1);
    });
    assert.equal(s.lengthHistogram.at(-1)!.to, 20);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openDataset() reads a folder of --shard K/N datasets as one, in shard order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = randomInstances(5, 20, 4), b = randomInstances(7, 20, 5);
    await writeDataset(`${dir}/s1`, [b], { shard: { index: 1, count: 2 } });
    await writeDataset(`${dir}/s0`, [a], { shard: { index: 0, count: 2 } });
    const ds = await openDataset(dir);
    assert.equal(ds.count, 12);
    assert.deepEqual(Array.from((await ds.instance(5)).src), b[0].src);
    assert.deepEqual(Array.from((await ds.instance(4)).src), a[4].src);
    await Deno.remove(`${dir}/s1`, { recursive: true });
    await assert.rejects(() => openDataset(dir), /shards 1 of 2 are missing/);
    await writeDataset(`${dir}/s1`, [b], { shard: { index: 1, count: 2 }, seq_length: 24 }, 24);
    await assert.rejects(() => openDataset(dir), /--seq_length differs/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openDataset() refuses a missing path, a non-dataset and another format version", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => openDataset(`${dir}/nope`), Deno.errors.NotFound);
    await assert.rejects(() => openDataset(dir), /no zarr.json and no shard datasets/);
    await writeDataset(`${dir}/v9`, [randomInstances(2, 20, 6)], { format_version: 9 });
    await assert.rejects(() => openDataset(`${dir}/v9`), /format version is 9/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chunkRowsFor() keeps src chunks near 1 MiB", () => {
  assert.equal(chunkRowsFor(128), 4096);
  assert.equal(chunkRowsFor(512), 1024);
  assert.equal(chunkRowsFor(48), 8192);
});

/** A packed fill as plain rows (to compare fills read different ways). */
function rowsOf(p: PackedInstances) {
  return Array.from(p.indices, (i, r) => ({
    i,
    src: Array.from(p.src.subarray(p.srcStart[r], p.srcStart[r + 1])),
    tgt: Array.from({ length: p.tgtStart[r + 1] - p.tgtStart[r] }, (_, k) => {
      const j = p.tgtStart[r] + k;
      return [p.tgtPos[j], p.tgtId[j]];
    }),
    masked: p.masked[r],
    seg: [p.segPos[2 * r], p.segPos[2 * r + 1]],
    w: p.isWrongOrder[r],
  }));
}

Deno.test("readMany() packs the instances instance() returns, on its worker thread as on this one", async () => {
  const dir = await Deno.makeTempDir();
  const ds = await openDataset(
    await (async () => {
      await writeDataset(dir, [randomInstances(37, 20, 1), randomInstances(0, 20, 2), randomInstances(16, 20, 3)], {});
      return dir;
    })(),
  );
  try {
    const indices = Int32Array.of(0, 2, 15, 16, 17, 36, 37, 40, 52); // across chunks and parts
    const here = await ds.readRows(indices);
    ds.workerMinRows = 1;
    const there = await ds.readMany(indices);
    const one = await packInstances(indices, (i) => ds.instance(i));
    assert.deepEqual(rowsOf(here), rowsOf(one));
    assert.deepEqual(rowsOf(there), rowsOf(one));
    assert.equal(there.src.length, there.srcStart[indices.length]); // trimmed to what the rows hold
    await assert.rejects(() => ds.readMany(Int32Array.of(3, 2)), /indexes must ascend/);
    await assert.rejects(() => ds.readMany(Int32Array.of(53)), /it has 53 instances/);
    // A damaged chunk is an error of the read that needs it, naming the dataset.
    await Deno.writeFile(`${dir}/parts/2/src/c/0/0`, new Uint8Array(64).fill(7));
    ds.close(); // a new worker: its chunk cache is empty
    await assert.rejects(() => ds.readMany(Int32Array.of(40)), (e: Error) => e.message.includes(dir));
  } finally {
    ds.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AlbertLoader gives the same batches, fills and resumes over readMany's worker as over instance()", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeDataset(dir, [randomInstances(45, 20, 4), randomInstances(30, 20, 5)], {});
    const ds = await openDataset(dir);
    ds.workerMinRows = 1;
    const oneByOne = { count: ds.count, seqLength: ds.seqLength, instance: (i: number) => ds.instance(i) };
    for (const rank of [0, 1]) {
      const make = (source: InstanceSource, fills: number[][]) =>
        new AlbertLoader(source, {
          batchSize: 4,
          instancesBufferSize: 9, // several fills per pass, the last one partial
          seed: 3,
          rank,
          worldSize: 2,
          onFill: (o) => fills.push([...o]),
        });
      const fillsA: number[][] = [], fillsB: number[][] = [];
      const a = make(oneByOne, fillsA), b = make(ds, fillsB);
      let saved: LoaderState | null = null;
      const batches: Batch[] = [];
      for (let k = 0; k < 40; k++) {
        const x = (await a.next()).batch, y = (await b.next()).batch;
        assert.deepEqual(y, x, `rank ${rank} batch ${k}`);
        batches.push(x);
        if (k === 12) saved = JSON.parse(JSON.stringify(b.state()));
      }
      assert.deepEqual(fillsB, fillsA);
      const c = make(ds, []);
      c.restore(saved!);
      for (let k = 13; k < 40; k++) assert.deepEqual((await c.next()).batch, batches[k], `resumed batch ${k}`);
    }
    ds.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
