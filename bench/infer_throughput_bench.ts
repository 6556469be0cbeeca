/**
 * File throughput of `infer --test_path` (feature extraction) on the reference corpus's natural length
 * mix: the first N non-blank lines (default 10,000) of `corpora/CLUECorpusSmall_bert_sampled.txt`, cut
 * at 128 tokens, ALBERT-base shape (random weights), batches of 64 (infer's default), CPU, 2 threads.
 * Runs, each over all the lines, one after another (each run is long; their process CPU time is
 * printed too, which load from other processes disturbs far less than wall time):
 * - sorted: `AlbertPipeline.features()` as `infer` runs it — rows sorted by token count, each batch
 *   padded to its own longest row (core/model/batching.ts), results in input order;
 * - unsorted: the same pipeline batching in input order (each batch padded to its longest row);
 * - sorted q8: sorted with int8 weights (`--dtype q8`);
 * - transformers.js: `pipeline("feature-extraction")` on the same weights, batches of 64 in input order
 *   (it pads each batch to its longest row and truncates at 128, as ours).
 * Also prints the padded token slots each batching computes. Never fails on time.
 * Run: `deno run -A bench/infer_throughput_bench.ts [--lines N] [--skip unsorted-fp32,sorted-q8,tjs-fp32]`.
 * @module
 */
import process from "node:process";
import { env, pipeline } from "@huggingface/transformers";
import { paddedTokens, planBatches } from "../core/model/batching.ts";
import { AlbertPipeline, type Dtype, type TextInput } from "../core/model/pipeline.ts";
import { nodeSessionOptions } from "../core/runtime/node.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { transformersJsFiles } from "../convert/onnx_export.ts";
import { refPath } from "../tests/reference.ts";
import { albertBase, writeFiles } from "./_albert_base.ts";
import { dropScratch, scratchDir } from "./_scratch.ts";

const THREADS = 2, BATCH = 64, SEQ = 128;

/** One run's figures. */
export interface ThroughputRow {
  run: string;
  seconds: number;
  cpuSeconds: number;
  sentencesPerSecond: number;
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs the bench, prints the table and returns its figures. */
export async function inferThroughputBench(args: string[] = []): Promise<{ lines: number; rows: ThroughputRow[] }> {
  const n = Number(argValue(args, "--lines") ?? 10_000);
  const skip = new Set(argValue(args, "--skip")?.split(",") ?? []);
  const corpus = "corpora/CLUECorpusSmall_bert_sampled.txt";
  const lines = (await Deno.readTextFile(refPath(corpus))).split("\n").filter((l) => l.trim() !== "").slice(0, n);
  const inputs = lines.map((a): TextInput => ({ a }));
  const { model, vocab } = await albertBase();
  const tok = new BertTokenizer(vocab, { mode: "hf" });
  const lengths = lines.map((l) => Math.min(SEQ, tok.encode(l).ids.length));
  const slots = (sorted: boolean) => paddedTokens(lengths, planBatches(lengths, BATCH, sorted));
  const real = lengths.reduce((a, b) => a + b, 0);
  console.log(
    `infer throughput bench: ${lines.length} lines of ${corpus} (tokens per line: mean ${
      (real / lines.length).toFixed(1)
    }` +
      `, cut at ${SEQ}), ALBERT-base shape (random weights), feature-extraction, batch ${BATCH}, CPU, ${THREADS} threads`,
  );
  console.log(
    `token slots computed: ${real} real; ${slots(true)} sorted (${(slots(true) / real).toFixed(2)}×), ` +
      `${slots(false)} unsorted (${(slots(false) / real).toFixed(2)}×)`,
  );

  const rows: ThroughputRow[] = [];
  const time = async (run: string, fn: () => Promise<unknown>) => {
    if (skip.has(run.replace(" ", "-"))) return;
    const c0 = process.cpuUsage(), t0 = performance.now();
    await fn();
    const s = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
    rows.push({ run, seconds: s, cpuSeconds: (c.user + c.system) / 1e6, sentencesPerSecond: lines.length / s });
    console.log(`  ${run}: ${s.toFixed(1)} s`);
  };
  const ours = async (dtype: Dtype, sortByLength: boolean) => {
    const p = AlbertPipeline.create(model, tok, { device: "cpu", threads: THREADS, dtype, log: () => {} });
    await p.features(inputs.slice(0, 2), { batchSize: 2, seqLength: SEQ }); // session made outside the timing
    try {
      await time(`${sortByLength ? "sorted" : "unsorted"} ${dtype}`, async () => {
        // Results are dropped batch by batch as infer would write them: keep nothing but the count.
        const feats = await p.features(inputs, { batchSize: BATCH, seqLength: SEQ, sortByLength });
        if (feats.length !== lines.length) throw new Error("lost rows");
      });
    } finally {
      await p.release();
    }
  };
  await ours("fp32", true);
  await ours("fp32", false);
  await ours("q8", true);

  if (!skip.has("tjs-fp32")) {
    const dir = await scratchDir();
    try {
      // heads [] : onnx/model.onnx with last_hidden_state only, what feature-extraction reads.
      const { files } = transformersJsFiles({ ...model, heads: [] }, vocab, { source: "bench", maxLength: SEQ });
      await writeFiles(`${dir}/base`, files);
      env.allowRemoteModels = false;
      env.localModelPath = `${dir}/`;
      const { executionProviders: _, ...session_options } = nodeSessionOptions({ threads: THREADS });
      const tjs = await pipeline("feature-extraction", "base", { dtype: "fp32", device: "cpu", session_options });
      await tjs(lines.slice(0, 2));
      await time("tjs fp32", async () => {
        for (let i = 0; i < lines.length; i += BATCH) await tjs(lines.slice(i, i + BATCH));
      });
      await tjs.dispose();
    } finally {
      await dropScratch(dir);
    }
  }

  const base = rows.find((r) => r.run === "unsorted fp32");
  const tjsRow = rows.find((r) => r.run.startsWith("tjs"));
  const cols = ["run", "s", "CPU s", "sentences/s", "÷ unsorted", "÷ transformers.js"];
  const ratio = (
    r: ThroughputRow,
    b?: ThroughputRow,
  ) => (b ? (r.sentencesPerSecond / b.sentencesPerSecond).toFixed(2) : "-");
  const cells = rows.map((r) => [
    r.run,
    r.seconds.toFixed(1),
    r.cpuSeconds.toFixed(1),
    r.sentencesPerSecond.toFixed(1),
    ratio(r, base),
    ratio(r, tjsRow),
  ]);
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((l) => l[i].length)));
  const fmt = (c: string[]) => `| ${c.map((x, i) => x.padEnd(w[i])).join(" | ")} |`;
  console.log(fmt(cols));
  console.log(`|${w.map((x) => "-".repeat(x + 2)).join("|")}|`);
  for (const c of cells) console.log(fmt(c));
  console.log("goal: sorted ≥ 2× unsorted (sentences/s) on the corpus's natural length mix");
  return { lines: lines.length, rows };
}

if (import.meta.main) await inferThroughputBench(Deno.args);
