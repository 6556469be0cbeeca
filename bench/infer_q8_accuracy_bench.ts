/**
 * Accuracy of int8 weights (`infer --dtype q8`) against fp32 on the same model: 1,000 masked positions
 * (one CJK character of a line replaced by [MASK], seeded), fill-mask top-5 with both dtypes, and
 * - top-1 agreement: q8's first prediction is fp32's;
 * - top-5 overlap: |q8 top-5 ∩ fp32 top-5| / 5, averaged;
 * - max |Δ score|: over fp32's top-5 tokens, the largest difference of their probability under q8
 *   (read from q8's top-50) and fp32;
 * - how often each dtype's top-1 is the character that was masked.
 * Models: the demo-trained model (`npx deno task demo` writes it under `.tmp/demo`: the zarr
 * checkpoint `model-1500`, UER LayerNorm as trained) on lines of `fixtures/demo_corpus.txt`, and an
 * ALBERT-base-shaped model with random weights on lines of the reference corpus (its near-uniform
 * predictions make top-1 ties common: that row shows quantization noise against tiny gaps, not accuracy).
 * A goal: top-1 agreement ≥ 99 % on the trained model. Never fails on a figure.
 * Run: `deno run -A bench/infer_q8_accuracy_bench.ts [--positions N] [--demo_dir .tmp/demo] [--device cpu|webgpu]`.
 * @module
 */
import { loadModel } from "../convert/mod.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { AlbertPipeline, type FillMaskPrediction, type PipelineModel } from "../core/model/pipeline.ts";
import type { Device } from "../core/runtime/mod.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { refPath } from "../tests/reference.ts";
import { albertBase } from "./_albert_base.ts";

/** One model's figures. */
export interface AccuracyRow {
  model: string;
  positions: number;
  top1Agreement: number;
  top5Overlap: number;
  maxScoreDelta: number;
  fp32Correct: number;
  q8Correct: number;
}

const HAN = /\p{Script=Han}/u;

/** `n` texts with one Han character of a line (its first 120 characters) masked, and that character. */
export function maskLines(lines: string[], n: number, seed = 7): { text: string; answer: string }[] {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const pool = lines.map((l) => [...l.trim()].slice(0, 120)).filter((cs) => cs.some((c) => HAN.test(c)));
  const out: { text: string; answer: string }[] = [];
  while (out.length < n && pool.length) {
    const cs = pool[Math.floor(rnd() * pool.length)];
    const at = cs.flatMap((c, i) => (HAN.test(c) ? [i] : []));
    const i = at[Math.floor(rnd() * at.length)];
    out.push({ text: [...cs.slice(0, i), "[MASK]", ...cs.slice(i + 1)].join(""), answer: cs[i] });
  }
  return out;
}

async function measure(
  name: string,
  model: PipelineModel,
  tok: BertTokenizer,
  masked: { text: string; answer: string }[],
  device: Device,
): Promise<AccuracyRow> {
  const inputs = masked.map((m) => ({ a: m.text }));
  const opts = { batchSize: 32, seqLength: 128 };
  const run = async (dtype: "fp32" | "q8", k: number): Promise<FillMaskPrediction[][]> => {
    const p = AlbertPipeline.create(model, tok, { device, dtype, log: () => {} });
    try {
      return (await p.fillMask(inputs, k, opts)).map((r) => r[0]);
    } finally {
      await p.release();
    }
  };
  const fp32 = await run("fp32", 5), q8 = await run("q8", 50);
  let agree = 0, overlap = 0, maxDelta = 0, fp32Correct = 0, q8Correct = 0;
  fp32.forEach((f, i) => {
    const q = q8[i];
    if (q[0].token === f[0].token) agree++;
    const q5 = new Set(q.slice(0, 5).map((p) => p.token));
    overlap += f.filter((p) => q5.has(p.token)).length / 5;
    for (const p of f) {
      const other = q.find((x) => x.token === p.token);
      // A token outside q8's top-50 has at most the 50th score there.
      maxDelta = Math.max(
        maxDelta,
        Math.abs(p.score - (other ? other.score : Math.min(q[q.length - 1].score, p.score))),
      );
    }
    if (f[0].token_str === masked[i].answer) fp32Correct++;
    if (q[0].token_str === masked[i].answer) q8Correct++;
  });
  const n = fp32.length;
  return {
    model: name,
    positions: n,
    top1Agreement: agree / n,
    top5Overlap: overlap / n,
    maxScoreDelta: maxDelta,
    fp32Correct: fp32Correct / n,
    q8Correct: q8Correct / n,
  };
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs the bench, prints the table and returns its figures. */
export async function inferQ8AccuracyBench(args: string[] = []): Promise<{ rows: AccuracyRow[] }> {
  const n = Number(argValue(args, "--positions") ?? 1000);
  const demoDir = argValue(args, "--demo_dir") ?? ".tmp/demo";
  const device = (argValue(args, "--device") ?? "cpu") as Device;
  const rows: AccuracyRow[] = [];
  console.log(`q8 accuracy bench: ${n} masked positions per model, fill-mask top-5, fp32 vs q8 on ${device}`);

  const demoCkpt = `${demoDir}/model-1500`;
  let demo;
  try {
    demo = await loadModel(demoCkpt);
  } catch {
    console.log(`demo model: none at "${demoCkpt}" (run \`npx deno task demo\` first); its row is left out`);
  }
  if (demo) {
    const fixtures = new URL("../fixtures/", import.meta.url).pathname;
    const tok = new BertTokenizer(await readVocabFile(`${fixtures}demo_vocab.txt`, "hf"), { mode: "hf" });
    const lines = (await Deno.readTextFile(`${fixtures}demo_corpus.txt`)).split("\n");
    const c = demo.config;
    rows.push(
      await measure(
        `demo-trained (${demo.semantics} LayerNorm; E${c.emb_size} H${c.hidden_size} L${c.layers_num}), fixtures/demo_corpus.txt`,
        demo,
        tok,
        maskLines(lines, n),
        device,
      ),
    );
  }
  const { model, vocab } = await albertBase();
  const corpus = "corpora/CLUECorpusSmall_bert_sampled.txt";
  const lines = (await Deno.readTextFile(refPath(corpus))).split("\n");
  rows.push(
    await measure(
      `ALBERT-base shape, random weights, ${corpus}`,
      model,
      new BertTokenizer(vocab, { mode: "hf" }),
      maskLines(lines, n),
      device,
    ),
  );

  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const cols = [
    "model",
    "positions",
    "top-1 agreement",
    "top-5 overlap",
    "max |Δ score|",
    "top-1 = masked (fp32 / q8)",
  ];
  const cells = rows.map((r) => [
    r.model,
    String(r.positions),
    pct(r.top1Agreement),
    pct(r.top5Overlap),
    r.maxScoreDelta.toExponential(2),
    `${pct(r.fp32Correct)} / ${pct(r.q8Correct)}`,
  ]);
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((l) => l[i].length)));
  const fmt = (c: string[]) => `| ${c.map((x, i) => x.padEnd(w[i])).join(" | ")} |`;
  console.log(fmt(cols));
  console.log(`|${w.map((x) => "-".repeat(x + 2)).join("|")}|`);
  for (const c of cells) console.log(fmt(c));
  console.log("goal: top-1 agreement ≥ 99 % on the trained model");
  return { rows };
}

if (import.meta.main) await inferQ8AccuracyBench(Deno.args);
