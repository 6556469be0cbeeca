/**
 * The training losses as fused ops (`Graph.fused`): softmax cross-entropy over the last axis, and the
 * same preceded by a linear output layer (UER-py's MLM `target.mlm.linear_2` over the vocabulary).
 * The forward is written with ONNX ops the WebGPU EP runs (one `Softmax` kernel, no LogSoftmax /
 * SoftmaxCrossEntropyLoss / OneHot, DESIGN.md §3); the gradient of each is a row of the rule table
 * (`rules.ts`: `SoftmaxCrossEntropy`, `LinearSoftmaxCrossEntropy`) in closed form, `softmax − one-hot`
 * as torch's fused `log_softmax` + `nll_loss` backward, so the [N,C] arrays are never walked node by
 * node. Both rows are checked by central finite differences in rules_test.ts like every other rule.
 * Mirrors UER-py's `nn.NLLLoss()(nn.LogSoftmax(dim=-1)(logits), tgt)` (`uer/targets/mlm_target.py`,
 * `sp_target.py`, `finetune/run_classifier.py`), before the mean, which callers build from the
 * per-row losses. Browser compatible: no Deno APIs.
 * @module
 */
import { A, type Graph, type Value } from "../graph/builder.ts";

/** Per-row losses of a softmax cross-entropy and the softmax itself. */
export interface CrossEntropy {
  /** -log softmax(logits)[label] per row [N]. */
  nll: Value;
  /** softmax(logits) [N,C] (a by-product the rule reuses). */
  probs: Value;
}

/** `x[n, labels[n]]` for [N,C] `x` and int [N] labels → [N,1]. */
function atLabels(g: Graph, x: Value, labels: Value): Value {
  const n = x.shape[0];
  return g.op("GatherElements", [x, g.unsqueeze(labels, [1])], { axis: A.int(1) }, {
    shapes: [{ dtype: x.dtype, shape: [n, 1] }],
  });
}

/** softmax and -log softmax[label] of [N,C] logits (the shared forward of both fused ops). */
function nllOf(g: Graph, logits: Value, labels: Value): CrossEntropy {
  // One fused Softmax kernel (on the WebGPU list) instead of max/sub/exp/sum passes over [N,C].
  const probs = g.op("Softmax", [logits], { axis: A.int(-1) }, {
    shapes: [{ dtype: logits.dtype, shape: [...logits.shape] }],
  });
  // -log softmax[label]: float32 softmax is relatively exact, so this is within 1e-7 of log_softmax's
  // value unless softmax[label] underflows (a label logit ~87 below the max).
  const nll = g.squeeze(g.neg(g.log(atLabels(g, probs, labels))), [1]); // [N,1] -> [N]
  return { nll, probs };
}

/**
 * Softmax cross-entropy of [N,C] `logits` against int [N] `labels`, one fused op: per-row NLL and the
 * softmax. Its gradient (rules.ts `SoftmaxCrossEntropy`): `d logits = d nll · (softmax − one-hot)`.
 *
 * @example
 * ```ts
 * const { nll } = softmaxCrossEntropy(g, logits, labels); // [N]
 * const loss = g.reduceMean(nll, [0], false);              // NLLLoss mean
 * ```
 */
export function softmaxCrossEntropy(g: Graph, logits: Value, labels: Value): CrossEntropy {
  const [nll, probs] = g.fused("SoftmaxCrossEntropy", [logits, labels], {}, () => {
    const r = nllOf(g, logits, labels);
    return [r.nll, r.probs];
  });
  return { nll, probs };
}

/** `linearSoftmaxCrossEntropy`'s outputs. */
export interface LinearCrossEntropy extends CrossEntropy {
  /** x Wᵀ + b [K,V]. */
  logits: Value;
}

/**
 * A linear output layer (`nn.Linear`: `w` [V,E], `b` [V]) on `x` [K,E] followed by softmax
 * cross-entropy against int [K] `labels`, one fused op. The logits carry the bias inside their GEMM
 * (`[x, 1] [W | b]ᵀ`: onnxruntime's Gemm with C broadcasts C into the [K,V] output first, an extra
 * pass). Its gradient (rules.ts `LinearSoftmaxCrossEntropy`) comes from `G = softmax − one-hot` in two
 * GEMMs: `dW, db` from `[c·x, c]ᵀ G` and `dx = c · G W` (c = d nll), so the [K,V] arrays are written
 * twice per step (logits, softmax) and never rescaled.
 *
 * @example
 * ```ts
 * const w = g.param("target.mlm.linear_2.weight", [V, E]), b = g.param("target.mlm.linear_2.bias", [V]);
 * const { nll, logits } = linearSoftmaxCrossEntropy(g, transform, w, b, labels);
 * ```
 */
export function linearSoftmaxCrossEntropy(g: Graph, x: Value, w: Value, b: Value, labels: Value): LinearCrossEntropy {
  const k = x.shape[0] as number;
  const v = w.shape[0] as number;
  const [nll, logits, probs] = g.fused("LinearSoftmaxCrossEntropy", [x, w, b, labels], {}, () => {
    const ones = g.op("Expand", [g.scalar(1, x.dtype), g.ints([k, 1])]); // [K,1]
    const logits = g.op("Gemm", [g.concat([x, ones], 1), g.concat([w, g.unsqueeze(b, [1])], 1)], {
      transB: A.int(1),
    }, { shapes: [{ dtype: x.dtype, shape: [k, v] }] }); // [K,E+1] x [V,E+1]ᵀ
    const r = nllOf(g, logits, labels);
    return [r.nll, logits, r.probs];
  });
  return { nll, logits, probs };
}

/**
 * Arg-max hits per row (F32 0/1 [N]) without int64 ArgMax (DESIGN.md §3): the label's logit equals
 * the row max. A tie counts as a hit (torch's argmax picks the first of a tie; ties of float32 logits
 * are rare, hence "exact but ±1 on near-ties" in reference §3).
 */
export function argmaxHits(g: Graph, logits: Value, labels: Value): Value {
  return g.squeeze(g.cast(g.equal(atLabels(g, logits, labels), g.reduceMax(logits, [-1])), logits.dtype), [1]);
}
