/**
 * The memory plan of a graph: which intermediate tensors are alive while each node runs, if every node
 * runs in graph order, its outputs are allocated when it runs and each buffer is freed right after its
 * last reader (what onnxruntime's allocation planner does for a sequential CPU run). Reshape-like ops
 * (Reshape, Squeeze, Unsqueeze, Flatten, Identity) alias their input, so their outputs cost nothing and
 * keep the input's buffer alive. Graph inputs (the batch, parameters, optimizer state) and constants are
 * counted apart, since their memory belongs to the caller. The largest live set, listed by tensor, shows
 * what a training step holds at its peak (typically the start of the backward pass: every forward
 * activation the gradients still need). Browser compatible: no Deno APIs.
 * @module
 */
import type { Graph, Node, Value } from "./builder.ts";
import { DTYPE_SIZE } from "../tensor.ts";

/** Ops whose output shares its input's buffer (onnxruntime reuses it in place). */
export const ALIAS_OPS: ReadonlySet<string> = new Set(["Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"]);

/** One tensor alive at the peak. */
export interface LiveTensor {
  /** The value's name (the producing node's output). */
  name: string;
  /** Producing op. */
  op: string;
  shape: number[];
  bytes: number;
}

/** What `memoryPlan` found. */
export interface MemoryPlan {
  /** Largest sum of intermediate buffers alive while one node runs (inputs and constants excluded). */
  peakBytes: number;
  /** The node running at the peak, and its index in execution order. */
  peakNode: string;
  peakIndex: number;
  /** Nodes in execution order. */
  nodes: number;
  /** The buffers alive at the peak, largest first. */
  live: LiveTensor[];
  /** Bytes of the graph inputs the nodes read (batch, parameters, optimizer state). */
  inputBytes: number;
  /** Bytes of the constants (initializers). */
  constantBytes: number;
  /** Bytes of the graph outputs (allocated by the run, handed to the caller). */
  outputBytes: number;
}

function bytesOf(v: Value): number {
  let n = DTYPE_SIZE[v.dtype];
  for (const d of v.shape) {
    if (typeof d !== "number") {
      throw new RangeError(`Cannot plan the memory of "${v.name}": symbolic shape [${v.shape}]`);
    }
    n *= d;
  }
  return n;
}

/**
 * The memory plan of the nodes that `outputs` (default: the graph's outputs) depend on.
 *
 * @example
 * ```ts
 * const plan = memoryPlan(stepGraph(pretrainTask(cfg), shape, { kind: "update", scatter: "scatter" }));
 * console.log(formatMemoryPlan(plan, 10));
 * ```
 */
export function memoryPlan(g: Graph, outputs: Value[] = g.outputs()): MemoryPlan {
  const order = g.ancestors(outputs);
  const isOutput = new Set(outputs);
  // Buffer of each value: aliases share their input's buffer (the root value).
  const root = new Map<Value, Value>();
  const rootOf = (v: Value): Value => root.get(v) ?? v;
  for (const n of order) {
    if (ALIAS_OPS.has(n.op) && n.inputs[0]?.producer) root.set(n.outputs[0], rootOf(n.inputs[0]));
  }
  // Last reader of each buffer (index in `order`); outputs live to the end.
  const last = new Map<Value, number>();
  order.forEach((n, i) => {
    for (const v of n.inputs) if (v?.producer) last.set(rootOf(v), i);
    for (const o of n.outputs) if (!last.has(rootOf(o))) last.set(rootOf(o), i);
  });
  for (const v of isOutput) last.set(rootOf(v), order.length);
  const freeAt = new Map<number, Value[]>();
  for (const [v, i] of last) {
    const list = freeAt.get(i);
    if (list) list.push(v);
    else freeAt.set(i, [v]);
  }

  const live = new Set<Value>();
  let now = 0, peak = 0, peakIndex = 0;
  let peakSet: Value[] = [];
  order.forEach((n: Node, i) => {
    for (const o of n.outputs) {
      if (rootOf(o) !== o || live.has(o)) continue;
      live.add(o);
      now += bytesOf(o);
    }
    if (now > peak) {
      peak = now;
      peakIndex = i;
      peakSet = [...live];
    }
    for (const v of freeAt.get(i) ?? []) {
      if (live.delete(v)) now -= bytesOf(v);
    }
  });

  const inputs = new Set<Value>();
  const constants = new Set<Value>();
  for (const n of order) {
    for (const v of n.inputs) {
      if (!v || v.producer) continue;
      if (g.constantOf(v)) constants.add(v);
      else inputs.add(v);
    }
  }
  const sum = (vs: Iterable<Value>) => [...vs].reduce((a, v) => a + bytesOf(v), 0);
  return {
    peakBytes: peak,
    peakNode: order[peakIndex]?.name ?? "",
    peakIndex,
    nodes: order.length,
    live: peakSet
      .map((v) => ({ name: v.name, op: v.producer!.op, shape: v.shape as number[], bytes: bytesOf(v) }))
      .sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name)),
    inputBytes: sum(inputs),
    constantBytes: sum(constants),
    outputBytes: sum(new Set(outputs.map(rootOf))),
  };
}

/**
 * The plan as text: totals, then the `top` largest tensors alive at the peak and the live bytes per
 * producing op.
 */
export function formatMemoryPlan(plan: MemoryPlan, top = 20): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const lines = [
    `largest live set: ${mib(plan.peakBytes)} of intermediates while node ${plan.peakIndex + 1}/${plan.nodes} ` +
    `(${plan.peakNode}) runs, ${plan.live.length} tensors; besides: inputs ${mib(plan.inputBytes)}, ` +
    `constants ${mib(plan.constantBytes)}, outputs ${mib(plan.outputBytes)}`,
  ];
  const byOp = new Map<string, { n: number; bytes: number }>();
  for (const t of plan.live) {
    const e = byOp.get(t.op) ?? { n: 0, bytes: 0 };
    e.n++;
    e.bytes += t.bytes;
    byOp.set(t.op, e);
  }
  lines.push(
    "  by op: " +
      [...byOp].sort((a, b) => b[1].bytes - a[1].bytes).map(([op, e]) => `${op} ${e.n}× ${mib(e.bytes)}`).join(", "),
  );
  for (const t of plan.live.slice(0, top)) {
    lines.push(`  ${mib(t.bytes).padStart(12)}  ${t.op.padEnd(14)} [${t.shape.join(",")}]  ${t.name}`);
  }
  if (plan.live.length > top) {
    const rest = plan.live.slice(top).reduce((a, t) => a + t.bytes, 0);
    lines.push(`  ${mib(rest).padStart(12)}  (${plan.live.length - top} more)`);
  }
  return lines.join("\n");
}
