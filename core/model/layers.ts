/**
 * Building blocks of ALBERT written with primitive ONNX ops only, so the autodiff table needs no
 * special rules for them: linear (`nn.Linear`, weight `[out, in]`), both LayerNorm semantics,
 * the activations (relu, erf GELU, tanh GELU) and softmax. Mirrors UER-py `uer/layers/layer_norm.py`,
 * `uer/utils/act_fun.py` and HF `nn.LayerNorm`. Inference graphs can ask for other lowerings of the
 * same blocks (`NormOptions`): ONNX's fused ops, onnxruntime's com.microsoft kernels, int8 weights
 * (core/model/quantize.ts computes the derived weights those read). Browser compatible: no Deno APIs.
 * @module
 */
import type { HiddenAct } from "../config.ts";
import { A, type Graph, type Value } from "../graph/builder.ts";
import type { Dim } from "../graph/shapes.ts";
import { derivedName, nbitsBlockSize } from "./quantize.ts";

/** LayerNorm flavour: UER-py's (training, UER checkpoints) or HF's `nn.LayerNorm`. */
export type Semantics = "uer" | "hf";

/**
 * int8 weights for every linear (per output row, symmetric; core/model/quantize.ts):
 * - `matmul-integer`: ONNX `DynamicQuantizeLinear` + `MatMulInteger` (activations quantized per tensor
 *   at run time; what transformers.js' q8 files use; onnxruntime's CPU fuses it into one int8 GEMM);
 * - `matmul-nbits`: com.microsoft `MatMulNBits` with 8 bits (the quantized op onnxruntime's WebGPU
 *   provider has; activations quantized per 32-wide block inside the kernel, `accuracy_level` 4).
 */
export type Quantize = "matmul-integer" | "matmul-nbits";

/** onnxruntime's operator domain of its contrib kernels. */
export const MS_DOMAIN = "com.microsoft";

/** Options shared by every building block of a model (named for the LayerNorm choice they started with). */
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
  /**
   * Inference graphs only (implies `fusedOps`): onnxruntime's fused kernels, run by its CPU, wasm and
   * WebGPU providers — com.microsoft `MultiHeadAttention` (bias and attention bias inside),
   * `SkipLayerNormalization` (residual + bias + HF LayerNorm), `BiasGelu`/`FastGelu`, `Gemm` for 2-D
   * linears, and UER's LayerNorm through `LayerNormalization`'s InvStdDev output (see `layerNorm`).
   */
  contribOps?: boolean;
  /** Inference graphs only: int8 weights for every linear (see `Quantize`). */
  quantize?: Quantize;
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

/** `x @ W^T + b` with `W = <prefix>.weight [out, in]`, `b = <prefix>.bias [out]`, lowered per `opts`. */
export function linear(
  g: Graph,
  prefix: string,
  x: Value,
  inSize: number,
  outSize: number,
  opts?: NormOptions,
): Value {
  return weightMatmul(g, prefix, x, inSize, outSize, opts, g.param(`${prefix}.bias`, [outSize]));
}

/**
 * `x @ W^T` (`W = <prefix>.weight [out, in]`), plus `bias` when given (inside the op where it has a
 * bias input). fp32: MatMul with the transposed weight (onnxruntime folds the Transpose of a baked
 * weight), or `Gemm` for a 2-D `x` with `contribOps`; int8: see `Quantize` (derived params
 * `<prefix>.weight.<kind>`, computed by `deriveParams`). [..., in] → [..., out].
 */
export function weightMatmul(
  g: Graph,
  prefix: string,
  x: Value,
  inSize: number,
  outSize: number,
  opts?: NormOptions,
  bias?: Value,
): Value {
  const shape: Dim[] = [...x.shape.slice(0, -1), outSize];
  const w = `${prefix}.weight`;
  if (opts?.quantize === "matmul-nbits") {
    const block = nbitsBlockSize(inSize), blocks = inSize / block;
    const q = g.param(derivedName(w, "nbits8"), [outSize, blocks, block], "U8"); // [out, in/block, block]
    const scale = g.param(derivedName(w, "nbits8_scale"), [outSize * blocks]);
    const attrs = {
      K: A.int(inSize),
      N: A.int(outSize),
      bits: A.int(8),
      block_size: A.int(block),
      accuracy_level: A.int(4),
    };
    return g.op("MatMulNBits", [x, q, scale, null, null, bias ?? null], attrs, {
      shapes: [{ dtype: "F32", shape }],
      domain: MS_DOMAIN,
    });
  }
  if (opts?.quantize === "matmul-integer") {
    const [xq, xScale, xZero] = g.node("DynamicQuantizeLinear", [x]); // uint8, per tensor
    const q = g.param(derivedName(w, "int8"), [inSize, outSize], "I8"); // [in, out], symmetric per output row
    const zero = g.param(derivedName(w, "int8_zero"), [outSize], "I8");
    const scale = g.param(derivedName(w, "int8_scale"), [outSize]);
    const acc = g.op("MatMulInteger", [xq, q, xZero, zero]); // int32 [..., out]
    const y = g.mul(g.cast(acc, "F32"), g.mul(xScale, scale)); // onnxruntime fuses this chain (+ bias)
    return bias ? g.add(y, bias) : y;
  }
  const weight = g.param(w, [outSize, inSize]);
  if (opts?.contribOps && x.rank === 2 && bias) {
    return g.op("Gemm", [x, weight, bias], { transB: A.int(1) });
  }
  const y = g.matmul(x, g.transpose(weight, [1, 0]));
  return bias ? g.add(y, bias) : y;
}

/**
 * LayerNorm over the last axis, params `<prefix>.gamma/.beta` (UER names for both semantics).
 * UER: `gamma * (x - mean) / (std_unbiased + 1e-6) + beta`; HF: `(x - mean) / sqrt(var + eps) * w + b`.
 * With `contribOps`, UER's form is computed from ONNX `LayerNormalization` too: with eps ≈ 0 it gives
 * `y = gamma * (x - mean) / std_biased` and `inv = 1 / std_biased`, and since
 * `std_unbiased = c * std_biased` (c = sqrt(n / (n - 1))),
 * `(x - mean) / (std_unbiased + 1e-6) = (x - mean) / std_biased / (c + 1e-6 * inv)`: exact, with the
 * per-row correction on [..., 1] only. (eps 1e-30 rather than 0 keeps a constant row finite: it gives
 * `inv` = 1e15 and `y` = 0, hence `beta`, as UER-py does.)
 */
export function layerNorm(g: Graph, prefix: string, x: Value, size: number, norm: NormOptions): Value {
  const gamma = g.param(`${prefix}.gamma`, [size]);
  const beta = g.param(`${prefix}.beta`, [size]);
  if ((norm.fusedOps || norm.contribOps) && norm.semantics === "hf") {
    const attrs = { axis: A.int(-1), epsilon: A.float(norm.eps ?? 1e-12) };
    return g.op("LayerNormalization", [x, gamma, beta], attrs);
  }
  if (norm.contribOps) {
    // NOTE: UER LayerNorm: torch.std is unbiased (n-1), eps=1e-6 added to std, outside the sqrt.
    // [..., n] -> [..., 1, n]: LayerNormalization's input is then no Add, which onnxruntime would fuse
    // into SkipLayerNormalization, whose WebGPU kernel cannot give InvStdDev (the run fails).
    const x1 = g.unsqueeze(x, [x.rank - 1]);
    const [y, , inv] = g.node("LayerNormalization", [x1, gamma], { axis: A.int(-1), epsilon: A.float(1e-30) });
    const correction = g.reciprocal(g.add(g.mul(inv, 1e-6), Math.sqrt(size / (size - 1)))); // [..., 1, 1]
    return g.squeeze(g.add(g.mul(y, correction), beta), [x.rank - 1]);
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

/**
 * `layerNorm(dropout(y + bias) + skip)` where `y + bias` is a linear's output (`bias` = its bias param;
 * `dropout` only in training graphs): with `contribOps` and HF semantics one com.microsoft
 * `SkipLayerNormalization` (UER's LayerNorm needs the InvStdDev output, which the WebGPU kernel of
 * SkipLayerNormalization lacks: the sum is then added first and `layerNorm` does the rest).
 */
export function residualLayerNorm(
  g: Graph,
  prefix: string,
  y: Value,
  bias: Value,
  skip: Value,
  size: number,
  norm: ModelOptions,
): Value {
  if (norm.contribOps && norm.semantics === "hf" && !norm.dropout) {
    const gamma = g.param(`${prefix}.gamma`, [size]);
    const beta = g.param(`${prefix}.beta`, [size]);
    return g.op("SkipLayerNormalization", [y, skip, gamma, beta, bias], { epsilon: A.float(norm.eps ?? 1e-12) }, {
      shapes: [{ dtype: y.dtype, shape: [...y.shape] }],
      domain: MS_DOMAIN,
    });
  }
  const out = g.add(y, bias);
  return layerNorm(g, prefix, g.add(norm.dropout ? norm.dropout(out) : out, skip), size, norm);
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

/** The fused op (`Graph.fused`) of `attend`: inputs [logits, v], outputs [softmax(logits) · v, softmax(logits)]. */
export const SOFTMAX_MATMUL = "SoftmaxMatMul";

/**
 * Attention's `softmax(logits) · v` over the last axis ([...,S,T], [...,T,d] → [...,S,d]); `dropout`
 * (training) applies to the probabilities in between, as UER-py's `MultiHeadedAttention`. Without
 * dropout it is one fused op for autodiff (rules.ts `SoftmaxMatMul`: the softmax backward's row sums
 * Σ_T dP·P come from the output as Σ_d dO·O, a [...,S,d] product instead of a [...,S,T] one); the ONNX
 * nodes are the same either way.
 */
export function attend(g: Graph, logits: Value, v: Value, fused: boolean, dropout?: (p: Value) => Value): Value {
  if (dropout) return g.matmul(dropout(softmax(g, logits, fused)), v);
  return g.fused(SOFTMAX_MATMUL, [logits, v], {}, () => {
    const p = softmax(g, logits, fused);
    return [g.matmul(p, v), p];
  })[0];
}

/**
 * `act(x @ W^T + b)` (`linear` then `activation`); with `contribOps` the bias and the activation are one
 * kernel: com.microsoft `BiasGelu` (erf GELU) or `FastGelu` (tanh GELU), and for relu a 2-D `Gemm`
 * that onnxruntime fuses with the `Relu`.
 */
export function linearAct(
  g: Graph,
  prefix: string,
  act: HiddenAct,
  x: Value,
  inSize: number,
  outSize: number,
  opts: NormOptions,
): Value {
  if (opts.contribOps && act !== "relu") {
    const bias = g.param(`${prefix}.bias`, [outSize]);
    const y = weightMatmul(g, prefix, x, inSize, outSize, opts);
    return g.op(act === "gelu" ? "BiasGelu" : "FastGelu", [y, bias], {}, {
      shapes: [{ dtype: y.dtype, shape: [...y.shape] }],
      domain: MS_DOMAIN,
    });
  }
  return activation(g, act, linear(g, prefix, x, inSize, outSize, opts));
}
