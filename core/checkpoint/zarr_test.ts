import assert from "node:assert/strict";
import { ALBERT_BASE } from "../config.ts";
import type { Tensor } from "../tensor.ts";
import { refPath } from "../../tests/reference.ts";
import { readCheckpoint, writeCheckpoint } from "./zarr.ts";
import { useCodecImpl } from "../io/zarr.ts";
import { gunzipSync } from "fflate";
import { readTorchStateDict } from "../../convert/torch_bin.ts";

function sameBits(a: Tensor, b: Tensor): boolean {
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  if (x.length !== y.length || a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

Deno.test("writeCheckpoint() + readCheckpoint() round-trip uer_model.bin bit for bit, with moments and extra", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const params =
      readTorchStateDict(await Deno.readFile(refPath("albert-tiny/uer_model.bin")), "uer_model.bin").tensors;
    const m = new Map([...params].map(([k, t]) => [k, { ...t, data: (t.data as Float32Array).map((x) => x * 0.5) }]));
    const v = new Map([...params].map(([k, t]) => [k, { ...t, data: (t.data as Float32Array).map((x) => x * x) }]));
    const config = {
      ...ALBERT_BASE,
      emb_size: 32,
      hidden_size: 64,
      feedforward_size: 128,
      heads_num: 4,
      layers_num: 3,
    };
    const extra = { loader: { position: 17 }, rng: { state: [1, 2, 3] } };
    await writeCheckpoint(`${dir}/ck-5`, { params, moments: { m, v }, config, step: 5, vocabHash: "ab12", extra });
    // chunked: the 21128 x 32 embedding is not one blob
    const chunks = [...Deno.readDirSync(`${dir}/ck-5/embedding.word.embedding.weight/c`)];
    assert.ok(chunks.length > 1, `one chunk only`);
    const back = await readCheckpoint(`${dir}/ck-5`);
    assert.deepEqual([...back.params.keys()], [...params.keys()]);
    for (const [k, t] of params) {
      assert.ok(sameBits(back.params.get(k)!, t), k);
      assert.ok(sameBits(back.moments!.m.get(k)!, m.get(k)!), `m ${k}`);
      assert.ok(sameBits(back.moments!.v.get(k)!, v.get(k)!), `v ${k}`);
    }
    assert.equal(back.step, 5);
    assert.equal(back.vocabHash, "ab12");
    assert.deepEqual(back.extra, extra);
    assert.deepEqual(back.config, config);
    // no temp folders left behind, and an existing checkpoint is not overwritten silently
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ck-5"]);
    await assert.rejects(
      () => writeCheckpoint(`${dir}/ck-5`, { params, config, step: 6, vocabHash: "" }),
      /already exists/,
    );
    await writeCheckpoint(`${dir}/ck-5`, { params, config, step: 6, vocabHash: "" }, { overwrite: true });
    const again = await readCheckpoint(`${dir}/ck-5`);
    assert.equal(again.step, 6);
    assert.equal(again.moments, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeCheckpoint() chunks are plain gzip of the row-major bytes (last one zero-padded), read by any decoder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const params =
      readTorchStateDict(await Deno.readFile(refPath("albert-tiny/uer_model.bin")), "uer_model.bin").tensors;
    const config = {
      ...ALBERT_BASE,
      emb_size: 32,
      hidden_size: 64,
      feedforward_size: 128,
      heads_num: 4,
      layers_num: 3,
    };
    await writeCheckpoint(`${dir}/ck`, { params, config, step: 1, vocabHash: "" }, { chunkBytes: 100_000 });
    const name = "embedding.word.embedding.weight";
    const t = params.get(name)!;
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/ck/${name}/zarr.json`));
    const rows = meta.chunk_grid.configuration.chunk_shape[0];
    assert.deepEqual(meta.chunk_grid.configuration.chunk_shape, [Math.floor(100_000 / (32 * 4)), 32]);
    const n = Math.ceil(t.shape[0] / rows);
    assert.ok(n > 2);
    const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    for (let i = 0; i < n; i++) {
      const chunk = gunzipSync(await Deno.readFile(`${dir}/ck/${name}/c/${i}/0`));
      const want = new Uint8Array(rows * 32 * 4);
      want.set(raw.subarray(i * rows * 128, (i + 1) * rows * 128));
      assert.deepEqual(chunk, want, `chunk ${i}`);
    }
    // the portable (fflate) decoder reads the whole checkpoint bit for bit
    useCodecImpl("gzip", undefined);
    const back = await readCheckpoint(`${dir}/ck`);
    for (const [k, v] of params) assert.ok(sameBits(back.params.get(k)!, v), k);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
