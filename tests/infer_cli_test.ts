import assert from "node:assert/strict";
import { readSafetensors } from "../convert/safetensors.ts";
import { REF, refTensors } from "./forward_check.ts";
import { refJson, refPath } from "./reference.ts";
import { cli as run } from "./_cli.ts";

interface Pred {
  score: number;
  token: number;
  token_str: string;
  sequence: string;
}

const cli = (...args: string[]) => run(args);

interface ForwardJson {
  inputs: { text_a: string; text_b: string | null; mask_chars: number[]; tokens: string[] }[];
  mask_token_predictions: {
    row: number;
    pos: number;
    uer_top5: [number, string, number][];
    hf_top5: [number, string, number][];
  }[];
}

function softmaxAt(logits: Float32Array, offset: number, V: number, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[offset + i] - max);
  return Math.exp(logits[offset + id] - max) / sum;
}

Deno.test("infer fill-mask --json gives the reference top-5 of uer_model.bin (UER) and hf/ (HF) with softmax scores", async () => {
  const fwd = await refJson<ForwardJson>(`${REF}/forward.json`);
  const ref = await refTensors(`${REF}/forward.safetensors`);
  const m = fwd.mask_token_predictions[0];
  const inp = fwd.inputs[m.row];
  const chars = [...inp.text_a];
  for (const c of inp.mask_chars) chars[c] = "[MASK]";
  const text = chars.join("");
  const L = ref.get("src")!.shape[1], V = ref.get("uer.mlm_logits")!.shape[2];
  for (const sem of ["uer", "hf"] as const) {
    const model = sem === "uer"
      ? ["--model_path", refPath(`${REF}/uer_model.bin`), "--vocab_path", refPath(`${REF}/hf/vocab.txt`)]
      : ["--model_path", refPath(`${REF}/hf`)];
    const r = await cli("infer", ...model, "--text", text, "--json", "--device", "cpu");
    assert.equal(r.code, 0, r.stderr);
    const preds = JSON.parse(r.stdout) as Pred[];
    const want = sem === "uer" ? m.uer_top5 : m.hf_top5;
    assert.deepEqual(preds.map((p) => p.token), want.map((w) => w[0]));
    assert.deepEqual(preds.map((p) => p.token_str), want.map((w) => w[1]));
    const logits = ref.get(`${sem}.mlm_logits`)!.data as Float32Array;
    for (const p of preds) {
      const s = softmaxAt(logits, (m.row * L + m.pos) * V, V, p.token);
      assert.ok(Math.abs(p.score - s) <= 1e-6 + 1e-4 * s, `${sem} score ${p.score} vs ${s}`);
    }
    assert.equal(
      preds[0].sequence,
      inp.tokens.slice(1, -1).map((t, i) => i + 1 === m.pos ? want[0][1] : t).join(" ").replace(" ##", ""),
    );
  }
});

Deno.test("infer feature-extraction from --test_path in batches matches hf.encoder_output and pooled_output", async () => {
  const fwd = await refJson<ForwardJson>(`${REF}/forward.json`);
  const ref = await refTensors(`${REF}/forward.safetensors`);
  const dir = await Deno.makeTempDir();
  try {
    const lines = fwd.inputs.map((i) =>
      (i.text_b ? `${i.text_a}\t${i.text_b}` : i.text_a).replace(
        /./gu,
        (c, k) => !i.text_b && i.mask_chars.includes(k) ? "[MASK]" : c,
      )
    );
    await Deno.writeTextFile(`${dir}/in.txt`, lines.join("\n") + "\n");
    const r = await cli(
      "infer",
      "--model_path",
      refPath(`${REF}/hf`),
      "--test_path",
      `${dir}/in.txt`,
      "--task",
      "feature-extraction",
      "--batch_size",
      "3",
      "--output_path",
      `${dir}/f.safetensors`,
      "--device",
      "cpu",
      "--quiet",
    );
    assert.equal(r.code, 0, r.stderr);
    const got = readSafetensors(await Deno.readFile(`${dir}/f.safetensors`), "f").tensors;
    const H = 64, L = ref.get("src")!.shape[1];
    const lengths = Array.from(got.get("lengths")!.data as BigInt64Array, Number);
    assert.deepEqual(lengths, fwd.inputs.map((i) => i.tokens.length));
    const Lg = got.get("last_hidden_state")!.shape[1];
    const gh = got.get("last_hidden_state")!.data as Float32Array,
      rh = ref.get("hf.encoder_output")!.data as Float32Array;
    const gp = got.get("pooled_output")!.data as Float32Array, rp = ref.get("hf.pooled_output")!.data as Float32Array;
    lengths.forEach((n, row) => {
      for (let k = 0; k < n * H; k++) {
        const a = gh[row * Lg * H + k], b = rh[row * L * H + k];
        assert.ok(Math.abs(a - b) <= 1e-5 + 1e-4 * Math.abs(b), `row ${row} [${k}] ${a} vs ${b}`);
      }
      for (let k = 0; k < H; k++) {
        assert.ok(Math.abs(gp[row * H + k] - rp[row * H + k]) <= 1e-5 + 1e-4 * Math.abs(rp[row * H + k]));
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infer reports bad input in one line: no [MASK], vocab size, config/weights mismatch, long rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const hf = refPath(`${REF}/hf`);
    let r = await cli("infer", "--model_path", hf, "--text", "没有掩码", "--task", "fill-mask", "--device", "cpu");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: Cannot run fill-mask: text 1 "没有掩码" has no \[MASK\]\n/);

    await Deno.writeTextFile(`${dir}/vocab.txt`, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"].join("\n") + "\n");
    r = await cli(
      "infer",
      "--model_path",
      hf,
      "--vocab_path",
      `${dir}/vocab.txt`,
      "--text",
      "a[MASK]",
      "--device",
      "cpu",
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: Cannot use vocab ".*vocab.txt": it has 6 tokens but the model's word embedding has 21128 rows\n/,
    );

    const cfg = JSON.parse(await Deno.readTextFile(refPath(`${REF}/uer_config.json`)));
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify({ ...cfg, hidden_size: 128 }));
    r = await cli(
      "infer",
      "--model_path",
      refPath(`${REF}/uer_model.bin`),
      "--config_path",
      `${dir}/cfg.json`,
      "--vocab_path",
      refPath(`${REF}/hf/vocab.txt`),
      "--text",
      "中[MASK]",
      "--device",
      "cpu",
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: Cannot load UER model .* has shape .*the config needs.*\n/);

    r = await cli(
      "infer",
      "--model_path",
      hf,
      "--text",
      "中国的首都是[MASK]京。",
      "--seq_length",
      "6",
      "--device",
      "cpu",
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has no \[MASK\] left after truncation\n/);
    r = await cli(
      "infer",
      "--model_path",
      hf,
      "--text",
      "中国的首都是[MASK]京。",
      "--seq_length",
      "9",
      "--device",
      "cpu",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: text 1 has 11 tokens, truncated to --seq_length 9/);
    assert.equal((JSON.parse(r.stdout) as Pred[]).length, 5);
    // --seq_length beyond the model's 128 positions: rows are cut to the positions, with a warning.
    r = await cli("infer", "--model_path", hf, "--text", "中".repeat(140) + "[MASK]", "--seq_length", "512", "--json");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /warning: text 1 has 143 tokens, truncated to the model's 128 positions/);
    r = await cli("infer", "--model_path", hf, "--text", "[MASK]" + "中".repeat(140), "--seq_length", "512", "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Pred[]).length, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
