/**
 * `infer` subcommand: HF pipelines `fill-mask` / `feature-extraction` (UER-py `scripts/cloze_test.py`,
 * `scripts/extract_features.py`; `text-classification` is cli/infer_classify.ts) on an HF folder, a UER `.bin` (+ `--config_path`) or a zarr
 * checkpoint. flags → loadModel + vocab → `AlbertPipeline` → JSON / a readable table / a
 * `.safetensors` or `.npy` file. Tokenizes in hf mode (special tokens in the text are tokens).
 * @module
 */
import type { InferOptions } from "../core/flags/mod.ts";
import { loadModel } from "../convert/mod.ts";
import { writeSafetensors } from "../convert/safetensors.ts";
import { exists, writeFileAtomic } from "../core/io/atomic.ts";
import { UsageError } from "../core/errors.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { AlbertPipeline, type FillMaskPrediction, type TextInput } from "../core/model/pipeline.ts";
import type { Tensor } from "../core/tensor.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";

function dirOf(path: string): string {
  const p = path.replace(/\/+$/, "");
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : p.slice(0, i) || "/";
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** Reads `--text` and `--test_path` lines (`text_a<TAB>text_b` for pairs). */
async function readInputs(opts: InferOptions): Promise<TextInput[]> {
  const lines = [...opts.text];
  if (opts.testPath) {
    let text: string;
    try {
      text = await Deno.readTextFile(opts.testPath);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(`Cannot read --test_path "${opts.testPath}": no such file`);
      }
      throw e;
    }
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

/** A .npy (v1.0) file of a float32 array. */
export function encodeNpy(t: Tensor): Uint8Array {
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const bytes = new Uint8Array(10 + header.length + t.data.byteLength);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  bytes.set(new TextEncoder().encode(header), 10);
  bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), 10 + header.length);
  return bytes;
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
const OUTPUT_FORMATS = { "fill-mask": [".jsonl"], "feature-extraction": [".safetensors", ".npy"] } as const;

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
  if (!opts.overwrite && (await exists(path))) {
    throw new TypeError(
      `Cannot write --output_path "${path}": it already exists\n  hint: pass --overwrite or another path`,
    );
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
  const model = await loadModel(opts.modelPath, { configPath: opts.configPath });
  const vocabPath = opts.vocabPath ?? model.vocabPath ??
    `${(await isDir(opts.modelPath)) ? opts.modelPath.replace(/\/+$/, "") : dirOf(opts.modelPath)}/vocab.txt`;
  const vocab = await readVocabFile(vocabPath, "hf");
  const tokenizer = new BertTokenizer(vocab, { mode: "hf" });
  const warn = opts.quiet ? undefined : (l: string) => console.error(l);
  const pipe = AlbertPipeline.create(model, tokenizer, {
    device: opts.device,
    log: opts.quiet ? () => {} : (l) => console.error(l),
  });
  const batch = { batchSize: opts.batchSize, seqLength: opts.seqLength, warn };
  try {
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
    if (opts.outputPath) {
      const L = Math.max(...feats.map((f) => f.length));
      const hidden = new Float32Array(feats.length * L * H);
      feats.forEach((f, i) => hidden.set(f.lastHiddenState, i * L * H));
      const pooled = new Float32Array(feats.length * H);
      feats.forEach((f, i) => pooled.set(f.pooledOutput, i * H));
      const last: Tensor = { dtype: "F32", shape: [feats.length, L, H], data: hidden };
      let bytes: Uint8Array;
      if (opts.outputPath.endsWith(".npy")) {
        bytes = encodeNpy(last);
      } else {
        bytes = writeSafetensors(
          new Map<string, Tensor>([
            ["last_hidden_state", last],
            ["pooled_output", { dtype: "F32", shape: [feats.length, H], data: pooled }],
            ["lengths", {
              dtype: "I64",
              shape: [feats.length],
              data: BigInt64Array.from(feats, (f) => BigInt(f.length)),
            }],
          ]),
          { format: "pt", note: "uer-ts infer feature-extraction; rows zero-padded beyond lengths" },
        );
      }
      await writeFileAtomic(opts.outputPath, bytes);
      if (!opts.quiet && !opts.json) console.log(`wrote features of ${feats.length} texts to "${opts.outputPath}"`);
      if (opts.json) console.log(JSON.stringify({ output_path: opts.outputPath, texts: feats.length, hidden_size: H }));
      return;
    }
    const rows = feats.map((f) => ({
      last_hidden_state: Array.from(
        { length: f.length },
        (_, t) => Array.from(f.lastHiddenState.subarray(t * H, (t + 1) * H)),
      ),
      pooled_output: Array.from(f.pooledOutput),
    }));
    if (opts.json) console.log(JSON.stringify(rows.length === 1 ? rows[0] : rows));
    else {
      inputs.forEach((inp, i) => {
        const p = feats[i].pooledOutput;
        console.log(
          `${inp.a}${inp.b === undefined ? "" : `\t${inp.b}`}\n  tokens ${feats[i].length}, hidden ${H}; pooled [${
            Array.from(p.subarray(0, 4), (v) => v.toFixed(4)).join(", ")
          }, …]`,
        );
      });
    }
  } finally {
    await pipe.release();
  }
}
