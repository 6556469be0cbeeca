import assert from "node:assert/strict";
import { env, pipeline } from "@huggingface/transformers";
import { refPath } from "../tests/reference.ts";
import { loadModel } from "./mod.ts";
import { exportOnnx } from "./onnx_export.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { AlbertPipeline, type FillMaskPrediction } from "../core/model/pipeline.ts";

const TEXTS = ["北京是中国的[MASK]都。", "今天去公园散[MASK]，很开心。"];

Deno.test("exportOnnx() writes a transformers.js folder whose fill-mask equals our infer (tokens, scores within 1e-4)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const model = refPath("albert-tiny/uer_model.bin");
    const vocabPath = refPath("albert-tiny/hf/vocab.txt");
    const s = await exportOnnx(model, `${dir}/tiny`, { vocabPath });
    assert.equal(s.semantics, "uer");
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]) {
      assert.ok((await Deno.stat(`${dir}/tiny/${f}`)).isFile, f);
    }
    env.allowRemoteModels = false;
    env.localModelPath = `${dir}/`;
    const tjs = await pipeline("fill-mask", "tiny", { dtype: "fp32", device: "cpu" });

    const m = await loadModel(model);
    const tok = new BertTokenizer(await readVocabFile(vocabPath, "hf"), { mode: "hf" });
    const ours = AlbertPipeline.create(m, tok, { device: "cpu" });
    const mine = await ours.fillMask(TEXTS.map((a) => ({ a })), 5, { batchSize: 2, seqLength: 128 });
    await ours.release();
    for (let i = 0; i < TEXTS.length; i++) {
      const theirs = (await tjs(TEXTS[i], { top_k: 5 })) as unknown as FillMaskPrediction[];
      assert.deepEqual(theirs.map((p) => p.token), mine[i][0].map((p) => p.token));
      assert.deepEqual(theirs.map((p) => p.sequence), mine[i][0].map((p) => p.sequence));
      assert.deepEqual(theirs.map((p) => p.token_str), mine[i][0].map((p) => p.token_str));
      theirs.forEach((p, k) => {
        const want = mine[i][0][k].score;
        assert.ok(Math.abs(p.score - want) <= 1e-4 * want + 1e-9, `${p.score} vs ${want}`);
      });
    }
    await tjs.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
