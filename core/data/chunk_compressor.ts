/**
 * A compressing thread for dataset part writers (part_writer.ts `ChunkSink`): chunks are transferred
 * to a Deno Worker that compresses them (native zstd) and writes their files, so compression overlaps
 * the tokenizing thread's work where a core is spare. Preprocess starts one per tokenizing thread
 * while cores are spare (preprocess.ts). When the thread falls behind (a busy core), the writer's
 * thread compresses the next chunks itself, so neither waits for the other and memory stays bounded.
 * This module is also the worker's entry. NOT browser compatible (Deno Worker, file writes).
 * @module
 */

import { type CodecSpec, encodeChunk, useNativeCodecs } from "../io/zarr.ts";
import { type ChunkSink, type IntArray, writeHere } from "./part_writer.ts";

/** Raw bytes in flight to the thread above which the writer compresses on its own thread. */
const MAX_IN_FLIGHT_BYTES = 8 << 20;

interface CompressRequest {
  id: number;
  path: string;
  values: IntArray;
  compressors: readonly CodecSpec[];
}

type CompressAnswer = { id: number; error?: string };

/**
 * A `ChunkSink` that compresses and writes on a worker thread, started at construction (its
 * start-up overlaps the caller's); `close()` ends it.
 *
 * @example
 * ```ts
 * const sink = new CompressingThread();
 * const w = await PartWriter.create("ds/parts/0", layout, DATASET_COMPRESSORS, sink);
 * // ... w.appendRow(row) ...
 * await w.close(); // waits for its chunks
 * sink.close();
 * ```
 */
export class CompressingThread implements ChunkSink {
  #worker: Worker;
  #pending = new Map<number, { bytes: number; resolve: () => void; reject: (e: Error) => void }>();
  #inFlight = 0;
  #id = 0;
  #failed: Error | null = null;
  /** Chunks written by the thread / by the caller because the thread was behind. */
  readonly counts = { thread: 0, here: 0 };

  constructor() {
    this.#worker = new Worker(new URL("./chunk_compressor.ts", import.meta.url).href, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<CompressAnswer>) => {
      const p = this.#pending.get(e.data.id);
      if (!p) return;
      this.#pending.delete(e.data.id);
      this.#inFlight -= p.bytes;
      if (e.data.error) p.reject(new Error(e.data.error));
      else p.resolve();
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(new Error(`the compressing thread failed: ${e.message}`));
    };
  }

  write(path: string, values: IntArray, compressors: readonly CodecSpec[]): void | Promise<void> {
    if (this.#failed || this.#inFlight + values.byteLength > MAX_IN_FLIGHT_BYTES) {
      this.counts.here++;
      return writeHere.write(path, values, compressors);
    }
    const id = ++this.#id;
    this.#inFlight += values.byteLength;
    this.counts.thread++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { bytes: values.byteLength, resolve, reject });
      this.#worker.postMessage({ id, path, values, compressors } satisfies CompressRequest, [
        values.buffer as ArrayBuffer,
      ]);
    });
  }

  #fail(err: Error): void {
    this.#failed = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#inFlight = 0;
  }

  /** Ends the thread (chunks still pending fail). */
  close(): void {
    this.#worker.terminate();
    this.#fail(new Error("the compressing thread was closed"));
  }
}

// Worker entry: compress, write, answer.
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  scope.onmessage = async (e: MessageEvent<CompressRequest>) => {
    const { id, path, values, compressors } = e.data;
    try {
      await useNativeCodecs();
      const z = await encodeChunk(values, compressors);
      Deno.writeFileSync(path, z);
      scope.postMessage({ id } satisfies CompressAnswer);
    } catch (err) {
      scope.postMessage(
        { id, error: `Cannot write "${path}": ${(err as Error)?.message ?? err}` } satisfies CompressAnswer,
      );
    }
  };
}
