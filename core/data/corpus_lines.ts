/**
 * Corpus lines as UER-py reads them: `count_lines` (`uer/utils/misc.py`) counts `\n` bytes to split the
 * corpus into worker ranges, while the workers read with Python's text mode, whose universal newlines
 * end a line at `\n`, `\r\n` or `\r`. `LineScanner` counts both over byte chunks and keeps a sparse
 * index of line starts, so a worker's range start is found without reading the corpus twice;
 * `LineDecoder` turns byte chunks into decoded lines (UTF-8 strict or with replacement, a leading
 * byte-order mark dropped) and names the line of an invalid byte. Browser compatible (bytes in,
 * strings out; the file access is the caller's).
 * @module
 */

/** Every this many lines the scanner records where the next line starts. */
export const LINE_INDEX_STRIDE = 4096;

const LF = 10;
const CR = 13;

/**
 * Counts `\n` bytes (`count_lines`) and universal-newline lines over consecutive chunks.
 *
 * @example
 * ```ts
 * const s = new LineScanner();
 * s.push(new TextEncoder().encode("a\nb\r\nc\rd"));
 * s.newlines; // 2 — what UER-py's count_lines returns
 * s.lines; // 3 complete universal-newline lines
 * ```
 */
export class LineScanner {
  /** `\n` bytes seen (UER-py `count_lines`). */
  newlines = 0;
  /** Universal-newline line terminators seen (`\r\n` counts once). */
  lines = 0;
  /** File offset just past the last byte seen (the bytes seen, when scanning from the start). */
  bytes = 0;
  /**
   * `index[j]` = byte offset where line `j * LINE_INDEX_STRIDE` starts (lines counted from where
   * scanning started; `index[0]` is that offset).
   */
  readonly index: number[];
  /** Stop once this many lines ended (to find where line `stopAtLine` starts). */
  stopAtLine = Infinity;
  #pendingCR = false;

  /** @param start byte offset of the first chunk in the file (offsets reported are the file's) */
  constructor(start = 0) {
    this.bytes = start;
    this.index = [start];
  }

  /**
   * Feeds the next chunk. Returns the offset inside it where line `stopAtLine` starts once that many
   * lines ended, else -1 (counting stops there).
   */
  push(chunk: Uint8Array): number {
    const base = this.bytes;
    this.bytes += chunk.length;
    let i = 0;
    if (this.#pendingCR && chunk.length > 0) {
      this.#pendingCR = false;
      if (chunk[0] === LF) {
        this.newlines++;
        i = 1;
      }
      if (this.#endLine(base + i)) return i;
    }
    if (chunk.indexOf(CR, i) < 0) {
      // Fast path: only \n terminators.
      for (let j = chunk.indexOf(LF, i); j >= 0; j = chunk.indexOf(LF, j + 1)) {
        this.newlines++;
        if (this.#endLine(base + j + 1)) return j + 1;
      }
      return -1;
    }
    for (; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === LF) {
        this.newlines++;
        if (this.#endLine(base + i + 1)) return i + 1;
      } else if (c === CR) {
        if (i + 1 === chunk.length) {
          this.#pendingCR = true; // \r or \r\n: decided by the next chunk
        } else {
          if (chunk[i + 1] === LF) {
            this.newlines++;
            i++;
          }
          if (this.#endLine(base + i + 1)) return i + 1;
        }
      }
    }
    return -1;
  }

  /**
   * Finishes a pending `\r` at the end of the input. `next` is the byte that follows the input in the
   * file (null at EOF): when it is `\n`, the `\r\n` pair is left to whoever scans from there (a
   * scanner starting at a `\n` counts it), so scans of consecutive pieces add up to one scan.
   */
  end(next: number | null = null): void {
    if (this.#pendingCR) {
      this.#pendingCR = false;
      if (next !== LF) this.#endLine(this.bytes);
    }
  }

  // A line ended; the next one starts at byte `next`. True when the stop line is reached.
  #endLine(next: number): boolean {
    this.lines++;
    if (this.lines % LINE_INDEX_STRIDE === 0) this.index[this.lines / LINE_INDEX_STRIDE] = next;
    return this.lines >= this.stopAtLine;
  }
}

/** What a line decoder does with bytes that are not UTF-8. */
export type EncodingErrors = "strict" | "replace";

/**
 * Splits byte chunks into decoded lines (terminators removed). `strict` throws a `TypeError` naming
 * the line (1-based, counted from `firstLine`); `replace` substitutes U+FFFD and counts the lines.
 */
export class LineDecoder {
  readonly source: string;
  readonly errors: EncodingErrors;
  /** Lines that held invalid UTF-8 (replace mode). */
  replacedLines = 0;
  #fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #lenient = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  #carry: Uint8Array = new Uint8Array(0);
  #line: number;
  #atFileStart: boolean;

  /**
   * @param source file name used in error messages
   * @param firstLine 0-based number of the first line fed (for messages)
   * @param atFileStart whether the first chunk starts at byte 0 (a BOM there is dropped)
   */
  constructor(source: string, errors: EncodingErrors, firstLine = 0, atFileStart = firstLine === 0) {
    this.source = source;
    this.errors = errors;
    this.#line = firstLine;
    this.#atFileStart = atFileStart;
  }

  /** Decodes the complete lines available after `chunk`; `final` flushes an unterminated last line. */
  push(chunk: Uint8Array, final = false): string[] {
    let buf = chunk;
    if (this.#carry.length > 0) {
      buf = new Uint8Array(this.#carry.length + chunk.length);
      buf.set(this.#carry);
      buf.set(chunk, this.#carry.length);
    }
    if (this.#atFileStart) {
      if (buf.length < 3 && !final) {
        this.#carry = buf.slice();
        return [];
      }
      // NOTE: Python's "utf-8" codec would keep U+FEFF; the tokenizer drops it anyway (category Cf).
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
      this.#atFileStart = false;
    }
    // Cut after the last \n so that a \r\n pair and multi-byte characters never straddle chunks.
    const cut = final ? buf.length : buf.lastIndexOf(LF) + 1;
    this.#carry = cut < buf.length ? buf.slice(cut) : new Uint8Array(0);
    if (cut === 0) return [];
    const body = buf.subarray(0, cut);
    const text = this.#decode(body);
    const lines = text.indexOf("\r") < 0 ? text.split("\n") : text.split(/\r\n|\r|\n/);
    if (lines[lines.length - 1] === "") lines.pop();
    this.#line += lines.length;
    return lines;
  }

  #decode(body: Uint8Array): string {
    try {
      return this.#fatal.decode(body);
    } catch {
      // Find the offending line(s): decode line by line (terminators as Python sees them).
      let start = 0;
      let line = this.#line;
      for (let i = 0; i <= body.length; i++) {
        const c = i < body.length ? body[i] : -1;
        const isEnd = c === LF || (c === CR && body[i + 1] !== LF) || i === body.length;
        if (!isEnd) continue;
        if (i === body.length && start === i) break;
        const part = body.subarray(start, i);
        try {
          this.#fatal.decode(part);
        } catch {
          if (this.errors === "strict") {
            throw new TypeError(
              `Cannot read corpus "${this.source}": line ${line + 1} is not valid UTF-8` +
                `\n  hint: fix the file or pass --encoding_errors replace`,
            );
          }
          this.replacedLines++;
        }
        line++;
        start = i + 1;
      }
      return this.#lenient.decode(body);
    }
  }
}

/** Python's `str.isspace()` for one UTF-16 unit (all Python whitespace is in the BMP). */
export function isPythonSpace(c: number): boolean {
  return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** `not line.strip()`: empty or only Python whitespace. */
export function isBlankLine(line: string): boolean {
  for (let i = 0; i < line.length; i++) if (!isPythonSpace(line.charCodeAt(i))) return false;
  return true;
}
