import assert from "node:assert/strict";
import { checkForward, REF, refTensors, tinyConfig } from "../../tests/forward_check.ts";
import { type AlbertConfig, validateConfig } from "../config.ts";
import { BANNED_OPS, WEBGPU_OPS } from "../graph/webgpu_ops.ts";
import { type AlbertOutput, inferenceGraph } from "./albert.ts";
const ALL: AlbertOutput[] = [
  "embedding_output",
  "projected_embedding",
  "layer_outputs",
  "encoder_output",
  "mlm_transform",
  "mlm_logits",
  "pooled_output",
  "sop_logits",
];

Deno.test("inferenceGraph() matches forward_trained (final_params) in UER and HF semantics on cpu", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  const outs = ALL.filter((o) => o !== "mlm_logits");
  for (const sem of ["uer", "hf"] as const) {
    await checkForward("cpu", sem, cfg, params, ref, [...outs, "mlm_logits"], { mlmPositions: true });
  }
});

Deno.test("inferenceGraph() emits only WebGPU-supported ops, no banned ops, one output per value", async () => {
  const cfg = await tinyConfig();
  for (const hidden_act of ["relu", "gelu", "gelu_fast"] as const) {
    for (const semantics of ["uer", "hf"] as const) {
      const g = inferenceGraph({ ...cfg, hidden_act }, { semantics, outputs: ALL, mlmPositions: semantics === "hf" });
      for (const op of g.opTypes()) {
        assert.ok(WEBGPU_OPS.has(op), `${op} has no WebGPU kernel`);
        assert.ok(!BANNED_OPS.has(op), `${op} is banned by DESIGN.md §3`);
      }
      for (const n of g.nodes) {
        for (const v of n.inputs) {
          if (
            v && v.dtype === "I64" &&
            !["Gather", "Shape", "Slice", "Reshape", "Unsqueeze", "ReduceSum", "Cast"].includes(n.op)
          ) {
            assert.fail(`${n.op} does int64 arithmetic on ${v.name}`);
          }
        }
      }
    }
  }
});

Deno.test("inferenceGraph() supports sharing off, factorization off and every hidden_act (shapes and params)", () => {
  const base: AlbertConfig = { ...ALBERT_TINY_SHAPE };
  const shared = inferenceGraph(base, { semantics: "uer", outputs: ["mlm_logits", "sop_logits"] });
  assert.equal(shared.params().length, 33);
  const unshared = inferenceGraph({ ...base, parameter_sharing: false }, { semantics: "uer" });
  assert.ok(unshared.paramByName("encoder.transformer.2.layer_norm_2.gamma"));
  assert.equal(unshared.paramByName("encoder.transformer.layer_norm_2.gamma"), undefined);
  const flat = inferenceGraph(
    { ...base, factorized_embedding_parameterization: false, emb_size: 64 },
    { semantics: "uer", outputs: ["mlm_transform", "mlm_logits"] },
  );
  assert.equal(flat.paramByName("encoder.linear.weight"), undefined);
  assert.deepEqual(flat.paramByName("target.mlm.linear_1.weight")!.shape, [64, 64]);
  for (const hidden_act of ["gelu", "gelu_fast"] as const) {
    const ops = inferenceGraph({ ...base, hidden_act }, { semantics: "uer" }).opTypes();
    assert.ok(ops.includes(hidden_act === "gelu" ? "Erf" : "Tanh"));
    assert.ok(!ops.includes("Relu"));
  }
});

const ALBERT_TINY_SHAPE: AlbertConfig = validateConfig({
  emb_size: 32,
  hidden_size: 64,
  feedforward_size: 128,
  heads_num: 4,
  layers_num: 3,
  max_seq_length: 128,
  vocab_size: 21128,
}, "tiny");

Deno.test("inferenceGraph() matches forward.safetensors from uer_model.bin (UER) and hf/ (HF) via loadModel", async () => {
  const { loadModel } = await import("../../convert/mod.ts");
  const { refPath } = await import("../../tests/reference.ts");
  const ref = await refTensors(`${REF}/forward.safetensors`);
  const all: AlbertOutput[] = ["embedding_output", "projected_embedding", "layer_outputs", "encoder_output"];
  const heads: AlbertOutput[] = ["mlm_transform", "mlm_logits", "pooled_output", "sop_logits"];
  for (const [path, sem] of [["uer_model.bin", "uer"], ["hf", "hf"]] as const) {
    const m = await loadModel(refPath(`${REF}/${path}`));
    assert.equal(m.semantics, sem);
    await checkForward("cpu", sem, m.config, m.params, ref, [...all, ...heads], { eps: m.layerNormEps });
  }
});
