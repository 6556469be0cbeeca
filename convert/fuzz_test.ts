/**
 * Mutation fuzzing of every reader (seeded, so failures reproduce): ≥ 1,000 random corruptions per
 * format, each either parses or fails with a TypeError/RangeError/SyntaxError that names the file —
 * never a hang, a crash or another kind of error.
 */
import assert from "node:assert/strict";
import { readTorchStateDict, writeTorchBin } from "./torch_bin.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import { writeTorchZip, ZipReader } from "./zip.ts";
import { xorshift } from "./random_model.ts";
import { f32, type Tensor } from "../core/tensor.ts";
import { readCheckpointFromStore, writeCheckpointToStore } from "../core/checkpoint/zarr.ts";
import { ALBERT_BASE } from "../core/config.ts";

const N = 1000;

function sample(): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  m.set("embedding.word.embedding.weight", f32([40, 8], new Float32Array(320).map((_, i) => i / 7)));
  m.set("target.mlm.linear_2.bias", f32([40], new Float32Array(40).fill(0.25)));
  m.set("x.i64", { dtype: "I64", shape: [3], data: new BigInt64Array([1n, 2n, 3n]) });
  m.set("x.scalar", f32([], new Float32Array([3])));
  return m;
}

/** Random corruption: byte flips, random bytes, truncation, insertion, duplication, zeroing. */
function mutate(src: Uint8Array, rnd: () => number, focus?: [number, number]): Uint8Array {
  let b = src.slice();
  const k = 1 + Math.floor(rnd() * 4);
  const pos = () =>
    focus && rnd() < 0.8 ? focus[0] + Math.floor(rnd() * (focus[1] - focus[0])) : Math.floor(rnd() * b.length);
  for (let i = 0; i < k && b.length > 0; i++) {
    const r = rnd();
    const p = Math.min(pos(), b.length - 1);
    if (r < 0.35) b[p] ^= 1 << Math.floor(rnd() * 8);
    else if (r < 0.6) b[p] = [0, 0xff, 0x7f, 0x80, Math.floor(rnd() * 256)][Math.floor(rnd() * 5)];
    else if (r < 0.7) b = b.slice(0, p);
    else if (r < 0.8) {
      const ins = new Uint8Array(1 + Math.floor(rnd() * 8)).map(() => Math.floor(rnd() * 256));
      b = new Uint8Array([...b.subarray(0, p), ...ins, ...b.subarray(p)]);
    } else if (r < 0.9) {
      const len = Math.min(b.length - p, 1 + Math.floor(rnd() * 16));
      b = new Uint8Array([...b.subarray(0, p + len), ...b.subarray(p, p + len), ...b.subarray(p + len)]);
    } else b.fill(0, p, Math.min(b.length, p + 1 + Math.floor(rnd() * 8)));
  }
  return b;
}

function checkClean(e: unknown, source: string, i: number): void {
  const ok = e instanceof SyntaxError || e instanceof TypeError || e instanceof RangeError;
  assert.ok(ok, `case ${i}: ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
  assert.ok(
    (e as Error).message.includes(`"${source}"`),
    `case ${i}: message does not name the file: ${(e as Error).message}`,
  );
}

function fuzzSync(
  label: string,
  good: Uint8Array,
  parse: (b: Uint8Array) => unknown,
  seed: number,
  focus?: [number, number],
) {
  const rnd = xorshift(seed);
  let parsed = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const b = mutate(good, rnd, focus);
    try {
      parse(b);
      parsed++;
    } catch (e) {
      checkClean(e, label, i);
    }
  }
  return { parsed, ms: performance.now() - t0 };
}

/** Legacy container around the pickle of a zip written by writeTorchBin. */
function legacyOf(tensors: Map<string, Tensor>): { bytes: Uint8Array; pickle: [number, number] } {
  const zip = ZipReader.open(writeTorchBin(tensors, { archiveName: "a" }), "x");
  const pkl = zip.read("a/data.pkl");
  const enc = new TextEncoder();
  const head = [0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
  head.push(0x80, 2, 0x4d, 0xe9, 0x03, 0x2e, 0x80, 2, 0x7d, 0x2e);
  const keys = [...zip.entries.keys()].filter((k) => k.startsWith("a/data/")).map((k) => k.slice(7));
  const list: number[] = [0x80, 2, 0x5d, 0x28];
  const storages: number[] = [];
  for (const k of keys) {
    const kb = enc.encode(k);
    list.push(0x58, kb.length, 0, 0, 0, ...kb);
    const data = zip.read(`a/data/${k}`);
    const itemSize = k === "2" ? 8 : 4; // storage "2" is the I64 one (order of first use)
    const count = new Uint8Array(8);
    new DataView(count.buffer).setBigUint64(0, BigInt(data.length / itemSize), true);
    storages.push(...count, ...data);
  }
  list.push(0x65, 0x2e);
  const bytes = new Uint8Array([...head, ...pkl, ...list, ...storages]);
  return { bytes, pickle: [head.length, head.length + pkl.length] };
}

Deno.test("fuzz: 1,000 corruptions each of torch zip, zip pickle, legacy, safetensors and zarr fail cleanly", async () => {
  const tensors = sample();
  const zip = writeTorchBin(tensors, { archiveName: "a" });
  const lg = legacyOf(tensors);
  // sanity: the unmutated files read back
  assert.equal(readTorchStateDict(zip, "z").tensors.size, 4);
  assert.equal(readTorchStateDict(lg.bytes, "l").tensors.size, 4);
  const results: Record<string, { parsed: number; ms: number }> = {};
  results.zip = fuzzSync("fuzz.bin", zip, (b) => readTorchStateDict(b, "fuzz.bin"), 1);
  // mutate the pickle itself and re-wrap it with a valid CRC so the VM sees every corruption
  const zr = ZipReader.open(zip, "z");
  const pkl = zr.read("a/data.pkl");
  const others = [...zr.entries.keys()].filter((n) => n !== "a/data.pkl").map((n) => ({ name: n, data: zr.read(n) }));
  {
    const rnd = xorshift(2);
    const t0 = performance.now();
    let parsed = 0;
    for (let i = 0; i < N; i++) {
      const b = writeTorchZip([{ name: "a/data.pkl", data: mutate(pkl, rnd) }, ...others]);
      try {
        readTorchStateDict(b, "fuzz_pkl.bin");
        parsed++;
      } catch (e) {
        checkClean(e, "fuzz_pkl.bin", i);
      }
    }
    results.zipPickle = { parsed, ms: performance.now() - t0 };
  }
  results.legacy = fuzzSync("fuzz_legacy.bin", lg.bytes, (b) => readTorchStateDict(b, "fuzz_legacy.bin"), 3, lg.pickle);
  const st = writeSafetensors(tensors, { format: "pt" });
  const headerEnd = 8 + new DataView(st.buffer).getUint32(0, true);
  results.safetensors = fuzzSync("fuzz.safetensors", st, (b) => readSafetensors(b, "fuzz.safetensors"), 4, [
    0,
    headerEnd,
  ]);

  // zarr: an in-memory store; corrupt one stored object (metadata or chunk) per case
  const store = new Map<string, Uint8Array>();
  const mem = {
    get: (k: string) => Promise.resolve(store.get(k)),
    set: (k: string, v: Uint8Array) => {
      store.set(k, v.slice());
      return Promise.resolve();
    },
  };
  const cfg = { ...ALBERT_BASE, emb_size: 8, hidden_size: 8, feedforward_size: 8, heads_num: 2, layers_num: 1 };
  // deno-lint-ignore no-explicit-any
  await writeCheckpointToStore(mem as any, { params: tensors, config: cfg, step: 3, vocabHash: "h" }, {
    chunkBytes: 256,
  });
  const pristine = new Map(store);
  const keys = [...pristine.keys()];
  const rnd = xorshift(5);
  let parsed = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    store.clear();
    for (const [k, v] of pristine) store.set(k, v);
    const key = keys[Math.floor(rnd() * keys.length)];
    if (rnd() < 0.1) store.delete(key);
    else store.set(key, mutate(pristine.get(key)!, rnd));
    try {
      // deno-lint-ignore no-explicit-any
      await readCheckpointFromStore(mem as any, "fuzz.zarr");
      parsed++;
    } catch (e) {
      checkClean(e, "fuzz.zarr", i);
    }
  }
  results.zarr = { parsed, ms: performance.now() - t0 };
  for (const [k, r] of Object.entries(results)) {
    assert.ok(r.parsed < N, `${k}: every corruption parsed, the fuzzer is not reaching the reader`);
  }
  console.log(JSON.stringify(results));
});
