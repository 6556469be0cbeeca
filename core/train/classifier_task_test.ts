/**
 * The classifier (core/model/classifier.ts, classifier_task.ts) on a small random config, onnxruntime-node
 * CPU: each of UER-py's four poolings (`uer/utils/misc.py` `pooling`) on single sentences and pairs,
 * checked against the rule recomputed in float64 from the encoder output (seg-weighted positions,
 * text_b weighing 2, `max` of a pair at exactly 2^63); a smaller last batch padded to the graph's rows
 * gives the numbers of a graph of its own size; a training step moves the loss; `--dropout` on
 * evaluation graphs is absent.
 */
import assert from "node:assert/strict";
import type { AlbertConfig } from "../config.ts";
import { Graph } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { albert } from "../model/albert.ts";
import { classifierHead, type Pooling, POOLINGS, segmentWeights } from "../model/classifier.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { type ClassifierBatch, classifierParamShapes, classifierTask } from "./classifier_task.ts";
import { initParams, Trainer } from "./trainer.ts";
import { evalGraph, stepGraph } from "./training_graph.ts";
import { AlbertPipeline } from "../model/pipeline.ts";
import { BertTokenizer } from "../tokenizer/bert_tokenizer.ts";
import { Vocab } from "../tokenizer/vocab.ts";
import { encodeRows } from "../data/classifier_data.ts";

const CFG: AlbertConfig = {
  emb_size: 8,
  hidden_size: 12,
  feedforward_size: 16,
  heads_num: 2,
  layers_num: 2,
  hidden_act: "relu",
  max_seq_length: 16,
  dropout: 0,
  vocab_size: 40,
  factorized_embedding_parameterization: true,
  parameter_sharing: true,
  embedding: ["word", "pos", "seg"],
  encoder: "transformer",
  mask: "fully_visible",
  target: ["mlm", "sp"],
  data_processor: "albert",
};
const T = 8, C = 3;
const params = initParams(classifierParamShapes(CFG, C), 5);
// UER's init draws biases from N(0, 0.02) too: make the head's weights larger so poolings differ clearly.
for (const n of ["output_layer_1.weight", "output_layer_2.weight"]) {
  const d = params.get(n)!.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] *= 20;
}

/** Rows: a single sentence (padded), a pair (padded), a pair filling the row. */
function batch(rows = 3, salt = 0): ClassifierBatch {
  const lay = [[5, 0], [3, 3], [4, 4]]; // [len a incl. CLS/SEP, len b incl. SEP]
  const src = new Int32Array(rows * T), seg = new Int32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const [a, b] = lay[r % 3];
    for (let t = 0; t < a + b; t++) {
      src[r * T + t] = t === 0 ? 2 : t === a - 1 || t === a + b - 1 ? 3 : 5 + ((r * 11 + t * 7 + salt) % 30);
      seg[r * T + t] = t < a ? 1 : 2;
    }
  }
  return {
    src,
    seg,
    labels: Int32Array.from({ length: rows }, (_, r) => (r + salt) % C),
    batchSize: rows,
    seqLength: T,
  };
}

const tanh = Math.tanh;

/** UER-py's pooling of one row, in float64, from the encoder output h [T,H] and seg [T]. */
function poolRow(h: Float32Array, seg: Int32Array, H: number, type: Pooling): number[] {
  const hs = (t: number, j: number) => h[t * H + j] * seg[t];
  const out = new Array<number>(H).fill(0);
  const count = seg.reduce((a, s) => a + (s !== 0 ? 1 : 0), 0);
  const segSum = seg.reduce((a, s) => a + s, 0);
  for (let j = 0; j < H; j++) {
    if (type === "first") out[j] = hs(0, j);
    else if (type === "last") out[j] = hs(count - 1, j);
    else if (type === "mean") {
      let s = 0;
      for (let t = 0; t < T; t++) s += hs(t, j);
      out[j] = s / segSum;
    } else {
      let m = -Infinity;
      // float32 of hs + (seg-1)*2^63, as torch computes it
      for (let t = 0; t < T; t++) m = Math.max(m, Math.fround(hs(t, j) + (seg[t] - 1) * 2 ** 63));
      out[j] = m;
    }
  }
  return out;
}

Deno.test("classifierHead() pools as UER-py's pooling() for first, last, mean and max, single sentences and pairs", async () => {
  const b = batch();
  const H = CFG.hidden_size;
  for (const type of POOLINGS) {
    const g = new Graph();
    const a = albert(g, CFG, { semantics: "uer", idsDtype: "I32", batch: 3, seq: T });
    const { logits } = classifierHead(g, CFG, a.encoderOutput, segmentWeights(g, a.inputs), C, type);
    g.output(a.encoderOutput, "h");
    g.output(logits, "logits");
    const s = await createSession(toOnnx(g).model, { device: "cpu", threads: 1 });
    const feeds: Record<string, Tensor> = {
      src: { dtype: "I32", shape: [3, T], data: b.src },
      seg: { dtype: "I32", shape: [3, T], data: b.seg },
    };
    for (const p of g.params()) feeds[p.name] = params.get(p.name)!;
    const out = await s.run(feeds);
    await s.release();
    const h = out.h.data as Float32Array, got = out.logits.data as Float32Array;
    const w1 = params.get("output_layer_1.weight")!.data, b1 = params.get("output_layer_1.bias")!.data;
    const w2 = params.get("output_layer_2.weight")!.data, b2 = params.get("output_layer_2.bias")!.data;
    for (let r = 0; r < 3; r++) {
      const pooled = poolRow(h.subarray(r * T * H, (r + 1) * T * H), b.seg.subarray(r * T, (r + 1) * T), H, type);
      if (type === "max" && r > 0) assert.ok(pooled.every((x) => x === 2 ** 63), "a pair's max is 2^63 everywhere");
      const hid = Array.from(
        { length: H },
        (_, i) => tanh(pooled.reduce((s, x, j) => s + Number(w1[i * H + j]) * x, Number(b1[i]))),
      );
      for (let c = 0; c < C; c++) {
        const want = hid.reduce((s, x, j) => s + Number(w2[c * H + j]) * x, Number(b2[c]));
        const d = Math.abs(got[r * C + c] - want);
        assert.ok(d <= 1e-5 + 1e-4 * Math.abs(want), `${type} row ${r} logit ${c}: ${got[r * C + c]} vs ${want}`);
      }
    }
  }
});

Deno.test("classification steps: a short last batch padded to the graph's rows equals its own graph, every pooling trains", async () => {
  for (const pooling of POOLINGS) {
    const task = classifierTask(CFG, { labelsNum: C, pooling });
    const a = await Trainer.create({ task, params, device: "cpu" });
    await a.step(batch(3, 1), 1e-2); // graphs for 3 rows
    const first = (await a.takeStats()).sums;
    await a.step(batch(2, 2), 1e-2); // padded to 3 rows
    const sa = (await a.takeStats()).sums;
    const b = await Trainer.create({ task, params, device: "cpu" });
    await b.step(batch(3, 1), 1e-2);
    const b2 = await Trainer.create({ task, params: await b.params(), moments: await b.moments(), device: "cpu" });
    await b2.step(batch(2, 2), 1e-2); // 2-row graphs
    const sb = (await b2.takeStats()).sums;
    assert.ok(
      Number.isFinite(first.loss) && Math.abs(sa.loss - sb.loss) <= 1e-6,
      `${pooling}: ${sa.loss} vs ${sb.loss}`,
    );
    assert.equal(sa.instances, 2);
    assert.equal(sa.correct, sb.correct);
    const pa = await a.params(), pb = await b2.params();
    let d = 0, moved = 0;
    for (const [n, t] of pa) {
      const x = t.data as Float32Array, y = pb.get(n)!.data as Float32Array, z = params.get(n)!.data as Float32Array;
      for (let i = 0; i < x.length; i++) {
        (d = Math.max(d, Math.abs(x[i] - y[i]))), (moved = Math.max(moved, Math.abs(x[i] - z[i])));
      }
    }
    assert.ok(d <= 1e-6, `${pooling}: params differ by ${d}`);
    assert.ok(moved > 1e-4, `${pooling}: the steps moved the params`);
    for (const t of [a, b, b2]) await t.dispose();
  }
});

Deno.test("the classifier's evaluation graph has no dropout and no gradients; its training graph has dropout when asked", () => {
  const task = classifierTask(CFG, { labelsNum: C, pooling: "mean" });
  const shape = { batch: 2, seq: T, slots: 0 };
  const ev = evalGraph(task, shape);
  assert.ok(!ev.inputs().some((v) => v.name === "dropout_key"));
  assert.deepEqual(ev.outputs().map((v) => v.name).sort(), ["logits", "probs"]);
  assert.ok(!ev.nodes.some((n) => n.op === "ScatterElements" || n.op === "GreaterOrEqual"));
  const tr = stepGraph(task, shape, { kind: "update", dropout: 0.1 });
  assert.ok(tr.inputs().some((v) => v.name === "dropout_key"));
  // 1 embedding site + per layer application: probabilities, attention output, feed-forward output
  assert.equal(tr.nodes.filter((n) => n.op === "GreaterOrEqual").length, 1 + 3 * CFG.layers_num);
});

Deno.test("AlbertPipeline.classify() (inference graph, any length) equals the trainer's evaluation for each pooling and pairs", async () => {
  const vocab = Vocab.parse(
    [
      "[PAD]",
      "[UNK]",
      "[CLS]",
      "[SEP]",
      "[MASK]",
      ...Array.from({ length: 35 }, (_, i) => String.fromCodePoint(0x4e00 + i)),
    ]
      .join("\n") + "\n",
    "v",
  );
  const tok = new BertTokenizer(vocab, { mode: "uer" });
  const texts = [{ a: "\u4e00\u4e01\u4e02" }, { a: "\u4e03\u4e04", b: "\u4e05\u4e06\u4e07" }, {
    a: "\u4e08",
    b: "\u4e09",
  }];
  const rows = encodeRows(texts.map((t, i) => ({ line: i + 2, textA: t.a, textB: t.b })), tok, T);
  for (const pooling of POOLINGS) {
    const task = classifierTask(CFG, { labelsNum: C, pooling });
    const trainer = await Trainer.create({ task, params, device: "cpu" });
    const ev = await trainer.evaluate({ ...rows, batchSize: 3, labels: new Int32Array(3) });
    await trainer.dispose();
    const pipe = AlbertPipeline.create({ config: CFG, params, semantics: "uer", layerNormEps: 1e-6 }, tok, {
      device: "cpu",
      pooling,
    });
    const got = await pipe.classify(texts, { batchSize: 2, seqLength: T });
    await pipe.release();
    const want = ev.logits.data as Float32Array;
    got.forEach((g, r) => {
      for (let c = 0; c < C; c++) {
        const d = Math.abs(g.logits[c] - want[r * C + c]);
        assert.ok(
          d <= 1e-5 + 1e-4 * Math.abs(want[r * C + c]),
          `${pooling} row ${r}: ${g.logits[c]} vs ${want[r * C + c]}`,
        );
      }
    });
  }
});
