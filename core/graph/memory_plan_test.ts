/**
 * The memory plan: lifetimes on a hand-sized graph, and what a pretraining step keeps for its backward.
 */
import assert from "node:assert/strict";
import { Graph } from "./builder.ts";
import { formatMemoryPlan, memoryPlan } from "./memory_plan.ts";
import { ALBERT_BASE } from "../config.ts";
import { stepGraph } from "../train/training_graph.ts";
import { pretrainTask } from "../train/pretrain_task.ts";

Deno.test("memoryPlan() frees each buffer after its last reader; reshapes alias their input", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [256]); // 1 KiB, the caller's
  const a = g.relu(x); // 1 KiB
  const r = g.reshape(a, [16, 16]); // alias of a: a lives until r's last reader
  const b = g.exp(x); // 1 KiB, while a is alive: 2 KiB
  const c = g.add(g.reshape(r, [256]), b); // a, b and c: 3 KiB (the peak)
  const d = g.neg(c); // a and b freed after c's node: c, d = 2 KiB
  g.output(d, "y");
  const plan = memoryPlan(g);
  assert.equal(plan.peakBytes, 3 * 1024);
  assert.equal(plan.peakNode, c.producer!.name);
  assert.deepEqual(plan.live.map((t) => t.name).sort(), [a.name, b.name, c.name].sort());
  assert.equal(plan.inputBytes, 1024);
  assert.equal(plan.outputBytes, 1024);
  assert.match(formatMemoryPlan(plan), /^largest live set: 0\.0 MiB .*3 tensors/);
});

Deno.test("at a pretraining step's peak no FFN pre-activation and no normalised LayerNorm output is alive", () => {
  const cfg = { ...ALBERT_BASE, layers_num: 2, hidden_size: 64, feedforward_size: 256, heads_num: 4, vocab_size: 100 };
  const B = 16, T = 64, H = cfg.hidden_size, F = cfg.feedforward_size;
  const g = stepGraph(pretrainTask(cfg), { batch: B, seq: T, slots: 160 }, { kind: "update", scatter: "scatter" });
  const plan = memoryPlan(g);
  const at = (op: string, shape: number[]) => plan.live.filter((t) => t.op === op && t.shape.join() === shape.join());
  // The peak is among the feed-forward activations (or their gradients).
  assert.ok(plan.live.some((t) => t.shape.join() === [B, T, F].join()), formatMemoryPlan(plan));
  // The Relu rule reads its output, so linear_1's output x (Add) dies with the forward's relu(x).
  assert.deepEqual(at("Add", [B, T, F]), []);
  // The fused UER LayerNorm rule reads d = x - mean (Sub) and std; gamma·d / (std + eps) (Div) dies at once.
  assert.deepEqual(at("Div", [B, T, H]), []);
  assert.ok(at("Sub", [B, T, H]).length <= 2 * cfg.layers_num + 1);
});
