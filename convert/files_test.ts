import assert from "node:assert/strict";
import { refPath } from "../tests/reference.ts";
import { readFileBytes, readStateDictLazy, writeParts } from "./files.ts";
import { readTorchStateDict, torchBinParts, writeTorchBin } from "./torch_bin.ts";
import { safetensorsParts, writeSafetensors } from "./safetensors.ts";
import { crc32, setNativeCrc32 } from "./zip.ts";
import { convertModel } from "./convert.ts";
import { uerToHf } from "./names.ts";
import { validateConfig } from "../core/config.ts";
import { xorshift } from "./random_model.ts";
import { parseStateDict } from "./hf_folder.ts";

const UER = refPath("albert-tiny/uer_model.bin");
const HF_BIN = refPath("albert-tiny/hf/pytorch_model.bin");

Deno.test("readStateDictLazy() + writeParts() stream UER→HF to UER-py's bytes, reading each storage only when written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = validateConfig(JSON.parse(await Deno.readTextFile(refPath("albert-tiny/uer_config.json"))), "cfg");
    const eager = readTorchStateDict(await readFileBytes(UER), UER).tensors;
    const { tensors, lazy } = await readStateDictLazy(UER);
    assert.ok(lazy, "a zip .bin is read lazily");
    try {
      // names, shapes and dtypes are final; the values are not read yet
      assert.deepEqual([...tensors.keys()], [...eager.keys()]);
      const word = tensors.get("embedding.word.embedding.weight")!;
      assert.deepEqual(word.shape, eager.get("embedding.word.embedding.weight")!.shape);
      assert.ok(lazy.has(word.data.buffer));
      assert.ok((word.data as Float32Array).every((x) => x === 0), "values are read only when written");
      const hf = uerToHf(tensors, cfg, UER);
      const { parts } = torchBinParts(hf, { archiveName: "pytorch_model", crcOf: lazy.crcOf });
      await writeParts(`${dir}/pytorch_model.bin`, parts, { lazy, release: true });
      assert.deepEqual(await Deno.readFile(`${dir}/pytorch_model.bin`), await Deno.readFile(HF_BIN));
      // each storage was freed once written
      assert.equal(word.data.length, 0);
      assert.ok(!lazy.has(word.data.buffer));
    } finally {
      lazy.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("convertModel() refuses a UER .bin whose storage fails its CRC-32, streaming or not, and leaves nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = await Deno.readFile(UER);
    const zip = readTorchStateDict(bytes, UER);
    const word = zip.tensors.get("embedding.word.embedding.weight")!;
    const at = word.data.byteOffset + 100; // inside the storage: the file is still a valid zip
    bytes[at] ^= 0x40;
    await Deno.writeFile(`${dir}/uer_model.bin`, bytes);
    await Deno.copyFile(refPath("albert-tiny/uer_config.json"), `${dir}/uer_config.json`);
    for (const [to, hfFormat] of [["hf", "bin"], ["hf", "both"], ["uer", undefined], ["zarr", undefined]] as const) {
      await assert.rejects(
        () => convertModel({ to, hfFormat, inputModelPath: `${dir}/uer_model.bin`, outputModelPath: `${dir}/out` }),
        /uer_model\/data\/\d+" fails its CRC-32 check/,
        `${to} ${hfFormat}`,
      );
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["uer_config.json", "uer_model.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crc32() gives the same values natively (node:zlib) and with its own tables, at any length and offset", async () => {
  const rnd = xorshift(3);
  const big = new Uint8Array((1 << 20) + 37).map(() => (rnd() * 256) | 0);
  const cases = [0, 1, 7, 8, 9, 255, 256, 257, 1000, 4096 + 3, big.length - 5];
  const native = cases.map((n) => crc32(big.subarray(5, 5 + n)));
  setNativeCrc32(undefined);
  try {
    assert.deepEqual(cases.map((n) => crc32(big.subarray(5, 5 + n))), native);
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
    // a running CRC continues across pieces
    assert.equal(crc32(big.subarray(300), crc32(big.subarray(0, 300))), crc32(big));
  } finally {
    // restore the native one files.ts installed
    const z = await import("node:zlib");
    // deno-lint-ignore no-explicit-any
    setNativeCrc32((z as any).crc32);
  }
});

Deno.test("torchBinParts() and safetensorsParts() concatenate to writeTorchBin() / writeSafetensors() bytes, sharing the storages", () => {
  const { tensors } = readTorchStateDict(Deno.readFileSync(UER), UER);
  const cat = (ps: Uint8Array[]) => {
    const out = new Uint8Array(ps.reduce((a, p) => a + p.byteLength, 0));
    let o = 0;
    for (const p of ps) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  };
  const bin = torchBinParts(tensors, { archiveName: "uer_model" });
  assert.deepEqual(cat(bin.parts), writeTorchBin(tensors, { archiveName: "uer_model" }));
  assert.equal(bin.size, cat(bin.parts).byteLength);
  const word = tensors.get("embedding.word.embedding.weight")!.data;
  assert.ok(bin.parts.some((p) => p.buffer === word.buffer && p.byteOffset === word.byteOffset), "no copy");
  const st = safetensorsParts(tensors, { format: "pt" });
  assert.deepEqual(cat(st.parts), writeSafetensors(tensors, { format: "pt" }));
});

Deno.test("readStateDictLazy() names the file when it is neither a torch .bin nor safetensors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/garbage.bin`;
    await Deno.writeTextFile(path, "garbage\n");
    await assert.rejects(() => readStateDictLazy(path), (e: Error) => {
      assert.ok(e instanceof SyntaxError, `${e.name}: ${e.message}`);
      assert.match(e.message, /garbage\.bin/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a safetensors file whose header length ends in byte 0x80 (a legacy torch pickle's first byte) reads as safetensors", async () => {
  // Pad the metadata until the JSON header is 0x0f80 bytes long: the file then starts 80 0f 00 …
  let note = "";
  let bytes: Uint8Array = new Uint8Array();
  for (let k = 0; k < 4000; k++) {
    note = "x".repeat(k);
    bytes = writeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: Float32Array.of(1, 2) }]]), { note });
    if (bytes[0] === 0x80) break;
  }
  assert.equal(bytes[0], 0x80, "found a header length with low byte 0x80");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/model.safetensors`, bytes);
    const { tensors } = await readStateDictLazy(`${dir}/model.safetensors`);
    assert.deepEqual(Array.from(tensors.get("w")!.data as Float32Array), [1, 2]);
    assert.deepEqual(Array.from(parseStateDict(bytes, "m").get("w")!.data as Float32Array), [1, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
