/**
 * Inverted dropout inside the training graphs, at UER-py's sites (`uer/embeddings/embedding.py`: after
 * the embedding LayerNorm; `uer/layers/multi_headed_attn.py`: the attention probabilities;
 * `uer/layers/transformer.py`: `dropout_1` after the attention output, `dropout_2` after the feed-forward,
 * once per layer APPLICATION, so a shared ALBERT layer draws new masks each time): `y = x · mask / (1 − p)`
 * with `mask` 1 with probability ≈ 1 − p, as `nn.Dropout` in `model.train()`. Evaluation graphs have no
 * dropout (`model.eval()`).
 *
 * NOTE: torch's random stream (Philox / mt19937) is not reproduced; a run with p > 0 is deterministic for
 * a given `--seed` in uer-ts, not equal to UER-py's masks. With p = 0 (the ALBERT configs' value) no
 * dropout node exists and the graphs are those without dropout.
 *
 * The generator is counter-based and computed in the graph, so no mask is uploaded: the host feeds one
 * int32 scalar per step (`dropout_key`, a hash of `--seed` and the micro-step number, so a resumed run
 * draws what an uninterrupted one would), and each element's draw is a hash of (key, site, coordinates)
 * in exact int32 arithmetic, identical on onnxruntime's CPU and WebGPU kernels: every value stays below
 * the prime P = 46337, products of two such values below 2^31 (no overflow anywhere), `x mod P` is
 * `x − (x / P)·P` with int32 division (ONNX `Mod` has no WebGPU kernel). One mixing round is
 * `r(h, k) = ((h + k) mod P)³ mod P` (cubing permutes the residues since P ≡ 2 mod 3). The rows
 * (all axes but the last) and the columns (the last axis) are hashed apart on small tensors; each
 * element then costs one round: `draw = r(row, column)`, kept when `draw ≥ round(P·p)`. Neighbouring
 * draws, rows and steps are uncorrelated within 0.1 % (checked in dropout_test.ts), the kept fraction
 * is 1 − p within 1/P. Browser compatible: no Deno APIs.
 * @module
 */
import { type Graph, makeTensor, type Value } from "../graph/builder.ts";

/** The modulus of the generator's int32 arithmetic (prime, ≡ 2 mod 3, (P−1)² < 2^31). */
export const DROPOUT_PRIME = 46337;
const P = DROPOUT_PRIME;

/** Name of the per-step key input (I32 scalar in [0, P)). */
export const DROPOUT_KEY = "dropout_key";

/** The per-step key: a 32-bit mix of the seed and the micro-step number, reduced mod P (host side). */
export function dropoutKey(seed: number, step: number): number {
  let h = Math.imul((seed | 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step | 0, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) % P;
}

/** `x mod P` for 0 ≤ x < 2^31 (int32). */
function modP(g: Graph, x: Value): Value {
  return g.sub(x, g.mul(g.div(x, g.scalar(P, "I32")), g.scalar(P, "I32")));
}

/** One mixing round `((h + k) mod P)³ mod P` (int32, broadcasting). */
function round(g: Graph, h: Value, k: Value): Value {
  const x = modP(g, g.add(h, k));
  return modP(g, g.mul(modP(g, g.mul(x, x)), x));
}

/** An int32 iota `start, start+1, …` of length n, shaped to lie along `axis` of a rank-`rank` tensor. */
function iotaAlong(g: Graph, n: number, start: number, axis: number, rank: number): Value {
  const shape = Array.from({ length: rank }, (_, i) => (i === axis ? n : 1));
  return g.constant(makeTensor("I32", shape, Array.from({ length: n }, (_, i) => start + i)));
}

/**
 * The dropout sites of one training graph: `apply(x)` at each UER-py site in the order the model
 * reaches them; each call is a new site with its own stream.
 *
 * @example
 * ```ts
 * const drop = new Dropout(g, 0.1);             // adds the `dropout_key` input
 * const y = drop.apply(x);                      // [B,T,H] -> [B,T,H], x · mask / 0.9
 * ```
 */
export class Dropout {
  readonly p: number;
  #g: Graph;
  #key: Value;
  #site = 0;

  constructor(g: Graph, p: number) {
    if (!(p > 0 && p < 1)) throw new RangeError(`Invalid dropout ${p}: the graph's dropout needs 0 < p < 1`);
    this.p = p;
    this.#g = g;
    this.#key = g.input(DROPOUT_KEY, "I32", []);
  }

  /** Inverted dropout of `x` (static shape, every axis < P) at the next site. */
  apply(x: Value): Value {
    const g = this.#g;
    const shape = x.shape as number[];
    if (shape.some((d) => typeof d !== "number" || d >= P)) {
      throw new RangeError(`Cannot add dropout to "${x.name}" [${x.shape}]: static axes below ${P} are needed`);
    }
    const rank = shape.length;
    this.#site++;
    const i32 = (n: number) => g.scalar(n, "I32");
    const siteKey = round(g, this.#key, i32(this.#site)); // [] per step and site
    // Columns: two rounds over the last axis' indexes ([1,…,1,D]).
    const cols = round(g, round(g, siteKey, iotaAlong(g, shape[rank - 1], 1, rank - 1, rank)), i32(777));
    // Rows: each leading axis absorbed in two rounds, on tensors of the leading shape ([d0,…,1]).
    let rows = round(g, siteKey, i32(5003));
    for (let a = 0; a < rank - 1; a++) rows = round(g, round(g, rows, iotaAlong(g, shape[a], 1, a, rank)), i32(999));
    const draw = round(g, rows, cols); // full shape
    const keep = g.op("GreaterOrEqual", [draw, i32(Math.round(P * this.p))]);
    // NOTE: torch scales the kept values by 1/(1-p) in the input's dtype, as here.
    return g.where(keep, g.mul(x, g.scalar(1 / (1 - this.p), x.dtype)), 0);
  }
}
