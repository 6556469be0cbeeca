/**
 * Process glue for onnxruntime-web under Deno/Node — NOT browser compatible (node:fs). There the
 * wasm module writes its native log (stderr) with `fs.writeSync(2, line)`; this wraps that call once,
 * before onnxruntime-web loads, so `core/runtime/web.ts` can read the verbose session-creation log
 * (node placement) instead of printing it. Everything else is passed through unchanged.
 * @module
 */
import fs from "node:fs";

/**
 * Routes stderr lines written through `fs.writeSync(2, …)` to `tap` first; a line `tap` returns true
 * for is not printed. Installs once; later calls only replace nothing.
 */
export function installFsLogTap(tap: (line: string) => boolean): void {
  const f = fs as unknown as { writeSync: (...args: unknown[]) => number; __ortLogTap?: boolean };
  if (f.__ortLogTap) return;
  f.__ortLogTap = true;
  const original = f.writeSync;
  f.writeSync = (...args: unknown[]) => {
    if (args[0] === 2 && typeof args[1] === "string" && tap(args[1])) return args[1].length;
    return original.apply(fs, args);
  };
}
