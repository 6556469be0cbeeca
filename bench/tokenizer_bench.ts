/**
 * Tokenizer speed: our BertTokenizer (hf and uer modes) against transformers.js' BertTokenizer
 * (`@huggingface/transformers`, loaded from the local HF folder of the reference data) on
 * CLUECorpusSmall_sampled.txt, in the same run. Prints MB/s of each, their ratio, and the number of
 * lines whose ids differ from transformers.js (hf mode; 0 expected). Never passes or fails on time.
 * Run: `deno run -A bench/tokenizer_bench.ts [--reps N]`.
 * @module
 */
import { refPath } from "../tests/reference.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/mod.ts";

interface TjsTokenizer {
  encode(text: string): number[];
}

async function loadTransformersJs(): Promise<TjsTokenizer> {
  const tjs = await import("@huggingface/transformers");
  tjs.env.allowRemoteModels = false;
  tjs.env.allowLocalModels = true;
  const dir = refPath("albert-tiny/hf");
  const slash = dir.lastIndexOf("/");
  tjs.env.localModelPath = dir.slice(0, slash + 1);
  const tok = await tjs.AutoTokenizer.from_pretrained(dir.slice(slash + 1), { local_files_only: true });
  return tok as unknown as TjsTokenizer;
}

// Best of `reps` timed passes of each function, interleaved so that load from other processes
// hits all of them alike; returns seconds per function.
function timeAll(reps: number, fs: (() => void)[]): number[] {
  const best = fs.map(() => Infinity);
  for (let r = 0; r < reps; r++) {
    fs.forEach((f, i) => {
      const t0 = performance.now();
      f();
      best[i] = Math.min(best[i], (performance.now() - t0) / 1000);
    });
  }
  return best;
}

/**
 * Runs the comparison and returns its figures: MB/s of transformers.js and of our hf/uer modes,
 * the speed ratios, and `hf_lines_differing` (lines whose ids differ from transformers.js).
 */
export async function tokenizerBench(opts: { reps?: number; quiet?: boolean } = {}): Promise<Record<string, number>> {
  const reps = opts.reps ?? 3;
  const corpusPath = refPath("corpora/CLUECorpusSmall_sampled.txt");
  const bytes = await Deno.readFile(corpusPath);
  const mb = bytes.length / 1e6;
  const lines = new TextDecoder().decode(bytes).split("\n");
  if (lines[lines.length - 1] === "") lines.pop();

  const tjs = await loadTransformersJs();
  const hf = new BertTokenizer(await readVocabFile(refPath("albert-tiny/hf/vocab.txt"), "hf"), { mode: "hf" });
  const uer = new BertTokenizer(await readVocabFile(refPath("vocab/google_zh_vocab.txt"), "uer"), { mode: "uer" });

  // Correctness first (also warms up both JITs and caches).
  let differing = 0;
  for (const line of lines) {
    const a = tjs.encode(line);
    const b = hf.encode(line).ids;
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) differing++;
  }

  let sink = 0;
  // A fresh tokenizer: what a first pass over new text costs (word cache and CJK ids empty).
  const cold = new BertTokenizer(uer.vocab, { mode: "uer" });
  const [tCold] = timeAll(1, [() => {
    for (const line of lines) sink += cold.tokenizeToIds(line).length;
  }]);
  const [tTjs, tHf, tUer, tUerTokens] = timeAll(reps, [
    () => {
      for (const line of lines) sink += tjs.encode(line).length;
    },
    () => {
      for (const line of lines) sink += hf.encode(line).ids.length;
    },
    () => {
      for (const line of lines) sink += uer.tokenizeToIds(line).length;
    },
    () => {
      for (const line of lines) sink += uer.convertTokensToIds(uer.tokenize(line)).length;
    },
  ]);
  if (sink < 0) console.log(sink);

  const r: Record<string, number> = {
    corpus_mb: mb,
    lines: lines.length,
    tjs_mb_s: mb / tTjs,
    hf_mb_s: mb / tHf,
    uer_ids_mb_s: mb / tUer,
    uer_cold_mb_s: mb / tCold,
    uer_tokens_then_ids_mb_s: mb / tUerTokens,
    hf_vs_tjs: tTjs / tHf,
    uer_vs_tjs: tTjs / tUer,
    hf_lines_differing: differing,
  };
  if (!opts.quiet) {
    const f = (x: number) => x.toFixed(2);
    console.log(`tokenizer bench: ${corpusPath} (${f(mb)} MB, ${lines.length} lines), best of ${reps}`);
    console.log(`  transformers.js BertTokenizer   ${f(r.tjs_mb_s)} MB/s`);
    console.log(`  uer-ts hf mode (encode)         ${f(r.hf_mb_s)} MB/s  = ${f(r.hf_vs_tjs)}x transformers.js`);
    console.log(`  uer-ts uer mode (tokenizeToIds) ${f(r.uer_ids_mb_s)} MB/s  = ${f(r.uer_vs_tjs)}x transformers.js`);
    console.log(`  uer-ts uer mode, cold caches    ${f(r.uer_cold_mb_s)} MB/s`);
    console.log(`  uer-ts uer tokenize+ids         ${f(r.uer_tokens_then_ids_mb_s)} MB/s`);
    console.log(`  lines with ids differing from transformers.js (hf mode): ${differing} of ${lines.length}`);
  }
  return r;
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--reps");
  await tokenizerBench({ reps: i >= 0 ? Number(Deno.args[i + 1]) : 3 });
}
