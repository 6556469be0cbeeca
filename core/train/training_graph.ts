/**
 * The ALBERT training graphs: the model declaration (core/model/albert.ts) + UER-py's MLM and SOP
 * losses (`uer/targets/mlm_target.py`, `sp_target.py`) + gradients from the rule table
 * (core/autodiff) + UER's AdamW (adamw.ts). Shapes are static: `B` rows of `T` tokens and `K`
 * MLM slots. The MLM head runs only on the `K` gathered positions (UER selects `tgt_mlm > 0` rows;
 * here the positions are an input, unused slots have weight 0), so no [B·T, V] logits exist.
 *
 * Losses, exactly as UER-py: `loss_mlm` = NLL of log-softmax summed over the masked tokens of the
 * whole batch divided by their count (torch `NLLLoss` mean); `loss_sp` = mean over the real rows;
 * `loss = loss_mlm + loss_sp`. Correct counts are arg-max hits, computed without int64 as "the
 * label's logit equals the row max" (z = logit − max is exactly 0 only there). The backward walk
 * starts from closed-form softmax cross-entropy gradients: the SOP logits', and for the MLM output
 * layer those of its input and its weight/bias (`mlmOutputLayer`), so the [K,V] arrays are never
 * rescaled or walked node by node.
 *
 * Speed (bench/pretrain_bench.ts): the attention softmax is the fused `Softmax` op (it has a rule),
 * AdamW updates the small params as a few flat vectors (`adamwUpdateAll`), and the MLM logits carry
 * the bias inside their GEMM. Numbers stay those of UER-py within float32 summation order.
 *
 * Three graphs share names so the data-parallel issue can all-reduce between two halves:
 * - `grad`: batch + params (+ `grad_acc.<p>`) → stats + `grad.<p>` (seeded by input `loss_scale`);
 * - `update`: params + `adam_m.<p>`/`adam_v.<p>` + `grad.<p>` + lr → `updated.<p>`, `updated.adam_m.<p>`, …;
 * - `fused`: both in one graph (the common single-process case; with `accumulate`, adds the window's
 *   `grad_acc.<p>` and seeds by `loss_scale`).
 * Params and moments are graph inputs/outputs (never initializers); lr arrives as `neg_lr`,
 * `neg_lr_wd` (computed in double on the host, adamw.ts). Browser compatible: no Deno APIs.
 * @module
 */
import { softmaxShifts, vjp } from "../autodiff/grad.ts";
import type { ScatterMode } from "../autodiff/rules.ts";
import type { AlbertConfig } from "../config.ts";
import { A, Graph, makeTensor, type Value } from "../graph/builder.ts";
import { albert, mlmHead, sopHead } from "../model/albert.ts";
import { type AdamwEntry, adamwInputs, adamwUpdateAll } from "./adamw.ts";

/** Which of the three graphs to build. */
export type TrainingGraphKind = "fused" | "grad" | "update";

/** Options of `trainingGraph`. */
export interface TrainingGraphOptions {
  kind: TrainingGraphKind;
  /** Rows per batch (B). */
  batch: number;
  /** Tokens per row (T). */
  seq: number;
  /** MLM slots (K ≥ masked tokens of any batch fed). */
  maskedSlots: number;
  /** Gather-gradient flavour: "scatternd" on CPU, "matmul" (WebGPU-safe) elsewhere. Default "matmul". */
  scatter?: ScatterMode;
  /** Weight decay of the decayed group (UER: 0.01). */
  weightDecay?: number;
  /** grad/fused: add the accumulation window's `grad_acc.<p>` inputs and seed with `loss_scale`. */
  accumulate?: boolean;
}

/** Names of the statistics outputs (F32 scalars). */
export const STAT_OUTPUTS = ["loss", "loss_mlm", "loss_sp", "correct_mlm", "correct_sp"] as const;

/** Graph-side names for parameter `p`. */
export const names = {
  grad: (p: string): string => `grad.${p}`,
  gradAcc: (p: string): string => `grad_acc.${p}`,
  m: (p: string): string => `adam_m.${p}`,
  v: (p: string): string => `adam_v.${p}`,
  updated: (x: string): string => `updated.${x}`,
};

/** A built training graph and its parameter list (UER names, declaration order). */
export interface TrainingGraph {
  graph: Graph;
  params: { name: string; shape: number[] }[];
}

/** A default number of MLM slots for `B` rows of `T` tokens: UER masks max(1, round(0.15·len)) per row. */
export function defaultMaskedSlots(batch: number, seq: number): number {
  const perRow = Math.max(1, Math.round(seq * 0.15)) + 1;
  return Math.ceil((batch * perRow) / 8) * 8;
}

/**
 * Softmax cross-entropy over the last axis of [N,C] logits, with its gradient in closed form.
 * Returns the per-row NLL, the arg-max hits, and d(Σ_k c_k · nll_k)/d logits = c_k (softmax − one-hot)
 * for row coefficients `c` [N] — the seed the backward walk starts from (as torch's fused
 * log_softmax/NLL backward), instead of differentiating the loss expression node by node.
 */
function crossEntropy(g: Graph, logits: Value, labels: Value, c: Value, classes: number, scatter: ScatterMode) {
  const n = logits.shape[0] as number;
  const lab = g.unsqueeze(labels, [1]); // [N,1] I32
  const gather = (x: Value) =>
    g.op("GatherElements", [x, lab], { axis: A.int(1) }, { shapes: [{ dtype: "F32", shape: [n, 1] }] });
  // One fused Softmax kernel (on the WebGPU list) instead of max/sub/exp/sum passes over [K,V].
  const p = g.op("Softmax", [logits], { axis: A.int(-1) }, { shapes: [{ dtype: "F32", shape: [n, classes] }] });
  // nll = -log softmax[label]: float32 softmax is relatively exact, so this is within 1e-7 of
  // log_softmax's value unless softmax[label] underflows (a label logit ~87 below the max).
  const nll = g.squeeze(g.neg(g.log(gather(p))), [1]); // [N]
  // The arg-max hit, without int64 ArgMax: the label's logit equals the row max.
  const hit = g.squeeze(g.cast(g.equal(gather(logits), g.reduceMax(logits, [-1])), "F32"), [1]); // [N]
  const ck = g.unsqueeze(c, [1]); // [N,1]
  const pc = g.mul(p, ck); // c · softmax
  let dlogits: Value; // c (softmax - onehot)
  if (scatter === "scatternd") {
    // CPU: subtract c at the label in place of a [N,C] one-hot (ScatterElements has no WebGPU kernel).
    dlogits = g.op("ScatterElements", [pc, lab, g.neg(ck)], { axis: A.int(1), reduction: A.string("add") }, {
      shapes: [{ dtype: "F32", shape: [n, classes] }],
    });
  } else {
    // NOTE: one-hot as Equal(float labels, float iota) — no OneHot / int64 on WebGPU (DESIGN.md §3).
    const iota = g.constant(makeTensor("F32", [1, classes], Array.from({ length: classes }, (_, i) => i)));
    const onehot = g.cast(g.equal(g.cast(lab, "F32"), iota), "F32"); // [N,C]
    dlogits = g.sub(pc, g.mul(onehot, ck));
  }
  return { nll, hit, dlogits };
}

/**
 * The MLM output layer (`target.mlm.linear_2`) + softmax cross-entropy over the vocabulary, with
 * every gradient in closed form so the [K,V] arrays are written twice per step (logits, softmax)
 * and read by two GEMMs and the arg-max, never rescaled or copied. With `c` the row coefficients [K] and
 * `G = softmax − onehot`: `d logits = c·G`, so `dW = Gᵀ (c·t)`, `db = Gᵀ c`, `dt = c·(G W)`.
 * Both `dW` and `db` come from one GEMM `[c·t, c]ᵀ P` ([E+1,K] × [K,V]); on CPU the one-hot part is
 * subtracted from the small results (`−[c·t, c]` at the label columns, `−c·W[label]`) instead of
 * from the [K,V] softmax. Returns the per-row NLL and hits, `dt` to seed the backward walk with,
 * and the gradients of the layer's weight and bias. Same numbers as differentiating
 * `c · nll(t Wᵀ + b)` up to float32 summation order.
 */
function mlmOutputLayer(g: Graph, t: Value, labels: Value, c: Value, vocab: number, scatter: ScatterMode) {
  const [k, e] = t.shape as number[];
  const w = g.param("target.mlm.linear_2.weight", [vocab, e]); // [V,E]
  const b = g.param("target.mlm.linear_2.bias", [vocab]);
  // [t, 1] [W | b]ᵀ: the bias inside the GEMM (onnxruntime's Gemm with C first broadcasts C into the
  // [K,V] output, an extra pass over it).
  const ones = g.op("Expand", [g.scalar(1), g.ints([k, 1])]); // [K,1]
  const logits = g.op("Gemm", [g.concat([t, ones], 1), g.concat([w, g.unsqueeze(b, [1])], 1)], {
    transB: A.int(1),
  }, { shapes: [{ dtype: "F32", shape: [k, vocab] }] }); // [K,E+1] x [V,E+1]ᵀ
  const lab = g.unsqueeze(labels, [1]); // [K,1] I32
  const gather = (x: Value) =>
    g.op("GatherElements", [x, lab], { axis: A.int(1) }, { shapes: [{ dtype: "F32", shape: [k, 1] }] });
  const p = g.op("Softmax", [logits], { axis: A.int(-1) }, { shapes: [{ dtype: "F32", shape: [k, vocab] }] });
  const nll = g.squeeze(g.neg(g.log(gather(p))), [1]); // [K]
  const hit = g.squeeze(g.cast(g.equal(gather(logits), g.reduceMax(logits, [-1])), "F32"), [1]); // [K]
  const ck = g.unsqueeze(c, [1]); // [K,1]
  const aug = g.concat([g.mul(t, ck), ck], 1); // [K,E+1]
  const augT = g.transpose(aug, [1, 0]); // [E+1,K]
  let dWbT: Value, tw: Value; // [E+1,V] = [c·t, c]ᵀ G;  [K,E] = G W
  if (scatter === "scatternd") {
    // CPU: P stays untouched; the one-hot part is −[c·t, c] at each label column and −W[label].
    const idx = g.op("Expand", [g.transpose(lab, [1, 0]), g.ints([e + 1, k])]); // [E+1,K] label columns
    dWbT = g.op("ScatterElements", [g.matmul(augT, p), idx, g.neg(augT)], {
      axis: A.int(1),
      reduction: A.string("add"),
    }, { shapes: [{ dtype: "F32", shape: [e + 1, vocab] }] });
    tw = g.sub(g.matmul(p, w), g.gather(w, labels)); // [K,E]
  } else {
    // NOTE: one-hot as Equal(float labels, float iota) — no OneHot / int64 on WebGPU (DESIGN.md §3).
    const iota = g.constant(makeTensor("F32", [1, vocab], Array.from({ length: vocab }, (_, i) => i)));
    const gm = g.sub(p, g.cast(g.equal(g.cast(lab, "F32"), iota), "F32")); // [K,V]
    dWbT = g.matmul(augT, gm);
    tw = g.matmul(gm, w);
  }
  const dW = g.transpose(g.slice(dWbT, [0], [e], [0]), [1, 0]); // [E,V] -> [V,E]
  const db = g.reshape(g.slice(dWbT, [e], [e + 1], [0]), [vocab]); // [1,V] -> [V]
  return { nll, hit, dt: g.mul(tw, ck), w, b, dW, db };
}

/**
 * Builds one of the training graphs for `cfg` (UER semantics: UER LayerNorm, `src`/`seg` inputs).
 *
 * Data inputs: `src`, `seg` I32 [B,T]; `mlm_positions` I32 [K] (flat b·T+t); `mlm_labels` I32 [K];
 * `mlm_weights` F32 [K] (1 = a masked token, 0 = unused slot); `sop_labels` I32 [B];
 * `sop_weights` F32 [B] (1 = real row, 0 = padding row).
 *
 * @example
 * ```ts
 * const { graph } = trainingGraph(cfg, { kind: "fused", batch: 16, seq: 128, maskedSlots: 320 });
 * const bytes = toOnnx(graph).model;
 * ```
 */
export function trainingGraph(cfg: AlbertConfig, opts: TrainingGraphOptions): TrainingGraph {
  const g = new Graph();
  const B = opts.batch, T = opts.seq, K = opts.maskedSlots;
  const V = cfg.vocab_size;
  if (!V) throw new RangeError("Cannot build the training graph: config has no vocab_size");
  // fusedOps: the attention softmax as one Softmax op (it has a rule); UER LayerNorm stays primitive.
  const norm = { semantics: "uer" as const, fusedOps: true };
  const wd = opts.weightDecay ?? 0.01;

  if (opts.kind === "update") {
    // Declare the params by building the forward once on a scratch graph (same names and shapes).
    const shapes = paramShapes(cfg);
    const lr = adamwInputs(g);
    const entries = shapes.map(({ name, shape }) => ({
      name,
      p: g.param(name, shape),
      grad: g.input(names.grad(name), "F32", shape),
      m: g.input(names.m(name), "F32", shape),
      v: g.input(names.v(name), "F32", shape),
    }));
    adamwUpdateAll(g, entries, lr, wd).forEach((u, i) => {
      const name = entries[i].name;
      g.output(u.p, names.updated(name));
      g.output(u.m, names.updated(names.m(name)));
      g.output(u.v, names.updated(names.v(name)));
    });
    return { graph: g, params: shapes };
  }

  const a = albert(g, cfg, { ...norm, idsDtype: "I32", batch: B, seq: T });
  const positions = g.input("mlm_positions", "I32", [K]);
  const mlmLabels = g.input("mlm_labels", "I32", [K]);
  const mlmWeights = g.input("mlm_weights", "F32", [K]);
  const sopLabels = g.input("sop_labels", "I32", [B]);
  const sopWeights = g.input("sop_weights", "F32", [B]);
  // d loss / d loss: 1, or 1/accumulation_steps (UER divides the loss before backward()).
  const scale = opts.accumulate || opts.kind === "grad" ? g.input("loss_scale", "F32", []) : g.scalar(1);

  const scatterMode = opts.scatter ?? "matmul";
  const stop = softmaxShifts(g);
  const h = a.encoderOutput; // [B,T,H]
  const hMasked = g.gather(g.reshape(h, [-1, cfg.hidden_size]), positions); // [B*T,H] -> [K,H]
  // The head's hidden transform; its output layer is rebuilt by mlmOutputLayer (same params).
  const mlmT = mlmHead(g, cfg, hMasked, norm).transform; // [K,E]
  // NOTE: UER NLLLoss mean: over ALL masked tokens of the batch (not per row).
  // max(n, 1) as Clip (Max has no WebGPU kernel); UER-py skips batches without masked tokens.
  const nMasked = g.op("Clip", [g.reduceSum(mlmWeights, [0], false), g.scalar(1), null], {}, {
    shapes: [{ dtype: "F32", shape: [] }],
  });
  const mlmCe = mlmOutputLayer(g, mlmT, mlmLabels, g.mul(mlmWeights, g.div(scale, nMasked)), V, scatterMode);
  const lossMlm = g.div(g.reduceSum(g.mul(mlmCe.nll, mlmWeights), [0], false), nMasked);
  const sop = sopHead(g, cfg, h); // logits [B,2]
  const nRows = g.reduceSum(sopWeights, [0], false);
  const sopCe = crossEntropy(g, sop.logits, sopLabels, g.mul(sopWeights, g.div(scale, nRows)), 2, scatterMode);
  const lossSp = g.div(g.reduceSum(g.mul(sopCe.nll, sopWeights), [0], false), nRows);
  const loss = g.add(lossMlm, lossSp);
  g.output(lossMlm, "loss_mlm");
  g.output(lossSp, "loss_sp");
  g.output(g.reduceSum(g.mul(mlmCe.hit, mlmWeights), [0], false), "correct_mlm");
  g.output(g.reduceSum(g.mul(sopCe.hit, sopWeights), [0], false), "correct_sp");

  const params = g.params();
  // Seeds: the closed-form gradients of the MLM output layer's input and params, and of the SOP logits.
  const seeds = new Map([[mlmT, mlmCe.dt], [mlmCe.w, mlmCe.dW], [mlmCe.b, mlmCe.db], [sop.logits, sopCe.dlogits]]);
  const grads = vjp(g, seeds, params, { scatter: scatterMode, stop });
  g.loss(loss, "loss");
  const lr = opts.kind === "fused" ? adamwInputs(g) : undefined;
  const entries: AdamwEntry[] = [];
  for (const p of params) {
    const shape = p.shape as number[];
    let gr = grads.get(p)!;
    if (opts.accumulate) gr = g.add(g.input(names.gradAcc(p.name), "F32", shape), gr);
    if (!lr) {
      g.output(gr, names.grad(p.name));
      continue;
    }
    const m = g.input(names.m(p.name), "F32", shape), v = g.input(names.v(p.name), "F32", shape);
    entries.push({ name: p.name, p, grad: gr, m, v });
  }
  if (lr) {
    adamwUpdateAll(g, entries, lr, wd).forEach((u, i) => {
      const name = entries[i].name;
      g.output(u.p, names.updated(name));
      g.output(u.m, names.updated(names.m(name)));
      g.output(u.v, names.updated(names.v(name)));
    });
  }
  return { graph: g, params: params.map((p) => ({ name: p.name, shape: p.shape as number[] })) };
}

/** The trainable parameters of `cfg` (UER names and shapes, declaration order). */
export function paramShapes(cfg: AlbertConfig): { name: string; shape: number[] }[] {
  const g = new Graph();
  const a = albert(g, cfg, { semantics: "uer", batch: 1, seq: 2 });
  mlmHead(g, cfg, a.encoderOutput, { semantics: "uer" });
  sopHead(g, cfg, a.encoderOutput);
  return g.params().map((p) => ({ name: p.name, shape: p.shape as number[] }));
}
