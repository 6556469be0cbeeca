import assert from "node:assert/strict";
import { headlessFolder } from "./hf_folders.ts";
import { REF, refTensors } from "./forward_check.ts";
import { refJson, refPath } from "./reference.ts";
import { cli, ownLines } from "./_cli.ts";

// HF folders as transformers 5 saves them: AlbertForMaskedLM (no pooler, no SOP head) with tokenizer.json
// and no vocab.txt. infer serves fill-mask and feature extraction from it; numpy reads the .npz / .npy files.

interface ForwardJson {
  inputs: { text_a: string; mask_chars: number[]; tokens: string[] }[];
  mask_token_predictions: { row: number; hf_top5: [number, string, number][] }[];
}

function maskedLmFolder(dir: string): Promise<string> {
  return headlessFolder(dir, "AlbertForMaskedLM", ["tokenizer.json"]);
}

function numpy(code: string): string {
  const out = new Deno.Command("/usr/bin/python3", { args: ["-c", code], stdout: "piped", stderr: "piped" })
    .outputSync();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("infer runs fill-mask on an AlbertForMaskedLM folder with tokenizer.json only (reference top-5)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fwd = await refJson<ForwardJson>(`${REF}/forward.json`);
    const m = fwd.mask_token_predictions[0];
    const chars = [...fwd.inputs[m.row].text_a];
    for (const c of fwd.inputs[m.row].mask_chars) chars[c] = "[MASK]";
    const folder = await maskedLmFolder(`${dir}/mlm`);
    const r = await cli(["infer", "--model_path", folder, "--text", chars.join(""), "--json", "--device", "cpu"]);
    assert.equal(r.code, 0, r.stderr);
    const preds = JSON.parse(r.stdout) as { token: number }[];
    assert.deepEqual(preds.map((p) => p.token), m.hf_top5.map((w) => w[0]));
    // the LayerNorm it ran with, in one line on stderr
    assert.match(r.stderr, /^model: hf, runs the standard LayerNorm \(HF, eps 1e-12\)$/m);
    const q = await cli([
      "infer",
      "--model_path",
      folder,
      "--text",
      chars.join(""),
      "--json",
      "--quiet",
      "--device",
      "cpu",
    ]);
    assert.ok(!q.stderr.includes("model: "), q.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infer feature-extraction writes .npz and .npy (+ companions) that numpy reads, without pooled_output when there is no pooler", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ref = await refTensors(`${REF}/forward.safetensors`);
    const fwd = await refJson<ForwardJson>(`${REF}/forward.json`);
    const text = fwd.inputs[0].text_a;
    const n = fwd.inputs[0].tokens.length;
    const hf = refPath(`${REF}/hf`);
    // the full folder: all three arrays in the .npz
    let r = await cli([
      "infer",
      "--model_path",
      hf,
      "--text",
      text,
      "--output_path",
      `${dir}/f.npz`,
      "--device",
      "cpu",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(numpy(
      `import numpy as np, json; d = np.load("${dir}/f.npz"); ` +
        `print(json.dumps({k: [str(d[k].dtype), list(d[k].shape), d[k].ravel()[:3].tolist()] for k in sorted(d.files)}))`,
    ));
    assert.deepEqual(Object.keys(got), ["last_hidden_state", "lengths", "pooled_output"]);
    assert.deepEqual(got.lengths, ["int64", [1], [n]]);
    assert.deepEqual(got.last_hidden_state.slice(0, 2), ["float32", [1, n, 64]]);
    const h = ref.get("hf.encoder_output")!.data as Float32Array;
    got.last_hidden_state[2].forEach((v: number, i: number) => assert.ok(Math.abs(v - h[i]) < 1e-5, `h[${i}]`));
    // AlbertForMaskedLM: no pooler, so .npy + lengths companion only, and a note says so
    const mlm = await maskedLmFolder(`${dir}/mlm`);
    r = await cli(["infer", "--model_path", mlm, "--text", text, "--output_path", `${dir}/g.npy`, "--device", "cpu"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /has no pooler: features without pooled_output/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).filter((x) => x.startsWith("g")).sort(), [
      "g.lengths.npy",
      "g.npy",
    ]);
    assert.equal(
      numpy(`import numpy as np; print(np.load("${dir}/g.npy").shape, np.load("${dir}/g.lengths.npy").tolist())`),
      `(1, ${n}, 64) [${n}]`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an ONNX folder from convert --to onnx is a --model_path: infer gives the UER model's predictions", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bin = refPath(`${REF}/uer_model.bin`), vocab = refPath(`${REF}/hf/vocab.txt`);
    const text = "北京是中国的[MASK]都。";
    let r = await cli([
      "convert",
      "--to",
      "onnx",
      "--input_model_path",
      bin,
      "--vocab_path",
      vocab,
      "--output_model_path",
      `${dir}/onnx`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const a = await cli(["infer", "--model_path", `${dir}/onnx`, "--text", text, "--json", "--device", "cpu"]);
    const b = await cli([
      "infer",
      "--model_path",
      bin,
      "--vocab_path",
      vocab,
      "--text",
      text,
      "--json",
      "--device",
      "cpu",
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(JSON.parse(a.stdout), JSON.parse(b.stdout));
    assert.match(a.stderr, /^model: onnx, runs UER-py's LayerNorm/m);
    r = await cli([
      "convert",
      "--from",
      "onnx",
      "--to",
      "hf",
      "--input_model_path",
      `${dir}/onnx`,
      "--output_model_path",
      `${dir}/hf`,
    ]);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an ONNX folder holding only onnx/model_quantized.onnx (convert --dtype q8) serves infer --dtype q8, and is refused otherwise naming the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bin = refPath(`${REF}/uer_model.bin`), vocab = refPath(`${REF}/hf/vocab.txt`);
    const text = "北京是中国的[MASK]都。";
    const q8 = `${dir}/q8`;
    const r = await cli([
      "convert",
      "--to",
      "onnx",
      "--dtype",
      "q8",
      "--input_model_path",
      bin,
      "--vocab_path",
      vocab,
      "--output_model_path",
      q8,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...Deno.readDirSync(`${q8}/onnx`)].map((e) => e.name), ["model_quantized.onnx"]);
    const infer = (model: string[], extra: string[]) =>
      cli(["infer", ...model, "--text", text, "--json", "--device", "cpu", ...extra]);
    // --dtype q8: the file's own int8 weights, so the same predictions as q8 of the model it was exported from
    const a = await infer(["--model_path", q8], ["--dtype", "q8"]);
    const b = await infer(["--model_path", bin, "--vocab_path", vocab], ["--dtype", "q8"]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(JSON.parse(a.stdout), JSON.parse(b.stdout));
    assert.match(a.stderr, /^note: ".*q8" holds only onnx\/model_quantized\.onnx: its 11 int8 weights are read back/m);
    // without --dtype q8 (fp32 would run int8 values as if float), and for convert: one line and a hint
    const refused = [
      await infer(["--model_path", q8], []),
      await cli([
        "convert",
        "--from",
        "onnx",
        "--to",
        "hf",
        "--input_model_path",
        q8,
        "--output_model_path",
        `${dir}/hf`,
      ]),
    ];
    for (const x of refused) {
      assert.equal(x.code, 1, x.stderr);
      assert.deepEqual(
        ownLines(x.stderr),
        [
          `error: Cannot load model "${q8}": it holds only onnx/model_quantized.onnx (int8 weights), no float ` +
          "onnx/model.onnx",
          "  hint: infer runs it with --dtype q8; for anything else export onnx/model.onnx (convert --to onnx --dtype " +
          "fp32) from the model it came from",
        ],
      );
    }
    assert.equal(await Deno.stat(`${dir}/hf`).then(() => true, () => false), false, "nothing written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
