/**
 * UER-py's AdamW (`uer/utils/optimizers.py`, the old HF BERT one, used with `correct_bias=False`)
 * as graph nodes, one dense update per parameter:
 * `m = 0.9 m + 0.1 g; v = 0.999 v + 0.001 g²; p -= lr · m / (sqrt(v) + 1e-6)` (no bias correction,
 * eps outside the sqrt), then decoupled weight decay on the UPDATED value `p -= lr · wd · p`, skipped
 * for names containing bias/gamma/beta/layer_norm (UER `init_optimizer`'s `no_decay`). Every
 * element moves every step, even embedding rows with a zero gradient (torch's dense AdamW).
 * The learning rate enters as graph inputs computed in double on the host (`adamwScalars`).
 * `adamwUpdateAll` runs the small parameters as one concatenated vector (a few kernels instead of
 * ~14 per parameter, which dominated a small model's step), with the same per-element arithmetic.
 * Browser compatible: no Deno APIs.
 * @module
 */
import { A, type Graph, type Value } from "../graph/builder.ts";

/** UER-py's AdamW hyper-parameters (betas, eps fixed as in `init_optimizer`). */
export const ADAMW = { beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01 } as const;

/** Substrings that put a parameter in UER's no-weight-decay group. */
export const NO_DECAY = ["bias", "gamma", "beta", "layer_norm"] as const;

/** True when UER-py applies weight decay to the parameter `name`. */
export function hasWeightDecay(name: string): boolean {
  return !NO_DECAY.some((s) => name.includes(s));
}

/** The lr inputs of an update graph: `neg_lr` = -lr, `neg_lr_wd` = -lr·wd (as torch's float alphas). */
export interface AdamwInputs {
  negLr: Value;
  negLrWd: Value;
}

/** Declares the scalar lr inputs (F32 []). */
export function adamwInputs(g: Graph): AdamwInputs {
  return { negLr: g.input("neg_lr", "F32", []), negLrWd: g.input("neg_lr_wd", "F32", []) };
}

/**
 * Host-side values of the lr inputs, computed in double then rounded to float32 once (torch turns
 * the python-float `value=`/`alpha=` into the tensor's float type the same way).
 */
export function adamwScalars(lr: number, weightDecay: number = ADAMW.weightDecay): { negLr: number; negLrWd: number } {
  return { negLr: Math.fround(-lr), negLrWd: Math.fround(-lr * weightDecay) };
}

/** Updated parameter and moments. */
export interface AdamwUpdate {
  p: Value;
  m: Value;
  v: Value;
}

/**
 * One AdamW step for parameter `name` with gradient `grad` and moments `m`, `v`.
 * Follows torch's op order: `exp_avg.mul_(b1).add_(g, alpha=1-b1)`, `exp_avg_sq.mul_(b2).addcmul_(g, g,
 * value=1-b2)`, `p.addcdiv_(m, sqrt(v)+eps, value=-lr)`, `p.add_(p, alpha=-lr*wd)`.
 */
export function adamwUpdate(
  g: Graph,
  name: string,
  p: Value,
  grad: Value,
  m: Value,
  v: Value,
  lr: AdamwInputs,
  weightDecay: number = ADAMW.weightDecay,
): AdamwUpdate {
  const { beta1, beta2, eps } = ADAMW;
  const m1 = g.add(g.mul(m, beta1), g.mul(grad, 1 - beta1));
  const v1 = g.add(g.mul(v, beta2), g.mul(g.mul(grad, 1 - beta2), grad));
  // NOTE: UER AdamW: eps outside the sqrt, no bias correction (correct_bias=False).
  const denom = g.add(g.sqrt(v1), eps);
  let p1 = g.add(p, g.div(g.mul(m1, lr.negLr), denom));
  // NOTE: decoupled weight decay applied to the already-updated value, as UER-py does.
  if (weightDecay > 0 && hasWeightDecay(name)) p1 = g.add(p1, g.mul(p1, lr.negLrWd));
  return { p: p1, m: m1, v: v1 };
}

/** One parameter of `adamwUpdateAll`. */
export interface AdamwEntry {
  name: string;
  p: Value;
  grad: Value;
  m: Value;
  v: Value;
}

/** Parameters with fewer elements than this are updated together as flat vectors. */
export const GROUP_BELOW = 1 << 18;
/** At most this many parameters per flat vector: Concat/Split use one WebGPU storage buffer per tensor (limit 16). */
export const GROUP_SIZE = 14;

/**
 * AdamW for every entry, in order. Entries below `GROUP_BELOW` elements are flattened, concatenated
 * and updated as one vector per `GROUP_SIZE` of them (then split back); the weight decay becomes `p + p · (neg_lr_wd · mask)`
 * with a 0/1 mask per element, which gives the same float32 numbers as `adamwUpdate` (× 1 is exact,
 * and `p + p · 0 = p`). Larger entries get their own `adamwUpdate`.
 */
export function adamwUpdateAll(
  g: Graph,
  entries: AdamwEntry[],
  lr: AdamwInputs,
  weightDecay: number = ADAMW.weightDecay,
): AdamwUpdate[] {
  const numel = (v: Value) => (v.shape as number[]).reduce((a, b) => a * b, 1);
  const out: AdamwUpdate[] = new Array(entries.length);
  const small: number[] = [];
  entries.forEach((e, i) => {
    if (numel(e.p) < GROUP_BELOW) small.push(i);
    else out[i] = adamwUpdate(g, e.name, e.p, e.grad, e.m, e.v, lr, weightDecay);
  });
  for (let at = 0; at < small.length; at += GROUP_SIZE) {
    updateGroup(g, entries, small.slice(at, at + GROUP_SIZE), lr, weightDecay, out);
  }
  return out;
}

function updateGroup(
  g: Graph,
  entries: AdamwEntry[],
  small: number[],
  lr: AdamwInputs,
  weightDecay: number,
  out: AdamwUpdate[],
): void {
  const numel = (v: Value) => (v.shape as number[]).reduce((a, b) => a * b, 1);
  if (small.length === 1) {
    const e = entries[small[0]];
    out[small[0]] = adamwUpdate(g, e.name, e.p, e.grad, e.m, e.v, lr, weightDecay);
    return;
  }
  const sizes = small.map((i) => numel(entries[i].p));
  const total = sizes.reduce((a, b) => a + b, 0);
  const flat = (pick: (e: AdamwEntry) => Value) => g.concat(small.map((i) => g.reshape(pick(entries[i]), [-1])), 0); // [N]
  const p = flat((e) => e.p), gr = flat((e) => e.grad), m = flat((e) => e.m), v = flat((e) => e.v);
  const u = adamwUpdate(g, "", p, gr, m, v, lr, 0); // no decay here: masked below
  let p1 = u.p;
  if (weightDecay > 0 && small.some((i) => hasWeightDecay(entries[i].name))) {
    const mask = new Float32Array(total);
    let at = 0;
    small.forEach((i, j) => {
      if (hasWeightDecay(entries[i].name)) mask.fill(1, at, at + sizes[j]);
      at += sizes[j];
    });
    // NOTE: decoupled weight decay on the updated value, per element as adamwUpdate (0 = no_decay group).
    const wd = g.mul(g.constant({ dtype: "F32", shape: [total], data: mask }), lr.negLrWd); // [N]
    p1 = g.add(p1, g.mul(p1, wd));
  }
  const split = (x: Value) =>
    g.node("Split", [x, g.ints(sizes)], { axis: A.int(0) }, {
      shapes: sizes.map((n) => ({ dtype: x.dtype, shape: [n] })),
    });
  const ps = split(p1), ms = split(u.m), vs = split(u.v);
  small.forEach((i, j) => {
    const shape = entries[i].p.shape as number[];
    out[i] = { p: g.reshape(ps[j], shape), m: g.reshape(ms[j], shape), v: g.reshape(vs[j], shape) };
  });
}
