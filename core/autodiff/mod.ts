/**
 * Autodiff on the graph IR: the gradient-rule table (`rules.ts`) and the walk that applies it
 * (`grad.ts`). Browser compatible: no Deno APIs.
 * @module
 */
export { grad, type GradOptions, reduceToShape, softmaxShifts, vjp } from "./grad.ts";
export { GRAD_RULES, type GradContext, type GradRule, scatterAddRows, type ScatterMode } from "./rules.ts";
