/**
 * `convert` end to end through the CLI entry point: UER → HF is UER-py's converter output byte for
 * byte; HF → UER → HF and UER → zarr → UER are bit-exact; errors are one line naming the file.
 */
import assert from "node:assert/strict";
import { main } from "../cli/main.ts";
import { refPath } from "./reference.ts";
import { loadModel } from "../convert/mod.ts";
import type { Tensor } from "../core/tensor.ts";

const R = refPath("albert-tiny");

async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = [await Deno.readFile(a), await Deno.readFile(b)];
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
function sameBits(a: Tensor, b: Tensor): boolean {
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  if (x.length !== y.length || a.shape.join() !== b.shape.join()) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
async function convert(...args: string[]): Promise<number> {
  return await main(["convert", "--quiet", ...args]);
}

Deno.test("loadModel() reads all four reference files and the HF folder to bit-identical UER tensors", async () => {
  const uer = await loadModel(`${R}/uer_model.bin`);
  const legacy = await loadModel(`${R}/uer_model_legacy.bin`);
  const folder = await loadModel(`${R}/hf`);
  const bin = await loadModel(`${R}/hf/pytorch_model.bin`);
  const st = await loadModel(`${R}/hf/model.safetensors`);
  assert.equal(uer.format, "uer");
  assert.equal(uer.semantics, "uer");
  assert.equal(folder.semantics, "hf");
  assert.equal(folder.layerNormEps, 1e-12);
  assert.equal(folder.vocabPath, `${R}/hf/vocab.txt`);
  assert.equal(uer.config.layers_num, 3);
  assert.equal(folder.config.heads_num, 4);
  for (const [k, t] of uer.params) {
    assert.ok(sameBits(t, legacy.params.get(k)!), `legacy ${k}`);
    if (k === "embedding.seg.embedding.weight") continue; // HF has no padding row
    for (const m of [folder, bin, st]) assert.ok(sameBits(t, m.params.get(k)!), `${m.format} ${k}`);
  }
  await assert.rejects(() => loadModel(`${R}/nope.bin`), Deno.errors.NotFound);
});

Deno.test("convert: uer→hf matches UER-py's converter bytes; hf→uer→hf and uer→zarr→uer are exact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(
      await convert(
        "--from",
        "uer",
        "--to",
        "hf",
        "--input_model_path",
        `${R}/uer_model.bin`,
        "--output_model_path",
        `${dir}/hf`,
        "--hf_format",
        "both",
        "--vocab_path",
        `${R}/hf/vocab.txt`,
      ),
      0,
    );
    for (const f of ["pytorch_model.bin", "model.safetensors", "vocab.txt"]) {
      assert.ok(await sameFile(`${dir}/hf/${f}`, `${R}/hf/${f}`), f);
    }
    // UER-py's config.json plus the LayerNorm record; the tokenizer's max length is the model's 128 positions
    const json = async (p: string) => JSON.parse(await Deno.readTextFile(p));
    assert.deepEqual(await json(`${dir}/hf/config.json`), {
      ...await json(`${R}/hf/config.json`),
      layer_norm_semantics: "hf",
      trained_layer_norm_semantics: "uer",
    });
    assert.deepEqual(await json(`${dir}/hf/tokenizer_config.json`), {
      ...await json(`${R}/hf/tokenizer_config.json`),
      model_max_length: 128,
    });
    // HF → UER → HF (format detected); bit-exact tensors, and safetensors bytes identical
    assert.equal(
      await convert("--to", "uer", "--input_model_path", `${R}/hf`, "--output_model_path", `${dir}/u.bin`),
      0,
    );
    await Deno.writeTextFile(`${dir}/config.json`, await Deno.readTextFile(`${R}/uer_config.json`));
    assert.equal(
      await convert(
        "--to",
        "hf",
        "--input_model_path",
        `${dir}/u.bin`,
        "--output_model_path",
        `${dir}/hf2`,
        "--hf_format",
        "safetensors",
      ),
      0,
    );
    assert.ok(await sameFile(`${dir}/hf2/model.safetensors`, `${R}/hf/model.safetensors`));
    // UER → zarr → UER: byte-identical .bin (same file name → same archive folder)
    assert.equal(
      await convert("--to", "zarr", "--input_model_path", `${R}/uer_model.bin`, "--output_model_path", `${dir}/ck`),
      0,
    );
    await Deno.mkdir(`${dir}/back`);
    assert.equal(
      await convert(
        "--from",
        "zarr",
        "--to",
        "uer",
        "--input_model_path",
        `${dir}/ck`,
        "--output_model_path",
        `${dir}/back/uer_model.bin`,
      ),
      0,
    );
    assert.ok(await sameFile(`${dir}/back/uer_model.bin`, `${R}/uer_model.bin`));
    // existing output, wrong --from, missing config: exit 1 with one line naming the path
    assert.equal(
      await convert("--to", "zarr", "--input_model_path", `${R}/uer_model.bin`, "--output_model_path", `${dir}/ck`),
      1,
    );
    assert.equal(
      await convert(
        "--from",
        "hf",
        "--to",
        "uer",
        "--input_model_path",
        `${dir}/ck`,
        "--output_model_path",
        `${dir}/x.bin`,
      ),
      1,
    );
    await Deno.remove(`${dir}/config.json`);
    await Deno.copyFile(`${R}/uer_model.bin`, `${dir}/lonely.bin`);
    assert.equal(
      await convert("--to", "hf", "--input_model_path", `${dir}/lonely.bin`, "--output_model_path", `${dir}/h3`),
      1,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("convert --to hf into a .bin / .safetensors path writes the bare state dict, as the model card's command", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The model card: convert_albert_from_uer_to_huggingface.py --output_model_path pytorch_model.bin
    const bin = `${dir}/new/pytorch_model.bin`;
    const st = `${dir}/model.safetensors`;
    const common = ["--from", "uer", "--to", "hf", "--input_model_path", `${R}/uer_model.bin`];
    assert.equal(await convert(...common, "--config_path", `${R}/uer_config.json`, "--output_model_path", bin), 0);
    assert.ok(await sameFile(bin, `${R}/hf/pytorch_model.bin`), "pytorch_model.bin differs from UER-py's");
    assert.equal(await convert(...common, "--config_path", `${R}/uer_config.json`, "--output_model_path", st), 0);
    assert.ok(await sameFile(st, `${R}/hf/model.safetensors`), "model.safetensors differs from the reference");
    assert.equal(await convert(...common, "--config_path", `${R}/uer_config.json`, "--output_model_path", st), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
