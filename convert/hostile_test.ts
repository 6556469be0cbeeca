/**
 * Hostile and broken files, built here byte by byte (no python): each must be refused with a
 * one-line error naming the file, nothing executed, quickly.
 */
import assert from "node:assert/strict";
import { readTorchStateDict, writeTorchBin } from "./torch_bin.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import { writeTorchZip, ZipReader } from "./zip.ts";
import { f32 } from "../core/tensor.ts";
import { readCheckpoint, writeCheckpoint } from "../core/checkpoint/zarr.ts";
import { ALBERT_BASE } from "../core/config.ts";

const enc = new TextEncoder();

/** A tiny pickle assembler: strings are opcodes + raw text, numbers are bytes. */
function pk(...parts: (string | number | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else if (typeof p === "string") out.push(...enc.encode(p));
    else out.push(...p);
  }
  return new Uint8Array(out);
}
const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const binunicode = (s: string) => pk(0x58, ...u32(enc.encode(s).length), s);
const PROTO = [0x80, 2];
const SENTINEL = `/tmp/uer-ts-pwned-${crypto.randomUUID()}`;

/** OrderedDict({name: _rebuild_tensor_v2(pid, offset, size, stride, False, OrderedDict())}) */
function stateDictPickle(opts: { key?: string; numel?: number; offset?: number; size?: number[] } = {}): Uint8Array {
  const size = opts.size ?? [4];
  const tuple = (xs: number[]) => pk(0x28, ...xs.flatMap((x) => [0x4b, x]), 0x74);
  return pk(
    ...PROTO,
    "ccollections\nOrderedDict\n",
    0x29,
    0x52,
    0x28,
    binunicode("w"),
    "ctorch._utils\n_rebuild_tensor_v2\n",
    0x28,
    0x28,
    binunicode("storage"),
    "ctorch\nFloatStorage\n",
    binunicode(opts.key ?? "0"),
    binunicode("cpu"),
    0x4a,
    ...u32(opts.numel ?? 4),
    0x74,
    0x51,
    0x4a,
    ...u32(opts.offset ?? 0),
    tuple(size),
    tuple(size.map(() => 1)),
    0x89,
    "ccollections\nOrderedDict\n",
    0x29,
    0x52,
    0x74,
    0x52,
    0x75,
    0x2e,
  );
}

function torchZip(pkl: Uint8Array, storages: [string, Uint8Array][] = [["0", new Uint8Array(16)]]): Uint8Array {
  return writeTorchZip([
    { name: "evil/data.pkl", data: pkl },
    ...storages.map(([k, d]) => ({ name: `evil/data/${k}`, data: d })),
    { name: "evil/version", data: enc.encode("3\n") },
  ]);
}

const osSystem = pk(...PROTO, "cos\nsystem\n", binunicode(`touch ${SENTINEL}`), 0x85, 0x52, 0x2e);

const HOSTILE_PICKLES: [string, Uint8Array][] = [
  ["os.system global + REDUCE", osSystem],
  ["builtins.eval", pk(...PROTO, "cbuiltins\neval\n", binunicode("__import__('os')"), 0x85, 0x52, 0x2e)],
  ["subprocess.Popen", pk(...PROTO, "csubprocess\nPopen\n", binunicode("id"), 0x85, 0x52, 0x2e)],
  ["posix.system via STACK_GLOBAL", pk(0x80, 4, 0x8c, 5, "posix", 0x8c, 6, "system", 0x93, 0x2e)],
  ["REDUCE on a storage class", pk(...PROTO, "ctorch\nFloatStorage\n", 0x29, 0x52, 0x2e)],
  ["REDUCE on a string", pk(...PROTO, binunicode("os.system"), 0x29, 0x52, 0x2e)],
  ["REDUCE OrderedDict with arguments", pk(...PROTO, "ccollections\nOrderedDict\n", 0x5d, 0x85, 0x52, 0x2e)],
  ["INST opcode (imports and calls)", pk("(S'ls'\nios\nsystem\n.")],
  ["OBJ opcode", pk(...PROTO, 0x28, "cos\nsystem\n", binunicode("ls"), 0x6f, 0x2e)],
  ["NEWOBJ opcode", pk(...PROTO, "ccollections\nOrderedDict\n", 0x29, 0x81, 0x2e)],
  ["EXT1 opcode", pk(...PROTO, 0x82, 1, 0x2e)],
  ["BUILD on a non-dict", pk(...PROTO, 0x5d, 0x7d, 0x62, 0x2e)],
  ["oversized memo index (LONG_BINPUT 0xffffffff)", pk(...PROTO, 0x7d, 0x72, 0xff, 0xff, 0xff, 0xff, 0x2e)],
  ["memo get of a never-stored index", pk(...PROTO, 0x6a, 0x00, 0x00, 0x00, 0x10, 0x2e)],
  ["deep nesting (100k MARKs)", pk(...PROTO, new Uint8Array(100_000).fill(0x28), 0x2e)],
  ["BINUNICODE claiming 4 GB", pk(...PROTO, 0x58, 0xf0, 0xff, 0xff, 0xff, "abc", 0x2e)],
  ["LONG4 of 1 GB", pk(...PROTO, 0x8b, 0x00, 0x00, 0x00, 0x40, 0x2e)],
  ["no STOP", pk(...PROTO, 0x7d)],
  ["storage key with a path", stateDictPickle({ key: "../../etc/passwd" })],
  ["list instead of a state dict", pk(...PROTO, 0x5d, 0x2e)],
];

function assertRefused(fn: () => unknown, source: string, label: string): void {
  const t0 = performance.now();
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  assert.ok(err, `${label}: was accepted`);
  assert.ok(
    err instanceof SyntaxError || err instanceof TypeError || err instanceof RangeError,
    `${label}: ${(err as Error).name}`,
  );
  const msg = (err as Error).message;
  assert.ok(msg.includes(`"${source}"`), `${label}: message does not name the file: ${msg}`);
  assert.ok(!msg.split("\n")[0].includes("\n") && msg.split("\n").length <= 2, `${label}: not one line: ${msg}`);
  assert.ok(ms < 2000, `${label}: took ${ms} ms`);
}

Deno.test("readTorchStateDict() refuses 20 hostile pickles in zip and legacy containers, executing nothing", async () => {
  for (const [label, pkl] of HOSTILE_PICKLES) {
    assertRefused(() => readTorchStateDict(torchZip(pkl), "evil.bin"), "evil.bin", `zip: ${label}`);
    // legacy: the same pickle as the 4th stream (after magic, protocol, sys_info)
    const legacy = pk(
      ...PROTO,
      0x8a,
      0x0a,
      0x6c,
      0xfc,
      0x9c,
      0x46,
      0xf9,
      0x20,
      0x6a,
      0xa8,
      0x50,
      0x19,
      0x2e,
      ...PROTO,
      0x4d,
      0xe9,
      0x03,
      0x2e,
      ...PROTO,
      0x7d,
      0x2e,
      pkl,
    );
    assertRefused(() => readTorchStateDict(legacy, "evil_legacy.bin"), "evil_legacy.bin", `legacy: ${label}`);
  }
  // nothing ran
  await assert.rejects(() => Deno.stat(SENTINEL), Deno.errors.NotFound);
});

Deno.test("readTorchStateDict() refuses storages larger than their bytes and tensors past their storage", () => {
  const cases: [string, Uint8Array][] = [
    ["storage declares more elements than its record", torchZip(stateDictPickle({ numel: 1000 }))],
    ["offset past the end", torchZip(stateDictPickle({ offset: 100 }))],
    ["size past the end", torchZip(stateDictPickle({ size: [5] }))],
    ["2-d view past the end", torchZip(stateDictPickle({ size: [3, 3] }))],
    ["storage record missing", torchZip(stateDictPickle(), [])],
    ["huge numel", torchZip(stateDictPickle({ numel: 0x7fffffff }))],
  ];
  for (const [label, bytes] of cases) assertRefused(() => readTorchStateDict(bytes, "bad.bin"), "bad.bin", label);
  // the well-formed version of the same file reads
  assert.deepEqual(readTorchStateDict(torchZip(stateDictPickle()), "ok.bin").tensors.get("w")!.shape, [4]);
});

Deno.test("ZipReader refuses truncated archives, escaping names, bad offsets and CRC mismatches", () => {
  const good = writeTorchBin(new Map([["w", f32([4], new Float32Array([1, 2, 3, 4]))]]), { archiveName: "m" });
  const cases: [string, Uint8Array][] = [
    ["truncated", good.slice(0, good.length - 30)],
    ["cut in half", good.slice(0, good.length >> 1)],
    ["empty", new Uint8Array(0)],
    ["name with ..", writeTorchZip([{ name: "m/../../x", data: new Uint8Array(4) }])],
    ["absolute name", writeTorchZip([{ name: "/etc/passwd", data: new Uint8Array(4) }])],
    [
      "duplicate names",
      writeTorchZip([{ name: "m/a", data: new Uint8Array(1) }, { name: "m/a", data: new Uint8Array(1) }]),
    ],
  ];
  // central directory offset pointing past the end
  const badCd = good.slice();
  const v = new DataView(badCd.buffer);
  const eocd = badCd.length - 22;
  v.setUint32(eocd + 16, 0xfffffff0, true);
  cases.push(["central directory past the end", badCd]);
  // a flipped data byte fails the CRC
  const flipped = good.slice();
  flipped[ZipReader.open(good, "m").entries.get("m/data/0")!.dataOffset] ^= 1;
  cases.push(["crc mismatch", flipped]);
  for (const [label, bytes] of cases) {
    assertRefused(
      () => {
        const z = ZipReader.open(bytes, "broken.zip");
        for (const name of z.entries.keys()) z.read(name);
        readTorchStateDict(bytes, "broken.zip");
      },
      "broken.zip",
      label,
    );
  }
});

Deno.test("readSafetensors() bounds the header and checks every offset", () => {
  const good = writeSafetensors(new Map([["a", f32([2], new Float32Array([1, 2]))], ["b", f32([1])]]), {
    format: "pt",
  });
  const setLen = (b: Uint8Array, n: bigint) => {
    const c = b.slice();
    new DataView(c.buffer).setBigUint64(0, n, true);
    return c;
  };
  const header = (h: unknown, data = 8) => {
    const j = enc.encode(JSON.stringify(h));
    const out = new Uint8Array(8 + j.length + data);
    new DataView(out.buffer).setBigUint64(0, BigInt(j.length), true);
    out.set(j, 8);
    return out;
  };
  const cases: [string, Uint8Array][] = [
    ["header length past the file", setLen(good, 1n << 40n)],
    ["header length of 2^64-1", setLen(good, 0xffffffffffffffffn)],
    ["header length one short (JSON cut)", setLen(good, BigInt(new DataView(good.buffer).getUint32(0, true) - 9))],
    ["shorter than 8 bytes", good.slice(0, 5)],
    ["offsets past the data", header({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } })],
    ["offsets reversed", header({ a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } })],
    ["size disagrees with shape", header({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } })],
    [
      "overlapping tensors",
      header({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
      }),
    ],
    ["unknown dtype", header({ a: { dtype: "X9", shape: [2], data_offsets: [0, 8] } })],
    ["negative shape", header({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } })],
    ["not an object", header([1, 2])],
  ];
  for (const [label, bytes] of cases) {
    assertRefused(() => readSafetensors(bytes, "bad.safetensors"), "bad.safetensors", label);
  }
  assert.equal(readSafetensors(good, "ok").tensors.size, 2);
});

Deno.test("readCheckpoint() reads an omitted chunk as the fill value, refuses a corrupt chunk and a wrong format version", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = { ...ALBERT_BASE, emb_size: 8, hidden_size: 8, feedforward_size: 8, heads_num: 2, layers_num: 1 };
    const params = new Map([["w", f32([300, 1024], new Float32Array(300 * 1024).fill(1))]]);
    await writeCheckpoint(`${dir}/ck`, { params, config: cfg, step: 1, vocabHash: "x" });
    const chunks = [...Deno.readDirSync(`${dir}/ck/w/c`)].map((e) => e.name).sort();
    assert.ok(chunks.length > 1, "the array is chunked");
    // zarr v3: a chunk that is not stored holds the fill value (0 here), as tensorstore and zarr-python omit them
    await Deno.remove(`${dir}/ck/w/c/${chunks[0]}`, { recursive: true });
    const w = (await readCheckpoint(`${dir}/ck`)).params.get("w")!.data as Float32Array;
    assert.equal(w[0], 0);
    assert.equal(w[w.length - 1], 1);
    await Deno.writeFile(`${dir}/ck/w/c/${chunks[1]}/0`, new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    await assert.rejects(() => readCheckpoint(`${dir}/ck`), (e: Error) => {
      assert.ok(e instanceof RangeError || e instanceof TypeError);
      assert.match(e.message, new RegExp(`"${dir}/ck".*array "w"`));
      return true;
    });
    await writeCheckpoint(`${dir}/ck2`, { params, config: cfg, step: 1, vocabHash: "x" });
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/ck2/zarr.json`));
    meta.attributes.format_version = 99;
    await Deno.writeTextFile(`${dir}/ck2/zarr.json`, JSON.stringify(meta));
    await assert.rejects(() => readCheckpoint(`${dir}/ck2`), /format version is 99, this build reads 1 and 2/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
