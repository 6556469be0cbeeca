/**
 * The closest valid name for a mistyped flag, config key or command: a candidate that contains the typed name
 * (or is contained by it) wins, otherwise the smallest edit distance.
 * @module
 */

/** Levenshtein distance of two strings. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}

/**
 * The candidate nearest to `word`, or undefined when none is plausibly meant.
 *
 * @example
 * ```ts
 * closest("--corpus", ["--corpus_path", "--seed"]); // "--corpus_path"
 * ```
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const bare = (s: string) => s.replace(/^-+/, "").replaceAll("-", "_").toLowerCase();
  const w = bare(word);
  if (w === "") return undefined;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const b = bare(c);
    // Containment (a prefix or a part of the name) is a strong hint: score it below any real edit.
    const score = b.includes(w) || w.includes(b) ? Math.abs(b.length - w.length) / 100 : editDistance(w, b);
    if (score < bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return bestScore <= Math.max(2, Math.ceil(w.length / 2)) ? best : undefined;
}
