/**
 * Random ALBERT parameters under UER names for tests and benches (the shapes UER-py's model has for
 * a config; values from a seeded xorshift PRNG, N(0, 0.02)-ish, not UER-py's init).
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { AlbertConfig } from "../core/config.ts";
import { f32, type Tensor } from "../core/tensor.ts";
import { nameTable, uerParamNames } from "./names.ts";

/** A small seeded PRNG (xorshift32) returning floats in [0, 1). */
export function xorshift(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/**
 * Random parameters for `cfg` (UER names, UER-py order).
 *
 * @example
 * ```ts
 * const params = randomUerParams(ALBERT_BASE, 21128, 1);
 * ```
 */
export function randomUerParams(cfg: AlbertConfig, vocabSize: number, seed = 1): Map<string, Tensor> {
  const rnd = xorshift(seed);
  const shapes = new Map(nameTable(cfg, vocabSize).filter((r) => r.uer !== "").map((r) => [r.uer, r.shape]));
  const out = new Map<string, Tensor>();
  for (const name of uerParamNames(cfg)) {
    const t = f32(shapes.get(name)!);
    const d = t.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = (rnd() + rnd() + rnd() - 1.5) * 0.04;
    out.set(name, t);
  }
  return out;
}
