/**
 * Every gradient rule against central finite differences, run on onnxruntime-node CPU: float64
 * where its CPU kernels take doubles (tolerance 1e-6 relative), float32 otherwise with a per-rule
 * tolerance. Each case is `loss = Σ op(x) ⊙ R` for a random constant R, so every output element's
 * gradient is checked. ReLU/Abs/Max inputs keep away from their kinks (ggml test-backend-ops).
 */
import assert from "node:assert/strict";
import { A, type Attr, Graph, makeTensor, type Value } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { WEBGPU_OPS } from "../graph/webgpu_ops.ts";
import { attend, layerNorm, softmax } from "../model/layers.ts";
import { createSession } from "../runtime/mod.ts";
import type { Tensor } from "../tensor.ts";
import { grad } from "./grad.ts";
import { linearSoftmaxCrossEntropy, softmaxCrossEntropy } from "./losses.ts";
import { GRAD_RULES, scatterAddRows, type ScatterMode } from "./rules.ts";

type Gen = "normal" | "pos" | "away0";
interface Case {
  name: string;
  /** Input shapes and value kinds (each input is differentiated). */
  inputs: [number[], Gen][];
  build: (g: Graph, xs: Value[]) => Value;
  dtype?: "F32" | "F64";
  tol?: number;
  scatter?: ScatterMode;
}

let seed = 12345;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}
function sample(gen: Gen): number {
  const n = (rand() + rand() + rand() - 1.5) * 1.6;
  if (gen === "pos") return 0.3 + rand() * 1.5;
  if (gen === "away0") return (n >= 0 ? 1 : -1) * (0.2 + Math.abs(n));
  return n;
}
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Gemm (no shape rule in core/graph: the model never emits it directly). */
const gemm = (g: Graph, ins: Value[], attrs: Record<string, Attr>, shape: number[]) =>
  g.op("Gemm", ins, attrs, { shapes: [{ dtype: ins[0].dtype, shape }] });
const ids = (g: Graph, shape: number[], v: number[]) => g.constant(makeTensor("I64", shape, v));
const labels = (g: Graph, v: number[]) => g.constant(makeTensor("I32", [v.length], v));

const CASES: Case[] = [
  { name: "Add broadcast", inputs: [[[2, 3], "normal"], [[3], "normal"]], build: (g, [x, y]) => g.add(x, y) },
  { name: "Sub broadcast", inputs: [[[2, 3], "normal"], [[2, 1], "normal"]], build: (g, [x, y]) => g.sub(x, y) },
  { name: "Mul broadcast", inputs: [[[2, 3], "normal"], [[1, 3], "normal"]], build: (g, [x, y]) => g.mul(x, y) },
  { name: "Div broadcast", inputs: [[[2, 3], "normal"], [[3], "pos"]], build: (g, [x, y]) => g.div(x, y) },
  { name: "Neg", inputs: [[[4], "normal"]], build: (g, [x]) => g.neg(x) },
  { name: "Pow const 3", inputs: [[[5], "normal"]], build: (g, [x]) => g.pow(x, 3) },
  { name: "Pow const 2", inputs: [[[5], "normal"]], build: (g, [x]) => g.pow(x, 2) },
  { name: "Pow tensor", inputs: [[[4], "pos"], [[4], "normal"]], build: (g, [x, y]) => g.pow(x, y) },
  { name: "Max", inputs: [[[6], "normal"], [[6], "normal"]], build: (g, [x, y]) => g.max(x, y) },
  { name: "Min", inputs: [[[6], "normal"], [[6], "normal"]], build: (g, [x, y]) => g.op("Min", [x, y]) },
  { name: "Abs", inputs: [[[6], "away0"]], build: (g, [x]) => g.op("Abs", [x]) },
  { name: "Sqrt", inputs: [[[5], "pos"]], build: (g, [x]) => g.sqrt(x) },
  { name: "Exp", inputs: [[[5], "normal"]], build: (g, [x]) => g.exp(x) },
  { name: "Log", inputs: [[[5], "pos"]], build: (g, [x]) => g.log(x) },
  { name: "Reciprocal", inputs: [[[5], "pos"]], build: (g, [x]) => g.reciprocal(x) },
  { name: "Tanh", inputs: [[[5], "normal"]], build: (g, [x]) => g.tanh(x) },
  { name: "Sigmoid", inputs: [[[5], "normal"]], build: (g, [x]) => g.sigmoid(x) },
  { name: "Relu (no kinks)", inputs: [[[8], "away0"]], build: (g, [x]) => g.relu(x) },
  { name: "Erf", inputs: [[[6], "normal"]], build: (g, [x]) => g.erf(x), dtype: "F32", tol: 2e-3 },
  {
    name: "Where",
    inputs: [[[2, 3], "normal"], [[3], "normal"]],
    build: (g, [x, y]) => g.where(g.constant(makeTensor("BOOL", [2, 3], [1, 0, 1, 0, 0, 1])), x, y),
  },
  {
    name: "Cast F32->F64->F32",
    inputs: [[[4], "normal"]],
    build: (g, [x]) => g.cast(g.mul(g.cast(x, "F64"), 2), "F32"),
    dtype: "F32",
    tol: 2e-3,
  },
  { name: "MatMul 2-D", inputs: [[[3, 4], "normal"], [[4, 2], "normal"]], build: (g, [a, b]) => g.matmul(a, b) },
  {
    name: "MatMul batched x shared weight",
    inputs: [[[2, 3, 4], "normal"], [[4, 2], "normal"]],
    build: (g, [a, b]) => g.matmul(a, b),
  },
  {
    name: "MatMul batched x batched (broadcast)",
    inputs: [[[2, 1, 3, 4], "normal"], [[2, 4, 2], "normal"]],
    build: (g, [a, b]) => g.matmul(a, b),
  },
  {
    name: "MatMul x·Wᵀ (nn.Linear, batched x)",
    inputs: [[[2, 3, 4], "normal"], [[5, 4], "normal"]],
    build: (g, [x, w]) => g.matmul(x, g.transpose(w, [1, 0])),
  },
  {
    name: "MatMul x·Wᵀ (nn.Linear, 2-D x)",
    inputs: [[[3, 4], "normal"], [[5, 4], "normal"]],
    build: (g, [x, w]) => g.matmul(x, g.transpose(w, [1, 0])),
  },
  {
    name: "Gemm transB + bias",
    inputs: [[[3, 4], "normal"], [[2, 4], "normal"], [[2], "normal"]],
    build: (g, [a, b, c]) => gemm(g, [a, b, c], { transB: A.int(1) }, [3, 2]),
  },
  {
    name: "Gemm transA alpha beta",
    inputs: [[[4, 3], "normal"], [[4, 2], "normal"], [[3, 1], "normal"]],
    build: (g, [a, b, c]) => gemm(g, [a, b, c], { transA: A.int(1), alpha: A.float(0.5), beta: A.float(2) }, [3, 2]),
  },
  {
    name: "Gemm transA transB",
    inputs: [[[4, 3], "normal"], [[2, 4], "normal"]],
    build: (g, [a, b]) => gemm(g, [a, b], { transA: A.int(1), transB: A.int(1) }, [3, 2]),
  },
  { name: "Transpose", inputs: [[[2, 3, 4], "normal"]], build: (g, [x]) => g.transpose(x, [2, 0, 1]) },
  { name: "Reshape", inputs: [[[2, 6], "normal"]], build: (g, [x]) => g.reshape(x, [3, -1]) },
  {
    name: "Unsqueeze/Squeeze",
    inputs: [[[2, 3], "normal"]],
    build: (g, [x]) => g.squeeze(g.unsqueeze(x, [0, 2]), [0]),
  },
  {
    name: "Flatten",
    inputs: [[[2, 3, 2], "normal"]],
    build: (g, [x]) => g.op("Flatten", [x], { axis: A.int(1) }, { shapes: [{ dtype: x.dtype, shape: [2, 6] }] }),
  },
  {
    name: "Expand",
    inputs: [[[3, 1], "normal"]],
    build: (g, [x]) => g.op("Expand", [x, g.ints([2, 3, 4])]),
  },
  { name: "ReduceSum keepdims", inputs: [[[2, 3, 4], "normal"]], build: (g, [x]) => g.reduceSum(x, [1], true) },
  { name: "ReduceSum all", inputs: [[[2, 3], "normal"]], build: (g, [x]) => g.reduceSum(x, [0, 1], false) },
  { name: "ReduceMean", inputs: [[[2, 3, 4], "normal"]], build: (g, [x]) => g.reduceMean(x, [-1], false) },
  { name: "ReduceMax", inputs: [[[3, 5], "normal"]], build: (g, [x]) => g.reduceMax(x, [-1], true) },
  {
    name: "Gather rows (repeated ids, one-hot MatMul)",
    inputs: [[[5, 3], "normal"]],
    build: (g, [t]) => g.gather(t, ids(g, [2, 3], [4, 0, 4, 1, 4, 0])),
  },
  {
    name: "Gather rows (repeated ids, ScatterElements add)",
    inputs: [[[600, 2], "normal"]],
    build: (g, [t]) => g.gather(t, ids(g, [4], [599, 3, 599, 0])),
    scatter: "scatter",
  },
  {
    name: "Gather rows (large table, one-hot MatMul)",
    inputs: [[[600, 2], "normal"]],
    build: (g, [t]) => g.gather(t, ids(g, [4], [599, 3, 599, 0])),
  },
  {
    name: "Gather scalar index on axis 1",
    inputs: [[[2, 4, 3], "normal"]],
    build: (g, [h]) => g.gather(h, g.scalar(0, "I64"), 1),
  },
  { name: "Slice", inputs: [[[6, 3], "normal"]], build: (g, [x]) => g.slice(x, [1], [4], [0]) },
  { name: "Concat", inputs: [[[2, 3], "normal"], [[2, 2], "normal"]], build: (g, [x, y]) => g.concat([x, y], 1) },
  // Fused ops (losses.ts): their rows are closed forms, checked here like any other.
  {
    name: "SoftmaxCrossEntropy (fused, one-hot mode)",
    inputs: [[[4, 5], "normal"]],
    build: (g, [x]) => softmaxCrossEntropy(g, x, labels(g, [0, 4, 2, 2])).nll,
  },
  {
    name: "SoftmaxCrossEntropy (fused, ScatterElements mode)",
    inputs: [[[4, 5], "normal"]],
    build: (g, [x]) => softmaxCrossEntropy(g, x, labels(g, [0, 4, 2, 2])).nll,
    scatter: "scatter",
  },
  {
    name: "SoftmaxCrossEntropy behind other ops (gradient flows on to the inputs)",
    inputs: [[[3, 4], "normal"], [[4, 2], "normal"]],
    build: (g, [x, w]) => softmaxCrossEntropy(g, g.tanh(g.matmul(x, w)), labels(g, [1, 0, 1])).nll,
  },
  {
    name: "LinearSoftmaxCrossEntropy (fused, one-hot mode)",
    inputs: [[[3, 4], "normal"], [[6, 4], "normal"], [[6], "normal"]],
    build: (g, [x, w, b]) => linearSoftmaxCrossEntropy(g, x, w, b, labels(g, [5, 0, 5])).nll,
  },
  {
    name: "LinearSoftmaxCrossEntropy (fused, ScatterElements mode)",
    inputs: [[[3, 4], "normal"], [[6, 4], "normal"], [[6], "normal"]],
    build: (g, [x, w, b]) => linearSoftmaxCrossEntropy(g, x, w, b, labels(g, [5, 0, 5])).nll,
    scatter: "scatter",
  },
  // Composites built from primitives (no rules of their own) and fan-out.
  { name: "Softmax op, last axis", inputs: [[[2, 3, 5], "normal"]], build: (g, [x]) => softmax(g, x, true) },
  {
    name: "Softmax op, axis 1",
    inputs: [[[2, 4, 3], "normal"]],
    build: (g, [x]) => g.op("Softmax", [x], { axis: A.int(1) }, { shapes: [{ dtype: x.dtype, shape: [2, 4, 3] }] }),
  },
  { name: "softmax (layers.ts)", inputs: [[[2, 5], "normal"]], build: (g, [x]) => softmax(g, x) },
  {
    name: "SoftmaxMatMul (layers.ts attend: softmax op · v, row sums from the output)",
    inputs: [[[2, 2, 3, 4], "normal"], [[2, 2, 4, 2], "normal"]],
    build: (g, [s, v]) => attend(g, s, v, true),
  },
  {
    name: "SoftmaxMatMul (layers.ts attend: softmax from primitives · v)",
    inputs: [[[3, 4, 5], "normal"], [[3, 5, 3], "normal"]],
    build: (g, [s, v]) => attend(g, s, v, false),
  },
  {
    name: "UER LayerNorm (layers.ts), gamma/beta as params",
    inputs: [[[3, 6], "normal"]],
    build: (g, [x]) => layerNorm(g, "ln", x, 6, { semantics: "uer" }),
    dtype: "F32",
    tol: 3e-3,
  },
  {
    name: "shared weight applied twice (fan-out)",
    inputs: [[[2, 3], "normal"], [[3, 3], "normal"]],
    build: (g, [x, w]) => g.tanh(g.matmul(g.tanh(g.matmul(x, w)), w)),
  },
];

interface Built {
  run: (xs: Tensor[]) => Promise<{ loss: number; grads: Tensor[] }>;
  inputs: Value[];
  ops: string[];
}

async function build(c: Case): Promise<Built> {
  const dtype = c.dtype ?? "F64";
  const g = new Graph();
  const xs = c.inputs.map(([shape], i) => g.input(`x${i}`, dtype, shape));
  const y = c.build(g, xs);
  const r = g.constant(
    makeTensor(
      y.dtype,
      y.shape as number[],
      Array.from({ length: numel(y.shape as number[]) }, () => sample("normal")),
    ),
  );
  const loss = g.loss(g.reduceSum(g.mul(y, r), [...y.shape.keys()], false), "loss");
  // params declared inside (LayerNorm) are differentiated too, fed as extra inputs
  const wrt = [...xs, ...g.params()];
  const before = g.nodes.length;
  const grads = grad(g, loss, wrt, { scatter: c.scatter });
  wrt.forEach((v, i) => g.output(grads.get(v)!, `grad${i}`));
  const ops = [...new Set(g.nodes.slice(before).map((n) => n.op))];
  const s = await createSession(toOnnx(g).model, { device: "cpu", threads: 1 });
  return {
    inputs: wrt,
    ops,
    run: async (vals) => {
      const feeds: Record<string, Tensor> = {};
      wrt.forEach((v, i) => (feeds[v.name] = vals[i]));
      const out = await s.run(feeds);
      return { loss: Number(out.loss.data[0]), grads: wrt.map((_, i) => out[`grad${i}`]) };
    },
  };
}

for (const c of CASES) {
  Deno.test(`GRAD_RULES: ${c.name} matches central finite differences`, async () => {
    const dtype = c.dtype ?? "F64";
    const b = await build(c);
    const gens = [...c.inputs.map(([, gen]) => gen), ...b.inputs.slice(c.inputs.length).map(() => "normal" as Gen)];
    const vals: Tensor[] = b.inputs.map((v, i) => {
      const shape = v.shape as number[];
      const data = Array.from({ length: numel(shape) }, () => sample(gens[i]));
      return { dtype, shape, data: dtype === "F64" ? Float64Array.from(data) : Float32Array.from(data) };
    });
    const base = await b.run(vals);
    const eps = dtype === "F64" ? 1e-6 : 1e-2;
    const tol = c.tol ?? 1e-6;
    let checked = 0;
    for (let i = 0; i < vals.length; i++) {
      const data = vals[i].data as Float64Array;
      const an = base.grads[i].data as Float64Array;
      assert.deepEqual(base.grads[i].shape, vals[i].shape, `grad ${i} shape`);
      // big tables: check the touched rows and a few others
      const idx = data.length <= 64 ? [...data.keys()] : [0, 1, 6, 7, 1198, 1199, 100];
      for (const j of idx) {
        const x0 = data[j];
        data[j] = x0 + eps;
        const lp = (await b.run(vals)).loss;
        data[j] = x0 - eps;
        const lm = (await b.run(vals)).loss;
        data[j] = x0;
        const fd = (lp - lm) / (2 * eps);
        const scale = Math.max(1, Math.abs(fd));
        assert.ok(
          Math.abs(fd - an[j]) <= tol * scale,
          `${c.name}: d/d${b.inputs[i].name}[${j}] analytic ${an[j]} vs finite difference ${fd}`,
        );
        checked++;
      }
    }
    assert.ok(checked > 0);
  });
}

Deno.test("GRAD_RULES: gradient nodes use only WebGPU ops (one-hot MatMul mode)", async () => {
  for (const c of CASES) {
    if (c.scatter === "scatter") continue;
    const b = await build({ ...c, dtype: "F32" });
    for (const op of b.ops) assert.ok(WEBGPU_OPS.has(op), `${c.name}: ${op} is not on the WebGPU EP`);
  }
});

Deno.test("scatterAddRows (CPU scatter) adds repeated ids in order, the same every run on 2 threads", async () => {
  // The shape of ALBERT-base's word-embedding gradient at batch 64 x 128 (N ids, R = emb_size): there
  // onnxruntime's ScatterND add split the ids over its threads and lost updates to rows hit by both.
  const N = 8192, R = 128, V = 3000;
  const g = new Graph();
  const ids = g.input("ids", "I32", [N]);
  const rows = g.input("rows", "F32", [N, R]);
  g.output(scatterAddRows(g, rows, ids, V, "scatter"), "table");
  const session = await createSession(toOnnx(g).model, { device: "cpu", threads: 2 });
  const idData = Int32Array.from({ length: N }, (_, i) => (rand() < 0.3 ? 101 + (i % 3) : Math.floor(rand() * V)));
  const rowData = Float32Array.from({ length: N * R }, () => sample("normal"));
  const want = new Float32Array(V * R); // float32 sums in the order of the ids
  for (let i = 0; i < N; i++) {
    for (let c = 0; c < R; c++) want[idData[i] * R + c] = Math.fround(want[idData[i] * R + c] + rowData[i * R + c]);
  }
  const feeds: Record<string, Tensor> = {
    ids: { dtype: "I32", shape: [N], data: idData },
    rows: { dtype: "F32", shape: [N, R], data: rowData },
  };
  try {
    for (let run = 0; run < 5; run++) assert.deepEqual((await session.run(feeds)).table.data, want, `run ${run}`);
  } finally {
    await session.release();
  }
});

Deno.test("grad() names the op, the node and rules.ts when a rule is missing", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [3]);
  const y = g.op("Softplus", [x], {}, { shapes: [{ dtype: "F32", shape: [3] }] });
  const loss = g.reduceSum(y, [0], false);
  assert.equal(GRAD_RULES.Softplus, undefined);
  assert.throws(() => grad(g, loss, [x]), /node "Softplus_0" \(op Softplus\).*\n.*core\/autodiff\/rules\.ts/);
});

Deno.test("Graph.fused() refuses a body that reads a value it was not given", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [2, 3]);
  const y = g.input("y", "F32", [2, 3]);
  assert.throws(() => g.fused("Bad", [x], {}, () => [g.add(x, y)]), /Cannot fuse Bad: node "Add_0" reads "y"/);
});

Deno.test("grad() walks a fused op as one node: its rule, not its inner nodes", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [2, 3]);
  const { nll } = softmaxCrossEntropy(g, x, labels(g, [0, 2]));
  const before = g.nodes.length;
  grad(g, g.reduceSum(nll, [0], false), [x]);
  const ops = g.nodes.slice(before).map((n) => n.op);
  assert.ok(!ops.includes("Log") && !ops.includes("Softmax"), `inner nodes were differentiated: ${ops}`);
  assert.ok(ops.includes("Equal"), "the rule's one-hot is there");
});

Deno.test("grad() visits only nodes between the params and the loss", () => {
  const g = new Graph();
  const x = g.input("x", "F32", [3]);
  const w = g.param("w", [3]);
  const side = g.op("Softplus", [x], {}, { shapes: [{ dtype: "F32", shape: [3] }] }); // no rule, not on a param path
  const loss = g.reduceSum(g.mul(g.add(x, side), w), [0], false);
  const unused = g.param("unused", [2]);
  const grads = grad(g, loss, [w, unused]); // would throw if it walked Softplus
  assert.equal(grads.get(unused)!.producer!.op, "Expand"); // zero gradient, dense
  assert.equal(grads.get(w)!.producer!.op, "Mul");
  assert.ok(side.producer);
});
