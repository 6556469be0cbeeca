import assert from "node:assert/strict";
import { initParams, Trainer } from "./trainer.ts";
import { type Batch, defaultMaskedSlots, lastLayerRows, pretrainStats, pretrainTask } from "./pretrain_task.ts";
import { tinyConfigLayers } from "../../tests/webgpu_steps.ts";

/** Two rows of 16 tokens: row 0 with `masked0` masked tokens (at 2, 3, …), row 1 with one (at 5). */
function batchWith(masked0: number): Batch {
  const T = 16, src = new Int32Array(2 * T), seg = new Int32Array(2 * T).fill(1), tgtMlm = new Int32Array(2 * T);
  for (let i = 0; i < 2 * T; i++) src[i] = 104 + i;
  for (let j = 0; j < masked0; j++) tgtMlm[2 + j] = 7 + j;
  tgtMlm[T + 5] = 9;
  return { src, seg, tgtMlm, tgtSop: Int32Array.from([0, 1]), batchSize: 2, seqLength: T };
}

Deno.test("pretrainTask: a row with more masked tokens than ⌈K/B⌉ grows K; each row's tokens take its own last-layer rows after [CLS]", async () => {
  const task = pretrainTask(await tinyConfigLayers(2)); // the reference tiny config, 2 layers
  const K0 = defaultMaskedSlots(2, 16); // 8: 4 per row
  assert.equal(K0, 8);
  const small = task.shapeFor(batchWith(3), []);
  assert.deepEqual(small, { batch: 2, seq: 16, slots: K0 });
  // 6 + 1 = 7 masked tokens fit 8 slots, but not row 0's 6 in its 4 query rows: K doubles.
  const b = batchWith(6);
  const shape = task.shapeFor(b, [small]);
  assert.deepEqual(shape, { batch: 2, seq: 16, slots: 16 });
  const S = lastLayerRows(shape); // [CLS] + 8
  assert.equal(S, 9);
  const f = task.feeds(b, shape);
  const rows = Array.from(f.last_layer_positions.data as Int32Array);
  assert.deepEqual(rows.slice(0, S), [0, 2, 3, 4, 5, 6, 7, 0, 0]); // row 0: [CLS], its 6 tokens, [CLS] again
  assert.deepEqual(rows.slice(S), [16, 21, 16, 16, 16, 16, 16, 16, 16]); // row 1: [CLS] (16), token 5
  const pos = Array.from(f.mlm_positions.data as Int32Array);
  assert.deepEqual(pos.slice(0, 7), [1, 2, 3, 4, 5, 6, S + 1]); // MLM slots index the last layer's B·S rows
  assert.deepEqual(Array.from(f.mlm_labels.data as Int32Array).slice(0, 7), [7, 8, 9, 10, 11, 12, 9]);
  assert.deepEqual(Array.from(f.mlm_weights.data as Float32Array), [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  // The grown graph trains on it.
  const trainer = await Trainer.create({ task, params: initParams(task.params, 3), device: "cpu", threadProbe: false });
  try {
    await trainer.step(b, 1e-3);
    const s = pretrainStats((await trainer.takeStats()).sums);
    assert.equal(s.nMasked, 7);
    assert.ok(Number.isFinite(s.loss) && s.lossMlm > 0 && s.lossSp > 0, JSON.stringify(s));
  } finally {
    await trainer.dispose();
  }
});
