/**
 * `--recompute_activations` (core/autodiff/grad.ts `recompute`, core/graph `Graph.checkpoint`): each layer
 * application's forward is re-emitted in the backward from the kept layer input. The recomputed forward
 * runs the same float32 kernels on the same inputs and the gradient parts are summed in the same order.
 * On the WebGPU executor (which runs the graph as written) and on CPU at small shapes the runs are equal
 * BIT FOR BIT. On CPU at UER-py's recorded tiny run (10 of its steps) they differ by float32 rounding
 * (≤ 1e-6 on losses near 10 and on parameters; checked against 1e-5): the weight-gradient sums have a
 * second reader in the recomputing graph (it orders the recomputation after them), and onnxruntime's
 * optimizer then fuses a different product of each sum into its GEMM (C + A·B accumulated over K blocks
 * rounds differently from A·B + C). The memory plan must show what is no longer kept (ALBERT-base, the
 * card's stage 2).
 */
import assert from "node:assert/strict";
import { loadModel } from "../convert/mod.ts";
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { memoryPlan } from "../core/graph/memory_plan.ts";
import { probeWebGpu } from "../core/runtime/mod.ts";
import { type Batch, defaultMaskedSlots, pretrainTask } from "../core/train/pretrain_task.ts";
import { Trainer } from "../core/train/trainer.ts";
import { stepGraph } from "../core/train/training_graph.ts";
import type { Tensor } from "../core/tensor.ts";
import { refJson, refPath } from "./reference.ts";
import { syntheticBatch } from "./webgpu_steps.ts";

interface TraceStep {
  src: number[][];
  tgt_mlm: number[][];
  seg: number[][];
  tgt_sop: number[];
  batch_size: number;
  seq_length: number;
  lr: number[];
}

const model = await loadModel(refPath("albert-tiny/uer_model.bin"));
const config: AlbertConfig = {
  ...model.config,
  vocab_size: model.params.get("embedding.word.embedding.weight")!.shape[0],
};
const trace = (await refJson<{ steps: TraceStep[] }>("albert-tiny/train_trace/trace.json")).steps.map((s) => ({
  lr: s.lr[0],
  batch: {
    src: Int32Array.from(s.src.flat()),
    tgtMlm: Int32Array.from(s.tgt_mlm.flat()),
    seg: Int32Array.from(s.seg.flat()),
    tgtSop: Int32Array.from(s.tgt_sop),
    batchSize: s.batch_size,
    seqLength: s.seq_length,
  } satisfies Batch,
}));

/** Every step's statistics and the final parameters of a run. */
async function run(
  device: "cpu" | "webgpu",
  steps: { batch: Batch; lr: number }[],
  opts: { recompute: boolean; dropout?: number },
): Promise<{ stats: Record<string, number>[]; params: Map<string, Tensor> }> {
  const trainer = await Trainer.create({
    task: pretrainTask(config),
    params: model.params,
    device,
    threads: 2,
    recompute: opts.recompute,
    dropout: opts.dropout,
    log: () => {},
  });
  try {
    const stats: Record<string, number>[] = [];
    for (const s of steps) {
      await trainer.step(s.batch, s.lr);
      stats.push((await trainer.takeStats()).sums);
    }
    return { stats, params: await trainer.params() };
  } finally {
    await trainer.dispose();
  }
}

/**
 * Compares two runs: exactly (`tol` 0: every statistic and parameter byte) or within `tol` (absolute, on
 * each statistic and parameter element). Returns the largest differences seen.
 */
function assertSameRuns(
  a: Awaited<ReturnType<typeof run>>,
  b: Awaited<ReturnType<typeof run>>,
  what: string,
  tol = 0,
): { stats: number; params: number } {
  let dStats = 0, dParams = 0;
  a.stats.forEach((row, i) => {
    for (const [k, v] of Object.entries(row)) {
      const d = Math.abs(v - b.stats[i][k]);
      dStats = Math.max(dStats, d);
      assert.ok(d <= tol, `${what}: step ${i + 1} ${k} ${b.stats[i][k]} vs ${v}`);
    }
  });
  for (const [name, t] of a.params) {
    const x = t.data as Float32Array, y = b.params.get(name)!.data as Float32Array;
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(x[i] - y[i]);
      if (!(d <= tol) || (tol === 0 && !Object.is(x[i], y[i]))) {
        assert.fail(`${what}: parameter ${name}[${i}] ${y[i]} vs ${x[i]}`);
      }
      dParams = Math.max(dParams, d);
    }
  }
  return { stats: dStats, params: dParams };
}

Deno.test("recompute_activations: the first 10 steps of UER-py's tiny run give the same losses and parameters (CPU)", async () => {
  const plain = await run("cpu", trace.slice(0, 10), { recompute: false });
  const again = await run("cpu", trace.slice(0, 10), { recompute: true });
  assert.equal(plain.stats.length, 10);
  // 9.5e-7 (a loss near 10) and 8.6e-7 (a parameter) when this test was written: see the module doc.
  assertSameRuns(plain, again, "10 steps with and without --recompute_activations", 1e-5);
});

Deno.test("recompute_activations with dropout: the recomputed masks are the forward's, bit for bit (CPU)", async () => {
  const steps = [0, 1, 2].map((i) => ({ batch: syntheticBatch(4, 32, config.vocab_size!, i), lr: 1e-3 }));
  const plain = await run("cpu", steps, { recompute: false, dropout: 0.1 });
  const again = await run("cpu", steps, { recompute: true, dropout: 0.1 });
  assertSameRuns(plain, again, "3 steps with dropout 0.1");
});

Deno.test({
  name: "recompute_activations on the WebGPU executor: the same steps bit for bit",
  ignore: !(await probeWebGpu()).available,
  async fn() {
    const steps = trace.slice(0, 1);
    const plain = await run("webgpu", steps, { recompute: false });
    const again = await run("webgpu", steps, { recompute: true });
    assertSameRuns(plain, again, "a WebGPU step with and without --recompute_activations");
  },
});

Deno.test("recompute_activations: at ALBERT-base 64 × 512 the live set keeps one layer's intermediates", () => {
  const cfg: AlbertConfig = { ...ALBERT_BASE, max_seq_length: 512, vocab_size: 21128 };
  const B = 64, T = 512, H = cfg.hidden_size, n = cfg.heads_num;
  const plan = (recompute: boolean) =>
    memoryPlan(stepGraph(pretrainTask(cfg), { batch: B, seq: T, slots: defaultMaskedSlots(B, T) }, {
      kind: "update",
      scatter: "scatter",
      recompute,
    }));
  const plain = plan(false), rc = plan(true);
  const scores = (p: typeof plain) => p.live.filter((t) => t.shape.join() === [B, n, T, T].join()).length;
  // Without: every layer application keeps its attention probabilities ([B,n,T,T], 768 MiB each) and
  // more; the last runs its queries at the loss's rows only ([B,n,S,T]).
  assert.ok(scores(plain) >= cfg.layers_num - 1, `${scores(plain)} score-shaped tensors alive`);
  // With: the layer being differentiated holds a few; the others keep only their [B,T,H] input.
  assert.ok(scores(rc) <= 3, `${scores(rc)} score-shaped tensors alive with recomputation`);
  const hidden = rc.live.filter((t) => t.shape.join() === [B, T, H].join()).length;
  assert.ok(hidden <= cfg.layers_num + 4, `${hidden} [B,T,H] tensors alive with recomputation`);
  // 24.1 GiB -> 4.0 GiB of intermediates when this test was written: below a quarter.
  assert.ok(rc.peakBytes < plain.peakBytes / 4, `${rc.peakBytes} vs ${plain.peakBytes} bytes`);
});
