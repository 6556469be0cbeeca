/**
 * A fine-tuned classifier into the ecosystem: `convert --to hf` of UER-py's `finetuned_model.bin`
 * writes an `AlbertForSequenceClassification` folder (`output_layer_1` → `albert.pooler`,
 * `output_layer_2` → `classifier`, `id2label`/`label2id`) that torch reads and `--from hf` reads back to
 * the same tensors; a pooling HF cannot express is refused; `convert --to onnx` writes a folder that
 * transformers.js' `pipeline("text-classification")` loads, with our `infer`'s labels and scores
 * within 1e-4 — for `first` and for `mean` pooling (sentence pairs included).
 */
import assert from "node:assert/strict";
import { AutoModelForSequenceClassification, AutoTokenizer, env, pipeline } from "@huggingface/transformers";
import { loadModel } from "../convert/mod.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { AlbertPipeline, type TextInput } from "../core/model/pipeline.ts";
import type { Pooling } from "../core/model/classifier.ts";
import { cli } from "./_cli.ts";
import { refPath } from "./reference.ts";

const MODEL = refPath("albert-tiny/finetune_trace/finetuned_model.bin");
const CONFIG = refPath("albert-tiny/uer_config.json");
const VOCAB = refPath("vocab/google_zh_vocab.txt");

Deno.test("convert --to hf of a fine-tuned model: AlbertForSequenceClassification folder, read back exactly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const hf = `${dir}/hf`;
    const r = await cli([
      "convert",
      "--to",
      "hf",
      "--input_model_path",
      MODEL,
      "--output_model_path",
      hf,
      "--config_path",
      CONFIG,
      "--vocab_path",
      VOCAB,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(await Deno.readTextFile(`${hf}/config.json`));
    assert.deepEqual(cfg.architectures, ["AlbertForSequenceClassification"]);
    assert.deepEqual(cfg.id2label, { "0": "LABEL_0", "1": "LABEL_1" });
    assert.deepEqual(cfg.label2id, { LABEL_0: 0, LABEL_1: 1 });
    const py = await new Deno.Command("/usr/bin/python3", {
      args: [
        "-c",
        "import sys, torch; print(' '.join(sorted(torch.load(sys.argv[1], map_location='cpu'))))",
        `${hf}/pytorch_model.bin`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(py.code, 0, new TextDecoder().decode(py.stderr));
    const keys = new TextDecoder().decode(py.stdout).trim().split(" ");
    for (const k of ["albert.pooler.weight", "albert.pooler.bias", "classifier.weight", "classifier.bias"]) {
      assert.ok(keys.includes(k), k);
    }
    assert.ok(!keys.some((k) => k.startsWith("predictions.") || k.startsWith("output_layer")));
    // back to UER names: the same tensors
    const back = await loadModel(hf);
    const orig = await loadModel(MODEL, { configPath: CONFIG });
    assert.deepEqual(back.heads, ["classifier"]);
    assert.deepEqual([...back.params.keys()], [...orig.params.keys()]);
    for (const [n, t] of orig.params) {
      // HF has no padding row 0 in its token-type table (by design): rows 1 and 2 come back
      const skip = n === "embedding.seg.embedding.weight" ? t.shape[1] : 0;
      assert.deepEqual(back.params.get(n)!.data.slice(skip), t.data.slice(skip), n);
    }
    // a pooling HF cannot express
    const mean = await cli([
      "convert",
      "--to",
      "hf",
      "--pooling",
      "mean",
      "--input_model_path",
      MODEL,
      "--output_model_path",
      `${dir}/m`,
      "--config_path",
      CONFIG,
    ]);
    assert.equal(mean.code, 1);
    assert.match(
      mean.stderr,
      /fine-tuned with --pooling mean, and HF's AlbertForSequenceClassification pools the first token only\n {2}hint: export it with --to onnx/,
    );
    const uer = await cli([
      "convert",
      "--to",
      "uer",
      "--pooling",
      "mean",
      "--input_model_path",
      MODEL,
      "--output_model_path",
      `${dir}/u.bin`,
      "--config_path",
      CONFIG,
    ]);
    assert.equal(uer.code, 2);
    assert.match(uer.stderr, /--pooling has no effect with --to uer/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const TEXTS: TextInput[] = [
  { a: "这个宾馆比较陈旧了，特价的房间也很一般。" },
  { a: "屏幕很漂亮，速度也快，很满意。" },
  { a: "房间不错", b: "服务很差，不会再来了" },
];

Deno.test("convert --to onnx of a fine-tuned model loads in transformers.js text-classification with our labels and scores", async () => {
  const dir = await Deno.makeTempDir();
  try {
    env.allowRemoteModels = false;
    env.localModelPath = `${dir}/`;
    const m = await loadModel(MODEL, { configPath: CONFIG });
    const tok = new BertTokenizer(await readVocabFile(VOCAB, "uer"), { mode: "uer" });
    for (const pooling of ["first", "mean"] as Pooling[]) {
      const args = ["convert", "--to", "onnx", "--input_model_path", MODEL, "--output_model_path", `${dir}/${pooling}`];
      const r = await cli([...args, "--config_path", CONFIG, "--vocab_path", VOCAB, "--pooling", pooling]);
      assert.equal(r.code, 0, r.stderr);
      const ours = AlbertPipeline.create(m, tok, { device: "cpu", pooling });
      const mine = await ours.classify(TEXTS, { batchSize: 4, seqLength: 128 });
      await ours.release();
      const tjs = await pipeline("text-classification", pooling, { dtype: "fp32", device: "cpu" });
      for (const [i, t] of TEXTS.entries()) {
        if (t.b !== undefined) continue;
        const theirs = (await tjs(t.a, { top_k: null } as Record<string, unknown>)) as {
          label: string;
          score: number;
        }[];
        assert.equal(theirs.length, 2);
        for (const p of theirs) {
          const want = mine[i].probs[Number(p.label.replace("LABEL_", ""))];
          assert.ok(Math.abs(p.score - want) <= 1e-4, `${pooling} text ${i} ${p.label}: ${p.score} vs ours ${want}`);
        }
      }
      await tjs.dispose();
      // Pairs: transformers.js' pipeline takes single texts; its tokenizer and model take text_pair.
      const tokenizer = await AutoTokenizer.from_pretrained(pooling);
      const model = await AutoModelForSequenceClassification.from_pretrained(pooling, { dtype: "fp32", device: "cpu" });
      for (const [i, t] of TEXTS.entries()) {
        if (t.b === undefined) continue;
        const { logits } = await model(await tokenizer(t.a, { text_pair: t.b }));
        const l = logits.data as Float32Array;
        for (let c = 0; c < 2; c++) {
          const want = mine[i].logits[c];
          assert.ok(Math.abs(l[c] - want) <= 1e-4, `${pooling} pair ${i} logit ${c}: ${l[c]} vs ours ${want}`);
        }
      }
      await model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
