/**
 * `infer` subcommand: HF pipelines `fill-mask` / `feature-extraction` (UER-py `scripts/cloze_test.py`,
 * `scripts/extract_features.py`; `text-classification` is cli/infer_classify.ts) on an HF folder, a UER `.bin` (+ `--config_path`) or a zarr
 * checkpoint. flags → loadModel + vocab → `AlbertPipeline` → JSON / a readable table / a
 * `.safetensors`, `.npz` or `.npy` file (convert/features.ts). Tokenizes in hf mode (special tokens in the text are tokens).
 * @module
 */
import type { InferOptions } from "../core/flags/mod.ts";
import { loadModel, modelTokenizer, requireTask, semanticsLine } from "../convert/mod.ts";
import { featureFiles } from "../convert/features.ts";
import { ttyProgress } from "../convert/hub.ts";
import { exists, writeFileAtomic } from "../core/io/atomic.ts";
import { UsageError } from "../core/errors.ts";
import { removeStale } from "./stale.ts";
import { readFlagFile } from "../core/io/flag_file.ts";
import { AlbertPipeline, type FillMaskPrediction, type TextInput } from "../core/model/pipeline.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { progressBar } from "./progress.ts";

/** Reads `--text` and `--test_path` lines (`text_a<TAB>text_b` for pairs). */
async function readInputs(opts: InferOptions): Promise<TextInput[]> {
  const lines = [...opts.text];
  if (opts.testPath) {
    const text = await readFlagFile("test_path", opts.testPath);
    // One text per line, blank lines included (the empty text: [CLS] [SEP]), so that output rows line up
    // with input lines; the newline ending the last line does not start another.
    const fileLines = text.split("\n").map((l) => l.replace(/\r$/, ""));
    if (fileLines[fileLines.length - 1] === "") fileLines.pop();
    lines.push(...fileLines);
  }
  if (lines.length === 0) {
    throw new TypeError('Cannot run infer: no input text\n  hint: pass --text "..." or --test_path file.txt');
  }
  return lines.map((l) => {
    const tab = l.indexOf("\t");
    return tab < 0 ? { a: l } : { a: l.slice(0, tab), b: l.slice(tab + 1) };
  });
}

function fillMaskJson(results: FillMaskPrediction[][][]): unknown {
  const one = (r: FillMaskPrediction[][]) => (r.length === 1 ? r[0] : r); // HF: one list per mask when several
  return results.length === 1 ? one(results[0]) : results.map(one);
}

function printFillMask(inputs: TextInput[], results: FillMaskPrediction[][][]) {
  inputs.forEach((inp, i) => {
    console.log(inp.b === undefined ? inp.a : `${inp.a}\t${inp.b}`);
    results[i].forEach((preds, m) => {
      if (results[i].length > 1) console.log(`  [MASK] ${m + 1}:`);
      for (const p of preds) {
        console.log(`  ${p.score.toFixed(4)}  ${p.token_str.padEnd(8)} ${p.sequence}`);
      }
    });
  });
}

/** The file formats `--output_path` takes, by task. */
const OUTPUT_FORMATS = { "fill-mask": [".jsonl"], "feature-extraction": [".safetensors", ".npz", ".npy"] } as const;

/** Checks `--output_path` before any work: a format the task writes, and no silent overwrite. */
async function checkOutput(opts: InferOptions, task: keyof typeof OUTPUT_FORMATS): Promise<void> {
  const path = opts.outputPath;
  if (path === undefined) return;
  const formats: readonly string[] = OUTPUT_FORMATS[task];
  if (!formats.some((ext) => path.endsWith(ext))) {
    throw new UsageError(
      `Cannot write --output_path "${path}": ${task} writes ${formats.join(" or ")} files` +
        `\n  hint: name the output file with ${formats.join(" or ")}`,
    );
  }
  // a .npy of features has companions beside it (convert/features.ts)
  const stem = path.slice(0, -".npy".length);
  const all = task === "feature-extraction" && path.endsWith(".npy")
    ? [path, `${stem}.pooled_output.npy`, `${stem}.lengths.npy`]
    : [path];
  for (const p of all) {
    await removeStale(p, opts.quiet);
    if (!opts.overwrite && (await exists(p))) {
      throw new TypeError(
        `Cannot write --output_path "${p}": it already exists\n  hint: pass --overwrite or another path`,
      );
    }
  }
}

/** Runs `infer`. */
export async function run(opts: InferOptions): Promise<void> {
  if (opts.task === "text-classification") {
    return await (await import("./infer_classify.ts")).runTextClassification(opts);
  }
  const inputs = await readInputs(opts);
  const hasMask = inputs.some((t) => t.a.includes("[MASK]") || t.b?.includes("[MASK]"));
  const task = opts.task ?? (hasMask ? "fill-mask" : "feature-extraction");
  if (task !== "fill-mask" && opts.topK !== undefined) {
    throw new UsageError(
      `--top_k has no effect with --task ${task}\n  hint: drop --top_k (it counts fill-mask predictions)`,
    );
  }
  await checkOutput(opts, task);
  const warn = opts.quiet ? undefined : (l: string) => console.error(l);
  const model = await loadModel(opts.modelPath, {
    configPath: opts.configPath,
    log: warn,
    progress: opts.quiet ? undefined : ttyProgress(),
    int8: opts.dtype === "q8", // a q8-only ONNX folder: its own int8 weights, quantized again the same
  });
  requireTask(model, task, opts.modelPath);
  const tok = await modelTokenizer(model.path, opts.vocabPath);
  const tokenizer = new BertTokenizer(tok.vocab, {
    mode: "hf",
    doLowerCase: tok.doLowerCase,
    maxInputCharsPerWord: tok.maxInputCharsPerWord,
  });
  const pipe = AlbertPipeline.create(model, tokenizer, {
    device: opts.device,
    dtype: opts.dtype,
    log: opts.quiet ? () => {} : (l) => console.error(l),
  });
  // Many texts: sorted by length into batches (results in input order), a progress line on a terminal.
  const progress = opts.quiet || inputs.length <= opts.batchSize ? undefined : progressBar("texts");
  const batch = { batchSize: opts.batchSize, seqLength: opts.seqLength, warn, progress };
  try {
    await runTask();
    warn?.(semanticsLine(model)); // after the results: errors stay one line + hint
  } finally {
    await pipe.release();
  }

  async function runTask(): Promise<void> {
    if (task === "fill-mask") {
      const results = await pipe.fillMask(inputs, opts.topK ?? 5, batch);
      if (opts.outputPath) {
        // One JSON line per input line: its predictions (one list per [MASK] when it has several).
        const lines = results.map((r) => JSON.stringify(r.length === 1 ? r[0] : r) + "\n");
        await writeFileAtomic(opts.outputPath, lines.join(""));
        if (opts.json) console.log(JSON.stringify({ output_path: opts.outputPath, texts: results.length }));
        else if (!opts.quiet) console.log(`wrote predictions for ${results.length} texts to "${opts.outputPath}"`);
        return;
      }
      if (opts.json) console.log(JSON.stringify(fillMaskJson(results)));
      else printFillMask(inputs, results);
      return;
    }
    const feats = await pipe.features(inputs, batch);
    const H = model.config.hidden_size;
    if (!pipe.hasPooler) warn?.(`note: "${opts.modelPath}" has no pooler: features without pooled_output`);
    if (opts.outputPath) {
      const files = featureFiles(opts.outputPath, {
        lastHiddenStates: feats.map((f) => f.lastHiddenState),
        pooledOutputs: pipe.hasPooler ? feats.map((f) => f.pooledOutput!) : undefined,
        lengths: feats.map((f) => f.length),
        hiddenSize: H,
      });
      for (const [path, bytes] of files) await writeFileAtomic(path, bytes);
      if (!opts.quiet && !opts.json) console.log(`wrote features of ${feats.length} texts to "${opts.outputPath}"`);
      if (opts.json) console.log(JSON.stringify({ output_path: opts.outputPath, texts: feats.length, hidden_size: H }));
      return;
    }
    const rows = feats.map((f) => ({
      last_hidden_state: Array.from(
        { length: f.length },
        (_, t) => Array.from(f.lastHiddenState.subarray(t * H, (t + 1) * H)),
      ),
      ...(f.pooledOutput ? { pooled_output: Array.from(f.pooledOutput) } : {}),
    }));
    if (opts.json) console.log(JSON.stringify(rows.length === 1 ? rows[0] : rows));
    else {
      inputs.forEach((inp, i) => {
        const p = feats[i].pooledOutput;
        const pooled = p ? `; pooled [${Array.from(p.subarray(0, 4), (v) => v.toFixed(4)).join(", ")}, …]` : "";
        console.log(
          `${inp.a}${inp.b === undefined ? "" : `\t${inp.b}`}\n  tokens ${feats[i].length}, hidden ${H}${pooled}`,
        );
      });
    }
  }
}
