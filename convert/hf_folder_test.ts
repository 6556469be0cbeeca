import assert from "node:assert/strict";
import type { Tensor } from "../core/tensor.ts";
import { refPath } from "../tests/reference.ts";
import { loadModel, modelTokenizer, requireTask } from "./mod.ts";
import { readFolderTokenizer, widenHalfTensors } from "./hf_folder.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import { writeTorchBin } from "./torch_bin.ts";

const HF = refPath("albert-tiny/hf");

async function refTensors(): Promise<Map<string, Tensor>> {
  return readSafetensors(await Deno.readFile(`${HF}/model.safetensors`), "model.safetensors").tensors;
}

/** A folder with the reference config.json (edited by `cfg`), `weights` as model.safetensors, `extra` files. */
async function folder(
  dir: string,
  weights: Map<string, Tensor> | null,
  cfg: Record<string, unknown> = {},
  extra: string[] = ["vocab.txt"],
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const base = JSON.parse(await Deno.readTextFile(`${HF}/config.json`));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...base, ...cfg }));
  if (weights) await Deno.writeFile(`${dir}/model.safetensors`, writeSafetensors(weights, { format: "pt" }));
  for (const f of extra) await Deno.copyFile(`${HF}/${f}`, `${dir}/${f}`);
  return dir;
}

/** float32 → fp16 bits, round to nearest (normal range and subnormals; enough for small weights). */
function toHalf(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, exp = ((u >>> 23) & 0xff) - 127 + 15, man = u & 0x7fffff;
  if (exp <= 0) return sign | Math.round((man | 0x800000) / 2 ** (14 - exp)); // subnormal
  const r = Math.round(man / 8192);
  return sign | ((exp << 10) + r);
}

Deno.test("widenHalfTensors() decodes fp16 and bf16 bit patterns exactly", () => {
  const half = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3555]);
  const bf = new Uint16Array([0x3f80, 0xc040, 0x0000]);
  const w: Record<string, number> = {};
  const out = widenHalfTensors(
    new Map<string, Tensor>([
      ["h", { dtype: "F16", shape: [6], data: half }],
      ["b", { dtype: "BF16", shape: [3], data: bf }],
      ["f", { dtype: "F32", shape: [1], data: Float32Array.of(7) }],
    ]),
    w,
  );
  assert.deepEqual(Array.from(out.get("h")!.data as Float32Array), [1, -2, 65504, 2 ** -24, Infinity, 0.333251953125]);
  assert.deepEqual(Array.from(out.get("b")!.data as Float32Array), [1, -3, 0]);
  assert.equal(out.get("f")!.data[0], 7);
  assert.deepEqual(w, { F16: 1, BF16: 1 });
});

Deno.test("an fp16 and a bf16 HF folder load widened to fp32 (within half precision of the fp32 folder), said once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ref = await refTensors();
    for (const dtype of ["F16", "BF16"] as const) {
      const half = new Map<string, Tensor>();
      for (const [k, t] of ref) {
        const d = t.data as Float32Array;
        const bits = dtype === "F16"
          ? Uint16Array.from(d, toHalf)
          : Uint16Array.from(new Uint32Array(d.buffer, d.byteOffset, d.length), (u) => u >>> 16);
        half.set(k, { dtype, shape: t.shape, data: bits });
      }
      const notes: string[] = [];
      const m = await loadModel(await folder(`${dir}/${dtype}`, half, { torch_dtype: "float16" }), {
        log: (l) => notes.push(l),
      });
      const full = await loadModel(HF);
      assert.equal(notes.length, 1);
      assert.match(notes[0], new RegExp(`${ref.size} ${dtype === "F16" ? "fp16" : "bf16"} tensors widened to fp32`));
      const rel = dtype === "F16" ? 2 ** -11 : 2 ** -7; // fp16 rounded to nearest, bf16 truncated above
      for (const [k, t] of full.params) {
        const a = m.params.get(k)!.data as Float32Array, b = t.data as Float32Array;
        assert.equal(m.params.get(k)!.dtype, "F32");
        let bad = -1;
        for (let i = 0; i < b.length && bad < 0; i++) {
          if (!(Math.abs(a[i] - b[i]) <= rel * Math.abs(b[i]) + 2 ** -24)) bad = i;
        }
        assert.equal(bad, -1, `${dtype} ${k}[${bad}]: ${a[bad]} vs ${b[bad]}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sharded HF folders (safetensors and .bin, *.index.json) load bit-equal to the single-file folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ref = await refTensors();
    const names = [...ref.keys()];
    const halves = [names.slice(0, 10), names.slice(10)];
    for (const kind of ["safetensors", "bin"] as const) {
      const d = await folder(`${dir}/${kind}`, null);
      const map: Record<string, string> = {};
      for (let i = 0; i < 2; i++) {
        const file = kind === "bin"
          ? `pytorch_model-0000${i + 1}-of-00002.bin`
          : `model-0000${i + 1}-of-00002.safetensors`;
        const part = new Map(halves[i].map((n) => [n, ref.get(n)!]));
        // a tensor the index does not list is not read into the model
        if (i === 1) part.set("unlisted.extra", ref.get(names[0])!);
        await Deno.writeFile(
          `${d}/${file}`,
          kind === "bin"
            ? writeTorchBin(part, { archiveName: file.slice(0, -4) })
            : writeSafetensors(part, { format: "pt" }),
        );
        for (const n of halves[i]) map[n] = file;
      }
      const index = kind === "bin" ? "pytorch_model.bin.index.json" : "model.safetensors.index.json";
      await Deno.writeTextFile(`${d}/${index}`, JSON.stringify({ metadata: { total_size: 0 }, weight_map: map }));
      const m = await loadModel(d);
      const full = await loadModel(HF);
      assert.deepEqual([...m.params.keys()], [...full.params.keys()]);
      for (const [k, t] of full.params) assert.deepEqual(m.params.get(k)!.data, t.data, `${kind} ${k}`);
      // an index naming a tensor its shard lacks, or a path outside the folder, is an error naming it
      await Deno.writeTextFile(
        `${d}/${index}`,
        JSON.stringify({ weight_map: { ...map, "albert.pooler.bias": map[names[0]] } }),
      );
      await assert.rejects(() => loadModel(d), /lists "albert.pooler.bias" in .*which does not hold it/);
      await Deno.writeTextFile(`${d}/${index}`, JSON.stringify({ weight_map: { ...map, x: "../secret.bin" } }));
      await assert.rejects(() => loadModel(d), /maps "x" to "..\/secret.bin"/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AlbertForMaskedLM / AlbertModel folders load for the tasks they serve; others name the missing weights", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ref = await refTensors();
    const mlm = new Map([...ref].filter(([k]) => !k.startsWith("albert.pooler.") && !k.startsWith("sop_classifier.")));
    const m = await loadModel(await folder(`${dir}/mlm`, mlm, { architectures: ["AlbertForMaskedLM"] }));
    assert.deepEqual(m.heads, ["mlm"]);
    requireTask(m, "fill-mask", "mlm");
    requireTask(m, "feature-extraction", "mlm");
    assert.throws(
      () => requireTask(m, "sentence-order", `${dir}/mlm`),
      /Cannot run sentence-order with ".*mlm": the model has no pooler and SOP head \(missing "albert.pooler.weight"/,
    );
    assert.throws(() => requireTask(m, "text-classification", "x"), /no classification head.*"classifier.weight"/);
    // transformers' AlbertModel.save_pretrained: no "albert." prefix, pooler kept, no heads
    const base = new Map(
      [...ref].filter(([k]) => k.startsWith("albert.")).map(([k, v]) => [k.slice("albert.".length), v]),
    );
    const am = await loadModel(await folder(`${dir}/base`, base, { architectures: ["AlbertModel"] }));
    assert.deepEqual(am.heads, ["pooler"]);
    assert.throws(() => requireTask(am, "fill-mask", "base"), /no MLM head \(missing "predictions.dense.weight"/);
    // tied decoder: decoder weight absent, tie_word_embeddings true (transformers' default) -> the embeddings
    const tied = new Map([...mlm].filter(([k]) => k !== "predictions.decoder.weight"));
    const t = await loadModel(await folder(`${dir}/tied`, tied, { tie_word_embeddings: true }));
    assert.equal(
      t.params.get("target.mlm.linear_2.weight")!.data,
      t.params.get("embedding.word.embedding.weight")!.data,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer.json serves when vocab.txt is absent (WordPiece vocab, BertNormalizer casing), errors name the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const d = await folder(`${dir}/t5`, await refTensors(), {}, ["tokenizer.json"]);
    const tok = (await modelTokenizer(d))!;
    const txt = (await readFolderTokenizer(HF))!;
    assert.equal(tok.source, `${d}/tokenizer.json`);
    assert.deepEqual(tok.vocab.tokens, txt.vocab.tokens);
    assert.equal(tok.doLowerCase, true);
    const tj = JSON.parse(await Deno.readTextFile(`${HF}/tokenizer.json`));
    await Deno.writeTextFile(
      `${d}/tokenizer.json`,
      JSON.stringify({ ...tj, normalizer: { ...tj.normalizer, lowercase: false } }),
    );
    assert.equal((await readFolderTokenizer(d))!.doLowerCase, false);
    await Deno.writeTextFile(
      `${d}/tokenizer.json`,
      JSON.stringify({ ...tj, normalizer: { ...tj.normalizer, lowercase: false, strip_accents: true } }),
    );
    await assert.rejects(() => readFolderTokenizer(d), /tokenizer.json": strip_accents true with lowercase false/);
    await Deno.writeTextFile(`${d}/tokenizer.json`, JSON.stringify({ ...tj, model: { ...tj.model, type: "BPE" } }));
    await assert.rejects(() => readFolderTokenizer(d), /model type is "BPE", not "WordPiece"/);
    await Deno.remove(`${d}/tokenizer.json`);
    await assert.rejects(() => modelTokenizer(d), /no vocab.txt or tokenizer.json.*\n {2}hint: pass --vocab_path/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sharded folder is read lazily: only the tensors its index lists, one shard at a time (a 512 MiB unlisted tensor is never read)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ref = await refTensors();
    const names = [...ref.keys()];
    const d = await folder(`${dir}/lazy`, null);
    const map: Record<string, string> = {};
    const halves = [names.slice(0, 5), names.slice(5)];
    const decoy = 512 << 20;
    for (let i = 0; i < 2; i++) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      for (const n of halves[i]) map[n] = file;
      // fp16 shards: widened as each shard is read
      const half = new Map(halves[i].map((n) => {
        const t = ref.get(n)!, f = t.data as Float32Array;
        return [n, { dtype: "F16" as const, shape: t.shape, data: Uint16Array.from(f, toHalf) }];
      }));
      const bytes = writeSafetensors(half, { format: "pt" });
      if (i === 0) {
        await Deno.writeFile(`${d}/${file}`, bytes);
        continue;
      }
      // shard 2 also holds "unlisted.decoy", 512 MiB of F32 after the listed tensors, written as a hole
      // (a sparse file): reading the whole shard would make it resident, a lazy read never touches it
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
      const dataLen = bytes.length - 8 - n;
      header["unlisted.decoy"] = { dtype: "F32", shape: [decoy / 4], data_offsets: [dataLen, dataLen + decoy] };
      let json = JSON.stringify(header);
      json += " ".repeat((8 - (json.length % 8)) % 8);
      const head = new Uint8Array(8 + json.length);
      new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
      head.set(new TextEncoder().encode(json), 8);
      await Deno.writeFile(`${d}/${file}`, head);
      await Deno.writeFile(`${d}/${file}`, bytes.subarray(8 + n), { append: true });
      await Deno.truncate(`${d}/${file}`, head.length + dataLen + decoy);
    }
    await Deno.writeTextFile(`${d}/model.safetensors.index.json`, JSON.stringify({ weight_map: map }));
    const before = Deno.memoryUsage().rss;
    const notes: string[] = [];
    const m = await loadModel(d, { log: (l) => notes.push(l) });
    const grown = Deno.memoryUsage().rss - before;
    assert.ok(grown < 256 << 20, `resident memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB`);
    assert.equal(notes.length, 1, notes.join("\n"));
    assert.match(notes[0], /fp16/);
    // the same weights as the fp16 values of the reference, widened exactly
    const full = await loadModel(HF);
    assert.deepEqual([...m.params.keys()], [...full.params.keys()]);
    for (const [k, t] of full.params) {
      const got = m.params.get(k)!.data as Float32Array, want = t.data as Float32Array;
      for (let i = 0; i < want.length; i += 97) {
        assert.ok(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -10 + 2 ** -24, `${k}[${i}]`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
