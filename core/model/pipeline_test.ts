import assert from "node:assert/strict";
import { loadModel } from "../../convert/mod.ts";
import { REF, refTensors, tinyConfig } from "../../tests/forward_check.ts";
import { refPath } from "../../tests/reference.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { parsePlacement } from "../runtime/web.ts";
import { BertTokenizer } from "../tokenizer/bert_tokenizer.ts";
import { AlbertPipeline, topKIds } from "./pipeline.ts";

// Both ≤ 16 tokens: on WebGPU one padded length, so one session per task.
const TEXTS = [{ a: "北京是中国的[MASK]都。" }, { a: "今天去公园散[MASK]，很开心。" }];

async function tinyPipelines() {
  const m = await loadModel(refPath(`${REF}/hf`));
  const tok = new BertTokenizer(await readVocabFile(refPath(`${REF}/hf/vocab.txt`), "hf"), { mode: "hf" });
  return {
    cpu: AlbertPipeline.create(m, tok, { device: "cpu" }),
    gpu: AlbertPipeline.create(m, tok, { device: "webgpu", reportPlacement: true, log: () => {} }),
  };
}

Deno.test("AlbertPipeline on WebGPU places every node on the GPU (static lengths) and matches the CPU pipeline", async () => {
  const { cpu, gpu } = await tinyPipelines();
  try {
    const opts = { batchSize: 2, seqLength: 128 };
    const want = await cpu.fillMask(TEXTS, 5, opts);
    const got = await gpu.fillMask(TEXTS, 5, opts);
    assert.equal(await gpu.paddedLength(13), 16);
    for (let i = 0; i < TEXTS.length; i++) {
      assert.deepEqual(got[i][0].map((p) => p.token), want[i][0].map((p) => p.token));
      assert.deepEqual(got[i][0].map((p) => p.sequence), want[i][0].map((p) => p.sequence));
      got[i][0].forEach((p, k) => {
        const w = want[i][0][k].score; // float32 on different kernels: relative 1e-4
        assert.ok(Math.abs(p.score - w) <= 1e-4 * w + 1e-7, `${p.score} vs ${w}`);
      });
    }
    const fw = await cpu.features(TEXTS, opts), fg = await gpu.features(TEXTS, opts);
    fw.forEach((f, i) => {
      assert.equal(fg[i].length, f.length);
      f.lastHiddenState.forEach((v, k) => {
        const g = fg[i].lastHiddenState[k];
        assert.ok(Math.abs(g - v) <= 1e-4 + 1e-4 * Math.abs(v), `text ${i} hidden[${k}] ${g} vs ${v}`);
      });
    });

    const placed = await gpu.placements();
    assert.deepEqual(placed.map((p) => p.session).sort(), ["feature-extraction:16", "fill-mask:16"]);
    for (const { session, placement } of placed) {
      assert.ok(placement, `${session}: no placement recorded`);
      assert.equal(
        placement.counts.CPUExecutionProvider ?? 0,
        0,
        `${session}: ${placement.nodes.CPUExecutionProvider}`,
      );
      // onnxruntime's fused kernels: 49 / 38 nodes where the standard-op graphs have 95 / 89.
      assert.ok(placement.counts.WebGpuExecutionProvider > 30, `${session}: ${JSON.stringify(placement.counts)}`);
    }
  } finally {
    await cpu.release();
    await gpu.release();
  }
});

/** The albert-tiny model after the reference's 30 training steps (UER semantics). */
async function trainedTiny() {
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  return { config: await tinyConfig(), params, semantics: "uer" as const, layerNormEps: 1e-12 };
}

Deno.test("AlbertPipeline dtype q8: int8 on the CPU (MatMulInteger) and on WebGPU (MatMulNBits, every node on the GPU) predicts what fp32 does", async () => {
  const m = await trainedTiny();
  const tok = new BertTokenizer(await readVocabFile(refPath(`${REF}/hf/vocab.txt`), "hf"), { mode: "hf" });
  const texts = [...TEXTS, { a: "我们[MASK]在一起学习[MASK]文。" }];
  const opts = { batchSize: 3, seqLength: 128 };
  const fp32 = AlbertPipeline.create(m, tok, { device: "cpu" });
  const q8 = AlbertPipeline.create(m, tok, { device: "cpu", dtype: "q8" });
  const gpu = AlbertPipeline.create(m, tok, { device: "webgpu", dtype: "q8", reportPlacement: true, log: () => {} });
  try {
    const want = await fp32.fillMask(texts, 3, opts);
    for (const p of [q8, gpu]) {
      const got = await p.fillMask(texts, 3, opts);
      want.forEach((masks, i) =>
        masks.forEach((preds, j) => {
          assert.deepEqual(got[i][j].map((x) => x.token), preds.map((x) => x.token), `${p.device} text ${i} mask ${j}`);
          preds.forEach((x, k) => {
            // int8 weights: scores within 5 % (measured ≤ 2 % here)
            assert.ok(Math.abs(got[i][j][k].score - x.score) <= 0.05 * x.score, `${got[i][j][k].score} vs ${x.score}`);
          });
        })
      );
    }
    const [{ session, placement }] = await gpu.placements();
    assert.equal(session, "fill-mask:16");
    assert.deepEqual(Object.keys(placement!.counts), ["WebGpuExecutionProvider"], JSON.stringify(placement));
  } finally {
    await Promise.all([fp32.release(), q8.release(), gpu.release()]);
  }
});

Deno.test("parsePlacement() reads onnxruntime's verbose placement lines, split or not", () => {
  const at = "2026-01-01 00:00:00.0 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]";
  const split = parsePlacement([
    `${at} Node placements`,
    `${at}  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1`,
    `${at}   Shape (Shape_1)\n`,
    `${at}  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 2`,
    `${at}   Gather (Gather_0)`,
    `${at}   MemcpyFromHost (Memcpy)`,
    "2026-01-01 00:00:00.1 [I:onnxruntime:, inference_session.cc:3094 Initialize] Session successfully initialized.",
  ]);
  assert.deepEqual(split.counts, { CPUExecutionProvider: 1, WebGpuExecutionProvider: 2 });
  assert.deepEqual(split.nodes.CPUExecutionProvider, ["Shape (Shape_1)"]);
  assert.deepEqual(split.nodes.WebGpuExecutionProvider, ["Gather (Gather_0)", "MemcpyFromHost (Memcpy)"]);
  const all = parsePlacement([`${at}  All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 92`]);
  assert.deepEqual(all, { counts: { WebGpuExecutionProvider: 92 }, nodes: { WebGpuExecutionProvider: [] } });
});

Deno.test("topKIds() returns the ids of the k largest values, ties to the lower id", () => {
  const row = new Float32Array([1, 3, 3, -2, 2, 0]);
  assert.deepEqual(topKIds(row, 3), [1, 2, 4]);
  assert.deepEqual(topKIds(row, 10), [1, 2, 4, 0, 5, 3]);
  assert.deepEqual(topKIds(row, 0), []);
});

Deno.test("AlbertPipeline sorts texts by length into batches and returns results in input order (same values as unsorted)", async () => {
  const m = await trainedTiny();
  const tok = new BertTokenizer(await readVocabFile(refPath(`${REF}/hf/vocab.txt`), "hf"), { mode: "hf" });
  const p = AlbertPipeline.create(m, tok, { device: "cpu" });
  const texts = [
    "短。",
    "这是一个比较长的句子，用来测试按长度排序的批处理。",
    "中等长度的句子。",
    "好",
    "又一个相当长的句子，它和第二句差不多长。",
  ]
    .map((a) => ({ a }));
  try {
    const seen: number[] = [];
    const sorted = await p.features(texts, { batchSize: 2, seqLength: 128, progress: (d) => seen.push(d) });
    const plain = await p.features(texts, { batchSize: 2, seqLength: 128, sortByLength: false });
    assert.deepEqual(seen, [2, 4, 5]);
    sorted.forEach((f, i) => {
      assert.equal(f.length, tok.encode(texts[i].a).ids.length);
      assert.equal(f.length, plain[i].length);
      f.lastHiddenState.forEach((v, k) => assert.ok(Math.abs(v - plain[i].lastHiddenState[k]) <= 1e-5, `${i}:${k}`));
    });
    const masked = texts.map((t) => ({ a: t.a.slice(0, 1) + "[MASK]" + t.a.slice(1) }));
    const a = await p.fillMask(masked, 3, { batchSize: 2, seqLength: 128 });
    const b = await p.fillMask(masked, 3, { batchSize: 1, seqLength: 128, sortByLength: false });
    assert.deepEqual(a.map((r) => r[0].map((x) => x.sequence)), b.map((r) => r[0].map((x) => x.sequence)));
  } finally {
    await p.release();
  }
});
