import assert from "node:assert/strict";
import { refJson, refPath } from "../tests/reference.ts";
import { readSafetensors } from "./safetensors.ts";
import { readTorchStateDict, type TorchTensor, writeTorchBin } from "./torch_bin.ts";
import { uerConfigToHf, uerModuleMetadata, uerToHf } from "./names.ts";
import { validateConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
import { randomUerParams } from "./random_model.ts";

interface Manifest {
  uer_state_dict: { name: string; shape: number[]; dtype: string }[];
  hf_state_dict: { name: string; shape: number[]; dtype: string }[];
}

const R = "albert-tiny/";
const read = async (rel: string) => readTorchStateDict(await Deno.readFile(refPath(R + rel)), rel);

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}
function assertBitEqual(a: Tensor, b: Tensor, name: string): void {
  assert.equal(a.dtype, b.dtype, name);
  assert.deepEqual(a.shape, b.shape, name);
  assert.deepEqual(bytesOf(a), bytesOf(b), name);
}
function assertSameNamesShapes(m: Map<string, Tensor>, ref: Manifest["uer_state_dict"]): void {
  assert.deepEqual([...m.keys()], ref.map((e) => e.name));
  for (const e of ref) {
    assert.deepEqual(m.get(e.name)!.shape, e.shape, e.name);
    assert.equal(m.get(e.name)!.dtype, "F32");
  }
}

Deno.test("readTorchStateDict() reads the zip, legacy, HF .bin and safetensors references to identical tensors", async () => {
  const manifest = await refJson<Manifest>(R + "manifest.json");
  const zip = await read("uer_model.bin");
  const legacy = await read("uer_model_legacy.bin");
  const hf = await read("hf/pytorch_model.bin");
  const st = readSafetensors(await Deno.readFile(refPath(R + "hf/model.safetensors")), "model.safetensors").tensors;
  assert.equal(zip.container, "zip");
  assert.equal(legacy.container, "legacy");
  assertSameNamesShapes(zip.tensors, manifest.uer_state_dict);
  assertSameNamesShapes(legacy.tensors, manifest.uer_state_dict);
  assertSameNamesShapes(hf.tensors, manifest.hf_state_dict);
  assertSameNamesShapes(st, manifest.hf_state_dict);
  for (const [k, v] of zip.tensors) assertBitEqual(v, legacy.tensors.get(k)!, k);
  for (const [k, v] of hf.tensors) assertBitEqual(v, st.get(k)!, k);
  // The HF .bin shares one storage between the two MLM bias keys; the segment table is a view.
  assert.equal(hf.tensors.get("predictions.bias")!.data, hf.tensors.get("predictions.decoder.bias")!.data);
  const tt = hf.tensors.get("albert.embeddings.token_type_embeddings.weight") as TorchTensor;
  assert.equal(tt.storage?.offset, 32);
  assert.equal(tt.storage?.data.length, 96);
  const cfg = validateConfig(await refJson(R + "uer_config.json"), "uer_config.json");
  assert.deepEqual(zip.metadata, uerModuleMetadata(cfg));
  assert.deepEqual(zip.metadata, legacy.metadata);
});

Deno.test("writeTorchBin() of UER→HF(uer_model.bin) equals hf/pytorch_model.bin byte for byte", async () => {
  const zip = await read("uer_model.bin");
  const cfg = validateConfig(await refJson(R + "uer_config.json"), "uer_config.json");
  const out = writeTorchBin(uerToHf(zip.tensors, cfg), { archiveName: "pytorch_model" });
  const ref = await Deno.readFile(refPath(R + "hf/pytorch_model.bin"));
  assert.equal(out.length, ref.length);
  assert.ok(out.every((b, i) => b === ref[i]), "bytes differ");
  // and UER-py's own file is reproduced from its tensors and the generated _metadata
  const uer = writeTorchBin(zip.tensors, { archiveName: "uer_model", metadata: uerModuleMetadata(cfg) });
  const uerRef = await Deno.readFile(refPath(R + "uer_model.bin"));
  assert.ok(uer.length === uerRef.length && uer.every((b, i) => b === uerRef[i]), "uer bytes differ");
  assert.equal(JSON.stringify(uerConfigToHf(cfg, 21128)), JSON.stringify(await refJson(R + "hf/config.json")));
});

Deno.test("writeTorchBin() round-trips dtypes, scalars, strided-free views, >255 memo entries and 1000+ keys", () => {
  const m = new Map<string, TorchTensor>();
  for (let i = 0; i < 1100; i++) m.set(`p.${i}`, { dtype: "F32", shape: [2], data: new Float32Array([i, -i]) });
  m.set("scalar", { dtype: "I64", shape: [], data: new BigInt64Array([-5n]) });
  m.set("big", { dtype: "F64", shape: [70000], data: new Float64Array(70000).fill(0.5) });
  m.set("bytes", { dtype: "U8", shape: [1, 2, 3, 4], data: new Uint8Array(24).map((_, i) => i) });
  const base = new Float32Array([1, 2, 3, 4, 5, 6]);
  m.set("view", { dtype: "F32", shape: [2], data: base.subarray(4), storage: { data: base, offset: 4 } });
  m.set("whole", { dtype: "F32", shape: [3, 2], data: base });
  const back = readTorchStateDict(writeTorchBin(m), "mem.bin").tensors;
  assert.deepEqual([...back.keys()], [...m.keys()]);
  for (const [k, v] of m) assertBitEqual(back.get(k)!, v, k);
  assert.equal(back.get("view")!.storage?.offset, 4);
});

/** The python that has torch: $UER_TS_PYTHON, Debian's /usr/bin/python3, else python3. */
async function torchPython(): Promise<string> {
  const env = Deno.env.get("UER_TS_PYTHON");
  if (env) return env;
  try {
    await Deno.stat("/usr/bin/python3");
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
}

Deno.test("torch.load reads the .bin files we write and sees the same values (python3-torch required)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const zip = await read("uer_model.bin");
    const cfg = validateConfig(await refJson(R + "uer_config.json"), "uer_config.json");
    const hf = uerToHf(zip.tensors, cfg);
    await Deno.writeFile(`${dir}/pytorch_model.bin`, writeTorchBin(hf, { archiveName: "pytorch_model" }));
    const mixed = new Map<string, TorchTensor>([
      ["a", { dtype: "F32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
      ["i", { dtype: "I64", shape: [3], data: new BigInt64Array([1n, -2n, 3n]) }],
      ["s", { dtype: "F64", shape: [], data: new Float64Array([2.5]) }],
    ]);
    await Deno.writeFile(`${dir}/mixed.bin`, writeTorchBin(mixed, { archiveName: "mixed" }));
    const params = randomUerParams({ ...cfg, parameter_sharing: false, layers_num: 2 }, 50, 3);
    await Deno.writeFile(`${dir}/uer.bin`, writeTorchBin(params, { archiveName: "uer" }));
    const script = `
import sys, json, hashlib, torch
out = {}
for name in ["pytorch_model.bin", "mixed.bin", "uer.bin"]:
    sd = torch.load(sys.argv[1] + "/" + name, map_location="cpu")
    out[name] = {k: [list(v.shape), str(v.dtype), hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()] for k, v in sd.items()}
sd = torch.load(sys.argv[1] + "/pytorch_model.bin")
out["shared"] = sd["predictions.bias"].data_ptr() == sd["predictions.decoder.bias"].data_ptr()
print(json.dumps(out))
`;
    const py = await torchPython();
    const res = await new Deno.Command(py, { args: ["-c", script, dir], stdout: "piped", stderr: "piped" }).output();
    const err = new TextDecoder().decode(res.stderr);
    assert.ok(res.success, `python3 with torch failed (install python3-torch): ${err.slice(-400)}`);
    const got = JSON.parse(new TextDecoder().decode(res.stdout));
    const sha = async (t: Tensor) =>
      Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytesOf(t).slice()))).map((b) =>
        b.toString(16).padStart(2, "0")
      ).join("");
    const torchDtype: Record<string, string> = { F32: "torch.float32", I64: "torch.int64", F64: "torch.float64" };
    for (const [file, m] of [["pytorch_model.bin", hf], ["mixed.bin", mixed], ["uer.bin", params]] as const) {
      assert.deepEqual(Object.keys(got[file]), [...m.keys()], file);
      for (const [k, t] of m) {
        assert.deepEqual(got[file][k], [t.shape, torchDtype[t.dtype], await sha(t)], `${file} ${k}`);
      }
    }
    assert.equal(got.shared, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
