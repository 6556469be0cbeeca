/**
 * Dataset bytes per instance by codec and layout (DESIGN.md §2 "Formats" records the decision these
 * figures support).
 *
 * The reference corpus (`CLUECorpusSmall_sampled.txt`, or `--corpus`) is preprocessed at
 * `--seq_length` 128 and 512 (`--dup_factor 5`, static masking, one part, as the model card's flags
 * otherwise), then again with `--dup_factor 1`. The sample is one 2,500-line document whose instances
 * at dup 5 repeat its text about once per chunk, so zstd finds each text's earlier copy in the same
 * chunk; in a large corpus (the card's ranges of ~440 MB) the copies lie millions of rows apart, as
 * if each text were stored once: dup 1 shows that case. From the instances the bench rebuilds every
 * chunk in memory, in two layouts:
 * - "masked src": `src` as the model is fed (masks applied) + `mlm_id` (the originals) — format 1;
 * - "original src": `src` the original text + `mlm_input` (what is fed at masked positions) — format 2;
 * and compresses each chunk with each codec (none, zstd levels, gzip), counting bytes per instance
 * (chunks only; metadata adds ~0.1 B), against "format 1 on disk" (what the first build wrote:
 * uncompressed, the part's last chunk padded to full size) and against the uncompressed rows
 * (no padded chunk). Encoding speed is MB/s of raw chunk bytes on this thread (native zstd), next to
 * preprocess's own time for the same dataset.
 *
 * What decoding costs a training step is bench/loader_bench.ts's (it reuses `preprocessReference` and
 * `uncompressedCopy` from here).
 * `deno run -A bench/dataset_codec_bench.ts [--corpus FILE]`
 * @module
 */
import { type PreprocessConfig, preprocessCorpus } from "../core/data/preprocess.ts";
import {
  DATASET_COMPRESSORS,
  type DatasetReader,
  openDataset,
  partLayout,
  PartWriter,
} from "../core/data/dataset_zarr.ts";
import { writeDatasetAttributes } from "../core/data/part_writer.ts";
import { numToPredict } from "../core/data/masking.ts";
import { type CodecSpec, encodeChunk, useNativeCodecs } from "../core/io/zarr.ts";
import { refPath } from "../tests/reference.ts";
import { parseOptions } from "../cli/options.ts";
import { dropScratch, scratchDir } from "./_scratch.ts";

function arg(name: string, dflt: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : dflt;
}

/** The model card's `preprocess` flags at `seqLength`, one part, as the CLI parses them. */
export function config(
  corpusPath: string,
  datasetPath: string,
  seqLength: number,
  dupFactor = 5,
): Promise<PreprocessConfig> {
  return parseOptions("preprocess", [
    ...["--corpus_path", corpusPath, "--vocab_path", refPath("vocab/google_zh_vocab.txt")],
    ...["--dataset_path", datasetPath, "--seq_length", String(seqLength), "--dup_factor", String(dupFactor)],
    ...["--processes_num", "1", "--target", "albert", "--overwrite", "--quiet"],
  ]);
}

const CODECS: [string, CodecSpec[]][] = [
  ["none", []],
  ["zstd 1", [{ name: "zstd", configuration: { level: 1 } }]],
  ["zstd 2", [{ name: "zstd", configuration: { level: 2 } }]],
  ["zstd 3", [{ name: "zstd", configuration: { level: 3 } }]],
  ["zstd 5", [{ name: "zstd", configuration: { level: 5 } }]],
  ["zstd 9", [{ name: "zstd", configuration: { level: 9 } }]],
  ["gzip 6", [{ name: "gzip", configuration: { level: 6 } }]],
];

/** One layout's chunks: [name, typed array] per array, per chunk. */
type Chunks = { name: string; data: Uint16Array | Uint8Array }[][];

async function buildChunks(dir: string, originalSrc: boolean): Promise<{ chunks: Chunks; count: number }> {
  const ds = await openDataset(dir);
  const L = ds.seqLength, P = ds.attrs.max_predictions, R = ds.attrs.chunk_rows, n = ds.count;
  const chunks: Chunks = [];
  for (let c = 0; c * R < n; c++) {
    const rows = Math.min(R, n - c * R);
    // The regular grid stores full chunks; past the count they are zeros (compressed to a few bytes).
    const src = new Uint16Array(R * L), len = new Uint16Array(R), seg = new Uint16Array(2 * R);
    const wrong = new Uint8Array(R), pos = new Uint16Array(R * P), ids = new Uint16Array(R * P);
    for (let r = 0; r < rows; r++) {
      const ins = await ds.instance(c * R + r); // src as fed, targets = originals
      src.set(ins.src, r * L);
      len[r] = ins.src.length;
      seg[2 * r] = ins.segPos[0];
      seg[2 * r + 1] = ins.segPos[1];
      wrong[r] = ins.isWrongOrder;
      ins.tgtMlm.forEach(([p, id], k) => {
        pos[r * P + k] = p;
        if (originalSrc) {
          ids[r * P + k] = src[r * L + p]; // mlm_input
          src[r * L + p] = id;
        } else ids[r * P + k] = id; // mlm_id
      });
    }
    chunks.push([
      { name: "src", data: src },
      { name: "length", data: len },
      { name: "seg_pos", data: seg },
      { name: "is_wrong_order", data: wrong },
      { name: "mlm_pos", data: pos },
      { name: originalSrc ? "mlm_input" : "mlm_id", data: ids },
    ]);
  }
  return { chunks, count: n };
}

async function sizeOf(chunks: Chunks, codecs: CodecSpec[]): Promise<{ bytes: number; raw: number; ms: number }> {
  let bytes = 0, raw = 0;
  const t0 = performance.now();
  for (const chunk of chunks) {
    for (const a of chunk) {
      bytes += (await encodeChunk(a.data, codecs)).byteLength;
      raw += a.data.byteLength;
    }
  }
  return { bytes, raw, ms: performance.now() - t0 };
}

/**
 * Writes the instances of `ds` again, uncompressed (format 2 layout, `bytes` codec only), with the same
 * writer, as one part at `dir`; returns the copy opened.
 */
export async function uncompressedCopy(ds: DatasetReader, dir: string): Promise<DatasetReader> {
  const w = await PartWriter.create(`${dir}/parts/0`, partLayout(ds.seqLength, ds.attrs.vocab_size, true), []);
  for (let i = 0; i < ds.count; i++) {
    const ins = await ds.instance(i);
    await w.append({
      src: Array.from(ins.src),
      tgtMlm: ins.tgtMlm,
      isWrongOrder: ins.isWrongOrder,
      segPos: ins.segPos,
    });
  }
  const count = await w.close();
  await writeDatasetAttributes(dir, { ...ds.attrs, count, parts: [{ ...ds.attrs.parts[0], path: "parts/0", count }] });
  return await openDataset(dir);
}

/** Runs the bench; returns its figures. */
export async function datasetCodecBench(): Promise<unknown> {
  await useNativeCodecs();
  const corpus = arg("corpus", refPath("corpora/CLUECorpusSmall_sampled.txt"));
  const tmp = await scratchDir("uer-ts-codec-bench-");
  const out: Record<string, unknown> = { corpus: corpus.split("/").pop(), load: loadAvg() };
  try {
    for (const [seq, dup] of [[128, 5], [512, 5], [128, 1], [512, 1]]) {
      const dir = `${tmp}/ds${seq}_${dup}`;
      const t0 = performance.now();
      const s = await preprocessCorpus(await config(corpus, dir, seq, dup));
      const preprocessSeconds = (performance.now() - t0) / 1000;
      const layout = partLayout(seq, 21128, true);
      const R = layout.chunkRows;
      const P = numToPredict(seq);
      const rowBytes = 2 * seq + 2 + 4 + 1 + 4 * P; // src, length, seg_pos, is_wrong_order, mlm_pos, mlm ids
      console.log(
        `\nseq ${seq}, dup_factor ${dup}${dup === 1 ? " (each text once: as at scale)" : ""}: ${s.count} ` +
          `instances, chunk ${R} rows, ${rowBytes} B per uncompressed row; preprocess ${
            preprocessSeconds.toFixed(2)
          } s (zstd 3 included)`,
      );
      const rows: Record<string, unknown>[] = [];
      let format1 = 0;
      for (const originalSrc of [false, true]) {
        const { chunks, count } = await buildChunks(dir, originalSrc);
        for (const [name, codecs] of CODECS) {
          const { bytes, raw, ms } = await sizeOf(chunks, codecs);
          if (!originalSrc && name === "none") format1 = bytes / count;
          const row = {
            layout: originalSrc ? "original src" : "masked src",
            codec: name,
            bytesPerInstance: bytes / count,
            vsFormat1: format1 / (bytes / count),
            vsRows: rowBytes / (bytes / count),
            encodeMBps: codecs.length ? raw / 1e3 / ms : null,
            encodeSeconds: codecs.length ? ms / 1000 : 0,
          };
          rows.push(row);
          console.log(
            `  ${row.layout.padEnd(13)} ${name.padEnd(7)} ${row.bytesPerInstance.toFixed(1).padStart(7)} B/instance  ` +
              `${row.vsFormat1.toFixed(2)}x fewer than format 1, ${row.vsRows.toFixed(2)}x than the rows${
                codecs.length ? `  encode ${row.encodeMBps!.toFixed(0)} MB/s (${row.encodeSeconds.toFixed(2)} s)` : ""
              }`,
          );
        }
      }
      const ds = await openDataset(dir);
      const summary = await ds.summary();
      console.log(
        `  on disk as written (format 2, ${DATASET_COMPRESSORS[0].name} ${
          DATASET_COMPRESSORS[0].configuration?.level
        }, ` +
          `metadata included): ${summary.bytesPerInstance.toFixed(1)} B/instance = ${
            (format1 / summary.bytesPerInstance).toFixed(2)
          }x fewer than format 1's ${format1.toFixed(1)}`,
      );
      out[`seq${seq}${dup === 1 ? "_dup1" : ""}`] = {
        instances: s.count,
        rowBytes,
        preprocessSeconds,
        rows,
        onDiskBytesPerInstance: summary.bytesPerInstance,
        format1BytesPerInstance: format1,
      };
    }
  } finally {
    await dropScratch(tmp);
  }
  console.log(`load average ${loadAvg()}`);
  return out;
}

function loadAvg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

if (import.meta.main) console.log(JSON.stringify(await datasetCodecBench()));
