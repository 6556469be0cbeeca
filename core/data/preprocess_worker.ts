/**
 * One preprocessing worker: reads its line range of the corpus, tokenizes each line (UER-py
 * `BertTokenizer`), builds ALBERT instances and streams them into its own dataset part — UER-py's
 * `AlbertDataset.worker(proc_id, start, end)` (`uer/utils/dataset.py`), re-seeded with the same seed
 * in every worker and reading the range `dup_factor` times. Runs in the calling thread
 * (`runRange`) or as a Deno Worker (this module is the worker's entry: after `init` it answers
 * corpus scan pieces with their scan and `RangeJob`s with progress messages and a result). NOT
 * browser compatible: reads files (Deno), loads jieba (native) for whole-word masking.
 * @module
 */

import { BertTokenizer, Vocab } from "../tokenizer/mod.ts";
import { setBmpClassTable } from "../tokenizer/char_class.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { type AlbertDatasetOptions, AlbertInstanceBuilder, type InstanceRow } from "./albert_dataset.ts";
import { type EncodingErrors, isBlankLine, LineDecoder } from "./corpus_lines.ts";
import { type ChunkSink, DATASET_COMPRESSORS, type PartLayout, PartWriter } from "./part_writer.ts";
import { CompressingThread } from "./chunk_compressor.ts";
import { wholeWordSupport } from "./word_segmenter.ts";
import { PyRandom } from "./py_random.ts";
import { type PieceScan, scanPiece } from "./corpus_scan.ts";

/** Everything a worker needs (structured-cloneable). */
export interface RangeJob {
  corpusPath: string;
  /** Byte offset where line `lineStart` begins. */
  byteStart: number;
  /** Byte offset where the next range begins (or the file size): sizes the token cache. */
  byteEnd: number;
  /** UER-py range `[start, end)`; as UER-py, at least one line is read even when start == end. */
  lineStart: number;
  lineEnd: number;
  partDir: string;
  vocabPath: string;
  doLowerCase: boolean;
  options: Omit<AlbertDatasetOptions, "wholeWord">;
  seed: number;
  dupFactor: number;
  encodingErrors: EncodingErrors;
  layout: PartLayout;
  /** Ranges of up to this many bytes keep their token ids in memory between dup_factor passes. */
  cacheMaxBytes: number;
  /** The parsed vocab, when the job runs in the thread that read it (not sent to workers). */
  vocab?: Vocab;
  /** A tokenizer over `vocab` made ahead of the job (not sent to workers). */
  tokenizer?: BertTokenizer;
  /** Where the part's chunks are compressed and written (not sent to workers; default this thread). */
  sink?: ChunkSink;
}

/** What a worker gets first, before the corpus is scanned: enough to build its tokenizer early. */
export interface WorkerInit {
  type: "init";
  vocabText: string;
  vocabPath: string;
  doLowerCase: boolean;
  /** The main thread's `bmpClassTable()` (a copy; saves rebuilding it). */
  charClasses: Uint8Array;
  /** Start a compressing thread for this worker's parts (a core is spare for it). */
  compressingThread: boolean;
}

/** Messages a worker receives: `init` once, then scans of corpus pieces, then jobs, one at a time. */
export type WorkerRequest =
  | WorkerInit
  | { type: "scan"; path: string; from: number; to: number }
  | { type: "job"; job: RangeJob };

/** What a worker reports back. */
export interface RangeResult {
  count: number;
  replacedLines: number;
}

const READ_BYTES = 1 << 20;

/**
 * Token ids of a range's lines in one growing Int32Array: `[n, ids...]` per line, -1 for a blank line.
 * Sentences handed to the builder are views into it (valid even after it grows: a view keeps its
 * buffer), and the passes after the first replay it instead of reading and tokenizing again.
 */
class TokenCache {
  buf: Int32Array;
  size = 0;

  constructor(initial: number) {
    this.buf = new Int32Array(Math.max(1024, initial));
  }

  /** Appends a line's ids; returns the view of them (null for a blank line). */
  add(ids: Int32Array | null): Int32Array | null {
    const n = ids ? ids.length : 0;
    if (this.size + 1 + n > this.buf.length) {
      const next = new Int32Array(Math.max(Math.ceil(this.buf.length * 1.5), this.size + 1 + n));
      next.set(this.buf.subarray(0, this.size));
      this.buf = next;
    }
    const buf = this.buf;
    if (!ids) {
      buf[this.size++] = -1;
      return null;
    }
    buf[this.size++] = n;
    const at = this.size;
    buf.set(ids, at);
    this.size = at + n;
    return buf.subarray(at, at + n);
  }
}

/** Lines of `[byteStart ...)` in batches, decoded; stops at EOF. */
async function* readLines(job: RangeJob, decoder: LineDecoder): AsyncGenerator<string[]> {
  const file = await Deno.open(job.corpusPath, { read: true });
  try {
    await file.seek(job.byteStart, Deno.SeekMode.Start);
    const buf = new Uint8Array(READ_BYTES);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) {
        const rest = decoder.push(new Uint8Array(0), true);
        if (rest.length) yield rest;
        return;
      }
      const lines = decoder.push(buf.subarray(0, n));
      if (lines.length) yield lines;
    }
  } finally {
    file.close();
  }
}

/**
 * Processes one line range into the part at `job.partDir`; `onProgress(lines)` gets the number of
 * lines processed since the last call (all passes together), about every 100 ms; with
 * `yieldToEvents` the loop then also lets the event loop run (messages from other workers).
 */
export async function runRange(
  job: RangeJob,
  onProgress?: (lines: number) => void,
  yieldToEvents = false,
): Promise<RangeResult> {
  const vocab = job.vocab ?? await readVocabFile(job.vocabPath, "uer");
  const tok = job.tokenizer ?? new BertTokenizer(vocab, { mode: "uer", doLowerCase: job.doLowerCase });
  const wholeWord = job.options.wholeWordMasking ? await wholeWordSupport(tok) : undefined;
  const rng = new PyRandom(job.seed);
  const builder = new AlbertInstanceBuilder(vocab, { ...job.options, wholeWord }, rng);
  const writer = await PartWriter.create(job.partDir, job.layout, DATASET_COMPRESSORS, job.sink);
  const onRow = (row: InstanceRow) => writer.appendRow(row);
  const nLines = Math.max(job.lineEnd, job.lineStart + 1) - job.lineStart;
  let reported = 0;
  let lastReport = performance.now();
  // Reports progress at most every 100 ms; true when the caller should yield to the event loop.
  const progress = (done: number): boolean => {
    const now = performance.now();
    if (now - lastReport < 100) return false;
    onProgress?.(done - reported);
    reported = done;
    lastReport = now;
    return yieldToEvents;
  };
  const pause = () => new Promise((resolve) => setTimeout(resolve, 0));
  // Pass 1 reads and tokenizes the corpus; later passes replay the cached ids when the range is
  // small enough, else read and tokenize again (as UER-py does every pass).
  const bytes = job.byteEnd - job.byteStart;
  const keep = job.dupFactor > 1 && bytes <= job.cacheMaxBytes;
  const cache = keep ? new TokenCache(Math.floor(bytes / 2.5)) : null; // ~1 id per 2.5 bytes of Chinese text
  let replaced = 0;
  for (let pass = 0; pass < job.dupFactor; pass++) {
    let seen = 0;
    if (pass > 0 && cache) {
      const buf = cache.buf;
      let at = 0;
      while (seen < nLines) {
        const n = buf[at++];
        seen++;
        if (n < 0) builder.feed(null, seen === nLines, onRow);
        else {
          builder.feed(buf.subarray(at, at + n), seen === nLines, onRow);
          at += n;
        }
        if ((seen & 63) === 0 && progress(pass * nLines + seen)) await pause();
      }
      continue;
    }
    const decoder = new LineDecoder(job.corpusPath, job.encodingErrors, job.lineStart, job.byteStart === 0);
    for await (const lines of readLines(job, decoder)) {
      const take = Math.min(lines.length, nLines - seen);
      for (let k = 0; k < take; k++) {
        const line = lines[k];
        seen++;
        let view: Int32Array | null = null;
        if (!isBlankLine(line)) {
          const ids = tok.tokenizeToIdView(line);
          view = cache ? cache.add(ids) : ids.slice();
        } else cache?.add(null);
        builder.feed(view, seen === nLines, onRow);
        if ((seen & 63) === 0 && progress(pass * nLines + seen)) await pause();
      }
      if (seen === nLines) break;
    }
    // Past the end of the file Python's readline() returns "" (a blank line).
    while (seen < nLines) {
      seen++;
      cache?.add(null);
      builder.feed(null, seen === nLines, onRow);
    }
    if (pass === 0) replaced = decoder.replacedLines;
  }
  onProgress?.(job.dupFactor * nLines - reported);
  const count = await writer.close();
  return { count, replacedLines: replaced };
}

/** Messages a worker posts. */
export type WorkerMessage =
  | { type: "progress"; lines: number }
  | { type: "done"; result: RangeResult }
  | { type: "scanned"; scan: PieceScan }
  | { type: "error"; name: string; message: string };

// Worker entry: `init` builds the vocab and tokenizer; then pieces of the corpus scan, then jobs.
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  let ready: { vocab: Vocab; tokenizer: BertTokenizer; sink?: ChunkSink } | null = null;
  let failed: unknown = null;
  const fail = (err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    scope.postMessage({ type: "error", name: error.name, message: error.message } satisfies WorkerMessage);
  };
  scope.onmessage = async (e: MessageEvent<WorkerRequest>) => {
    const m = e.data;
    if (m.type === "init") {
      try {
        setBmpClassTable(m.charClasses);
        const vocab = Vocab.parse(m.vocabText, m.vocabPath, "uer");
        ready = {
          vocab,
          tokenizer: new BertTokenizer(vocab, { mode: "uer", doLowerCase: m.doLowerCase }),
          // ends with this worker (terminated by the pool)
          sink: m.compressingThread ? new CompressingThread() : undefined,
        };
      } catch (err) {
        failed = err; // reported when the job comes (the main thread reports the same vocab error)
      }
      return;
    }
    if (m.type === "scan") {
      try {
        scope.postMessage({ type: "scanned", scan: await scanPiece(m.path, m.from, m.to) } satisfies WorkerMessage);
      } catch (err) {
        fail(err);
      }
      return;
    }
    if (failed) return fail(failed);
    try {
      const job = ready ? { ...m.job, vocab: ready.vocab, tokenizer: ready.tokenizer, sink: ready.sink } : m.job;
      const result = await runRange(job, (lines) => scope.postMessage({ type: "progress", lines }));
      scope.postMessage({ type: "done", result } satisfies WorkerMessage);
    } catch (err) {
      fail(err);
    }
  };
}
