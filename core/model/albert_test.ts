import assert from "node:assert/strict";
import { assertClose, checkForward, REF, refTensors, tinyConfig } from "../../tests/forward_check.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
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

Deno.test("inferenceGraph({ fusedOps }) (LayerNormalization, Softmax) matches forward_trained in both semantics on cpu", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  for (const sem of ["uer", "hf"] as const) {
    const ops = inferenceGraph(cfg, { semantics: sem, fusedOps: true }).opTypes();
    assert.ok(ops.includes("Softmax") && !ops.includes("ReduceMax"));
    assert.equal(ops.includes("LayerNormalization"), sem === "hf");
    await checkForward("cpu", sem, cfg, params, ref, [...ALL], { mlmPositions: true, fusedOps: true });
  }
});

Deno.test("inferenceGraph({ lastLayerAtPositions }) equals the full last layer at the masked rows (rows of a batch kept apart)", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  const [B, T] = ref.get("src")!.shape;
  assert.ok(B >= 2);
  // Two positions in row 0, one in the last row (not in order), so a row mix-up would show.
  const where = [[0, 1], [B - 1, 2], [0, T - 2]];
  const i64 = (xs: number[]): Tensor => ({ dtype: "I64", shape: [xs.length], data: BigInt64Array.from(xs, BigInt) });
  for (const sem of ["uer", "hf"] as const) {
    const out: Record<string, Tensor>[] = [];
    for (const lastLayerAtPositions of [false, true]) {
      const g = inferenceGraph(cfg, {
        semantics: sem,
        outputs: ["mlm_transform", "mlm_logits"],
        mlmPositions: true,
        lastLayerAtPositions,
        fusedOps: lastLayerAtPositions && sem === "hf",
      });
      const s = await createSession(toOnnx(g, { initializers: params }).model, { device: "cpu" });
      const feeds: Record<string, Tensor> = sem === "uer" ? { src: ref.get("src")!, seg: ref.get("seg")! } : {
        input_ids: ref.get("src")!,
        token_type_ids: ref.get("token_type_ids")!,
        attention_mask: ref.get("attention_mask")!,
      };
      feeds.mlm_positions = i64(where.map(([b, t]) => b * T + t));
      if (lastLayerAtPositions) feeds.mlm_rows = i64(where.map(([b]) => b));
      out.push(await s.run(feeds));
      await s.release();
    }
    assertClose(`${sem} mlm_transform`, out[1].mlm_transform, out[0].mlm_transform);
    assertClose(`${sem} mlm_logits`, out[1].mlm_logits, out[0].mlm_logits);
  }
  assert.throws(
    () =>
      inferenceGraph(cfg, { semantics: "uer", outputs: ["mlm_logits", "pooled_output"], lastLayerAtPositions: true }),
    /needs mlmPositions and only mlm_\* outputs/,
  );
});

Deno.test("inferenceGraph() emits only WebGPU-supported ops, no banned ops, one output per value", async () => {
  const cfg = await tinyConfig();
  for (const hidden_act of ["relu", "gelu", "gelu_fast"] as const) {
    for (const semantics of ["uer", "hf"] as const) {
      const g = inferenceGraph({ ...cfg, hidden_act }, {
        semantics,
        outputs: ALL,
        mlmPositions: semantics === "hf",
        fusedOps: hidden_act === "gelu",
      });
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
