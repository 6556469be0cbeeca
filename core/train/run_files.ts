/**
 * The files of a pretraining run under its `--output_model_path` `<out>`: checkpoints `<out>-<step>`
 * (zarr groups, UER-py's naming), `<out>.metrics.jsonl` and `<out>.loss.svg` (core/train/metrics_log.ts)
 * and `<out>.run.json`, the run's settings (core/train/run_rules.ts), written when the run starts so
 * that a later command can tell the same run from another one even before the first checkpoint.
 * Lists, reads, removes (`--overwrite`) and prunes (`--keep_checkpoints`) them. Not browser
 * compatible (Deno file system).
 * @module
 */
import { exists, writeFileAtomic } from "../io/atomic.ts";
import { metricsPaths } from "./metrics_log.ts";
import type { FoundRun, RunSettings } from "./run_rules.ts";

/** `format` of `<out>.run.json`. */
export const RUN_FORMAT = "uer-ts.run";
/** Version of `<out>.run.json`. */
export const RUN_FORMAT_VERSION = 1;

/** `<out>.run.json`. */
interface RunManifest {
  format: string;
  format_version: number;
  settings: RunSettings;
}

/**
 * The files of the run at `out`.
 *
 * @example
 * ```ts
 * const files = new RunFiles("models/albert");
 * const steps = await files.checkpoints(); // [1000, 2000]
 * ```
 */
export class RunFiles {
  readonly out: string;
  readonly #dir: string;
  readonly #base: string;

  constructor(out: string) {
    this.out = out.replace(/\/+$/, "");
    const slash = this.out.lastIndexOf("/");
    this.#dir = slash >= 0 ? this.out.slice(0, slash) || "/" : ".";
    this.#base = slash >= 0 ? this.out.slice(slash + 1) : this.out;
  }

  /** The checkpoint of `step`: `<out>-<step>`, as UER-py names its saves. */
  checkpointPath(step: number): string {
    return `${this.out}-${step}`;
  }

  /** `<out>.run.json`. */
  get manifestPath(): string {
    return `${this.out}.run.json`;
  }

  async #entries(): Promise<Deno.DirEntry[]> {
    try {
      return await Array.fromAsync(Deno.readDir(this.#dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }

  #step(name: string): number | null {
    const m = /^-(\d+)$/.exec(name.startsWith(this.#base) ? name.slice(this.#base.length) : "");
    return m ? Number(m[1]) : null;
  }

  /** Steps of the complete checkpoints (a folder `<out>-<step>` with its `zarr.json`), ascending. */
  async checkpoints(): Promise<number[]> {
    const steps: number[] = [];
    for (const e of await this.#entries()) {
      const step = this.#step(e.name);
      if (step !== null && e.isDirectory && (await exists(`${this.checkpointPath(step)}/zarr.json`))) steps.push(step);
    }
    return steps.sort((a, b) => a - b);
  }

  /** Every file of a run at `out` (checkpoints, metrics, loss curve, settings), as paths. */
  async files(): Promise<string[]> {
    const suffixes = [...Object.values(metricsPaths(this.out)), this.manifestPath].map((p) => p.slice(this.out.length));
    const prefix = this.out.slice(0, this.out.length - this.#base.length);
    const out: string[] = [];
    for (const e of await this.#entries()) {
      if (this.#step(e.name) !== null || suffixes.some((s) => e.name === this.#base + s)) out.push(prefix + e.name);
    }
    return out.sort();
  }

  /** What is at `out`: the recorded settings (manifest, else the last checkpoint's), checkpoints, files. */
  async find(): Promise<FoundRun> {
    const [checkpoints, files] = [await this.checkpoints(), await this.files()];
    let settings: RunSettings | null = null;
    if (await exists(this.manifestPath)) {
      const m = JSON.parse(await Deno.readTextFile(this.manifestPath)) as Partial<RunManifest>;
      if (m.format === RUN_FORMAT && m.format_version === RUN_FORMAT_VERSION) settings = m.settings ?? null;
    }
    const last = checkpoints.at(-1);
    if (!settings && last !== undefined) {
      // The checkpoint records the settings too (its group attributes, without reading the weights).
      const meta = JSON.parse(await Deno.readTextFile(`${this.checkpointPath(last)}/zarr.json`));
      const run = meta?.attributes?.extra?.run;
      if (run?.identity && run?.schedule) settings = run;
    }
    return { settings, checkpoints, files };
  }

  /** Records the run's settings in `<out>.run.json`. */
  async writeSettings(settings: RunSettings): Promise<void> {
    const m: RunManifest = { format: RUN_FORMAT, format_version: RUN_FORMAT_VERSION, settings };
    await writeFileAtomic(this.manifestPath, JSON.stringify(m, null, 2) + "\n");
  }

  /** Removes every file of the run at `out` (`--overwrite`); returns them. */
  async remove(): Promise<string[]> {
    const files = await this.files();
    for (const f of files) await Deno.remove(f, { recursive: true });
    return files;
  }

  /** Removes all but the `keep` latest checkpoints (`--keep_checkpoints`); returns the paths removed. */
  async prune(keep: number): Promise<string[]> {
    const steps = await this.checkpoints();
    const removed: string[] = [];
    for (const step of steps.slice(0, Math.max(0, steps.length - keep))) {
      await Deno.remove(this.checkpointPath(step), { recursive: true });
      removed.push(this.checkpointPath(step));
    }
    return removed;
  }
}
