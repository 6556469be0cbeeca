/**
 * Autodiff on the graph IR: the gradient-rule table (`rules.ts`) and the walk that applies it
 * (`grad.ts`), and the training losses as fused ops with rules of their own (`losses.ts`).
 * Browser compatible: no Deno APIs.
 * @module
 */
export { grad, type GradOptions, gradUnits, reduceToShape, softmaxShifts, vjp } from "./grad.ts";
export { GRAD_RULES, type GradContext, type GradRule, scatterAddRows, type ScatterMode } from "./rules.ts";
export {
  argmaxHits,
  type CrossEntropy,
  type LinearCrossEntropy,
  linearSoftmaxCrossEntropy,
  softmaxCrossEntropy,
} from "./losses.ts";
