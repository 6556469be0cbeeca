/**
 * `infer --task text-classification`: UER-py's `inference/run_classifier_infer.py` and HF's
 * `TextClassificationPipeline` on a fine-tuned model (a `finetune` output `.bin`, an
 * `AlbertForSequenceClassification` folder, or a zarr checkpoint with `output_layer_1/2`).
 * `--test_path` is a TSV with a header naming `text_a` (and `text_b` for pairs), as UER-py reads it;
 * `--prediction_path` (or `--output_path`) gets UER-py's file: a `label` column (the arg-max of the
 * logits), then with `--output_logits` / `--output_prob` the logits and the softmax, space-separated,
 * each value as Python prints a float. Without an output file, and for `--text`, it prints HF's
 * pipeline shape, `[{"label": "LABEL_1", "score": 0.93}]` (labels from the HF config's `id2label`
 * where there is one). UER files are tokenized as UER-py does, HF folders as HF does.
 * @module
 */
import type { InferOptions } from "../core/flags/mod.ts";
import { loadModel, modelTokenizer, requireTask, semanticsLine } from "../convert/mod.ts";
import { ttyProgress } from "../convert/hub.ts";
import { exists, writeFileAtomic } from "../core/io/atomic.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { readFlagFile } from "../core/io/flag_file.ts";
import { parseClassifierTsv } from "../core/data/classifier_data.ts";
import { AlbertPipeline, type Classification, type TextInput } from "../core/model/pipeline.ts";
import { pyRepr } from "../core/train/metrics.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";

function dirOf(path: string): string {
  const p = path.replace(/\/+$/, "");
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : p.slice(0, i) || "/";
}

/** `id2label` of an HF folder's config.json, if it has one. */
async function labelNames(modelPath: string, n: number): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => `LABEL_${i}`);
  try {
    const cfg = JSON.parse(await Deno.readTextFile(`${modelPath.replace(/\/+$/, "")}/config.json`));
    for (const [k, v] of Object.entries(cfg?.id2label ?? {})) {
      if (Number(k) >= 0 && Number(k) < n && typeof v === "string") names[Number(k)] = v;
    }
  } catch {
    // not a folder, or no readable config: HF's default names
  }
  return names;
}

/** The index of the largest value (the first of a tie, as torch.argmax). */
function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** run_classifier_infer.py's prediction file. */
export function predictionFile(rows: Classification[], opts: { logits: boolean; prob: boolean }): string {
  const head = ["label", ...(opts.logits ? ["logits"] : []), ...(opts.prob ? ["prob"] : [])].join("\t");
  const lines = rows.map((r) => {
    const cols = [String(argmax(r.logits))];
    if (opts.logits) cols.push(Array.from(r.logits, pyRepr).join(" "));
    if (opts.prob) cols.push(Array.from(r.probs, pyRepr).join(" "));
    return cols.join("\t");
  });
  return [head, ...lines].join("\n") + "\n";
}

/** Runs `infer --task text-classification`. */
export async function runTextClassification(opts: InferOptions): Promise<void> {
  const out = opts.predictionPath ?? opts.outputPath;
  if (out !== undefined && !opts.overwrite && (await exists(out))) {
    throw new TypeError(`Cannot write "${out}": it already exists\n  hint: pass --overwrite or another path`);
  }
  const inputs: TextInput[] = opts.text.map((l) => {
    const tab = l.indexOf("\t");
    return tab < 0 ? { a: l } : { a: l.slice(0, tab), b: l.slice(tab + 1) };
  });
  if (opts.testPath) {
    const text = await readFlagFile("test_path", opts.testPath);
    const f = parseClassifierTsv(text, opts.testPath, { requireLabel: false });
    inputs.push(...f.rows.map((r) => (r.textB === undefined ? { a: r.textA } : { a: r.textA, b: r.textB })));
  }
  if (inputs.length === 0) {
    throw new TypeError('Cannot run text-classification: no input\n  hint: pass --text "..." or --test_path file.tsv');
  }
  const warn = opts.quiet ? undefined : (l: string) => console.error(l);
  const model = await loadModel(opts.modelPath, {
    configPath: opts.configPath,
    log: warn,
    progress: opts.quiet ? undefined : ttyProgress(),
  });
  requireTask(model, "text-classification", opts.modelPath);
  const n = model.params.get("output_layer_2.weight")!.shape[0];
  if (opts.labelsNum !== undefined && opts.labelsNum !== n) {
    throw new TypeError(
      `Cannot classify with "${opts.modelPath}": its classifier has ${n} labels, --labels_num says ${opts.labelsNum}` +
        `\n  hint: pass --labels_num ${n} (or leave it out)`,
    );
  }
  // UER-py's run_classifier_infer.py tokenizes as UER-py (its vocab read as UER-py reads it); HF folders
  // with their own tokenizer files, as HF does.
  let tokenizer: BertTokenizer;
  if (model.semantics === "uer") {
    const isDir = await Deno.stat(opts.modelPath).then((s) => s.isDirectory, () => false);
    const vocabPath = opts.vocabPath ?? model.vocabPath ??
      `${isDir ? opts.modelPath.replace(/\/+$/, "") : dirOf(opts.modelPath)}/vocab.txt`;
    tokenizer = new BertTokenizer(await readVocabFile(vocabPath, "uer"), {
      mode: "uer",
      doLowerCase: opts.doLowerCase,
    });
  } else {
    const tok = await modelTokenizer(model.path, opts.vocabPath);
    tokenizer = new BertTokenizer(tok.vocab, {
      mode: "hf",
      doLowerCase: tok.doLowerCase && opts.doLowerCase, // --do_lower_case false overrides the folder's
      maxInputCharsPerWord: tok.maxInputCharsPerWord,
    });
  }
  const pipe = AlbertPipeline.create(model, tokenizer, {
    device: opts.device,
    pooling: opts.pooling,
    log: opts.quiet ? () => {} : (l) => console.error(l),
  });
  let cut = 0;
  let rows: Classification[];
  try {
    rows = await pipe.classify(inputs, { batchSize: opts.batchSize, seqLength: opts.seqLength, warn: () => cut++ });
  } finally {
    await pipe.release();
  }
  // UER-py cuts rows to --seq_length silently; say it once.
  if (cut > 0) warn?.(`note: ${cut} of ${inputs.length} texts cut to ${opts.seqLength} tokens`);
  warn?.(semanticsLine(model));
  if (out !== undefined) {
    await writeFileAtomic(out, predictionFile(rows, { logits: opts.outputLogits, prob: opts.outputProb }));
    if (opts.json) console.log(JSON.stringify({ prediction_path: out, rows: rows.length }));
    else if (!opts.quiet) console.log(`wrote predictions for ${rows.length} texts to "${out}"`);
    return;
  }
  const names = await labelNames(opts.modelPath, n);
  const best = rows.map((r) => {
    const i = argmax(r.probs);
    return { label: names[i], score: r.probs[i] };
  });
  console.log(JSON.stringify(best));
}
