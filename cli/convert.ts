/**
 * `convert` subcommand: flags → `convertModel` → one summary line (or JSON). Mirrors UER-py's
 * `scripts/convert_albert_from_uer_to_huggingface.py` (and the reverse) with format detection.
 * Stage messages go to stderr on a TTY unless `--quiet`.
 * @module
 */
import type { ConvertOptions } from "../core/flags/mod.ts";
import { convertModel } from "../convert/convert.ts";
import { ttyProgress } from "../convert/hub.ts";
import { UsageError } from "../core/errors.ts";
import { removeStale } from "./stale.ts";

/** Runs `convert`. */
export async function run(opts: ConvertOptions): Promise<void> {
  if (opts.to !== "onnx" && opts.dtype !== "fp32") {
    throw new UsageError(
      `Cannot convert to ${opts.to} with --dtype ${opts.dtype}: int8 weights are written for --to onnx only\n  hint: drop --dtype or use --to onnx`,
    );
  }
  await removeStale(opts.outputModelPath, opts.quiet);
  const notes = {
    log: opts.quiet ? undefined : (l: string) => console.error(l),
    progress: opts.quiet ? undefined : ttyProgress(),
  };
  if (opts.to === "onnx") {
    const { exportOnnx } = await import("../convert/onnx_export.ts");
    const s = await exportOnnx(opts.inputModelPath, opts.outputModelPath, {
      from: opts.from,
      configPath: opts.configPath,
      vocabPath: opts.vocabPath,
      overwrite: opts.overwrite,
      pooling: opts.pooling,
      dtypes: opts.dtype.split(",") as ("fp32" | "q8")[],
      ...notes,
    });
    if (opts.json) console.log(JSON.stringify({ to: "onnx", ...s }));
    else if (!opts.quiet) {
      console.log(
        `converted "${opts.inputModelPath}" -> onnx "${s.output}" (${s.files.join(", ")}): ${s.nodes} nodes, ` +
          `${s.parameters} parameters (${(s.bytes / 1e6).toFixed(1)} MB), ${s.semantics} LayerNorm`,
      );
    }
    return;
  }
  const tty = !opts.quiet && !opts.json && Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const started = performance.now();
  const summary = await convertModel(
    { ...opts, to: opts.to, ...notes },
    (msg) => {
      if (tty) {
        Deno.stderr.writeSync(enc.encode(`convert: ${msg} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`));
      }
    },
  );
  if (opts.json) {
    console.log(JSON.stringify(summary));
  } else if (!opts.quiet) {
    const mb = summary.bytes / 1e6;
    console.log(
      `converted ${summary.from} "${summary.input}" -> ${summary.to} "${summary.output}": ` +
        `${summary.tensors} tensors, ${summary.parameters} parameters (${mb.toFixed(1)} MB) in ${
          summary.seconds.toFixed(2)
        } s`,
    );
  }
}
