/**
 * The lowering without a device: how many dispatches a training step takes and how that grows with
 * the layer applications, what the fusions do to a LayerNorm and a linear layer, and the view algebra
 * (reshapes as strides).
 */
import assert from "node:assert/strict";
import { pretrainStep, tinyConfigLayers } from "../../tests/webgpu_steps.ts";
import { Graph } from "../graph/builder.ts";
import { layerNorm, linear } from "../model/layers.ts";
import { reshapeStrides } from "./expr.ts";
import { ArenaLayout } from "./graph_session.ts";
import { lowerGraph, type OutTarget, type Program } from "./lower.ts";

function lower(g: Graph, outputs: string[]): Program {
  const floats = new ArenaLayout("IF", "f32", "input", 1), ints = new ArenaLayout("II", "i32", "input", 500_000);
  const inputs = new Map();
  for (const v of g.values) {
    if (!v.tags.has("input") && !v.tags.has("param")) continue;
    inputs.set(
      v.name,
      (v.dtype === "F32" ? floats : ints).add(v.name, v.shape.reduce<number>((a, d) => a * Number(d), 1)),
    );
  }
  const outs = new Map<string, OutTarget>(outputs.map((o) => [o, { kind: "host" }]));
  return lowerGraph(g, { inputs, outputs: outs, derivedBuf: (n, k) => ints.add(n, k) });
}

function kinds(p: Program): Record<string, number> {
  const c: Record<string, number> = {};
  for (const k of p.kernels) c[k.k] = (c[k.k] ?? 0) + 1;
  return c;
}

Deno.test("a tiny-config training step lowers to ≤ 150 dispatches at 2 layers, a fixed number more per layer", async () => {
  const counts: number[] = [];
  // From 2 layers up: one layer alone is the last application, at the loss's rows only (albert.ts).
  for (const L of [2, 3, 4]) {
    const { graph } = pretrainStep(await tinyConfigLayers(L), 4, 64);
    const p = lower(graph, graph.outputs().map((v) => v.name));
    counts.push(p.kernels.length);
    // The gather gradients (word and segment embeddings, the last layer's query rows, the MLM rows
    // among them) are scatters, never [V,N] one-hots.
    assert.equal(kinds(p).scatter, 4, JSON.stringify(kinds(p)));
  }
  assert.ok(counts[0] <= 150, `2 layers: ${counts[0]} dispatches`);
  const perLayer = counts[1] - counts[0];
  assert.equal(counts[2] - counts[1], perLayer, `per layer: ${counts}`);
  assert.ok(perLayer <= 40, `${perLayer} dispatches per layer`);
  console.log(`dispatches for 2/3/4 layers: ${counts.join("/")} (${counts[0] - 2 * perLayer} + ${perLayer}·L)`);
});

Deno.test("a linear layer + relu is one product with its epilogue; UER LayerNorm is one reduction kernel", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [8, 16]);
  const h = g.relu(linear(g, "l", x, 16, 32));
  g.output(layerNorm(g, "ln", h, 32, { semantics: "uer" }), "y");
  const p = lower(g, ["y"]);
  assert.deepEqual(p.kernels.map((k) => k.k), ["mm", "reduce"]);
  const ln = p.kernels[1];
  assert.ok(ln.k === "reduce" && ln.phases.length === 2, "mean and the unbiased variance in one kernel");
});

Deno.test("reshapeStrides() merges and splits strided dims, and refuses what strides cannot express", () => {
  assert.deepEqual(reshapeStrides([4, 6], [6, 1], [24]), [1]);
  assert.deepEqual(reshapeStrides([24], [1], [2, 3, 4]), [12, 4, 1]);
  // A transposed view [B,T,n,d] (n,d not adjacent in memory) cannot merge n and d.
  assert.equal(reshapeStrides([2, 4, 3, 5], [60, 5, 20, 1], [2, 4, 15]), undefined);
  // Size-1 dims come and go freely; broadcast (stride 0) dims merge with each other.
  assert.deepEqual(reshapeStrides([3, 1, 5], [5, 0, 1], [1, 3, 5, 1]), [0, 5, 1, 0]);
  assert.deepEqual(reshapeStrides([2, 3], [0, 0], [6]), [0]);
});
