/**
 * The ONNX (default domain) op types onnxruntime-web's native WebGPU execution provider registers
 * kernels for at opset 17, read from onnxruntime's
 * `onnxruntime/core/providers/webgpu/webgpu_execution_provider.cc` (the kernel table
 * `onnxruntime-web/webgpu` 1.30 runs: its bundle loads `ort-wasm-simd-threaded.asyncify.wasm`, the
 * native EP, not JSEP). Tests check every op the model emits is in this list (DESIGN.md §3).
 * Browser compatible: no Deno APIs.
 * @module
 */

/** Op types with a WebGPU kernel whose version range covers opset 17. */
export const WEBGPU_OPS: ReadonlySet<string> = new Set([
  "Abs",
  "Neg",
  "Floor",
  "Ceil",
  "Reciprocal",
  "Sqrt",
  "Exp",
  "Erf",
  "Sigmoid",
  "HardSigmoid",
  "Log",
  "Sin",
  "Cos",
  "Tan",
  "Asin",
  "Acos",
  "Atan",
  "Sinh",
  "Cosh",
  "Asinh",
  "Acosh",
  "Atanh",
  "Tanh",
  "Not",
  "Cast",
  "Clip",
  "Elu",
  "Relu",
  "LeakyRelu",
  "ThresholdedRelu",
  "ReduceMax",
  "ReduceMean",
  "ReduceMin",
  "ReduceProd",
  "ReduceSum",
  "ReduceL1",
  "ReduceL2",
  "ReduceLogSum",
  "ReduceSumSquare",
  "ReduceLogSumExp",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Equal",
  "Greater",
  "GreaterOrEqual",
  "Less",
  "LessOrEqual",
  "Shape",
  "Reshape",
  "Squeeze",
  "Unsqueeze",
  "Where",
  "Transpose",
  "DepthToSpace",
  "Conv",
  "ConvTranspose",
  "MaxPool",
  "AveragePool",
  "GlobalAveragePool",
  "GlobalMaxPool",
  "Gemm",
  "MatMul",
  "ArgMax",
  "ArgMin",
  "Softmax",
  "Concat",
  "Split",
  "Expand",
  "Resize",
  "Gather",
  "GatherElements",
  "Slice",
  "Flatten",
  "Tile",
  "LayerNormalization",
  "InstanceNormalization",
  "Range",
  "Einsum",
  "Pad",
  "If",
  "BatchNormalization",
  "CumSum",
  "DequantizeLinear",
]);

/**
 * com.microsoft (contrib) op types the WebGPU provider registers (onnxruntime
 * `onnxruntime/contrib_ops/webgpu/webgpu_contrib_kernels.cc`), those inference graphs may emit. Checked
 * on onnxruntime-web 1.30 (llvmpipe): `MultiHeadAttention`'s `key_padding_mask` input is refused
 * ("not implemented for webgpu", so graphs pass an attention bias), `Attention` with a `mask_index`
 * runs on the CPU (with an attention bias on the GPU), and `SkipLayerNormalization` fails when its
 * optional mean / inv_std_var outputs are used.
 */
export const WEBGPU_CONTRIB_OPS: ReadonlySet<string> = new Set([
  "Attention",
  "BiasAdd",
  "BiasGelu",
  "FastGelu",
  "Gelu",
  "MatMulNBits",
  "MultiHeadAttention",
  "QuickGelu",
  "SkipLayerNormalization",
]);

/** Ops DESIGN.md §3 bans even where a kernel exists (CPU fallbacks or GPU→CPU copies). */
export const BANNED_OPS: ReadonlySet<string> = new Set([
  "LogSoftmax",
  "OneHot",
  "SoftmaxCrossEntropyLoss",
  "Identity",
]);
