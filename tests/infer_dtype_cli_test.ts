import assert from "node:assert/strict";
import { writeTorchBin } from "../convert/torch_bin.ts";
import { REF, refTensors } from "./forward_check.ts";
import { refPath } from "./reference.ts";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../cli/main.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The reference's trained tiny model as a UER .bin in `dir`, with its config and vocab flags. */
async function trainedBin(dir: string): Promise<string[]> {
  const bin = `${dir}/trained.bin`;
  await Deno.writeFile(bin, writeTorchBin(await refTensors(`${REF}/train_trace/final_params.safetensors`)));
  return [bin, "--config_path", refPath(`${REF}/uer_config.json`), "--vocab_path", refPath(`${REF}/hf/vocab.txt`)];
}

Deno.test("convert --to onnx --dtype fp32,q8 writes model.onnx and model_quantized.onnx; --dtype elsewhere or unknown is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [bin, ...flags] = await trainedBin(dir);
    const r = await cli(
      "convert",
      "--to",
      "onnx",
      "--input_model_path",
      bin,
      "--output_model_path",
      `${dir}/out`,
      ...flags,
      "--dtype",
      "fp32,q8",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).files, ["onnx/model.onnx", "onnx/model_quantized.onnx"]);
    for (const f of ["model.onnx", "model_quantized.onnx"]) {
      assert.ok((await Deno.stat(`${dir}/out/onnx/${f}`)).size > 0);
    }
    const bad = await cli(
      "convert",
      "--to",
      "onnx",
      "--input_model_path",
      bin,
      "--output_model_path",
      `${dir}/b`,
      ...flags,
      "--dtype",
      "int4",
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--dtype/);
    const hf = await cli(
      "convert",
      "--to",
      "hf",
      "--input_model_path",
      bin,
      "--output_model_path",
      `${dir}/hf`,
      ...flags,
      "--dtype",
      "q8",
    );
    assert.equal(hf.code, 2);
    assert.match(hf.stderr, /Cannot convert to hf with --dtype q8: .*\n {2}hint: drop --dtype or use --to onnx/);
    await assert.rejects(() => Deno.stat(`${dir}/hf`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infer --test_path --dtype q8 answers every line in input order, with fp32's top predictions", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [bin, ...flags] = await trainedBin(dir);
    const lines = [
      "北京是中国的[MASK]都。",
      "好[MASK]",
      "今天去公园散[MASK]，很开心，我们一起走了很久很久的路。",
      "[MASK]们",
    ];
    await Deno.writeTextFile(`${dir}/in.txt`, lines.join("\n") + "\n");
    const run = async (dtype: string) => {
      const r = await cli(
        "infer",
        "--model_path",
        bin,
        ...flags,
        "--test_path",
        `${dir}/in.txt`,
        "--batch_size",
        "2",
        "--dtype",
        dtype,
        "--json",
        "--device",
        "cpu",
      );
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { token: number; sequence: string; score: number }[][];
    };
    const q8 = await run("q8"), fp32 = await run("fp32");
    assert.equal(q8.length, lines.length);
    q8.forEach((preds, i) => {
      assert.equal(preds[0].sequence.replace(/ /g, "").length, lines[i].replace("[MASK]", "x").length, `line ${i}`);
      assert.equal(preds[0].token, fp32[i][0].token, `line ${i}`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
