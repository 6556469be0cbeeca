/**
 * `preprocess` for ALBERT: checks the flags and the corpus, splits the corpus into UER-py's line
 * ranges (`count_lines` / processes_num, `Dataset.build_and_save` in `uer/utils/dataset.py`), runs
 * UER-py's worker on each range and assembles the zarr dataset in a temporary sibling folder that is
 * renamed to `--dataset_path` only when every part is written, so a killed run leaves nothing under
 * the final name. The ranges (and so the instances) are UER-py's whatever runs them. They run on
 * this thread and Deno Workers: one thread per 4 MiB of corpus, at most one per range and one per
 * core (a Worker costs ~0.2–0.4 s of CPU to start and warm up). The Workers start first; every
 * thread then scans pieces of the corpus (corpus_scan.ts) and takes ranges, largest first, as it
 * frees up; each range writes its own part. `--shard K/N` processes the K-th of N groups of ranges
 * into a dataset of its own (see dataset_zarr.ts for how shards combine). NOT browser compatible
 * (files, workers).
 * @module
 */

import { exists, writeDirAtomic } from "../io/atomic.ts";
import type { PreprocessOptions } from "../flags/mod.ts";
import { UsageError } from "../errors.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { BertTokenizer, type Vocab, vocabHash } from "../tokenizer/mod.ts";
import { bmpClassTable } from "../tokenizer/char_class.ts";
import { combineScans, type CorpusScan, offsetOfLine, type PieceScan, scanPiece, scanPieces } from "./corpus_scan.ts";
import {
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  type DatasetAttributes,
  partLayout,
  writeDatasetAttributes,
} from "./part_writer.ts";
import { numToPredict } from "./masking.ts";
import { CompressingThread } from "./chunk_compressor.ts";
import {
  type RangeJob,
  type RangeResult,
  runRange,
  type WorkerMessage,
  type WorkerRequest,
} from "./preprocess_worker.ts";

/**
 * Preprocess settings: the `preprocess` options that shape the dataset (core/flags/preprocess.ts, where
 * each is declared and checked), plus knobs the tests use to force a thread layout.
 */
export type PreprocessConfig =
  & Pick<
    PreprocessOptions,
    | "corpusPath"
    | "datasetPath"
    | "vocabPath"
    | "doLowerCase"
    | "processesNum"
    | "seqLength"
    | "dupFactor"
    | "shortSeqProb"
    | "seed"
    | "dynamicMasking"
    | "wholeWordMasking"
    | "spanMasking"
    | "spanGeoProb"
    | "spanMaxLength"
    | "overwrite"
    | "shard"
    | "encodingErrors"
  >
  & {
    /** Run every group of ranges on a Deno Worker, none in this thread (tests). */
    forceWorkers?: boolean;
    /** Threads to spread the ranges over, instead of one per 4 MiB of corpus (tests). */
    threads?: number;
    /** Bytes per corpus scan piece, instead of SCAN_PIECE_BYTES (tests). */
    scanPieceBytes?: number;
    /** Largest range (bytes) whose token ids are kept between passes, instead of `tokenCacheLimit` (tests). */
    tokenCacheBytes?: number;
    /** Compressing threads, instead of one per tokenizing thread while cores are spare (tests, benches). */
    compressingThreads?: number;
  };

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
  /** Where the time went, in seconds from the start: the scan's end, then each range's run. */
  timeline: {
    threads: number;
    scanned: number;
    /** Per range (part order): the thread that ran it (0 = the calling thread) and when. */
    ranges: { thread: number; start: number; end: number }[];
  };
}

/**
 * Corpus bytes × dup_factor per tokenizing thread from which it gets a compressing thread (where a core
 * is spare): zstd then takes ~40 ms of the ~0.3 s such a thread works (seq 512), more than starting
 * a Worker costs it.
 */
export const MIN_BYTES_FOR_COMPRESSING_THREAD = 8 << 20;

/** Corpus bytes per preprocessing thread (see `threadCount`). */
export const MIN_BYTES_PER_THREAD = 4 << 20;

/**
 * Corpus bytes a range may have and still keep its token ids in memory between the dup_factor passes
 * (instead of reading and tokenizing again, as UER-py does every pass): half the available memory
 * shared by the threads, at about 1.6 bytes of ids per corpus byte; at least 64 MiB.
 */
export function tokenCacheLimit(threads: number, available = availableMemory()): number {
  return Math.max(64 << 20, Math.floor(available / 2 / threads / 1.6));
}

function availableMemory(): number {
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return 0; // unknown: the 64 MiB floor
  }
}

/** Parses `--shard K/N` (0 ≤ K < N). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const k = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || !(n >= 1) || !(k >= 0 && k < n)) {
    throw new UsageError(
      `Invalid --shard "${text}": expected K/N with 0 <= K < N\n  hint: --shard 0/4 is the first of 4 shards`,
    );
  }
  return { index: k, count: n };
}

/** UER-py's worker ranges: `[i * lines // n, (i + 1) * lines // n)`. */
export function lineRanges(lines: number, n: number): [number, number][] {
  return Array.from({ length: n }, (_, i) => [Math.floor(i * lines / n), Math.floor((i + 1) * lines / n)]);
}

/** The corpus's size, or a one-line error naming it (missing, a directory). */
async function corpusSize(path: string): Promise<number> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot read corpus "${path}": file not found\n  hint: pass --corpus_path with an existing text file`,
      );
    }
    throw e;
  }
  if (st.isDirectory) throw new TypeError(`Cannot read corpus "${path}": is a directory`);
  return st.size;
}

/**
 * Scans the corpus in pieces handed to whichever thread is free: this one and the pool's workers
 * (each takes pieces once it has started), so the scan runs on every thread and overlaps worker
 * start-up.
 */
async function scanCorpus(path: string, bytes: number, pool: WorkerPool, pieceBytes?: number): Promise<CorpusScan> {
  const pieces = scanPieces(bytes, pieceBytes);
  const scans: PieceScan[] = new Array(pieces.length);
  await shareOut(
    pieces.map((_, i) => i),
    pool.workers.length,
    async (w, i) => void (scans[i] = await pool.scan(w, path, pieces[i][0], pieces[i][1])),
    async (i) => void (scans[i] = await scanPiece(path, pieces[i][0], pieces[i][1])),
  );
  return combineScans(scans);
}

/**
 * Hands the items of `order` out one at a time to whichever thread is free: worker `w` through
 * `remote(w, i)`, this thread through `local(i)` when given.
 */
async function shareOut(
  order: number[],
  workers: number,
  remote: (w: number, i: number) => Promise<void>,
  local?: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const take = () => next < order.length ? order[next++] : -1;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = take(); i >= 0; i = take()) await remote(w, i);
  });
  // Rejections are awaited below; keep an early one from being reported as unhandled meanwhile.
  for (const l of loops) l.catch(() => {});
  if (local) { for (let i = take(); i >= 0; i = take()) await local(i); }
  await Promise.all(loops);
}

/** Deno Workers started ahead of their jobs (module load and tokenizer setup overlap the scan). */
class WorkerPool {
  readonly workers: Worker[] = [];

  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      this.workers.push(new Worker(new URL("./preprocess_worker.ts", import.meta.url).href, { type: "module" }));
    }
  }

  /**
   * Sends the vocab so each worker builds its tokenizer before its job arrives; the first
   * `compressing` workers also start a compressing thread.
   */
  init(vocabText: string, vocabPath: string, doLowerCase: boolean, charClasses: Uint8Array, compressing: number): void {
    this.workers.forEach((w, i) => {
      const m: WorkerRequest = {
        type: "init",
        vocabText,
        vocabPath,
        doLowerCase,
        charClasses,
        compressingThread: i < compressing,
      };
      w.postMessage(m);
    });
  }

  /** Runs `job` on worker `i`. */
  run(i: number, job: RangeJob, onLines: (n: number) => void): Promise<RangeResult> {
    return this.#request(i, { type: "job", job }, (m) => {
      if (m.type === "progress") onLines(m.lines);
      return m.type === "done" ? m.result : undefined;
    });
  }

  /** Scans bytes `[from, to)` of the corpus on worker `i`. */
  scan(i: number, path: string, from: number, to: number): Promise<PieceScan> {
    return this.#request(i, { type: "scan", path, from, to }, (m) => m.type === "scanned" ? m.scan : undefined);
  }

  // Sends `request` to worker `i`; `answer` turns each message into the result (or undefined: not yet).
  #request<T>(i: number, request: WorkerRequest, answer: (m: WorkerMessage) => T | undefined): Promise<T> {
    const w = this.workers[i];
    return new Promise<T>((resolve, reject) => {
      w.onmessage = (e: MessageEvent<WorkerMessage>) => {
        const m = e.data;
        if (m.type === "error") {
          const Ctor = m.name === "RangeError" ? RangeError : m.name === "SyntaxError" ? SyntaxError : TypeError;
          reject(new Ctor(m.message));
          return;
        }
        const result = answer(m);
        if (result !== undefined) resolve(result);
      };
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`preprocess worker failed: ${e.message}`));
      };
      w.postMessage(request);
    });
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
  }
}

/**
 * Threads for `processes` ranges over `bytes` of corpus: one per MIN_BYTES_PER_THREAD, at most one per
 * range and one per core.
 */
export function threadCount(processes: number, bytes: number, cores = navigator.hardwareConcurrency || 1): number {
  return Math.max(1, Math.min(processes, cores, Math.ceil(bytes / MIN_BYTES_PER_THREAD)));
}

/** The order threads take the ranges in: the largest (in bytes) first, so the last ones are short. */
export function largestFirst(sizes: number[]): number[] {
  return sizes.map((_, i) => i).sort((a, b) => sizes[b] - sizes[a] || a - b);
}

/**
 * Runs the jobs on this thread (unless `inThread` is false) and the pool's workers, each taking the
 * next job, largest first, when it is free; each job writes its own part, so which thread ran it
 * does not change the dataset. With workers, this thread's jobs yield to the event loop about every
 * 100 ms so worker messages flow.
 */
async function runJobs(
  jobs: RangeJob[],
  inThread: boolean,
  vocab: Vocab,
  doLowerCase: boolean,
  pool: WorkerPool,
  sink: CompressingThread | null,
  onLines: (n: number) => void,
  clock: () => number,
): Promise<{ results: RangeResult[]; ranges: PreprocessSummary["timeline"]["ranges"] }> {
  const results: RangeResult[] = new Array(jobs.length);
  const ranges: PreprocessSummary["timeline"]["ranges"] = new Array(jobs.length);
  const tokenizer = inThread ? new BertTokenizer(vocab, { mode: "uer", doLowerCase }) : null;
  // Messages from workers and the compressing thread (chunks written) need the event loop.
  const yieldToEvents = pool.workers.length > 0 || sink !== null;
  await shareOut(
    largestFirst(jobs.map((j) => j.byteEnd - j.byteStart)),
    pool.workers.length,
    async (w, j) => {
      const start = clock();
      results[j] = await pool.run(w, jobs[j], onLines);
      ranges[j] = { thread: w + 1, start, end: clock() };
    },
    tokenizer
      ? async (j) => {
        const start = clock();
        results[j] = await runRange({ ...jobs[j], vocab, tokenizer, sink: sink ?? undefined }, onLines, yieldToEvents);
        ranges[j] = { thread: 0, start, end: clock() };
      }
      : undefined,
  );
  return { results, ranges };
}

/**
 * Builds the ALBERT dataset described by `cfg` (UER-py `preprocess.py --data_processor albert`).
 *
 * @example
 * ```ts
 * const cfg = await parseOptions("preprocess", ["--corpus_path", "c.txt", "--vocab_path", "v.txt", "--target", "albert"]);
 * await preprocessCorpus(cfg);
 * ```
 */
export async function preprocessCorpus(
  cfg: PreprocessConfig,
  onProgress?: (p: PreprocessProgress) => void,
): Promise<PreprocessSummary> {
  const t0 = performance.now();
  const shard = cfg.shard ? parseShard(cfg.shard) : null;
  if (!cfg.overwrite && (await exists(cfg.datasetPath))) {
    throw new TypeError(
      `Cannot write dataset "${cfg.datasetPath}": it already exists\n  hint: pass --overwrite or another --dataset_path`,
    );
  }
  // One thread per MIN_BYTES_PER_THREAD of corpus, range and core; this one too unless forceWorkers.
  // The workers start now, so their start-up overlaps the vocab parse and the first scan pieces.
  const bytes = await corpusSize(cfg.corpusPath);
  const threads = Math.min(cfg.processesNum, cfg.threads ?? threadCount(cfg.processesNum, bytes / (shard?.count ?? 1)));
  const inThread = !cfg.forceWorkers;
  const pool = new WorkerPool(threads - (inThread ? 1 : 0));
  // A compressing thread per tokenizing thread while cores are spare (this thread's first, started
  // now so that its start-up overlaps the scan): zstd then overlaps tokenizing. Not for small runs,
  // where starting a thread costs this one more than the compression it would take over.
  const cores = navigator.hardwareConcurrency || 1;
  const big = (bytes / threads) * cfg.dupFactor >= MIN_BYTES_FOR_COMPRESSING_THREAD;
  const compressing = Math.min(threads, cfg.compressingThreads ?? (big ? Math.max(0, cores - threads) : 0));
  const sink = inThread && compressing > 0 ? new CompressingThread() : null;
  try {
    return await build({ cfg, shard, bytes, inThread, pool, sink, compressing, t0, onProgress });
  } finally {
    pool.terminate();
    sink?.close();
  }
}

/** One run of `preprocessCorpus`: its settings and the threads it has. */
interface Build {
  cfg: PreprocessConfig;
  shard: { index: number; count: number } | null;
  /** Corpus size in bytes. */
  bytes: number;
  /** Whether this thread runs ranges too. */
  inThread: boolean;
  pool: WorkerPool;
  /** This thread's compressing thread, if any. */
  sink: CompressingThread | null;
  /** Compressing threads in all (this thread's included). */
  compressing: number;
  /** `performance.now()` at the start. */
  t0: number;
  onProgress?: (p: PreprocessProgress) => void;
}

async function build(
  { cfg, shard, bytes, inThread, pool, sink, compressing, t0, onProgress }: Build,
): Promise<PreprocessSummary> {
  const vocabPath = cfg.vocabPath;
  // Workers get the vocab text and the character table first, so their tokenizers are built while
  // this thread parses the vocab and scans the corpus (readVocabFile reports a bad vocab file).
  if (pool.workers.length > 0) {
    const vocabText = await Deno.readTextFile(vocabPath).catch(() => null);
    if (vocabText !== null) {
      pool.init(vocabText, vocabPath, cfg.doLowerCase, bmpClassTable(), compressing - (sink ? 1 : 0));
    }
  }
  const vocab = await readVocabFile(vocabPath, "uer");
  const scan = await scanCorpus(cfg.corpusPath, bytes, pool, cfg.scanPieceBytes);
  const clock = () => (performance.now() - t0) / 1000;
  const scanned = clock();
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
  const workersTotal = cfg.processesNum * (shard ? shard.count : 1);
  const ranges = lineRanges(scan.newlines, workersTotal);
  const mine = shard ? ranges.slice(shard.index * cfg.processesNum, (shard.index + 1) * cfg.processesNum) : ranges;
  const layout = partLayout(cfg.seqLength, vocab.size, !cfg.dynamicMasking);

  let summary: PreprocessSummary | undefined;
  // The dataset is assembled in a temporary sibling folder and renamed into place when complete.
  await writeDirAtomic(cfg.datasetPath, async (tmp) => {
    await Deno.mkdir(`${tmp}/parts`, { recursive: true });
    const jobs: RangeJob[] = [];
    const cacheMaxBytes = cfg.tokenCacheBytes ?? tokenCacheLimit(pool.workers.length + (inThread ? 1 : 0));
    const starts = await Promise.all(mine.map(([start]) => offsetOfLine(cfg.corpusPath, scan, start)));
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
        dupFactor: cfg.dupFactor,
        encodingErrors: cfg.encodingErrors,
        layout,
        cacheMaxBytes,
      });
    }
    const totalLines = jobs.reduce((s, j) => s + Math.max(j.lineEnd, j.lineStart + 1) - j.lineStart, 0) *
      cfg.dupFactor;
    let done = 0;
    const { results, ranges } = await runJobs(jobs, inThread, vocab, cfg.doLowerCase, pool, sink, (n) => {
      done += n;
      onProgress?.({ lines: done, totalLines });
    }, clock);
    const count = results.reduce((s, r) => s + r.count, 0);
    if (count === 0) {
      throw new TypeError(
        `Cannot preprocess "${cfg.corpusPath}": its ${scan.newlines} lines gave no instance` +
          ` (a document needs a line with at least one token)` +
          `\n  hint: check the corpus: one sentence per line, documents separated by blank lines`,
      );
    }
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
      dup_factor: cfg.dupFactor,
      short_seq_prob: cfg.shortSeqProb,
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
    await writeDatasetAttributes(tmp, attrs); // and the parts group
    summary = {
      datasetPath: cfg.datasetPath,
      count,
      parts: jobs.length,
      corpusLines: scan.newlines,
      replacedLines: replaced,
      seconds: 0,
      timeline: { threads: pool.workers.length + (inThread ? 1 : 0), scanned, ranges },
    };
  }, { overwrite: cfg.overwrite });
  return { ...summary!, seconds: clock() };
}
