import assert from "node:assert/strict";
import { loadModel } from "../../convert/mod.ts";
import { REF } from "../../tests/forward_check.ts";
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
      assert.ok(placement.counts.WebGpuExecutionProvider > 50, `${session}: ${JSON.stringify(placement.counts)}`);
    }
  } finally {
    await cpu.release();
    await gpu.release();
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
