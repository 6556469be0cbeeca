/**
 * The WebGPU preflight: a step whose largest tensor exceeds the storage binding limit is refused before
 * it runs, naming the limit and the largest batch that fits; that batch does fit and one more does not.
 */
import assert from "node:assert/strict";
import { ALBERT_BASE } from "../config.ts";
import { checkDeviceLimits, largestTensor } from "./device_limits.ts";
import { defaultMaskedSlots, pretrainTask } from "./pretrain_task.ts";
import { stepGraph } from "./training_graph.ts";
import type { StepShape } from "./task.ts";

const cfg = { ...ALBERT_BASE, layers_num: 1, hidden_size: 64, feedforward_size: 128, heads_num: 4, vocab_size: 300 };
const build = (s: StepShape) => stepGraph(pretrainTask(cfg), s, { kind: "update", scatter: "matmul" });
const shape = { batch: 16, seq: 128, slots: defaultMaskedSlots(16, 128) };

Deno.test("checkDeviceLimits() passes a step whose tensors fit", () => {
  const big = largestTensor(build(shape)).bytes;
  assert.equal(checkDeviceLimits(build, shape, { maxStorageBufferBindingSize: big, maxBufferSize: 2 * big }), null);
});

Deno.test("checkDeviceLimits() names the limit, the tensor and the largest batch that fits", () => {
  const big = largestTensor(build(shape));
  const limit = Math.floor(big.bytes / 3);
  const err = checkDeviceLimits(build, shape, { maxStorageBufferBindingSize: limit, maxBufferSize: 4 * limit });
  assert.ok(err);
  const m =
    /^Cannot train batch 16 × 128 on this GPU: tensor "(.+)" \[[\d,]+\] is \d+ MiB, over the maxStorageBufferBindingSize of \d+ MiB the adapter offers\n {2}hint: --batch_size (\d+) fits \(with --accumulation_steps (\d+) for the same update\), or --device cpu$/
      .exec(err);
  assert.ok(m, err);
  assert.equal(m[1], big.name);
  const fit = Number(m[2]);
  const at = (b: number) => ({ batch: b, seq: 128, slots: Math.max(8, Math.ceil((shape.slots * b) / 16 / 8) * 8) });
  assert.ok(largestTensor(build(at(fit))).bytes <= limit);
  assert.ok(largestTensor(build(at(fit + 1))).bytes > limit);
  assert.equal(Number(m[3]), Math.ceil(16 / fit));
  // maxBufferSize, when it is the smaller one, is the limit named.
  const e2 = checkDeviceLimits(build, shape, { maxStorageBufferBindingSize: 4 * limit, maxBufferSize: limit })!;
  assert.match(e2, /over the maxBufferSize of/);
});
