/**
 * The worker thread behind `DatasetReader.readMany` (dataset_zarr.ts): opens the dataset by path and
 * answers each request (instance indexes) with the instances packed in flat arrays, transferred, not
 * copied. Requests are answered one at a time, in the order they came. Reading and zstd decoding
 * run here, off the thread that trains. NOT browser compatible (a Deno Worker reading files).
 * @module
 */

import {
  type DatasetReader,
  type DatasetWorkerAnswer,
  type DatasetWorkerRequest,
  openDataset,
} from "./dataset_zarr.ts";
import { packedBuffers } from "../train/loader.ts";

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  const readers = new Map<string, Promise<DatasetReader>>();
  let queue: Promise<void> = Promise.resolve();
  scope.onmessage = (e: MessageEvent<DatasetWorkerRequest>) => {
    const m = e.data;
    queue = queue.then(async () => {
      try {
        let reader = readers.get(m.path);
        if (!reader) readers.set(m.path, reader = openDataset(m.path));
        const packed = await (await reader).readRows(m.indices);
        scope.postMessage({ type: "done", id: m.id, packed } satisfies DatasetWorkerAnswer, packedBuffers(packed));
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        scope.postMessage(
          { type: "error", id: m.id, name: error.name, message: error.message } satisfies DatasetWorkerAnswer,
        );
      }
    });
  };
}
