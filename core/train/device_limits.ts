/**
 * WebGPU limits against a training step's tensors: every tensor a kernel reads or writes is bound as
 * one storage buffer, so none may exceed the device's `maxStorageBufferBindingSize` (nor
 * `maxBufferSize`). An engine may place many tensors in one arena, but a single tensor over the limit
 * cannot run unsplit. `checkDeviceLimits` says so before the first step, naming the limit, the tensor
 * and the largest batch that fits (the big tensors of a step are batch-major, so they shrink with the
 * batch). Browser compatible: no Deno APIs.
 * @module
 */
import type { Graph } from "../graph/builder.ts";
import { DTYPE_SIZE } from "../tensor.ts";
import type { StepShape } from "./task.ts";

/** The storage limits that matter, in bytes (a `GPUSupportedLimits` fits). */
export interface StorageLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** The largest tensor a graph's nodes produce or read: name, shape and bytes. */
export function largestTensor(g: Graph): { name: string; shape: number[]; bytes: number } {
  let best = { name: "", shape: [] as number[], bytes: 0 };
  const seen = new Set<unknown>();
  for (const n of g.nodes) {
    for (const v of [...n.inputs, ...n.outputs]) {
      if (!v || seen.has(v)) continue;
      seen.add(v);
      const shape = v.shape.map(Number);
      const bytes = shape.reduce((a, d) => a * d, DTYPE_SIZE[v.dtype]);
      if (bytes > best.bytes) best = { name: v.name, shape, bytes };
    }
  }
  return best;
}

/**
 * Null when every tensor of `build(shape)` fits `limits`, else the one-line error (with a `hint:`)
 * naming the limit, the largest tensor and the largest batch of `shape.seq` tokens that fits.
 *
 * @example
 * ```ts
 * const err = checkDeviceLimits((s) => stepGraph(task, s, { kind: "update" }), shape, adapter.limits);
 * if (err) throw new RangeError(err);
 * ```
 */
export function checkDeviceLimits(
  build: (shape: StepShape) => Graph,
  shape: StepShape,
  limits: StorageLimits,
): string | null {
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const which = limits.maxStorageBufferBindingSize <= limits.maxBufferSize
    ? "maxStorageBufferBindingSize"
    : "maxBufferSize";
  const big = largestTensor(build(shape));
  if (big.bytes <= limit) return null;
  // Batch-major tensors shrink in proportion; check the guess and step down until it fits.
  const scaled = (b: number): StepShape => ({
    ...shape,
    batch: b,
    slots: shape.slots ? Math.max(8, Math.ceil((shape.slots * b) / shape.batch / 8) * 8) : 0,
  });
  let fit = Math.min(shape.batch - 1, Math.floor((shape.batch * limit) / big.bytes));
  while (fit > 0 && largestTensor(build(scaled(fit))).bytes > limit) fit--;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  return `Cannot train batch ${shape.batch} × ${shape.seq} on this GPU: tensor "${big.name}" [${big.shape}] is ` +
    `${mib(big.bytes)}, over the ${which} of ${mib(limit)} the adapter offers` +
    `\n  hint: ${
      fit > 0
        ? `--batch_size ${fit} fits (with --accumulation_steps ${Math.ceil(shape.batch / fit)} for the same update)`
        : "no batch fits at this --seq_length"
    }, or --device cpu`;
}
