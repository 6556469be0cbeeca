/**
 * The executor against references: UER-py's forward arrays (both LayerNorm semantics) and
 * onnxruntime-node running the same graphs on the CPU (every op the executor lowers, training steps).
 * Runs on whatever WebGPU adapter exists (here mesa's llvmpipe: tiny shapes only).
 */
import assert from "node:assert/strict";
import { assertClose, REF, refTensors, tinyConfig } from "../../tests/forward_check.ts";
import { A, Graph, makeTensor } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { inferenceGraph } from "../model/albert.ts";
import { activation, layerNorm, linear } from "../model/layers.ts";
import { createSession, probeWebGpu } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { pretrainTask } from "../train/pretrain_task.ts";
import { initParams } from "../train/trainer.ts";
import { names, stepGraph } from "../train/training_graph.ts";
import { openDevice } from "./executor.ts";
import { GraphSession } from "./graph_session.ts";
import { tuning } from "./kernels.ts";

const gpu = await probeWebGpu();
const device = gpu.available ? (await openDevice()).device : undefined;
const opts = { ignore: !gpu.available, sanitizeResources: false, sanitizeOps: false };

function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
}
function randn(shape: number[], next: () => number, scale = 1): Tensor {
  return {
    dtype: "F32",
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => next() * scale),
  };
}
function ints(shape: number[], values: number[]): Tensor {
  return { dtype: "I32", shape, data: Int32Array.from(values) };
}

/** Runs `g` on onnxruntime-node (CPU) and on the executor; every output within `atol + rtol·|x|`. */
async function sameAsCpu(g: Graph, feeds: Record<string, Tensor>, outputs: string[], atol = 1e-5, rtol = 1e-4) {
  const cpu = await createSession(toOnnx(g).model, { device: "cpu" });
  const want = await cpu.run(feeds);
  await cpu.release();
  const s = await GraphSession.create(device!, g, outputs);
  try {
    const got = await s.run(feeds);
    for (const o of outputs) {
      const w = want[o];
      const data = w.dtype === "F32" ? w.data : Float32Array.from(w.data as ArrayLike<number>, Number);
      assertClose(
        o,
        { dtype: "F32", shape: w.shape, data: got[o] },
        { dtype: "F32", shape: w.shape, data },
        atol,
        rtol,
      );
    }
    return s.dispatches;
  } finally {
    s.destroy();
  }
}

Deno.test({
  ...opts,
  name: "GraphSession reproduces UER-py's forward_trained arrays in both LayerNorm semantics (fused and primitive ops)",
  fn: async () => {
    const cfg = await tinyConfig();
    const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
    const ref = await refTensors(`${REF}/forward_trained.safetensors`);
    const [B, T] = ref.get("src")!.shape;
    const pos = ref.get("mlm_logits_rows_positions")!.data as BigInt64Array;
    const flat = Array.from({ length: pos.length / 2 }, (_, i) => Number(pos[2 * i]) * T + Number(pos[2 * i + 1]));
    for (const [sem, fusedOps] of [["uer", false], ["hf", true], ["hf", false]] as const) {
      const outs = ["embedding_output", "layer_outputs", "mlm_logits", "pooled_output", "sop_logits"] as const;
      const g = inferenceGraph(cfg, {
        semantics: sem,
        eps: 1e-12,
        outputs: [...outs],
        mlmPositions: true,
        batch: B,
        seq: T,
        fusedOps,
      });
      const s = await GraphSession.create(device!, g, [...outs], { masked: flat.length });
      const feeds: Record<string, Tensor> = {
        mlm_positions: { dtype: "I64", shape: [flat.length], data: BigInt64Array.from(flat, BigInt) },
      };
      for (const v of g.inputs()) if (params.has(v.name)) feeds[v.name] = params.get(v.name)!;
      for (const v of g.params()) feeds[v.name] = params.get(v.name)!;
      if (sem === "uer") Object.assign(feeds, { src: ref.get("src")!, seg: ref.get("seg")! });
      else {
        Object.assign(feeds, {
          input_ids: ref.get("src")!,
          token_type_ids: ref.get("token_type_ids")!,
          attention_mask: ref.get("attention_mask")!,
        });
      }
      const got = await s.run(feeds);
      for (const o of outs) {
        const want = o === "mlm_logits" ? ref.get(`${sem}.mlm_logits_rows`)! : ref.get(`${sem}.${o}`)!;
        assertClose(`${sem}${fusedOps ? " fused" : ""} ${o}`, { dtype: "F32", shape: want.shape, data: got[o] }, want);
      }
      s.destroy();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "the executor computes every op it lowers as onnxruntime-node does (views, gathers, reductions, products, int math)",
  fn: async () => {
    const next = rng(3);
    const g = new Graph();
    const x = g.input("x", "F32", [2, 3, 4, 5]);
    const w = g.input("w", "F32", [6, 5]);
    const ids = g.input("ids", "I32", [7]);
    const lab = g.input("lab", "I32", [6]);
    const y = g.input("y", "F32", [7, 3]);
    // Views: transpose + a reshape that strides cannot express, slice, pad, concat, split.
    const t = g.reshape(g.transpose(x, [0, 2, 1, 3]), [8, 15]); // [2,4,3,5] -> [8,15]
    g.output(g.add(t, 1), "reshaped");
    const sl = g.slice(x, [1, 2], [3, 5], [1, 3]); // [2,2,4,3]
    const padded = g.op("Pad", [sl, g.ints([0, 1, 0, 2, 0, 0, 1, 0])], { mode: A.string("constant") }, {
      shapes: [{ dtype: "F32", shape: [2, 3, 5, 5] }],
    });
    g.output(g.mul(padded, 2), "padded");
    const parts = g.node("Split", [x, g.ints([1, 3])], { axis: A.int(2) }, {
      shapes: [{ dtype: "F32", shape: [2, 3, 1, 5] }, { dtype: "F32", shape: [2, 3, 3, 5] }],
    });
    g.output(g.concat([parts[1], g.exp(parts[0])], 2), "concat");
    // Activations and elementwise math.
    const lin = linear(g, "l", x, 5, 6); // [2,3,4,6]
    g.output(activation(g, "gelu", lin), "gelu");
    g.output(activation(g, "gelu_fast", lin), "gelu_fast");
    const clip = g.op("Clip", [lin, g.scalar(0), g.scalar(2)], {}, { shapes: [{ dtype: "F32", shape: [2, 3, 4, 6] }] });
    g.output(g.where(g.greater(lin, 0.1), g.sqrt(clip), g.pow(lin, 2)), "where");
    g.output(g.sigmoid(g.tanh(lin)), "sigmoid");
    // Reductions over middle/leading axes (column lanes) and softmax on a middle axis.
    g.output(g.reduceMax(x, [1, 3], false), "rmax");
    g.output(g.reduceMean(x, [0, 2], true), "rmean");
    g.output(g.op("Softmax", [x], { axis: A.int(1) }, { shapes: [{ dtype: "F32", shape: [2, 3, 4, 5] }] }), "softmax1");
    g.output(layerNorm(g, "ln", lin, 6, { semantics: "uer" }), "ln_uer");
    // Products: batched with broadcast, transposed operands, Gemm, ones·X (column sums), split K.
    g.output(g.matmul(x, g.transpose(g.slice(x, [0], [1], [0]), [0, 1, 3, 2])), "bmm"); // [2,3,4,4]
    g.output(
      g.op("Gemm", [w, w, g.slice(w, [0], [1], [1])], { transB: A.int(1), alpha: A.float(0.5), beta: A.float(2) }, {
        shapes: [{ dtype: "F32", shape: [6, 6] }],
      }),
      "gemm",
    ); // [6,5]·[6,5]ᵀ·0.5 + 2·w[:, :1]
    const big = g.input("big", "F32", [3, 2048]);
    g.output(g.matmul(big, g.transpose(big, [1, 0])), "splitk"); // [3,3], K=2048
    const ones = g.op("Expand", [g.scalar(1), g.ints([1, 7])]);
    g.output(g.matmul(ones, y), "colsum"); // [1,3]
    // Gathers and a one-hot product by host ids (an embedding gradient): the scatter kernel.
    g.output(g.gather(g.concat([w, g.slice(w, [0], [3], [0])], 0), ids), "gather"); // [9,5] rows by ids -> [7,5]
    g.output(g.gather(x, g.scalar(2, "I64"), 2), "gather_axis2"); // [2,3,5]
    g.output(
      g.op("GatherElements", [lin, g.unsqueeze(g.slice(lab, [0], [4], [0]), [0, 1, 3])], { axis: A.int(3) }, {
        shapes: [{ dtype: "F32", shape: [1, 1, 4, 1] }],
      }),
      "gather_el",
    );
    const iota = g.constant(makeTensor("F32", [1, 9], Array.from({ length: 9 }, (_, i) => i)));
    const onehot = g.cast(g.equal(g.reshape(g.cast(ids, "F32"), [7, 1]), iota), "F32"); // [7,9]
    g.output(g.matmul(g.transpose(onehot, [1, 0]), y), "scatter"); // [9,3]
    // Int32 arithmetic (the dropout generator's): x − (x / P)·P, compare, where.
    const q = g.sub(g.mul(lab, lab), g.mul(g.div(g.mul(lab, lab), g.scalar(7, "I32")), g.scalar(7, "I32")));
    g.output(g.cast(g.op("GreaterOrEqual", [q, g.scalar(3, "I32")]), "F32"), "intmath");
    const feeds = {
      x: randn([2, 3, 4, 5], next),
      w: randn([6, 5], next),
      big: randn([3, 2048], next, 0.1),
      y: randn([7, 3], next),
      ids: ints([7], [3, 0, 8, 3, 5, 3, 1]),
      lab: ints([6], [4, 0, 2, 5, 1, 3]),
      "l.weight": randn([6, 5], next),
      "l.bias": randn([6], next),
      "ln.gamma": randn([6], next),
      "ln.beta": randn([6], next),
    };
    const outs = g.outputs().map((v) => v.name);
    await sameAsCpu(g, feeds, outs);
  },
});

Deno.test({
  ...opts,
  name: "one training step (forward, backward, AdamW) on the executor equals onnxruntime-node's on the same graph",
  fn: async () => {
    const cfg = { ...(await tinyConfig()), layers_num: 2, vocab_size: 300, hidden_act: "gelu" as const };
    const task = pretrainTask(cfg);
    const B = 2, T = 16;
    const graph = stepGraph(task, { batch: B, seq: T, slots: 8 }, { kind: "update", scatter: "matmul" });
    const next = rng(11);
    const init = initParams(task.params, 5);
    const feeds: Record<string, Tensor> = {};
    for (const { name, shape } of task.params) {
      feeds[name] = init.get(name)!;
      feeds[names.m(name)] = randn(shape, next, 1e-3);
      feeds[names.v(name)] = {
        ...randn(shape, next, 1e-4),
        data: (randn(shape, next, 1e-4).data as Float32Array).map(Math.abs),
      };
    }
    const src = Array.from({ length: B * T }, (_, i) => 5 + ((i * 37) % 290));
    const seg = Array.from({ length: B * T }, (_, i) => (i % T < 9 ? 1 : i % T < 14 ? 2 : 0));
    const tgt = src.map((id, i) => (i % 5 === 1 && seg[i] > 0 ? id : 0));
    Object.assign(
      feeds,
      task.feeds({
        src: Int32Array.from(src, (id, i) => (tgt[i] ? 103 : id)),
        seg: Int32Array.from(seg),
        tgtMlm: Int32Array.from(tgt),
        tgtSop: Int32Array.of(1, 0),
        batchSize: B,
        seqLength: T,
      }, { batch: B, seq: T, slots: 8 }),
      {
        neg_lr: { dtype: "F32", shape: [], data: Float32Array.of(-1e-3) },
        neg_lr_wd: { dtype: "F32", shape: [], data: Float32Array.of(-1e-5) },
        [names.stats]: { dtype: "F32", shape: [1, 5], data: Float32Array.of(1, 2, 3, 4, 5) },
      },
    );
    const dispatches = await sameAsCpu(graph, feeds, graph.outputs().map((v) => v.name), 1e-5, 2e-4);
    assert.ok(dispatches < 120, `${dispatches} dispatches`);
  },
});

Deno.test({
  ...opts,
  name: "every tile shape of the matrix-product kernel (4×4 … 8×8 per thread) gives onnxruntime-node's numbers",
  fn: async () => {
    const next = rng(5);
    const g = new Graph();
    const a = g.input("a", "F32", [3, 140, 50]), b = g.input("b", "F32", [3, 50, 150]);
    g.output(g.relu(g.add(g.matmul(a, b), 0.5)), "y"); // [3,140,150], bias + relu epilogue
    g.output(g.matmul(g.transpose(b, [0, 2, 1]), g.transpose(a, [0, 2, 1])), "yt"); // [3,150,140]
    const feeds = { a: randn([3, 140, 50], next), b: randn([3, 50, 150], next) };
    try {
      for (const tile of ["4x4", "8x4", "4x8", "8x8"] as const) {
        tuning.tile = tile;
        await sameAsCpu(g, feeds, ["y", "yt"]);
      }
    } finally {
      tuning.tile = "auto";
    }
  },
});
