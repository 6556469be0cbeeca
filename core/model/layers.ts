/**
 * Building blocks of ALBERT written with primitive ONNX ops only, so the autodiff table needs no
 * special rules for them: linear (`nn.Linear`, weight `[out, in]`), both LayerNorm semantics,
 * the activations (relu, erf GELU, tanh GELU) and softmax. Mirrors UER-py `uer/layers/layer_norm.py`,
 * `uer/utils/act_fun.py` and HF `nn.LayerNorm`. Browser compatible: no Deno APIs.
 * @module
 */
import type { HiddenAct } from "../config.ts";
import { A, type Graph, type Value } from "../graph/builder.ts";

/** LayerNorm flavour: UER-py's (training, UER checkpoints) or HF's `nn.LayerNorm`. */
export type Semantics = "uer" | "hf";

/** Normalisation options shared by every LayerNorm of a model. */
export interface NormOptions {
  semantics: Semantics;
  /** HF `layer_norm_eps` (default 1e-12); unused for UER semantics. */
  eps?: number;
  /**
   * Inference graphs only: emit ONNX `LayerNormalization` (HF semantics; UER's has no ONNX op) and
   * `Softmax` instead of primitives, so onnxruntime runs one kernel where it would run nine (CPU
   * does not fuse the primitive form). Softmax has a gradient rule (training graphs use it, with UER
   * semantics); LayerNormalization has none: HF-semantics training must leave this off.
   */
  fusedOps?: boolean;
}

/** Options of the model's layers: the normalisation, and in training graphs UER-py's dropout. */
export interface ModelOptions extends NormOptions {
  /**
   * Training graphs: applied at each of UER-py's dropout sites in model order (embedding output,
   * then per layer application the attention probabilities, the attention output and the feed-forward
   * output; core/train/dropout.ts). Absent in inference and evaluation graphs (`model.eval()`).
   */
  dropout?: (x: Value) => Value;
}

/** `x @ W^T + b` with `W = <prefix>.weight [out, in]`, `b = <prefix>.bias [out]`. */
export function linear(g: Graph, prefix: string, x: Value, inSize: number, outSize: number): Value {
  const w = g.param(`${prefix}.weight`, [outSize, inSize]);
  const b = g.param(`${prefix}.bias`, [outSize]);
  return g.add(g.matmul(x, g.transpose(w, [1, 0])), b);
}

/**
 * LayerNorm over the last axis, params `<prefix>.gamma/.beta` (UER names for both semantics).
 * UER: `gamma * (x - mean) / (std_unbiased + 1e-6) + beta`; HF: `(x - mean) / sqrt(var + eps) * w + b`.
 */
export function layerNorm(g: Graph, prefix: string, x: Value, size: number, norm: NormOptions): Value {
  const gamma = g.param(`${prefix}.gamma`, [size]);
  const beta = g.param(`${prefix}.beta`, [size]);
  if (norm.fusedOps && norm.semantics === "hf") {
    const attrs = { axis: A.int(-1), epsilon: A.float(norm.eps ?? 1e-12) };
    return g.op("LayerNormalization", [x, gamma, beta], attrs, { shapes: [{ dtype: x.dtype, shape: [...x.shape] }] });
  }
  if (norm.semantics === "uer") {
    // One fused op for autodiff (rules.ts `UerLayerNorm`: its backward keeps only d and std), the
    // same primitive nodes in the ONNX graph.
    const [y] = g.fused("UerLayerNorm", [x, gamma, beta], {}, () => {
      const d = g.sub(x, g.reduceMean(x, [-1]));
      // NOTE: UER LayerNorm: torch.std is unbiased (n-1), eps=1e-6 added to std, outside the sqrt.
      const std = g.sqrt(g.div(g.reduceSum(g.mul(d, d), [-1]), size - 1));
      return [g.add(g.div(g.mul(gamma, d), g.add(std, 1e-6)), beta), d, std];
    });
    return y;
  }
  const d = g.sub(x, g.reduceMean(x, [-1]));
  const sq = g.mul(d, d);
  const denom = g.sqrt(g.add(g.reduceMean(sq, [-1]), norm.eps ?? 1e-12));
  return g.add(g.mul(g.div(d, denom), gamma), beta);
}

/** The activation `hidden_act` names: relu, gelu (exact, erf) or gelu_fast (tanh approximation). */
export function activation(g: Graph, act: HiddenAct, x: Value): Value {
  switch (act) {
    case "relu":
      return g.relu(x);
    case "gelu": // x * 0.5 * (1 + erf(x / sqrt(2)))
      return g.mul(g.mul(x, 0.5), g.add(g.erf(g.div(x, Math.SQRT2)), 1));
    case "gelu_fast": { // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
      const x3 = g.mul(g.mul(x, x), x);
      const inner = g.mul(g.add(x, g.mul(x3, 0.044715)), Math.sqrt(2 / Math.PI));
      return g.mul(g.mul(x, 0.5), g.add(g.tanh(inner), 1));
    }
  }
}

/**
 * Softmax over the last axis from max/exp/sum/div (no Softmax op, so no gradient rule; DESIGN.md §3),
 * or the ONNX `Softmax` op when `fused` (inference graphs only).
 */
export function softmax(g: Graph, x: Value, fused = false): Value {
  if (fused) return g.op("Softmax", [x], { axis: A.int(-1) }, { shapes: [{ dtype: x.dtype, shape: [...x.shape] }] });
  const e = g.exp(g.sub(x, g.reduceMax(x, [-1])));
  return g.div(e, g.reduceSum(e, [-1]));
}
