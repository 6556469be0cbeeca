/**
 * Pretraining speed: tokens/s of `Trainer.step` (forward + backward + AdamW, one fused ONNX graph)
 * on onnxruntime-node CPU with 2 intra-op threads, for the reference albert-tiny config (batch 16,
 * seq 128) and an ALBERT-base-shaped config (batch 8, seq 128; emb 128, hidden 768, ff 3072,
 * 12 heads, 12 layers, vocab 21128), against UER-py's figures on this machine class (about 12,700
 * and 250 tokens/s). Also prints the process RSS across the tiny run (it should stay flat).
 * Prints figures; never passes or fails on time (DESIGN.md §2).
 *
 * Run: `deno run -A bench/pretrain_bench.ts [--tiny-steps N] [--base-steps N]`.
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { type Batch, initParams, Trainer } from "../core/train/trainer.ts";

/** UER-py tokens/s on this machine class (torch 1.13 CPU, same shapes). */
export const UER_TOKENS_PER_S = { tiny: 12_700, base: 250 };

const TINY: AlbertConfig = {
  ...ALBERT_BASE,
  emb_size: 32,
  hidden_size: 64,
  feedforward_size: 128,
  heads_num: 4,
  layers_num: 3,
  max_seq_length: 128,
  vocab_size: 21128,
};
const BASE: AlbertConfig = { ...ALBERT_BASE, max_seq_length: 512, vocab_size: 21128 };

/** A deterministic synthetic batch shaped like UER's: two segments, ~15% masked, a few padded rows. */
function syntheticBatch(batchSize: number, seqLength: number, vocab: number, salt: number): Batch {
  const n = batchSize * seqLength;
  const src = new Int32Array(n), seg = new Int32Array(n), tgtMlm = new Int32Array(n);
  let x = 12345 + salt * 7919;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let r = 0; r < batchSize; r++) {
    const len = r % 4 === 3 ? Math.floor(seqLength * 0.6) : seqLength;
    const a = Math.floor(len / 2);
    for (let t = 0; t < len; t++) {
      const i = r * seqLength + t;
      src[i] = t === 0 ? 101 : t === a || t === len - 1 ? 102 : 104 + Math.floor(rnd() * (vocab - 104));
      seg[i] = t <= a ? 1 : 2;
    }
    const k = Math.max(1, Math.round(len * 0.15));
    for (let j = 0; j < k; j++) {
      const t = 1 + Math.floor(rnd() * (len - 2));
      const i = r * seqLength + t;
      if (src[i] === 102) continue;
      tgtMlm[i] = src[i];
      src[i] = 103;
    }
  }
  const tgtSop = Int32Array.from({ length: batchSize }, (_, r) => r % 2);
  return { src, seg, tgtMlm, tgtSop, batchSize, seqLength };
}

async function measure(
  cfg: AlbertConfig,
  batchSize: number,
  seqLength: number,
  steps: number,
  rss?: number[],
): Promise<{ tokensPerS: number; msPerStep: number; firstStepMs: number }> {
  const trainer = await Trainer.create({ config: cfg, params: initParams(cfg, 7), device: "cpu", threads: 2 });
  const batches = [0, 1, 2, 3].map((s) => syntheticBatch(batchSize, seqLength, cfg.vocab_size!, s));
  let t = performance.now();
  await trainer.step(batches[0], 1e-4);
  const firstStepMs = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < steps; i++) {
    await trainer.step(batches[i % batches.length], 1e-4);
    if (rss && i % 25 === 0) rss.push(Deno.memoryUsage().rss);
  }
  const msPerStep = (performance.now() - t) / steps;
  await trainer.dispose();
  return { tokensPerS: (batchSize * seqLength) / (msPerStep / 1000), msPerStep, firstStepMs };
}

function argNumber(name: string, dflt: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
}

/** Runs the benchmark and returns its figures (tokens/s, ratios to UER-py, RSS in MiB). */
export async function pretrainBench(
  opts: { tinySteps?: number; baseSteps?: number } = {},
): Promise<Record<string, number>> {
  const rss: number[] = [];
  const tiny = await measure(TINY, 16, 128, opts.tinySteps ?? 200, rss);
  const baseSteps = opts.baseSteps ?? 3;
  const base = baseSteps > 0
    ? await measure(BASE, 8, 128, baseSteps)
    : { tokensPerS: NaN, msPerStep: NaN, firstStepMs: NaN };
  const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  return {
    tiny_tokens_per_s: Math.round(tiny.tokensPerS),
    tiny_ms_per_step: Math.round(tiny.msPerStep * 10) / 10,
    tiny_first_step_ms: Math.round(tiny.firstStepMs),
    tiny_vs_uer: Math.round((tiny.tokensPerS / UER_TOKENS_PER_S.tiny) * 100) / 100,
    base_tokens_per_s: Math.round(base.tokensPerS),
    base_ms_per_step: Math.round(base.msPerStep),
    base_first_step_ms: Math.round(base.firstStepMs),
    base_vs_uer: Math.round((base.tokensPerS / UER_TOKENS_PER_S.base) * 100) / 100,
    // RSS after the first tiny step, after 50 more steps (allocator warm), and at the end of the run
    rss_first_mib: mib(rss[0]),
    rss_step50_mib: mib(rss[Math.min(2, rss.length - 1)]),
    rss_max_mib: mib(Math.max(...rss)),
    rss_last_mib: mib(rss.at(-1)!),
  };
}

if (import.meta.main) {
  const r = await pretrainBench({
    tinySteps: argNumber("--tiny-steps", 200),
    baseSteps: argNumber("--base-steps", 3),
  });
  console.log("pretrain step on onnxruntime-node CPU, 2 threads (UER-py: tiny 12,700 tok/s, base-shaped 250 tok/s)");
  for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(22)} ${v}`);
}
