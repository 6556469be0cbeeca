/**
 * Reverse-mode differentiation on the graph IR: `grad(g, loss, params)` appends the nodes computing
 * d loss / d param for every param and returns them. What is common to every op lives here; the
 * per-op math is the table in `rules.ts`. The walk visits only nodes on a path from a parameter to
 * the loss, adds up the gradients of a value read by several nodes (which is how the shared ALBERT
 * layer, applied `layers_num` times, gets one gradient per weight), and reduces broadcast gradients
 * back to each input's shape. A fused op (`Graph.fused`, e.g. a softmax cross-entropy) is walked as one
 * node with its own row in the table. Mirrors tinygrad's `compute_gradient` (and torch autograd's fan-in).
 * With `recompute`, a checkpoint (`Graph.checkpoint`, one layer application) is walked as one node too:
 * its backward re-emits its forward from its inputs and walks the copy (torch.utils.checkpoint).
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { Checkpoint, Graph, Node, Value } from "../graph/builder.ts";
import { dimEqual } from "../graph/shapes.ts";
import { GRAD_RULES, type ScatterMode } from "./rules.ts";

/** Options of `grad`. */
export interface GradOptions {
  /** Scatter-add flavour of Gather gradients: "matmul" (WebGPU-safe, default) or "scatter" (CPU). */
  scatter?: ScatterMode;
  /** d loss / d loss (default the constant 1); e.g. a `1 / accumulation_steps` input. */
  seed?: Value;
  /**
   * Values treated as constants (no gradient flows through them). Default: the max-shifts of the
   * softmaxes built from primitives (`softmaxShifts`), whose gradient is exactly zero.
   */
  stop?: Set<Value>;
  /**
   * Recompute each checkpoint (`Graph.checkpoint`: a transformer layer application) in the backward
   * instead of keeping its intermediates from the forward (`--recompute_activations`): the forward
   * keeps only each checkpoint's inputs; the same float32 operations run again and the gradient parts are
   * summed in the same order (onnxruntime may still fuse a sum differently: DESIGN.md §6.6).
   */
  recompute?: boolean;
}

const FLOATS = new Set(["F32", "F64", "F16", "BF16"]);

/**
 * The `ReduceMax` outputs used only as the numerical shift of a softmax `exp(x - max(x)) / Σ`
 * (core/model/layers.ts): softmax is shift invariant, so their gradient is exactly zero and
 * differentiating them would only add work.
 */
export function softmaxShifts(g: Graph): Set<Value> {
  const cons = g.consumers();
  const out = new Set<Value>();
  for (const n of g.nodes) {
    if (n.op !== "ReduceMax") continue;
    const m = n.outputs[0], x = n.inputs[0];
    const users = cons.get(m) ?? [];
    const ok = users.length > 0 && users.every((s) => {
      if (s.op !== "Sub" || s.inputs[0] !== x || s.inputs[1] !== m) return false;
      const e = cons.get(s.outputs[0]) ?? [];
      if (e.length !== 1 || e[0].op !== "Exp") return false;
      const eu = cons.get(e[0].outputs[0]) ?? [];
      const sum = eu.find((u) => u.op === "ReduceSum");
      return eu.length === 2 && sum !== undefined &&
        eu.some((u) => u.op === "Div" && u.inputs[0] === e[0].outputs[0] && u.inputs[1] === sum.outputs[0]);
    });
    if (ok) out.add(m);
  }
  return out;
}

/** Sums a broadcast gradient back to `shape` (leading dims and dims that are 1 in `shape`). */
export function reduceToShape(g: Graph, v: Value, shape: readonly (number | string)[]): Value {
  if (v.rank === shape.length && v.shape.every((d, i) => dimEqual(d, shape[i]))) return v;
  const k = v.rank - shape.length;
  if (k < 0) return g.op("Expand", [v, g.ints(shape as number[])]);
  const lead = [...Array(k).keys()];
  const inner = shape.flatMap((d, i) => (d === 1 && v.shape[i + k] !== 1 ? [i + k] : []));
  let r = v;
  const numel = v.shape.reduce<number>((a, d) => a * (typeof d === "number" ? d : 1), 1);
  if (numel > 16_000_000 && lead.length + inner.length > 1) {
    // NOTE: WebGPU's ReduceSum is silently wrong beyond ~16.7M elements (DESIGN.md §3): two stages.
    r = g.reduceSum(r, [lead.length ? lead[0] : inner[0]], true);
  }
  const numeric = v.shape.every((d) => typeof d === "number");
  if (inner.length === 0 && numeric && r === v && FLOATS.has(v.dtype)) {
    // Σ over the leading dims as ones[1,N] x v[N,C]: one GEMV, ~3x faster than onnxruntime's
    // ReduceSum over leading axes (every bias gradient takes this path).
    const c = (shape as number[]).reduce((a, d) => a * d, 1);
    const n = numel / c;
    const ones = g.op("Expand", [g.scalar(1, v.dtype), g.ints([1, n])]); // [1,N]
    return g.reshape(g.matmul(ones, g.reshape(v, [n, c])), shape as number[]); // [1,C] -> shape
  }
  if (inner.length === 0) r = g.reduceSum(r, lead, false);
  else r = g.reshape(g.reduceSum(r, [...lead, ...inner], true), shape as number[]);
  return r;
}

function addAll(g: Graph, parts: Value[]): Value {
  let s = parts[0];
  for (let i = 1; i < parts.length; i++) s = g.add(s, parts[i]);
  return s;
}

/**
 * The nodes of `g` as autodiff sees them: each fused op's run of nodes (`Graph.fused`) becomes one
 * node named after the fused op, with its inputs and outputs; with `checkpoints`, each checkpoint's run
 * (`Graph.checkpoint`, fused ops inside included) becomes one node of op `Checkpoint`; the others are as
 * they are. `from`/`to` restrict the walk to nodes `[from, to)`.
 */
export function gradUnits(g: Graph, checkpoints = false, from = 0, to: number = g.nodes.length): Node[] {
  const out: Node[] = [];
  const runs: { start: number; end: number; unit: Node }[] = [];
  const inside = (s: number, e: number) => s >= from && e <= to;
  const cps = checkpoints ? g.checkpoints.filter((c) => inside(c.start, c.end)) : [];
  for (const c of cps) {
    const unit = { id: g.nodes[c.start].id, op: CHECKPOINT, inputs: c.inputs, outputs: [c.output], attrs: {} };
    runs.push({ start: c.start, end: c.end, unit: { ...unit, name: `${CHECKPOINT}_${c.start}` } });
  }
  for (const f of g.fusions) {
    if (!inside(f.start, f.end) || cps.some((c) => f.start < c.end && f.end > c.start)) continue;
    const unit = { id: g.nodes[f.start].id, op: f.op, inputs: f.inputs, outputs: f.outputs, attrs: f.attrs };
    runs.push({ start: f.start, end: f.end, unit: { ...unit, name: `${f.op}_${f.start}` } });
  }
  runs.sort((a, b) => a.start - b.start);
  let at = from;
  for (const r of runs) {
    for (; at < r.start; at++) out.push(g.nodes[at]);
    out.push(r.unit);
    at = r.end;
  }
  for (; at < to; at++) out.push(g.nodes[at]);
  return out;
}

/** The op name of a checkpoint's unit in `gradUnits`. */
const CHECKPOINT = "Checkpoint";

/**
 * Appends d `loss` / d `wrt[i]` to `g` and returns them, keyed by the values of `wrt`. A value of
 * `wrt` the loss does not depend on gets a zero gradient (AdamW updates every parameter densely).
 *
 * @example
 * ```ts
 * const grads = grad(g, loss, g.params(), { scatter: "scatter" });
 * g.output(grads.get(g.paramByName("target.sp.linear_2.bias")!)!, "grad.target.sp.linear_2.bias");
 * ```
 */
export function grad(g: Graph, loss: Value, wrt: Value[], opts: GradOptions = {}): Map<Value, Value> {
  return vjp(g, new Map([[loss, opts.seed ?? g.scalar(1, loss.dtype)]]), wrt, opts);
}

/**
 * Vector-Jacobian product: given the gradients of some values (`seeds`: value → d objective / d value,
 * same shape), appends and returns d objective / d `wrt[i]`. `grad` is the one-seed case; a caller
 * that knows a closed form for part of the objective (e.g. softmax cross-entropy: softmax − one-hot)
 * seeds the logits with it instead of differentiating the loss expression node by node.
 */
export function vjp(g: Graph, seeds: Map<Value, Value>, wrt: Value[], opts: GradOptions = {}): Map<Value, Value> {
  const walk: Walk = {
    g,
    stop: opts.stop ?? softmaxShifts(g),
    scatter: opts.scatter ?? "matmul",
    checkpoints: new Map(),
  };
  if (opts.recompute) {
    const cons = g.consumers();
    for (const c of g.checkpoints) {
      for (let i = c.start; i < c.end; i++) {
        for (const o of g.nodes[i].outputs) {
          const out = o !== c.output && cons.get(o)?.find((n) => n.id < c.start || n.id >= c.end);
          if (out) {
            throw new RangeError(
              `Cannot recompute the checkpoint at node ${c.start}: node "${out.name}" reads "${o.name}" from inside it`,
            );
          }
        }
      }
      walk.checkpoints.set(c.start, c);
    }
  }
  // Snapshot: the gradient nodes appended below are not walked.
  const parts = backward(walk, gradUnits(g, opts.recompute), seeds, wrt);
  const out = new Map<Value, Value>();
  for (const p of wrt) {
    const list = parts.get(p);
    out.set(p, list ? addAll(g, list) : g.op("Expand", [g.scalar(0, p.dtype), g.ints(p.shape.map((d) => Number(d)))]));
  }
  return out;
}

/** What one backward walk shares with the walks of the checkpoints it recomputes. */
interface Walk {
  g: Graph;
  stop: Set<Value>;
  scatter: ScatterMode;
  /** Checkpoints to recompute, by their first node's index. */
  checkpoints: Map<number, Checkpoint>;
}

/**
 * The backward walk over `nodes` (autodiff units in topological order) from `seeds`: appends the
 * gradient nodes and returns, for each value of `wrt` the seeds depend on, its gradient's parts in the
 * order they were found (their sum is the gradient).
 */
function backward(w: Walk, nodes: Node[], seeds: Map<Value, Value>, wrt: Value[]): Map<Value, Value[]> {
  const { g, stop } = w;
  // Values that depend on a wrt value (forward), then those the loss also depends on (backward).
  const dep = new Set<Value>(wrt);
  for (const n of nodes) {
    if (!n.inputs.some((v) => v && dep.has(v) && !stop.has(v))) continue;
    for (const o of n.outputs) if (FLOATS.has(o.dtype) && !stop.has(o)) dep.add(o);
  }
  const live = new Set<Value>();
  for (const v of seeds.keys()) if (dep.has(v)) live.add(v);
  const onPath: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((o) => live.has(o))) continue;
    onPath.push(n);
    for (const v of n.inputs) if (v && dep.has(v) && !stop.has(v)) live.add(v);
  }

  const parts = new Map<Value, Value[]>();
  const push = (v: Value, gv: Value) => {
    const list = parts.get(v);
    if (list) list.push(gv);
    else parts.set(v, [gv]);
  };
  const total = (v: Value): Value | undefined => {
    const list = parts.get(v);
    if (!list) return undefined;
    const s = addAll(g, list);
    parts.set(v, [s]);
    return s;
  };
  for (const [v, gv] of seeds) push(v, gv);
  // The parameter gradients summed so far over the checkpoints recomputed (see `recompute`).
  let sums: Value[] = [];

  for (const n of onPath) { // reverse topological order
    for (let i = 1; i < n.outputs.length; i++) {
      if (parts.has(n.outputs[i])) {
        throw new RangeError(`Cannot differentiate node "${n.name}" (op ${n.op}): only its first output may be used`);
      }
    }
    const dy = total(n.outputs[0]);
    if (!dy) continue;
    const need = n.inputs.map((v) => v !== null && live.has(v));
    if (n.op === CHECKPOINT) {
      const cp = w.checkpoints.get(n.id)!;
      const found = recompute(w, cp, dy, need, sums);
      for (const [v, list] of found) for (const gv of list) push(v, gv);
      // Summed now (the same left-to-right additions as at the end), and the next recomputation waits for
      // the sums: the copies they read are then freed before the next one is made. A parameter's first
      // part stays unread (its sum would be the part itself, and a second reader of a product's output
      // changes which product onnxruntime fuses with the addition: other roundings).
      const params = [...found.keys()].filter((v) => v.tags.has("param") && parts.get(v)!.length > 1);
      sums = params.map((v) => total(v)!);
      continue;
    }
    const rule = GRAD_RULES[n.op];
    if (!rule) {
      throw new TypeError(
        `Cannot differentiate node "${n.name}" (op ${n.op}): no gradient rule\n  hint: add a row for ${n.op} to GRAD_RULES in core/autodiff/rules.ts`,
      );
    }
    const grads = rule(g, dy, n.inputs, { node: n, out: n.outputs[0], need, scatter: w.scatter });
    n.inputs.forEach((v, i) => {
      const gv = grads[i];
      if (!v || !need[i] || !gv) return;
      push(v, reduceToShape(g, gv, v.shape));
    });
  }
  const out = new Map<Value, Value[]>();
  for (const v of wrt) {
    const list = parts.get(v);
    if (list) out.set(v, list);
  }
  return out;
}

/**
 * The backward of a checkpoint: re-emits its nodes from its inputs right here (after `dy` exists) and
 * walks the copy, so the original run's intermediates die with the forward. Each input that is not a
 * parameter is read through `Where(gate, v, v)` (the value itself, bit for bit, whatever `gate` is)
 * with `gate` a function of `dy` and of the parameter gradients summed by the previous recomputation
 * (`after`). The copy then depends on the incoming gradient, so no runtime can schedule it before the
 * backward reaches it, and onnxruntime's common-subexpression elimination cannot merge it back into the
 * forward (which would keep the intermediates alive again); and onnxruntime, whose execution order is a
 * depth-first walk from the graph outputs, computes the previous checkpoint's weight gradients before
 * this copy instead of after the whole backward (which would keep every copy alive). Returns the
 * gradient parts of the checkpoint's inputs (those `need` marks), in the order a walk of the original
 * nodes finds them, so the sums are the same float32 additions as without recomputation.
 */
function recompute(w: Walk, cp: Checkpoint, dy: Value, need: boolean[], after: Value[]): Map<Value, Value[]> {
  const { g } = w;
  const first = (v: Value) => g.gather(g.reshape(v, [-1]), g.scalar(0, "I64")); // []
  const gate = g.greater(after.reduce((a, v) => g.add(a, first(v)), first(dy)), 0); // BOOL []
  const map = new Map<Value, Value>();
  for (const v of cp.inputs) if (!v.tags.has("param")) map.set(v, g.where(gate, v, v));
  const at = g.nodes.length;
  const copy = g.replay(cp.start, cp.end, map);
  const inner: Walk = {
    ...w,
    stop: new Set([...w.stop].flatMap((v) => (copy.has(v) && !map.has(v) ? [copy.get(v)!] : []))),
  };
  const wanted = cp.inputs.filter((_, i) => need[i]);
  const parts = backward(
    inner,
    gradUnits(g, false, at, g.nodes.length),
    new Map([[copy.get(cp.output)!, dy]]),
    wanted.map((v) => copy.get(v) ?? v),
  );
  const out = new Map<Value, Value[]>();
  for (const v of wanted) {
    const list = parts.get(copy.get(v) ?? v);
    if (list) out.set(v, list);
  }
  return out;
}
