/**
 * The corpus scan `preprocess` needs before its workers start: UER-py's `count_lines` (the `\n`
 * bytes, which split the corpus into worker ranges) and where each range's first universal-newline
 * line begins. The file is cut into byte pieces scanned independently (by the preprocessing threads,
 * in parallel) whose counts add up to one scan of the whole file (a `\r\n` pair across a cut is
 * counted once, by the piece holding the `\n`); each piece keeps a sparse index of line starts, so a
 * range start is found by reading at most LINE_INDEX_STRIDE lines. NOT browser compatible (Deno
 * file reads).
 * @module
 */

import { LINE_INDEX_STRIDE, LineScanner } from "./corpus_lines.ts";

/** Bytes read per call by a scan. */
const READ_BYTES = 1 << 22;
/** Bytes read per call when looking for a line start (at most LINE_INDEX_STRIDE lines away). */
const SEEK_READ_BYTES = 1 << 18;
/** Corpus bytes per scan piece (pieces are handed to whichever thread is free). */
export const SCAN_PIECE_BYTES = 32 << 20;

/** The scan of bytes `[from, to)` of a corpus (structured-cloneable: it crosses threads). */
export interface PieceScan {
  from: number;
  to: number;
  /** `\n` bytes. */
  newlines: number;
  /** Universal-newline terminators that end in this piece. */
  lines: number;
  /** `index[j]` = where the line after this piece's `j * LINE_INDEX_STRIDE`-th terminator starts. */
  index: number[];
}

/** The whole corpus: totals and the pieces, in file order. */
export interface CorpusScan {
  bytes: number;
  /** UER-py's `count_lines`. */
  newlines: number;
  pieces: PieceScan[];
}

/** Cuts `bytes` into pieces of about SCAN_PIECE_BYTES (at least one, even for an empty file). */
export function scanPieces(bytes: number, pieceBytes = SCAN_PIECE_BYTES): [number, number][] {
  const n = Math.max(1, Math.ceil(bytes / pieceBytes));
  return Array.from({ length: n }, (_, i) => [Math.floor(i * bytes / n), Math.floor((i + 1) * bytes / n)]);
}

/** Scans bytes `[from, to)` of `path`, looking one byte past `to` to settle a trailing `\r`. */
export async function scanPiece(path: string, from: number, to: number): Promise<PieceScan> {
  const s = new LineScanner(from);
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(from, Deno.SeekMode.Start);
    const buf = new Uint8Array(Math.min(READ_BYTES, to - from + 1));
    let at = from;
    let next: number | null = null;
    while (at < to) {
      const n = await file.read(buf);
      if (n === null) break; // the file shrank since it was sized: scan what is there
      const take = Math.min(n, to - at);
      s.push(buf.subarray(0, take));
      at += take;
      if (take < n) next = buf[take];
    }
    if (at === to && next === null && to > from) {
      const one = new Uint8Array(1);
      if ((await file.read(one)) === 1) next = one[0];
    }
    s.end(next);
  } finally {
    file.close();
  }
  return { from, to, newlines: s.newlines, lines: s.lines, index: s.index };
}

/** Adds up piece scans (in file order) into the corpus scan. */
export function combineScans(pieces: PieceScan[]): CorpusScan {
  return {
    bytes: pieces.length ? pieces[pieces.length - 1].to : 0,
    newlines: pieces.reduce((s, p) => s + p.newlines, 0),
    pieces,
  };
}

/** Byte offset where universal-newline line `k` (0-based) starts; the file size past the last line. */
export async function offsetOfLine(path: string, scan: CorpusScan, k: number): Promise<number> {
  if (k <= 0) return 0;
  // Line k starts after the k-th terminator: find the piece where it ends.
  let before = 0;
  for (const p of scan.pieces) {
    if (k <= before + p.lines) return await offsetInPiece(path, p, k - before);
    before += p.lines;
  }
  return scan.bytes; // past the last line: reads hit EOF (blank lines)
}

// Where the line after the t-th terminator of piece `p` (1 <= t <= p.lines) starts.
async function offsetInPiece(path: string, p: PieceScan, t: number): Promise<number> {
  const j = Math.floor(t / LINE_INDEX_STRIDE);
  const want = t - j * LINE_INDEX_STRIDE;
  if (want === 0) return p.index[j];
  const s = new LineScanner(p.index[j]);
  s.stopAtLine = want;
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(p.index[j], Deno.SeekMode.Start);
    const buf = new Uint8Array(SEEK_READ_BYTES);
    for (;;) {
      const base = s.bytes;
      const n = await file.read(buf);
      if (n === null) break;
      const at = s.push(buf.subarray(0, n));
      if (at >= 0) return base + at;
    }
  } finally {
    file.close();
  }
  // Only a lone `\r` as the file's last byte ends a line after the last read.
  return s.bytes;
}
