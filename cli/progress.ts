/**
 * A one-line progress bar on stderr (`[####....] 42.0% 4200/10000 lines 850 lines/s ETA 7s`), redrawn at
 * most every 200 ms, for long work in `preprocess` and `infer`; undefined when stderr is not a terminal.
 * @module
 */

/**
 * A progress callback `(done, total)` counting `unit`, or undefined off a terminal.
 *
 * @example
 * ```ts
 * const bar = progressBar("texts");
 * bar?.(64, 10000);
 * ```
 */
export function progressBar(unit: string): ((done: number, total: number) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const t0 = performance.now();
  let last = 0;
  const enc = new TextEncoder();
  return (done, total) => {
    const now = performance.now();
    if (now - last < 200 && done < total) return;
    last = now;
    const s = (now - t0) / 1000;
    const frac = total ? Math.min(1, done / total) : 1;
    const rate = done / Math.max(s, 1e-3);
    const eta = rate > 0 ? (total - done) / rate : 0;
    const width = 30;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const line = `\r[${bar}] ${(frac * 100).toFixed(1)}% ${done}/${total} ${unit} ` +
      `${Math.round(rate)} ${unit}/s ETA ${eta.toFixed(0)}s `;
    Deno.stderr.writeSync(enc.encode(line + (done >= total ? "\n" : "")));
  };
}
