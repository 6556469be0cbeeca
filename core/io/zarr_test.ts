import assert from "node:assert/strict";
import * as zlib from "node:zlib";
import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";
import Blosc from "numcodecs/blosc";
import Zstd from "numcodecs/zstd";
import { ALBERT_BASE } from "../config.ts";
import { readCheckpoint, writeCheckpoint } from "../checkpoint/zarr.ts";
import { crc32c, encodeChunk, registerCodecs, useNativeCodecs } from "./zarr.ts";

// Fixtures written by hand from the zarr v3 spec (core, `bytes`, `gzip`, `zstd` (RFC 8878 raw blocks),
// `blosc` (memcpyed frame), `crc32c`, `sharding_indexed`), not by the code under test.

type Codec = { name: string; configuration?: Record<string, unknown> };

/** Row-major float32 values as bytes in the given byte order. */
function floatBytes(v: Float32Array, endian: "little" | "big"): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => dv.setFloat32(4 * i, x, endian === "little"));
  return out;
}

/** A zstd frame of raw (stored) blocks: magic, single-segment header with a 4-byte content size, blocks. */
function zstdRawFrame(data: Uint8Array): Uint8Array {
  const parts: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0xa0];
  for (let k = 0; k < 4; k++) parts.push((data.length >>> (8 * k)) & 0xff);
  const out = [...parts];
  const MAX = 1 << 17;
  for (let off = 0; off < data.length || off === 0; off += MAX) {
    const n = Math.min(MAX, data.length - off);
    const last = off + n >= data.length ? 1 : 0;
    const h = last | (0 << 1) | (n << 3); // Raw_Block
    out.push(h & 0xff, (h >>> 8) & 0xff, (h >>> 16) & 0xff, ...data.subarray(off, off + n));
    if (data.length === 0) break;
  }
  return Uint8Array.from(out);
}

/** A blosc1 frame holding `data` uncompressed (flag BLOSC_MEMCPYED). */
function bloscMemcpyFrame(data: Uint8Array, typesize: number): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const dv = new DataView(out.buffer);
  out[0] = 2; // format version
  out[1] = 1; // compressor format version
  out[2] = 0x02 | 0x10; // memcpyed, no split
  out[3] = typesize;
  dv.setUint32(4, data.length, true); // nbytes
  dv.setUint32(8, Math.max(1, data.length), true); // blocksize
  dv.setUint32(12, out.length, true); // cbytes
  out.set(data, 16);
  return out;
}

function withCrc(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + 4);
  out.set(b);
  new DataView(out.buffer).setUint32(b.length, crc32c(b), true);
  return out;
}

/** Encodes one chunk by hand for the codec list (bytes-to-bytes after `bytes`). */
function handEncode(values: Float32Array, codecs: Codec[]): Uint8Array {
  let b = floatBytes(values, (codecs[0].configuration?.endian as "little" | "big") ?? "little");
  for (const c of codecs.slice(1)) {
    if (c.name === "gzip") b = new Uint8Array(zlib.gzipSync(b));
    else if (c.name === "zstd") b = zstdRawFrame(b);
    else if (c.name === "blosc") b = bloscMemcpyFrame(b, 4);
    else if (c.name === "crc32c") b = withCrc(b);
    else throw new Error(c.name);
  }
  return b;
}

interface FixtureArray {
  path: string;
  shape: number[];
  chunk: number[];
  codecs: Codec[];
  fill: number | string;
  values: Float32Array;
  omit?: string[]; // chunk keys left out
  attributes?: Record<string, unknown>; // absent when undefined
  shard?: { inner: number[]; indexAt: "start" | "end"; omitInner?: number[] };
}

/** Writes a 2-D float32 array by hand (regular grid, "/" keys; edge chunks full size, as the spec says). */
async function writeFixture(dir: string, a: FixtureArray): Promise<void> {
  const base = `${dir}/${a.path}`;
  await Deno.mkdir(base, { recursive: true });
  const [R, C] = a.shape, [cr, cc] = a.chunk;
  const chunkValues = (r0: number, c0: number, rows: number, cols: number) => {
    const v = new Float32Array(rows * cols).fill(typeof a.fill === "number" ? a.fill : 0);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) if (r0 + r < R && c0 + c < C) v[r * cols + c] = a.values[(r0 + r) * C + c0 + c];
    }
    return v;
  };
  let codecs: Codec[] = a.codecs;
  if (a.shard) {
    const [ir, ic] = a.shard.inner;
    codecs = [{
      name: "sharding_indexed",
      configuration: {
        chunk_shape: a.shard.inner,
        codecs: a.codecs,
        index_codecs: [{ name: "bytes", configuration: { endian: "little" } }, { name: "crc32c" }],
        index_location: a.shard.indexAt,
      },
    }];
    for (let sr = 0; sr * cr < R; sr++) {
      for (let sc = 0; sc * cc < C; sc++) {
        const n = (cr / ir) * (cc / ic);
        const index = new BigUint64Array(2 * n).fill(0xffffffffffffffffn);
        const bodies: Uint8Array[] = [];
        const indexBytes = 16 * n + 4;
        let off = a.shard.indexAt === "start" ? indexBytes : 0;
        for (let k = 0; k < n; k++) {
          if (a.shard.omitInner?.includes(k)) continue;
          const r0 = sr * cr + Math.floor(k / (cc / ic)) * ir, c0 = sc * cc + (k % (cc / ic)) * ic;
          const body = handEncode(chunkValues(r0, c0, ir, ic), a.codecs);
          index[2 * k] = BigInt(off);
          index[2 * k + 1] = BigInt(body.length);
          bodies.push(body);
          off += body.length;
        }
        const idx = withCrc(new Uint8Array(index.buffer));
        const parts = a.shard.indexAt === "start" ? [idx, ...bodies] : [...bodies, idx];
        const file = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
        parts.reduce((o, p) => (file.set(p, o), o + p.length), 0);
        await Deno.mkdir(`${base}/c/${sr}`, { recursive: true });
        await Deno.writeFile(`${base}/c/${sr}/${sc}`, file);
      }
    }
  } else {
    for (let r = 0; r * cr < R; r++) {
      for (let c = 0; c * cc < C; c++) {
        if (a.omit?.includes(`${r}/${c}`)) continue;
        await Deno.mkdir(`${base}/c/${r}`, { recursive: true });
        await Deno.writeFile(`${base}/c/${r}/${c}`, handEncode(chunkValues(r * cr, c * cc, cr, cc), a.codecs));
      }
    }
  }
  const meta: Record<string, unknown> = {
    zarr_format: 3,
    node_type: "array",
    shape: a.shape,
    data_type: "float32",
    chunk_grid: { name: "regular", configuration: { chunk_shape: a.chunk } },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    codecs,
    fill_value: a.fill,
  };
  if (a.attributes) meta.attributes = a.attributes;
  await Deno.writeTextFile(`${base}/zarr.json`, JSON.stringify(meta));
}

const ramp = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => (i * k) / 8 - 3);
const LE: Codec = { name: "bytes", configuration: { endian: "little" } };
const BE: Codec = { name: "bytes", configuration: { endian: "big" } };

/** Every case of issue #13's reader list, as arrays of one hand-written checkpoint. */
const CASES: FixtureArray[] = [
  { path: "le_gzip", shape: [5, 6], chunk: [2, 4], codecs: [LE, { name: "gzip" }], fill: 0, values: ramp(30) },
  { path: "be_plain_no_attrs", shape: [5, 6], chunk: [2, 4], codecs: [BE], fill: 0, values: ramp(30, 3) },
  {
    path: "zstd_crc",
    shape: [5, 6],
    chunk: [3, 3],
    codecs: [LE, { name: "zstd" }, { name: "crc32c" }],
    fill: 0,
    values: ramp(30, 5),
  },
  {
    path: "blosc",
    shape: [5, 6],
    chunk: [4, 6],
    codecs: [LE, {
      name: "blosc",
      configuration: { cname: "lz4", clevel: 5, shuffle: "shuffle", typesize: 4, blocksize: 0 },
    }],
    fill: 0,
    values: ramp(30, 7),
  },
  { path: "omitted", shape: [5, 6], chunk: [2, 3], codecs: [LE], fill: 0.5, values: ramp(30, 2), omit: ["0/1", "2/0"] },
  { path: "hex_fill", shape: [3, 2], chunk: [2, 2], codecs: [LE], fill: "0x3fc00000", values: ramp(6), omit: ["1/0"] },
  {
    path: "shard_end",
    shape: [6, 8],
    chunk: [4, 8],
    codecs: [BE, { name: "gzip" }],
    fill: -1,
    values: ramp(48, 9),
    shard: { inner: [2, 4], indexAt: "end", omitInner: [1] },
  },
  {
    path: "shard_start",
    shape: [6, 8],
    chunk: [6, 4],
    codecs: [LE],
    fill: 2,
    values: ramp(48, 11),
    shard: { inner: [3, 2], indexAt: "start", omitInner: [0, 3] },
  },
];

/** What a reader must return for a fixture array: values where stored, the fill value where omitted. */
function expected(a: FixtureArray): Float32Array {
  const [R, C] = a.shape;
  const fill = typeof a.fill === "number" ? a.fill : new Float32Array(new Uint32Array([Number(a.fill)]).buffer)[0];
  const out = a.values.slice();
  const blank = (r0: number, c0: number, rows: number, cols: number) => {
    for (let r = r0; r < Math.min(R, r0 + rows); r++) {
      for (let c = c0; c < Math.min(C, c0 + cols); c++) out[r * C + c] = fill;
    }
  };
  for (const key of a.omit ?? []) {
    const [r, c] = key.split("/").map(Number);
    blank(r * a.chunk[0], c * a.chunk[1], a.chunk[0], a.chunk[1]);
  }
  if (a.shard?.omitInner) {
    const [ir, ic] = a.shard.inner, per = a.chunk[1] / ic;
    for (let sr = 0; sr * a.chunk[0] < R; sr++) {
      for (let sc = 0; sc * a.chunk[1] < C; sc++) {
        for (const k of a.shard.omitInner) {
          blank(sr * a.chunk[0] + Math.floor(k / per) * ir, sc * a.chunk[1] + (k % per) * ic, ir, ic);
        }
      }
    }
  }
  return out;
}

async function writeFixtureCheckpoint(dir: string): Promise<void> {
  const attributes = {
    format: "uer-ts-checkpoint",
    format_version: 2,
    config: { ...ALBERT_BASE, layers_num: 1 },
    step: 3,
    vocab_hash: "",
    parameters: CASES.map((c) => c.path),
    moments: false,
  };
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/zarr.json`, JSON.stringify({ zarr_format: 3, node_type: "group", attributes }));
  for (const c of CASES) await writeFixture(dir, c);
}

Deno.test("crc32c() is CRC-32C (Castagnoli): check value of '123456789' is 0xE3069283", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
});

Deno.test("readCheckpoint() reads hand-written spec fixtures: absent attributes, omitted chunks, big-endian, gzip/zstd/blosc/crc32c, shards", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFixtureCheckpoint(`${dir}/ck`);
    const ck = await readCheckpoint(`${dir}/ck`);
    for (const c of CASES) {
      const t = ck.params.get(c.path)!;
      assert.deepEqual(t.shape, c.shape, c.path);
      assert.deepEqual(t.data, expected(c), c.path);
    }
    // a flipped bit under crc32c is an error naming the array, not silent garbage
    const key = `${dir}/ck/zstd_crc/c/0/0`;
    const bytes = await Deno.readFile(key);
    bytes[12] ^= 1;
    await Deno.writeFile(key, bytes);
    await assert.rejects(() => readCheckpoint(`${dir}/ck`), /"zstd_crc".*crc32c/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sharded arrays are read in parts: one inner chunk costs the index and that chunk, not the shard", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFixtureCheckpoint(dir);
    registerCodecs();
    const reads: number[] = [];
    const fs = new FileSystemStore(dir);
    const store = {
      get: (k: `/${string}`) => fs.get(k),
      getRange: async (k: `/${string}`, r: never) => {
        const b = await fs.getRange(k, r);
        reads.push(b?.byteLength ?? 0);
        return b;
      },
    };
    const arr = await zarr.open.v3(zarr.root(store).resolve("shard_end"), { kind: "array" });
    const chunk = await arr.getChunk([2, 0]); // inner chunk (row block 2, column block 0) of shard c/1/0
    const size = (await Deno.stat(`${dir}/shard_end/c/1/0`)).size;
    assert.equal(reads.length, 2); // the index, then the one inner chunk
    assert.ok(reads.reduce((a, b) => a + b, 0) < size, "read less than the shard");
    const want = expected(CASES.find((c) => c.path === "shard_end")!);
    assert.deepEqual(
      Array.from(chunk.data as Float32Array).slice(0, 4),
      Array.from(want.subarray(4 * 8, 4 * 8 + 4)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chunks encoded by numcodecs (zstd, blosc with byte shuffle) read back bit for bit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFixtureCheckpoint(dir);
    const values = ramp(30, 13);
    const raw = floatBytes(values, "little");
    // blosc: 4x(3x3)... one chunk covers the whole array here
    const meta = (codecs: Codec[]) =>
      JSON.stringify({
        zarr_format: 3,
        node_type: "array",
        shape: [5, 6],
        data_type: "float32",
        chunk_grid: { name: "regular", configuration: { chunk_shape: [5, 6] } },
        chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
        codecs,
        fill_value: 0,
        attributes: {},
      });
    const z = await Zstd.fromConfig({ id: "zstd", level: 5 }).encode(raw);
    const b = await Blosc.fromConfig({ id: "blosc", cname: "zstd", clevel: 5, shuffle: 1 }).encode(raw);
    for (
      const [name, codecs, chunk] of [
        ["nc_zstd", [LE, { name: "zstd", configuration: { level: 5, checksum: false } }], z],
        ["nc_blosc", [LE, {
          name: "blosc",
          configuration: { cname: "zstd", clevel: 5, shuffle: "shuffle", typesize: 4 },
        }], b],
      ] as const
    ) {
      await Deno.mkdir(`${dir}/${name}/c/0`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${name}/zarr.json`, meta([...codecs]));
      await Deno.writeFile(`${dir}/${name}/c/0/0`, chunk);
    }
    const m = JSON.parse(await Deno.readTextFile(`${dir}/zarr.json`));
    m.attributes.parameters = ["nc_zstd", "nc_blosc"];
    await Deno.writeTextFile(`${dir}/zarr.json`, JSON.stringify(m));
    const ck = await readCheckpoint(dir);
    assert.deepEqual(ck.params.get("nc_zstd")!.data, values);
    assert.deepEqual(ck.params.get("nc_blosc")!.data, values);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeChunk() zstd is read by numcodecs' decoder, and writeCheckpoint() metadata follows the spec", async () => {
  await useNativeCodecs();
  const v = Uint16Array.from({ length: 4096 }, (_, i) => (i * 37) % 300);
  const z = await encodeChunk(v, [{ name: "zstd", configuration: { level: 3, checksum: false } }]);
  assert.ok(z.byteLength < v.byteLength / 2);
  assert.deepEqual(new Uint16Array((await Zstd.fromConfig({ id: "zstd" }).decode(z)).buffer), v);
  const dir = await Deno.makeTempDir();
  try {
    const params = new Map([["a.weight", { dtype: "F32" as const, shape: [3, 2], data: ramp(6) }]]);
    const moments = { m: new Map(params), v: new Map(params) };
    await writeCheckpoint(`${dir}/ck`, { params, moments, config: ALBERT_BASE, step: 1, vocabHash: "" });
    // every folder on the way to an array is a group with its own zarr.json; fill values are numbers
    for (const g of ["", "moments", "moments/m", "moments/v"]) {
      const meta = JSON.parse(await Deno.readTextFile(`${dir}/ck/${g}/zarr.json`));
      assert.equal(meta.node_type, "group", g);
    }
    for (const a of ["a.weight", "moments/m/a.weight", "moments/v/a.weight"]) {
      const meta = JSON.parse(await Deno.readTextFile(`${dir}/ck/${a}/zarr.json`));
      assert.equal(meta.fill_value, 0, a);
      assert.deepEqual(meta.attributes, {});
    }
    // zarrita reads every array through its own pipeline (gzip from our registry)
    registerCodecs();
    const arr = await zarr.open.v3(zarr.root(new FileSystemStore(`${dir}/ck`)).resolve("moments/v/a.weight"), {
      kind: "array",
    });
    assert.deepEqual((await zarr.get(arr, null)).data, ramp(6));
    assert.equal((await zarr.open.v3(zarr.root(new FileSystemStore(`${dir}/ck`)).resolve("moments"))).kind, "group");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
