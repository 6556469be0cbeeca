/**
 * `inspect` subcommand (placeholder until its engine lands): reports that dataset inspection is not built yet.
 * @module
 */
import type { InspectOptions } from "./flags.ts";
import { NotBuiltError } from "./not_built.ts";

/** Runs `inspect`. */
export function run(_opts: InspectOptions): Promise<void> {
  return Promise.reject(new NotBuiltError("inspect", "dataset inspection engine pending"));
}
