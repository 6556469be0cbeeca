import assert from "node:assert/strict";
import { paddedTokens, planBatches } from "./batching.ts";

Deno.test("planBatches() sorts rows longest first (ties in input order) and cuts batches; unsorted keeps input order", () => {
  const lengths = [3, 9, 4, 9, 1];
  assert.deepEqual(planBatches(lengths, 2), [[1, 3], [2, 0], [4]]);
  assert.deepEqual(planBatches(lengths, 2, false), [[0, 1], [2, 3], [4]]);
  assert.deepEqual(planBatches([], 4), []);
  assert.throws(() => planBatches(lengths, 0), /Cannot batch with batch size 0\n {2}hint: pass --batch_size 1 or more/);
  const all = planBatches(lengths, 4).flat().sort();
  assert.deepEqual(all, [0, 1, 2, 3, 4]);
});

Deno.test("paddedTokens() counts what sorted batching saves on a mixed length set", () => {
  const lengths = [128, 10, 12, 127, 11, 9];
  assert.equal(paddedTokens(lengths, planBatches(lengths, 2, false)), 2 * 128 + 2 * 127 + 2 * 11);
  assert.equal(paddedTokens(lengths, planBatches(lengths, 2)), 2 * 128 + 2 * 12 + 2 * 10);
});
