/**
 * `preprocess` for ALBERT: checks the flags and the corpus, splits the corpus into UER-py's line
 * ranges (`count_lines` / processes_num, `Dataset.build_and_save` in `uer/utils/dataset.py`), runs
 * UER-py's worker on each range and assembles the zarr dataset in a temporary sibling folder that is
 * renamed to `--dataset_path` only when every part is written, so a killed run leaves nothing under
 * the final name. The ranges (and so the instances) are UER-py's whatever runs them: they are grouped
 * onto one thread per 4 MiB of corpus, at most one per range (a Worker costs ~0.2 s of CPU to start
 * and warm up); the first group runs in this thread, each other one on a Deno Worker started before
 * the corpus is scanned, and a thread runs its ranges one after the other. `--shard K/N` processes
 * the K-th of N groups of ranges into a dataset of its own (see dataset_zarr.ts for how shards
 * combine). NOT browser compatible (files, workers).
 * @module
 */

import { exists, tempSibling } from "../io/atomic.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { BertTokenizer, type Vocab, vocabHash } from "../tokenizer/mod.ts";
import { bmpClassTable } from "../tokenizer/char_class.ts";
import { LINE_INDEX_STRIDE, LineScanner } from "./corpus_lines.ts";
import {
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  type DatasetAttributes,
  partLayout,
  writeDatasetAttributes,
} from "./part_writer.ts";
import { numToPredict } from "./masking.ts";
import {
  type RangeJob,
  type RangeResult,
  runRange,
  type WorkerMessage,
  type WorkerRequest,
} from "./preprocess_worker.ts";

/** Preprocess settings (UER-py's flags, camelCase; see cli/flags.ts). */
export interface PreprocessConfig {
  corpusPath: string;
  datasetPath: string;
  vocabPath?: string;
  doLowerCase: boolean;
  processesNum: number;
  dataProcessor: string;
  docsBufferSize: number;
  seqLength: number;
  dupFactor: number;
  shortSeqProb: number;
  seed: number;
  dynamicMasking: boolean;
  wholeWordMasking: boolean;
  spanMasking: boolean;
  spanGeoProb: number;
  spanMaxLength: number;
  overwrite: boolean;
  /** `K/N` with 0 ≤ K < N. */
  shard?: string;
  encodingErrors: "strict" | "replace";
  /** Run every group of ranges on a Deno Worker, none in this thread (tests). */
  forceWorkers?: boolean;
  /** Threads to spread the ranges over, instead of one per 4 MiB of corpus (tests). */
  threads?: number;
}

/** Progress of a run: lines processed over all passes and workers. */
export interface PreprocessProgress {
  lines: number;
  totalLines: number;
}

/** What a finished run reports. */
export interface PreprocessSummary {
  datasetPath: string;
  count: number;
  parts: number;
  corpusLines: number;
  replacedLines: number;
  seconds: number;
}

const SCAN_BYTES = 1 << 22;
/** Corpus bytes per preprocessing thread (see `threadCount`). */
export const MIN_BYTES_PER_THREAD = 4 << 20;

/** Parses `--shard K/N` (0 ≤ K < N). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const k = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || !(n >= 1) || !(k >= 0 && k < n)) {
    throw new RangeError(
      `Invalid --shard "${text}": expected K/N with 0 <= K < N\n  hint: --shard 0/4 is the first of 4 shards`,
    );
  }
  return { index: k, count: n };
}

/** UER-py's worker ranges: `[i * lines // n, (i + 1) * lines // n)`. */
export function lineRanges(lines: number, n: number): [number, number][] {
  return Array.from({ length: n }, (_, i) => [Math.floor(i * lines / n), Math.floor((i + 1) * lines / n)]);
}

function checkConfig(c: PreprocessConfig): void {
  const dp = c.dataProcessor;
  if (dp !== "albert") {
    throw new RangeError(
      `Cannot preprocess with --data_processor ${dp}: only albert is built` +
        `\n  hint: pass --data_processor albert (or the model card's --target albert)`,
    );
  }
  const intFlag = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`Invalid --${name} ${v}: must be an integer >= ${min}`);
  };
  if (!(Number.isInteger(c.seqLength) && c.seqLength >= 4)) {
    throw new RangeError(
      `Invalid --seq_length ${c.seqLength}: must be at least 4 ([CLS] A [SEP] B [SEP] needs 3 special tokens)`,
    );
  }
  intFlag("processes_num", c.processesNum, 1);
  intFlag("dup_factor", c.dupFactor, 1);
  intFlag("seed", c.seed, 0);
  if (!(c.shortSeqProb >= 0 && c.shortSeqProb <= 1)) {
    throw new RangeError(`Invalid --short_seq_prob ${c.shortSeqProb}: must be in [0, 1]`);
  }
  if (c.spanMasking) {
    intFlag("span_max_length", c.spanMaxLength, 1);
    if (!(c.spanGeoProb > 0 && c.spanGeoProb <= 1)) {
      throw new RangeError(`Invalid --span_geo_prob ${c.spanGeoProb}: must be in (0, 1]`);
    }
  }
  if (!c.vocabPath) {
    throw new TypeError(
      `Cannot preprocess "${c.corpusPath}": --vocab_path is required\n  hint: pass --vocab_path models/google_zh_vocab.txt`,
    );
  }
}

/** Counts lines as `count_lines` does and indexes where universal-newline lines start. */
async function scanCorpus(path: string): Promise<{ bytes: number; newlines: number; scanner: LineScanner }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot read corpus "${path}": file not found\n  hint: pass --corpus_path with an existing text file`,
      );
    }
    throw e;
  }
  const scanner = new LineScanner();
  try {
    const st = await file.stat();
    if (st.isDirectory) throw new TypeError(`Cannot read corpus "${path}": is a directory`);
    const buf = new Uint8Array(SCAN_BYTES);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      scanner.push(buf.subarray(0, n));
    }
    scanner.end();
  } finally {
    file.close();
  }
  return { bytes: scanner.bytes, newlines: scanner.newlines, scanner };
}

/** Byte offset where universal-newline line `k` starts (from the scanner's sparse index). */
async function offsetOfLine(path: string, index: number[], k: number, bytes: number): Promise<number> {
  const j = Math.min(Math.floor(k / LINE_INDEX_STRIDE), index.length - 1);
  const from = index[j];
  const want = k - j * LINE_INDEX_STRIDE;
  if (want === 0) return from;
  const s = new LineScanner();
  s.stopAtLine = want;
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(from, Deno.SeekMode.Start);
    const buf = new Uint8Array(SCAN_BYTES);
    let base = from;
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      const at = s.push(buf.subarray(0, n));
      if (at >= 0) return base + at;
      base += n;
    }
    s.end();
    return bytes; // past the last line: reads hit EOF (blank lines)
  } finally {
    file.close();
  }
}

/** Deno Workers started ahead of their jobs (module load and tokenizer setup overlap the scan). */
class WorkerPool {
  readonly workers: Worker[] = [];

  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      this.workers.push(new Worker(new URL("./preprocess_worker.ts", import.meta.url).href, { type: "module" }));
    }
  }

  /** Sends the vocab so each worker builds its tokenizer before its job arrives. */
  init(vocabText: string, vocabPath: string, doLowerCase: boolean, charClasses: Uint8Array): void {
    const m: WorkerRequest = { type: "init", vocabText, vocabPath, doLowerCase, charClasses };
    for (const w of this.workers) w.postMessage(m);
  }

  /** Runs `job` on worker `i`. */
  run(i: number, job: RangeJob, onLines: (n: number) => void): Promise<RangeResult> {
    const w = this.workers[i];
    return new Promise<RangeResult>((resolve, reject) => {
      w.onmessage = (e: MessageEvent<WorkerMessage>) => {
        const m = e.data;
        if (m.type === "progress") onLines(m.lines);
        else if (m.type === "done") resolve(m.result);
        else {
          const Ctor = m.name === "RangeError" ? RangeError : m.name === "SyntaxError" ? SyntaxError : TypeError;
          reject(new Ctor(m.message));
        }
      };
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`preprocess worker failed: ${e.message}`));
      };
      w.postMessage({ type: "job", job } satisfies WorkerRequest);
    });
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
  }
}

/**
 * Splits `n` ranges into `threads` groups of consecutive ranges (sizes differ by at most one).
 * Exported for tests.
 */
export function rangeGroups(n: number, threads: number): number[][] {
  return lineRanges(n, threads).map(([from, to]) => Array.from({ length: to - from }, (_, k) => from + k));
}

/** Threads for `processes` ranges over `bytes` of corpus: one per MIN_BYTES_PER_THREAD, at most one per range. */
export function threadCount(processes: number, bytes: number): number {
  return Math.max(1, Math.min(processes, Math.ceil(bytes / MIN_BYTES_PER_THREAD)));
}

/**
 * Runs the jobs group by group: with `inThread` 1 the first group in this thread, each other group on
 * its own worker; a thread runs its group's ranges one after the other. With workers, this thread's
 * jobs yield to the event loop about every 100 ms so worker progress flows.
 */
async function runJobs(
  jobs: RangeJob[],
  groups: number[][],
  inThread: number,
  vocab: Vocab,
  doLowerCase: boolean,
  pool: WorkerPool,
  onLines: (n: number) => void,
): Promise<RangeResult[]> {
  const results: RangeResult[] = new Array(jobs.length);
  const remote = groups.slice(inThread).map(async (group, w) => {
    for (const j of group) results[j] = await pool.run(w, jobs[j], onLines);
  });
  // Rejections are awaited below; keep an early one from being reported as unhandled meanwhile.
  for (const r of remote) r.catch(() => {});
  if (inThread) {
    const tokenizer = new BertTokenizer(vocab, { mode: "uer", doLowerCase });
    for (const j of groups[0]) {
      results[j] = await runRange({ ...jobs[j], vocab, tokenizer }, onLines, remote.length > 0);
    }
  }
  await Promise.all(remote);
  return results;
}

/**
 * Builds the ALBERT dataset described by `cfg` (UER-py `preprocess.py --data_processor albert`).
 *
 * @example
 * ```ts
 * await preprocessCorpus({ corpusPath: "corpus.txt", datasetPath: "dataset", vocabPath: "vocab.txt", ... });
 * ```
 */
export async function preprocessCorpus(
  cfg: PreprocessConfig,
  onProgress?: (p: PreprocessProgress) => void,
): Promise<PreprocessSummary> {
  const t0 = performance.now();
  checkConfig(cfg);
  const shard = cfg.shard ? parseShard(cfg.shard) : null;
  if (!cfg.overwrite && (await exists(cfg.datasetPath))) {
    throw new TypeError(
      `Cannot write dataset "${cfg.datasetPath}": it already exists\n  hint: pass --overwrite or another --dataset_path`,
    );
  }
  const vocabPath = cfg.vocabPath!;
  // The ranges run on one thread per MIN_BYTES_PER_THREAD of corpus (a Worker costs ~0.2 s of CPU to
  // start and warm up), the first group in this thread unless forceWorkers.
  // Start the workers now, so their start-up overlaps the vocab parse and the corpus scan.
  const bytes = await Deno.stat(cfg.corpusPath).then((st) => st.size, () => 0);
  const threads = Math.min(cfg.processesNum, cfg.threads ?? threadCount(cfg.processesNum, bytes / (shard?.count ?? 1)));
  const inThread = cfg.forceWorkers ? 0 : 1;
  const pool = new WorkerPool(threads - inThread);
  try {
    return await build(cfg, shard, vocabPath, rangeGroups(cfg.processesNum, threads), inThread, pool, t0, onProgress);
  } finally {
    pool.terminate();
  }
}

async function build(
  cfg: PreprocessConfig,
  shard: { index: number; count: number } | null,
  vocabPath: string,
  groups: number[][],
  inThread: number,
  pool: WorkerPool,
  t0: number,
  onProgress?: (p: PreprocessProgress) => void,
): Promise<PreprocessSummary> {
  // Workers get the vocab text and the character table first, so their tokenizers are built while
  // this thread parses the vocab and scans the corpus (readVocabFile reports a bad vocab file).
  if (pool.workers.length > 0) {
    const vocabText = await Deno.readTextFile(vocabPath).catch(() => null);
    if (vocabText !== null) pool.init(vocabText, vocabPath, cfg.doLowerCase, bmpClassTable());
  }
  const vocab = await readVocabFile(vocabPath, "uer");
  const scan = await scanCorpus(cfg.corpusPath);
  if (scan.bytes === 0) {
    throw new TypeError(
      `Cannot read corpus "${cfg.corpusPath}": file is empty\n  hint: pass a text corpus, one sentence per line`,
    );
  }
  if (scan.newlines === 0) {
    throw new TypeError(
      `Cannot read corpus "${cfg.corpusPath}": no complete line (UER-py reads only lines ending in a newline)` +
        `\n  hint: end the last line with a newline`,
    );
  }
  // NOTE: UER-py forces dup_factor 1 with dynamic masking (preprocess.py).
  const dupFactor = cfg.dynamicMasking ? 1 : cfg.dupFactor;
  const workersTotal = cfg.processesNum * (shard ? shard.count : 1);
  const ranges = lineRanges(scan.newlines, workersTotal);
  const mine = shard ? ranges.slice(shard.index * cfg.processesNum, (shard.index + 1) * cfg.processesNum) : ranges;
  const layout = partLayout(cfg.seqLength, vocab.size, !cfg.dynamicMasking);

  const tmp = tempSibling(cfg.datasetPath);
  await Deno.mkdir(`${tmp}/parts`, { recursive: true });
  try {
    const jobs: RangeJob[] = [];
    const starts: number[] = [];
    for (const [start] of mine) starts.push(await offsetOfLine(cfg.corpusPath, scan.scanner.index, start, scan.bytes));
    for (let i = 0; i < mine.length; i++) {
      const [start, end] = mine[i];
      jobs.push({
        corpusPath: cfg.corpusPath,
        byteStart: starts[i],
        byteEnd: i + 1 < mine.length ? starts[i + 1] : scan.bytes,
        lineStart: start,
        lineEnd: end,
        partDir: `${tmp}/parts/${i}`,
        vocabPath,
        doLowerCase: cfg.doLowerCase,
        options: {
          seqLength: cfg.seqLength,
          shortSeqProb: cfg.shortSeqProb,
          dynamicMasking: cfg.dynamicMasking,
          wholeWordMasking: cfg.wholeWordMasking,
          spanMasking: cfg.spanMasking,
          spanGeoProb: cfg.spanGeoProb,
          spanMaxLength: cfg.spanMaxLength,
        },
        seed: cfg.seed,
        dupFactor,
        encodingErrors: cfg.encodingErrors,
        layout,
      });
    }
    const totalLines = jobs.reduce((s, j) => s + Math.max(j.lineEnd, j.lineStart + 1) - j.lineStart, 0) * dupFactor;
    let done = 0;
    const results = await runJobs(jobs, groups, inThread, vocab, cfg.doLowerCase, pool, (n) => {
      done += n;
      onProgress?.({ lines: done, totalLines });
    });
    const count = results.reduce((s, r) => s + r.count, 0);
    const replaced = results.reduce((s, r) => s + r.replacedLines, 0);
    const attrs: DatasetAttributes = {
      format: DATASET_FORMAT,
      format_version: DATASET_FORMAT_VERSION,
      data_processor: "albert",
      tokenizer: "bert",
      do_lower_case: cfg.doLowerCase,
      vocab_hash: await vocabHash(vocab),
      vocab_size: vocab.size,
      special_ids: { pad: vocab.padId, unk: vocab.unkId, cls: vocab.clsId, sep: vocab.sepId, mask: vocab.maskId },
      seq_length: cfg.seqLength,
      seed: cfg.seed,
      dup_factor: dupFactor,
      short_seq_prob: cfg.shortSeqProb,
      docs_buffer_size: cfg.docsBufferSize,
      dynamic_masking: cfg.dynamicMasking,
      whole_word_masking: cfg.wholeWordMasking,
      span_masking: cfg.spanMasking,
      span_geo_prob: cfg.spanGeoProb,
      span_max_length: cfg.spanMaxLength,
      processes_num: cfg.processesNum,
      shard,
      corpus: { name: cfg.corpusPath.split("/").pop()!, bytes: scan.bytes, lines: scan.newlines },
      encoding_errors: cfg.encodingErrors,
      replaced_lines: replaced,
      token_dtype: layout.tokenDtype,
      chunk_rows: layout.chunkRows,
      max_predictions: numToPredict(cfg.seqLength),
      count,
      parts: jobs.map((j, i) => ({ path: `parts/${i}`, count: results[i].count, lines: [j.lineStart, j.lineEnd] })),
    };
    await writeDatasetAttributes(tmp, attrs);
    await Deno.writeTextFile(
      `${tmp}/parts/zarr.json`,
      JSON.stringify({ zarr_format: 3, node_type: "group", attributes: {} }),
    );
    if (cfg.overwrite && (await exists(cfg.datasetPath))) {
      const old = tempSibling(cfg.datasetPath) + ".old";
      await Deno.rename(cfg.datasetPath, old);
      await Deno.rename(tmp, cfg.datasetPath);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(tmp, cfg.datasetPath);
    }
    return {
      datasetPath: cfg.datasetPath,
      count,
      parts: jobs.length,
      corpusLines: scan.newlines,
      replacedLines: replaced,
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
