import assert from "node:assert/strict";
import { assertClose, checkForward, REF, refTensors, tinyConfig } from "../../tests/forward_check.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { type AlbertConfig, validateConfig } from "../config.ts";
import { BANNED_OPS, WEBGPU_CONTRIB_OPS, WEBGPU_OPS } from "../graph/webgpu_ops.ts";
import { Graph, type Value } from "../graph/builder.ts";
import { albert, type AlbertOutput, inferenceGraph, type InferenceGraphOptions } from "./albert.ts";
import { deriveParams } from "./quantize.ts";
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

/** Op types per domain (`com.microsoft:Attention`, plain names for ONNX's). */
function domainOps(g: Graph): Set<string> {
  return new Set(g.ancestors(g.outputs()).map((n) => (n.domain ? `${n.domain}:${n.op}` : n.op)));
}

Deno.test("inferenceGraph({ contribOps }) (Attention, SkipLayerNormalization, UER LayerNorm via InvStdDev) matches forward_trained in both semantics on cpu and wasm", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  for (const sem of ["uer", "hf"] as const) {
    const ops = domainOps(inferenceGraph(cfg, { semantics: sem, contribOps: true, outputs: ALL }));
    assert.ok(ops.has("com.microsoft:Attention"), [...ops].join(" "));
    assert.equal(ops.has("com.microsoft:SkipLayerNormalization"), sem === "hf");
    assert.ok(ops.has("LayerNormalization"));
    for (const op of ["ReduceMean", "ReduceSum", "Sqrt", "Softmax"]) assert.ok(!ops.has(op), op);
    for (const device of ["cpu", "wasm"] as const) {
      await checkForward(device, sem, cfg, params, ref, [...ALL], { mlmPositions: true, contribOps: true });
    }
  }
});

Deno.test("inferenceGraph({ contribOps }) computes gelu / gelu_fast (BiasGelu, FastGelu) and the last layer at rows as the composite graph does", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  const [B, T] = ref.get("src")!.shape;
  const i64 = (xs: number[]): Tensor => ({ dtype: "I64", shape: [xs.length], data: BigInt64Array.from(xs, BigInt) });
  const where = [[0, 1], [B - 1, 2], [0, T - 2]];
  const run = async (hidden: "gelu" | "gelu_fast", opts: InferenceGraphOptions, outputs: AlbertOutput[]) => {
    const g = inferenceGraph({ ...cfg, hidden_act: hidden }, { ...opts, outputs });
    const s = await createSession(toOnnx(g, { initializers: deriveParams(g, params) }).model, { device: "cpu" });
    const feeds: Record<string, Tensor> = {
      input_ids: ref.get("src")!,
      token_type_ids: ref.get("token_type_ids")!,
      attention_mask: ref.get("attention_mask")!,
      mlm_positions: i64(where.map(([b, t]) => b * T + t)),
      ...(opts.lastLayerAtPositions ? { mlm_rows: i64(where.map(([b]) => b)) } : {}),
    };
    try {
      return await s.run(feeds);
    } finally {
      await s.release();
    }
  };
  for (const hidden of ["gelu", "gelu_fast"] as const) {
    const outs: AlbertOutput[] = ["mlm_transform", "mlm_logits"];
    const base = { semantics: "hf" as const, mlmPositions: true };
    const want = await run(hidden, base, outs);
    const ops = domainOps(inferenceGraph({ ...cfg, hidden_act: hidden }, { ...base, contribOps: true }));
    assert.ok(ops.has(`com.microsoft:${hidden === "gelu" ? "BiasGelu" : "FastGelu"}`));
    for (const lastLayerAtPositions of [false, true]) {
      const got = await run(hidden, { ...base, contribOps: true, lastLayerAtPositions }, outs);
      for (const o of outs) assertClose(`${hidden} rows=${lastLayerAtPositions} ${o}`, got[o], want[o]);
    }
  }
});

Deno.test("inferenceGraph({ quantize }) (int8 weights, both lowerings) stays within 0.03 of the reference logits and keeps every arg-max", async () => {
  // Measured on albert-tiny (trained, logits up to ~3): 0.007–0.012 for both semantics, cpu and wasm.
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  const pos = ref.get("mlm_logits_rows_positions")!.data as BigInt64Array;
  const T = BigInt(ref.get("src")!.shape[1]);
  const flat = BigInt64Array.from({ length: pos.length / 2 }, (_, i) => pos[2 * i] * T + pos[2 * i + 1]);
  for (const sem of ["uer", "hf"] as const) {
    for (const quantize of ["matmul-integer", "matmul-nbits"] as const) {
      for (const contribOps of [false, true]) {
        const g = inferenceGraph(cfg, {
          semantics: sem,
          outputs: ["mlm_logits"],
          mlmPositions: true,
          contribOps,
          quantize,
        });
        const ops = domainOps(g);
        const isWeight = (v: Value | null) =>
          !!v && (v.tags.has("param") || (v.producer?.op === "Transpose" && !!v.producer.inputs[0]?.tags.has("param")));
        const weightMatmuls = g.nodes.filter((n) =>
          ["MatMul", "Gemm", "Attention"].includes(n.op) && isWeight(n.inputs[1])
        );
        assert.deepEqual(weightMatmuls.map((n) => n.name), [], "an fp32 weight MatMul is left");
        assert.ok(ops.has(quantize === "matmul-integer" ? "MatMulInteger" : "com.microsoft:MatMulNBits"));
        const s = await createSession(toOnnx(g, { initializers: deriveParams(g, params) }).model, { device: "cpu" });
        const feeds: Record<string, Tensor> = sem === "uer" ? { src: ref.get("src")!, seg: ref.get("seg")! } : {
          input_ids: ref.get("src")!,
          token_type_ids: ref.get("token_type_ids")!,
          attention_mask: ref.get("attention_mask")!,
        };
        feeds.mlm_positions = { dtype: "I64", shape: [flat.length], data: flat };
        const got = (await s.run(feeds)).mlm_logits;
        await s.release();
        const want = ref.get(`${sem}.mlm_logits_rows`)!;
        assertClose(`${sem} ${quantize} contrib=${contribOps}`, got, want, 0.03, 0);
        const [K, V] = want.shape;
        const argmax = (d: Float32Array, k: number) => {
          let best = 0;
          for (let v = 1; v < V; v++) if (d[k * V + v] > d[k * V + best]) best = v;
          return best;
        };
        for (let k = 0; k < K; k++) {
          assert.equal(argmax(got.data as Float32Array, k), argmax(want.data as Float32Array, k), `row ${k}`);
        }
      }
    }
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

Deno.test("albert({ lastLayerQueries }) equals the full last layer at the queried rows of each sequence", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  const [B, T] = ref.get("src")!.shape;
  const H = cfg.hidden_size, S = 3;
  // Per row: [CLS], a position near the end, one in the middle (out of order); row b's are b·T + t.
  const ts = [0, T - 2, 5];
  const index = Array.from({ length: B * S }, (_, i) => Math.floor(i / S) * T + ts[i % S]);
  const out: Tensor[] = [];
  for (const at of [false, true]) {
    const g = new Graph();
    const q = at ? { index: g.input("queries", "I64", [B * S]), perRow: S } : undefined;
    const a = albert(g, cfg, { semantics: "uer", fusedOps: true, batch: B, seq: T, lastLayerQueries: q });
    g.output(a.encoderOutput, "h"); // [B,T,H], or [B,S,H] at the queried rows
    const s = await createSession(toOnnx(g, { initializers: params }).model, { device: "cpu" });
    const feeds: Record<string, Tensor> = { src: ref.get("src")!, seg: ref.get("seg")! };
    if (at) feeds.queries = { dtype: "I64", shape: [B * S], data: BigInt64Array.from(index, BigInt) };
    out.push((await s.run(feeds)).h);
    await s.release();
  }
  const full = out[0].data as Float32Array;
  assert.deepEqual(out[1].shape, [B, S, H]);
  const rows = new Float32Array(B * S * H);
  index.forEach((p, i) => rows.set(full.subarray(p * H, (p + 1) * H), i * H));
  assertClose("last layer at rows", out[1], { dtype: "F32", shape: [B, S, H], data: rows });
});

Deno.test("inferenceGraph() emits only WebGPU-supported ops, no banned ops, one output per value", async () => {
  const cfg = await tinyConfig();
  for (const hidden_act of ["relu", "gelu", "gelu_fast"] as const) {
    for (const semantics of ["uer", "hf"] as const) {
      const variants: Partial<InferenceGraphOptions>[] = [
        { fusedOps: hidden_act === "gelu" },
        { contribOps: true },
        { contribOps: true, quantize: "matmul-nbits" },
      ];
      for (const v of variants) {
        const g = inferenceGraph({ ...cfg, hidden_act }, {
          semantics,
          outputs: ALL,
          mlmPositions: semantics === "hf",
          ...v,
        });
        for (const n of g.ancestors(g.outputs())) {
          const ok = n.domain === "com.microsoft" ? WEBGPU_CONTRIB_OPS.has(n.op) : !n.domain && WEBGPU_OPS.has(n.op);
          assert.ok(ok, `${n.domain ?? ""} ${n.op} has no WebGPU kernel (${JSON.stringify(v)})`);
          assert.ok(!BANNED_OPS.has(n.op), `${n.op} is banned by DESIGN.md §3`);
        }
      }
      const g = inferenceGraph({ ...cfg, hidden_act }, {
        semantics,
        outputs: ALL,
        mlmPositions: semantics === "hf",
        fusedOps: hidden_act === "gelu",
      });
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
