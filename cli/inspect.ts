/**
 * `inspect` subcommand: prints the first `--limit` instances of a preprocessed dataset as JSON lines
 * in the shape of UER-py's recorded `instances.jsonl` (`index, src, pad_num, tgt_mlm,
 * is_wrong_order, seg_pos`), then a summary: count, bytes on disk per instance, length histogram, masked fraction, SOP balance
 * (`--json`: the summary as one JSON line `{"summary": …}`).
 * @module
 */
import type { InspectOptions } from "../core/flags/mod.ts";
import { openDataset } from "../core/data/dataset_zarr.ts";

/** Runs `inspect`. */
export async function run(opts: InspectOptions): Promise<void> {
  const ds = await openDataset(opts.datasetPath);
  const limit = Math.min(Math.max(0, opts.limit), ds.count);
  const out: string[] = [];
  for (let i = 0; i < limit; i++) {
    const ins = await ds.instance(i);
    out.push(JSON.stringify({
      index: i,
      src: Array.from(ins.src),
      pad_num: ds.seqLength - ins.src.length,
      tgt_mlm: ds.staticMasking ? ins.tgtMlm : null,
      is_wrong_order: ins.isWrongOrder,
      seg_pos: ins.segPos,
    }));
  }
  if (out.length) console.log(out.join("\n"));
  const s = await ds.summary();
  if (opts.json) {
    console.log(JSON.stringify({ summary: s }));
    return;
  }
  const a = ds.attrs;
  console.log(
    `dataset ${ds.path}: ${s.count} instances, seq_length ${a.seq_length}, ${ds.sources.length} source(s), ` +
      `${a.parts.length} part(s), masking ${a.dynamic_masking ? "dynamic" : "static"}` +
      `${a.whole_word_masking ? " whole-word" : ""}${a.span_masking ? " span" : ""}, seed ${a.seed}, ` +
      `dup_factor ${a.dup_factor}`,
  );
  console.log(
    `on disk: ${(s.bytes / 1e6).toFixed(1)} MB, ${
      s.bytesPerInstance.toFixed(1)
    } bytes per instance (format ${a.format_version})`,
  );
  console.log(`lengths (incl. [CLS]/[SEP]): mean ${s.meanLength.toFixed(1)}, padded ${s.padded}`);
  for (const b of s.lengthHistogram) {
    const bar = "#".repeat(s.count ? Math.round(40 * b.count / s.count) : 0);
    console.log(`  ${String(b.from).padStart(5)}-${String(b.to).padEnd(5)} ${String(b.count).padStart(9)} ${bar}`);
  }
  if (s.maskedFraction !== null) {
    console.log(
      `masked: ${s.masked} of ${s.tokens} tokens (${(100 * s.maskedFraction).toFixed(2)} %), ` +
        `${s.instancesWithoutMask} instances without a masked token`,
    );
  }
  console.log(
    `SOP: ${s.wrongOrder} swapped (is_wrong_order 1), ${s.count - s.wrongOrder} in order ` +
      `(${s.count ? (100 * s.wrongOrder / s.count).toFixed(1) : "0.0"} % swapped)`,
  );
}
