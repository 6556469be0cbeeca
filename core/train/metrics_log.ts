/**
 * The metrics files of a pretraining run, writer beside reader: `<output_model_path>.metrics.jsonl`
 * (one `ReportRecord` per report, appended as it is made) and `<output_model_path>.loss.svg` (the loss
 * curve, redrawn atomically at each report). A resumed run keeps the records up to its step; a new
 * run starts the file empty. Not browser compatible (Deno file writes); the record and SVG formats
 * are core/train/metrics.ts's.
 * @module
 */
import { exists, writeFileAtomic } from "../io/atomic.ts";
import { lossCurveSvg, parseRecords, type ReportRecord } from "./metrics.ts";

/** Where the metrics of a run live. */
export function metricsPaths(outputModelPath: string): { jsonl: string; svg: string } {
  return { jsonl: `${outputModelPath}.metrics.jsonl`, svg: `${outputModelPath}.loss.svg` };
}

/**
 * The report records of a run (empty when it has none yet).
 *
 * @example
 * ```ts
 * const records = await readMetrics("models/albert"); // records[0].loss, …
 * ```
 */
export async function readMetrics(outputModelPath: string): Promise<ReportRecord[]> {
  const { jsonl } = metricsPaths(outputModelPath);
  return (await exists(jsonl)) ? parseRecords(await Deno.readTextFile(jsonl)) : [];
}

/**
 * The metrics writer of one run.
 *
 * @example
 * ```ts
 * const log = await MetricsLog.open("models/albert", { title: "pretrain models/albert" });
 * await log.append(reportRecord(report));
 * ```
 */
export class MetricsLog {
  readonly records: ReportRecord[];
  readonly #paths: { jsonl: string; svg: string };
  readonly #title: string;

  private constructor(paths: { jsonl: string; svg: string }, records: ReportRecord[], title: string) {
    this.#paths = paths;
    this.records = records;
    this.#title = title;
  }

  /**
   * Starts the files of a run: `keepUpTo` (a resumed run's step) keeps the records up to that step,
   * otherwise the file starts empty.
   */
  static async open(outputModelPath: string, opts: { keepUpTo?: number; title: string }): Promise<MetricsLog> {
    const paths = metricsPaths(outputModelPath);
    const records = opts.keepUpTo === undefined
      ? []
      : (await readMetrics(outputModelPath)).filter((r) => r.step <= opts.keepUpTo!);
    await writeFileAtomic(paths.jsonl, records.map((r) => JSON.stringify(r) + "\n").join(""));
    return new MetricsLog(paths, records, opts.title);
  }

  /** Appends a report and redraws the loss curve. */
  async append(record: ReportRecord): Promise<void> {
    this.records.push(record);
    const f = await Deno.open(this.#paths.jsonl, { append: true, create: true });
    try {
      await f.write(new TextEncoder().encode(JSON.stringify(record) + "\n"));
    } finally {
      f.close();
    }
    await writeFileAtomic(this.#paths.svg, lossCurveSvg(this.records, { title: this.#title }));
  }
}
