/**
 * `preprocess` subcommand (placeholder until its engine lands): reports that preprocess is not built yet.
 * @module
 */
import type { PreprocessOptions } from "./flags.ts";
import { NotBuiltError } from "./not_built.ts";

/** Runs `preprocess`. */
export function run(_opts: PreprocessOptions): Promise<void> {
  return Promise.reject(new NotBuiltError("preprocess", "preprocess engine pending"));
}
