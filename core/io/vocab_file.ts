/**
 * Reads a vocab file (google_zh_vocab.txt, an HF folder's vocab.txt) into a `Vocab`, with one-line
 * errors naming the file for a missing, empty or non-UTF-8 file (UER-py `Vocab.load` in
 * `uer/utils/vocab.py` opens it as strict UTF-8 too). Not browser compatible: this is the
 * file-system edge of `core/`.
 * @module
 */

import { type TokenizerMode, Vocab } from "../tokenizer/vocab.ts";

/**
 * 0-based index of the first byte where `bytes` stops being well-formed UTF-8 (the start of the bad
 * or truncated sequence), or -1 if it is valid.
 *
 * @example
 * ```ts
 * firstInvalidUtf8(new Uint8Array([0x61, 0xff])); // 1
 * ```
 */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number, lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c === 0xe0) (need = 2), (lo = 0xa0);
    else if (c >= 0xe1 && c <= 0xec) need = 2;
    else if (c === 0xed) (need = 2), (hi = 0x9f);
    else if (c >= 0xee && c <= 0xef) need = 2;
    else if (c === 0xf0) (need = 3), (lo = 0x90);
    else if (c >= 0xf1 && c <= 0xf3) need = 3;
    else if (c === 0xf4) (need = 3), (hi = 0x8f);
    else return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return i;
      const d = b[i + k];
      if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** 1-based line and byte-in-line of byte index `at` of `bytes`. */
export function lineAndColumn(bytes: Uint8Array, at: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < at; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: at - lineStart + 1 };
}

/**
 * Reads and parses a vocab file (`mode` "uer" = UER-py's reading, the default; "hf" = one token per
 * line). Throws `Deno.errors.NotFound` for a missing file and a `TypeError` for an empty file,
 * invalid UTF-8 or missing special tokens, each one line naming `path`.
 *
 * @example
 * ```ts
 * const vocab = await readVocabFile("models/google_zh_vocab.txt");
 * vocab.size; // 21128
 * ```
 */
export async function readVocabFile(path: string, mode: TokenizerMode = "uer"): Promise<Vocab> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load vocab "${path}": file not found\n  hint: pass --vocab_path with an existing vocab file (google_zh_vocab.txt)`,
      );
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new TypeError(`Cannot load vocab "${path}": is a directory\n  hint: pass the vocab.txt file inside it`);
    }
    throw e;
  }
  if (bytes.length === 0) {
    throw new TypeError(
      `Cannot load vocab "${path}": file is empty\n  hint: pass --vocab_path with google_zh_vocab.txt`,
    );
  }
  let text: string;
  try {
    // NOTE: ignoreBOM keeps a BOM as U+FEFF in the first token, as Python's "utf-8" codec does.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = lineAndColumn(bytes, Math.max(0, firstInvalidUtf8(bytes)));
    throw new TypeError(
      `Cannot load vocab "${path}": invalid UTF-8 at line ${at.line}, byte ${at.column}\n  hint: save the vocab as UTF-8`,
    );
  }
  return Vocab.parse(text, path, mode);
}
