/**
 * The graph IR: a small builder whose nodes are ONNX ops (default domain, opset 17) and whose
 * values carry a static dtype and shape (numbers, or symbols such as `"B"`/`"T"` for inference
 * graphs that serve any batch). ALBERT is declared once on it (core/model/albert.ts); the
 * inference graph, the ONNX export and the training graph (core/autodiff) are all built on it.
 * Browser compatible: no Deno APIs.
 *
 * Model of the IR (what the autodiff / training code can rely on):
 * - `Value`: `{ id, name, dtype, shape, producer, outputIndex, tags }`. `producer` is the `Node` that
 *   computes it, or `null` for graph inputs, parameters and constants. Values are created only by
 *   the graph (`input`, `param`, `constant`, `node`), never by hand.
 * - `Node`: `{ id, op, inputs: (Value | null)[], outputs: Value[], attrs, name }` — `op` is an ONNX op
 *   type; `attrs` are typed (`A.int(1)`, `A.floats([..])`, …) so the writer never guesses int vs float;
 *   a `null` input is an omitted optional ONNX input.
 * - Tags (ggml-style flags): `input` (fed data), `param` (trainable, named with its UER state-dict key;
 *   `param(name)` returns the SAME value when called again with that name — that is how the shared
 *   ALBERT layer shares weights), `output`, `loss`. Constants are initializers (`g.constants`).
 * - `g.nodes` is always in topological order (a node may only use values that exist), so a forward
 *   walk is `for (const n of g.nodes)` and a backward walk iterates it in reverse; `consumers()` gives
 *   the reverse edges; `ancestors(targets)` the nodes a set of values depends on.
 * - Adding to an existing graph is just calling more builder methods (e.g. losses, gradients, AdamW
 *   update nodes after `albert()`); `output(v, name)` renames `v` so the output is named at its
 *   producing node (no Identity nodes, DESIGN.md §3). An input cannot also be an output.
 * - Every node's output dtypes/shapes come from `SHAPE_RULES` (shapes.ts), or from `shapes` given
 *   explicitly for ops whose result depends on runtime values.
 * - `toOnnx()` (onnx_proto.ts) writes the nodes needed by the outputs, the inputs they use (params
 *   after data inputs) and the constants as initializers; params can be baked in as initializers.
 * - Fused ops (`fused()`): a run of ONNX nodes added by one call that autodiff treats as ONE op named
 *   `op` (its gradient is the row `GRAD_RULES[op]`, checked by finite differences like any other). The
 *   nodes themselves are ordinary ONNX nodes, so writing and running the graph needs nothing special;
 *   a fused op lists its `inputs` (the only outside values its nodes may read, besides constants) and
 *   its `outputs` (the first is the differentiated one; the others are by-products for its rule or
 *   for statistics, e.g. the softmax probabilities of a cross-entropy).
 * - Checkpoints (`checkpoint()`): a run of nodes computing one value (a transformer layer application)
 *   that autodiff may recompute in the backward instead of keeping its intermediates
 *   (`GradOptions.recompute`, `replay()` re-emits the nodes); without that option they are plain nodes.
 * @module
 */
import { type DType, numel, type Tensor } from "../tensor.ts";
import { type Dim, dimEqual, DTYPE_TO_ONNX, inferShapes, type ValueInfo } from "./shapes.ts";

/** A typed ONNX attribute. */
export type Attr =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "ints"; value: number[] }
  | { type: "floats"; value: number[] }
  | { type: "string"; value: string }
  | { type: "tensor"; value: Tensor };

/** Attribute constructors: `A.int(1)`, `A.float(1e-6)`, `A.ints([0, 2, 1, 3])`, … */
export const A = {
  int: (value: number): Attr => ({ type: "int", value }),
  float: (value: number): Attr => ({ type: "float", value }),
  ints: (value: number[]): Attr => ({ type: "ints", value }),
  floats: (value: number[]): Attr => ({ type: "floats", value }),
  string: (value: string): Attr => ({ type: "string", value }),
  tensor: (value: Tensor): Attr => ({ type: "tensor", value }),
};

/** A value's role flags. */
export type Tag = "input" | "param" | "output" | "loss";

/** An edge of the graph: a tensor with a static dtype and shape. */
export class Value {
  /** Role flags (input/param/output/loss). */
  readonly tags: Set<Tag> = new Set();
  constructor(
    /** Unique id within its graph (creation order). */
    readonly id: number,
    /** ONNX name; unique within the graph (use `Graph.rename`/`output` to change). */
    public name: string,
    readonly dtype: DType,
    readonly shape: readonly Dim[],
    /** The node computing this value; null for inputs, params and constants. */
    readonly producer: Node | null,
    /** Which output of `producer` this is. */
    readonly outputIndex: number,
  ) {}
  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }
}

/** One ONNX op application. */
export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: (Value | null)[];
  readonly outputs: Value[];
  readonly attrs: Record<string, Attr>;
  /** ONNX node name (unique). */
  readonly name: string;
  /** Operator set domain (`"com.microsoft"` for onnxruntime's contrib ops); absent = the default ONNX domain. */
  readonly domain?: string;
}

/** A fused op: nodes `[start, end)` of `Graph.nodes`, differentiated as one op (see `Graph.fused`). */
export interface Fusion {
  readonly op: string;
  readonly inputs: (Value | null)[];
  readonly outputs: Value[];
  readonly attrs: Record<string, Attr>;
  readonly start: number;
  readonly end: number;
}

/**
 * A checkpointed run of nodes (see `Graph.checkpoint`): nodes `[start, end)` of `Graph.nodes` compute
 * `output` from `inputs` (every value they read that they do not compute, constants excepted).
 */
export interface Checkpoint {
  readonly start: number;
  readonly end: number;
  readonly inputs: Value[];
  readonly output: Value;
}

/** Options of `Graph.node`. */
export interface NodeOptions {
  /** Number of outputs (default: as many as the shape rule returns, normally 1). */
  outputs?: number;
  /** Explicit output infos; skips the shape rule (for runtime-dependent shapes). */
  shapes?: ValueInfo[];
  /** Names of the outputs (default `<op>_<id>`). */
  names?: string[];
  /** Operator set domain of the op (default: ONNX's); contrib ops give their output shapes in `shapes`. */
  domain?: string;
}

type Operand = Value | number;

/**
 * The graph builder.
 *
 * @example
 * ```ts
 * const g = new Graph();
 * const x = g.input("x", "F32", ["B", 4]);
 * const w = g.param("linear.weight", [3, 4]);
 * g.output(g.matmul(x, g.transpose(w, [1, 0])), "y"); // y: [B, 3]
 * const bytes = toOnnx(g).model;
 * ```
 */
export class Graph {
  /** Nodes in topological (creation) order. */
  readonly nodes: Node[] = [];
  /** Every value, by creation order. */
  readonly values: Value[] = [];
  /** Constant tensors (written as initializers), by value. */
  readonly constants: Map<Value, Tensor> = new Map();
  /** Fused ops, in node order (`fused()`). */
  readonly fusions: Fusion[] = [];
  /** Checkpointed runs of nodes, in node order (`checkpoint()`). */
  readonly checkpoints: Checkpoint[] = [];
  #inCheckpoint = false;
  #names = new Set<string>();
  #params = new Map<string, Value>();
  #scalarCache = new Map<string, Value>();

  #newValue(name: string, dtype: DType, shape: readonly Dim[], producer: Node | null, index: number): Value {
    if (this.#names.has(name)) throw new RangeError(`Cannot add value "${name}": the name is already used`);
    this.#names.add(name);
    const v = new Value(this.values.length, name, dtype, [...shape], producer, index);
    this.values.push(v);
    return v;
  }

  /** A fed data input (tag `input`). */
  input(name: string, dtype: DType, shape: Dim[]): Value {
    const v = this.#newValue(name, dtype, shape, null, 0);
    v.tags.add("input");
    return v;
  }

  /**
   * A trainable parameter (tag `param`), named with its UER state-dict key. Asking again for the
   * same name returns the same value (weight sharing); the shape must then agree.
   */
  param(name: string, shape: Dim[], dtype: DType = "F32"): Value {
    const old = this.#params.get(name);
    if (old) {
      if (old.shape.length !== shape.length || old.shape.some((d, i) => !dimEqual(d, shape[i]))) {
        throw new RangeError(`Cannot reuse param "${name}": shape [${old.shape}] differs from [${shape}]`);
      }
      return old;
    }
    const v = this.#newValue(name, dtype, shape, null, 0);
    v.tags.add("param");
    this.#params.set(name, v);
    return v;
  }

  /** A constant tensor (an ONNX initializer). */
  constant(t: Tensor, name?: string): Value {
    const v = this.#newValue(name ?? `const_${this.values.length}`, t.dtype, t.shape, null, 0);
    this.constants.set(v, t);
    return v;
  }

  /** A scalar constant (shape []), cached per dtype and value. */
  scalar(x: number, dtype: DType = "F32"): Value {
    const key = `${dtype}:${Object.is(x, -0) ? "-0" : x}`;
    let v = this.#scalarCache.get(key);
    if (!v) {
      v = this.constant(makeTensor(dtype, [], [x]));
      this.#scalarCache.set(key, v);
    }
    return v;
  }

  /** A 1-D int64 constant (shapes, axes, starts…). */
  ints(values: number[]): Value {
    const key = `ints:${values.join(",")}`;
    let v = this.#scalarCache.get(key);
    if (!v) {
      v = this.constant(makeTensor("I64", [values.length], values));
      this.#scalarCache.set(key, v);
    }
    return v;
  }

  /** The constant tensor behind a value, if it is one. */
  constantOf(v: Value | null): Tensor | undefined {
    return v ? this.constants.get(v) : undefined;
  }

  /** Adds one node; returns its outputs. Shapes come from SHAPE_RULES unless given. */
  node(op: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, opts: NodeOptions = {}): Value[] {
    const infos = opts.shapes ??
      inferShapes(
        op,
        inputs.map((v) => (v ? { dtype: v.dtype, shape: [...v.shape] } : null)),
        attrs,
        inputs.map((v) => this.constantOf(v)),
      );
    const n = opts.outputs ?? infos.length;
    const id = this.nodes.length;
    const outputs: Value[] = [];
    const node: Node = {
      id,
      op,
      inputs: [...inputs],
      outputs,
      attrs,
      name: `${op}_${id}`,
      ...(opts.domain ? { domain: opts.domain } : {}),
    };
    for (let i = 0; i < n; i++) {
      const info = infos[i];
      if (!info) throw new RangeError(`Cannot add ${op}: no shape for output ${i}`);
      const name = opts.names?.[i] ?? `${op}_${id}${n > 1 ? `_${i}` : ""}`;
      outputs.push(this.#newValue(name, info.dtype, info.shape, node, i));
    }
    this.nodes.push(node);
    return outputs;
  }

  /** Adds a one-output node. */
  op(op: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, opts: NodeOptions = {}): Value {
    return this.node(op, inputs, attrs, opts)[0];
  }

  /**
   * Adds the nodes `body` builds as one fused op named `op` for autodiff: `GRAD_RULES[op]` maps the
   * gradient of the first returned output to the gradients of `inputs`. The body may read only
   * `inputs`, constants and its own values (checked), so the rule accounts for every path through it.
   *
   * @example
   * ```ts
   * const [nll, probs] = g.fused("SoftmaxCrossEntropy", [logits, labels], {}, () => {
   *   const p = g.op("Softmax", [logits], { axis: A.int(-1) });
   *   return [nllOf(p, labels), p];
   * });
   * ```
   */
  fused(op: string, inputs: (Value | null)[], attrs: Record<string, Attr>, body: () => Value[]): Value[] {
    const start = this.nodes.length;
    const firstValue = this.values.length;
    const outputs = body();
    const end = this.nodes.length;
    const allowed = new Set(inputs.filter((v): v is Value => v !== null));
    for (let i = start; i < end; i++) {
      for (const v of this.nodes[i].inputs) {
        if (!v || allowed.has(v) || this.constants.has(v) || v.id >= firstValue) continue;
        throw new RangeError(
          `Cannot fuse ${op}: node "${this.nodes[i].name}" reads "${v.name}", which is not an input of the fused op`,
        );
      }
    }
    for (const o of outputs) {
      if (!o.producer || o.id < firstValue) {
        throw new RangeError(`Cannot fuse ${op}: output "${o.name}" is not built by it`);
      }
    }
    this.fusions.push({ op, inputs: [...inputs], outputs, attrs, start, end });
    return outputs;
  }

  /**
   * Records the nodes `body` adds as a checkpoint: a run computing one value that autodiff, asked to
   * (`GradOptions.recompute`), re-emits from the run's inputs when the backward reaches it, so the run's
   * intermediates need not live until then (torch.utils.checkpoint's idea). The nodes are ordinary
   * nodes; fused ops inside are allowed, checkpoints inside a checkpoint are not.
   *
   * @example
   * ```ts
   * const h1 = g.checkpoint(() => transformerLayer(g, cfg, "encoder.transformer", h0, bias, norm));
   * ```
   */
  checkpoint(body: () => Value): Value {
    if (this.#inCheckpoint) throw new RangeError("Cannot nest checkpoints: the body of one adds another");
    const start = this.nodes.length;
    this.#inCheckpoint = true;
    let output: Value;
    try {
      output = body();
    } finally {
      this.#inCheckpoint = false;
    }
    const end = this.nodes.length;
    if (!output.producer || output.producer.id < start) {
      throw new RangeError(`Cannot checkpoint: output "${output.name}" is not computed by the checkpoint's nodes`);
    }
    const inputs = new Set<Value>();
    for (let i = start; i < end; i++) {
      for (const v of this.nodes[i].inputs) {
        if (v && !this.constants.has(v) && (!v.producer || v.producer.id < start)) inputs.add(v);
      }
    }
    this.checkpoints.push({ start, end, inputs: [...inputs], output });
    return output;
  }

  /**
   * Appends a copy of nodes `[start, end)` (and of the fused ops among them), reading `map.get(v) ?? v`
   * for each input `v`; returns the map from each original value of the run to its copy (with `map`'s
   * entries). Autodiff's recomputation (`GradOptions.recompute`) is its caller.
   */
  replay(start: number, end: number, map: ReadonlyMap<Value, Value>): Map<Value, Value> {
    const copy = new Map(map);
    const at = this.nodes.length;
    for (let i = start; i < end; i++) {
      const n = this.nodes[i];
      const outs = this.node(n.op, n.inputs.map((v) => v && (copy.get(v) ?? v)), n.attrs, {
        shapes: n.outputs.map((o) => ({ dtype: o.dtype, shape: [...o.shape] })),
        ...(n.domain ? { domain: n.domain } : {}),
      });
      n.outputs.forEach((o, j) => copy.set(o, outs[j]));
    }
    const mapped = (v: Value | null) => v && (copy.get(v) ?? v);
    for (const f of this.fusions.filter((f) => f.start >= start && f.end <= end)) {
      this.fusions.push({
        ...f,
        inputs: f.inputs.map(mapped),
        outputs: f.outputs.map((o) => copy.get(o)!),
        start: f.start - start + at,
        end: f.end - start + at,
      });
    }
    return copy;
  }

  /** Renames a value (names must stay unique). */
  rename(v: Value, name: string): Value {
    if (v.name === name) return v;
    if (this.#names.has(name)) throw new RangeError(`Cannot rename "${v.name}" to "${name}": the name is already used`);
    this.#names.delete(v.name);
    this.#names.add(name);
    v.name = name;
    return v;
  }

  /** Tags `v` as a graph output named `name` (renamed at its producing node). */
  output(v: Value, name?: string): Value {
    if (!v.producer) {
      throw new RangeError(`Cannot make "${v.name}" an output: it is an input or constant (that would need Identity)`);
    }
    if (name !== undefined && v.tags.has("output") && v.name !== name) {
      throw new RangeError(`Cannot output "${v.name}" again as "${name}": one value has one output name`);
    }
    if (name !== undefined) this.rename(v, name);
    v.tags.add("output");
    return v;
  }

  /** Tags `v` as a loss (and an output). */
  loss(v: Value, name?: string): Value {
    this.output(v, name);
    v.tags.add("loss");
    return v;
  }

  /** Values tagged `input`, in creation order. */
  inputs(): Value[] {
    return this.values.filter((v) => v.tags.has("input"));
  }

  /** Values tagged `param`, in creation order. */
  params(): Value[] {
    return this.values.filter((v) => v.tags.has("param"));
  }

  /** Values tagged `output`, in creation order. */
  outputs(): Value[] {
    return this.values.filter((v) => v.tags.has("output"));
  }

  /** Values tagged `loss`. */
  losses(): Value[] {
    return this.values.filter((v) => v.tags.has("loss"));
  }

  /** A param by UER name, if declared. */
  paramByName(name: string): Value | undefined {
    return this.#params.get(name);
  }

  /** Reverse edges: for each value, the nodes that read it. */
  consumers(): Map<Value, Node[]> {
    const m = new Map<Value, Node[]>();
    for (const n of this.nodes) {
      for (const v of n.inputs) {
        if (!v) continue;
        const list = m.get(v);
        if (list) list.push(n);
        else m.set(v, [n]);
      }
    }
    return m;
  }

  /** The nodes `targets` depend on, in topological order. */
  ancestors(targets: Value[]): Node[] {
    const need = new Set<Node>();
    const stack = targets.map((v) => v.producer).filter((n): n is Node => n !== null);
    while (stack.length) {
      const n = stack.pop()!;
      if (need.has(n)) continue;
      need.add(n);
      for (const v of n.inputs) if (v?.producer && !need.has(v.producer)) stack.push(v.producer);
    }
    return this.nodes.filter((n) => need.has(n));
  }

  /** The sorted set of op types used by the nodes `targets` depend on (all nodes by default). */
  opTypes(targets?: Value[]): string[] {
    const nodes = targets ? this.ancestors(targets) : this.nodes;
    return [...new Set(nodes.map((n) => n.op))].sort();
  }

  // ---- op helpers (one ONNX op each; numbers become scalar constants of the other operand's dtype) ----

  #operands(a: Operand, b: Operand): [Value, Value] {
    if (typeof a === "number" && typeof b === "number") throw new TypeError("Cannot apply a binary op to two numbers");
    const va = typeof a === "number" ? this.scalar(a, (b as Value).dtype) : a;
    const vb = typeof b === "number" ? this.scalar(b, va.dtype) : b;
    return [va, vb];
  }
  /** a + b */
  add(a: Operand, b: Operand): Value {
    return this.op("Add", this.#operands(a, b));
  }
  /** a - b */
  sub(a: Operand, b: Operand): Value {
    return this.op("Sub", this.#operands(a, b));
  }
  /** a * b */
  mul(a: Operand, b: Operand): Value {
    return this.op("Mul", this.#operands(a, b));
  }
  /** a / b */
  div(a: Operand, b: Operand): Value {
    return this.op("Div", this.#operands(a, b));
  }
  /** a ^ b */
  pow(a: Operand, b: Operand): Value {
    return this.op("Pow", this.#operands(a, b));
  }
  /** max(a, b) elementwise */
  max(a: Operand, b: Operand): Value {
    return this.op("Max", this.#operands(a, b));
  }
  /** a == b (BOOL) */
  equal(a: Operand, b: Operand): Value {
    return this.op("Equal", this.#operands(a, b));
  }
  /** a > b (BOOL) */
  greater(a: Operand, b: Operand): Value {
    return this.op("Greater", this.#operands(a, b));
  }
  /** a < b (BOOL) */
  less(a: Operand, b: Operand): Value {
    return this.op("Less", this.#operands(a, b));
  }
  /** cond ? a : b */
  where(cond: Value, a: Operand, b: Operand): Value {
    const [va, vb] = this.#operands(a, b);
    return this.op("Where", [cond, va, vb]);
  }
  /** Batched matrix product (numpy matmul). */
  matmul(a: Value, b: Value): Value {
    return this.op("MatMul", [a, b]);
  }
  /** -x */
  neg(x: Value): Value {
    return this.op("Neg", [x]);
  }
  /** sqrt(x) */
  sqrt(x: Value): Value {
    return this.op("Sqrt", [x]);
  }
  /** exp(x) */
  exp(x: Value): Value {
    return this.op("Exp", [x]);
  }
  /** log(x) */
  log(x: Value): Value {
    return this.op("Log", [x]);
  }
  /** erf(x) */
  erf(x: Value): Value {
    return this.op("Erf", [x]);
  }
  /** tanh(x) */
  tanh(x: Value): Value {
    return this.op("Tanh", [x]);
  }
  /** max(x, 0) */
  relu(x: Value): Value {
    return this.op("Relu", [x]);
  }
  /** 1 / (1 + exp(-x)) */
  sigmoid(x: Value): Value {
    return this.op("Sigmoid", [x]);
  }
  /** 1 / x */
  reciprocal(x: Value): Value {
    return this.op("Reciprocal", [x]);
  }
  /** Converts the dtype. */
  cast(x: Value, to: DType): Value {
    return this.op("Cast", [x], { to: A.int(DTYPE_TO_ONNX[to]) });
  }
  /** Permutes dims. */
  transpose(x: Value, perm: number[]): Value {
    return this.op("Transpose", [x], { perm: A.ints(perm) });
  }
  /** Reshape to a constant shape (0 copies the input dim, -1 is inferred). */
  reshape(x: Value, shape: number[]): Value {
    return this.op("Reshape", [x, this.ints(shape)]);
  }
  /** Inserts size-1 dims at `axes`. */
  unsqueeze(x: Value, axes: number[]): Value {
    return this.op("Unsqueeze", [x, this.ints(axes)]);
  }
  /** Removes size-1 dims at `axes`. */
  squeeze(x: Value, axes: number[]): Value {
    return this.op("Squeeze", [x, this.ints(axes)]);
  }
  /** Sum over `axes` (opset 17: axes are an input). */
  reduceSum(x: Value, axes: number[], keepdims = true): Value {
    return this.op("ReduceSum", [x, this.ints(axes)], { keepdims: A.int(keepdims ? 1 : 0) });
  }
  /** Mean over `axes` (opset 17: axes are an attribute). */
  reduceMean(x: Value, axes: number[], keepdims = true): Value {
    return this.op("ReduceMean", [x], { axes: A.ints(axes), keepdims: A.int(keepdims ? 1 : 0) });
  }
  /** Max over `axes` (opset 17: axes are an attribute). */
  reduceMax(x: Value, axes: number[], keepdims = true): Value {
    return this.op("ReduceMax", [x], { axes: A.ints(axes), keepdims: A.int(keepdims ? 1 : 0) });
  }
  /** Rows of `x` along `axis` picked by integer `indices`. */
  gather(x: Value, indices: Value, axis = 0): Value {
    return this.op("Gather", [x, indices], { axis: A.int(axis) });
  }
  /** Static slice along `axes`. */
  slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
    return this.op("Slice", [x, this.ints(starts), this.ints(ends), this.ints(axes)]);
  }
  /** Concatenation along `axis`. */
  concat(xs: Value[], axis: number): Value {
    return this.op("Concat", xs, { axis: A.int(axis) });
  }
}

/** A tensor of `dtype` filled from numbers (I64 via BigInt). */
export function makeTensor(dtype: DType, shape: number[], values: number[]): Tensor {
  const n = numel(shape);
  if (values.length !== n) throw new RangeError(`Shape [${shape}] needs ${n} values, got ${values.length}`);
  switch (dtype) {
    case "F32":
      return { dtype, shape, data: Float32Array.from(values) };
    case "F64":
      return { dtype, shape, data: Float64Array.from(values) };
    case "I64":
      return { dtype, shape, data: BigInt64Array.from(values, (v) => BigInt(v)) };
    case "I32":
      return { dtype, shape, data: Int32Array.from(values) };
    case "BOOL":
    case "U8":
      return { dtype, shape, data: Uint8Array.from(values) };
    default:
      throw new TypeError(`Cannot make a ${dtype} constant`);
  }
}
