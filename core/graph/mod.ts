/**
 * The graph IR's public surface: the builder (values, ONNX-op nodes, tags), shape rules, the ONNX
 * writer and the WebGPU op list. Browser compatible: no Deno APIs.
 * @module
 */
export { A, type Attr, Graph, makeTensor, type Node, type NodeOptions, type Tag, Value } from "./builder.ts";
export {
  broadcastShapes,
  constInts,
  type Dim,
  dimProduct,
  DTYPE_TO_ONNX,
  inferShapes,
  SHAPE_RULES,
  type ShapeRule,
  type ValueInfo,
} from "./shapes.ts";
export { type ExternalPlacement, IR_VERSION, type OnnxModel, OPSET, toOnnx, type ToOnnxOptions } from "./onnx_proto.ts";
export { BANNED_OPS, WEBGPU_CONTRIB_OPS, WEBGPU_OPS } from "./webgpu_ops.ts";
