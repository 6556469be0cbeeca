/**
 * Batch plans for many texts: rows sorted by token count (longest first) and cut into batches of
 * `batchSize`, so each batch is padded only to its own longest row and the padding that unsorted
 * batching of a natural length mix computes (most rows far shorter than the longest of their batch)
 * disappears; callers write each result at its row's input index, so output order is input order.
 * HF's pipelines batch in input order; UER-py's `extract_features.py` too. Browser compatible.
 * @module
 */

/**
 * Row indices per batch. Sorted: by length, longest first (ties in input order), so the first batch
 * shows the largest shapes (and memory) and the rate seen by a progress line only improves.
 *
 * @example
 * ```ts
 * planBatches([3, 9, 4, 8], 2);        // [[1, 3], [2, 0]]
 * planBatches([3, 9, 4, 8], 2, false); // [[0, 1], [2, 3]]
 * ```
 */
export function planBatches(lengths: readonly number[], batchSize: number, sortByLength = true): number[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`Cannot batch with batch size ${batchSize}\n  hint: pass --batch_size 1 or more`);
  }
  const order = lengths.map((_, i) => i);
  if (sortByLength) order.sort((a, b) => lengths[b] - lengths[a] || a - b);
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) out.push(order.slice(i, i + batchSize));
  return out;
}

/** Padded token slots of a plan (Σ over batches of rows × longest row): what the sessions compute. */
export function paddedTokens(lengths: readonly number[], plan: number[][]): number {
  return plan.reduce((s, b) => s + b.length * Math.max(...b.map((i) => lengths[i])), 0);
}
