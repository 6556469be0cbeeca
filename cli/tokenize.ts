/**
 * `tokenize`: reads lines on stdin (as bytes, strict UTF-8) and prints one JSON array of ids per line,
 * `[CLS] … [SEP]` included (`--json`: one `{"ids": [...], "tokens": [...]}` object per line). The
 * tokenizer is UER-py's `BertTokenizer` (`--mode uer`) or HuggingFace's (`--mode hf`), see
 * core/tokenizer/bert_tokenizer.ts. Invalid UTF-8 stops with an error naming `stdin:LINE`.
 * @module
 */
import type { TokenizeOptions } from "../core/flags/mod.ts";
import { firstInvalidUtf8, readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/mod.ts";

const FLUSH_CHARS = 1 << 16;

/** Runs `tokenize`: stdin lines → id arrays on stdout. */
export async function run(opts: TokenizeOptions): Promise<void> {
  const vocab = await readVocabFile(opts.vocabPath, opts.mode);
  const tok = new BertTokenizer(vocab, { mode: opts.mode, doLowerCase: opts.doLowerCase });
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const encoder = new TextEncoder();
  const stdout = Deno.stdout;
  let pending = "";
  const write = async (force: boolean) => {
    if (pending.length >= FLUSH_CHARS || (force && pending.length > 0)) {
      const bytes = encoder.encode(pending);
      pending = "";
      let off = 0;
      while (off < bytes.length) off += await stdout.write(bytes.subarray(off));
    }
  };
  let lineNo = 0;
  const emit = (bytes: Uint8Array) => {
    lineNo++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new TypeError(
        `Cannot tokenize "stdin:${lineNo}": invalid UTF-8 at byte ${firstInvalidUtf8(bytes) + 1} of the line\n` +
          "  hint: convert the input to UTF-8 (e.g. iconv -f GB18030 -t UTF-8)",
      );
    }
    const enc = tok.encode(text);
    pending += opts.json
      ? JSON.stringify({ ids: enc.ids, tokens: tok.convertIdsToTokens(enc.ids) }) + "\n"
      : "[" + enc.ids.join(",") + "]\n";
  };

  let carry = new Uint8Array(0);
  for await (const chunk of Deno.stdin.readable) {
    let buf = chunk;
    if (carry.length > 0) {
      buf = new Uint8Array(carry.length + chunk.length);
      buf.set(carry);
      buf.set(chunk, carry.length);
    }
    let start = 0;
    try {
      for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        emit(buf.subarray(start, nl));
        start = nl + 1;
      }
    } catch (e) {
      await write(true); // the lines before the bad one are printed
      throw e;
    }
    carry = buf.slice(start);
    await write(false);
  }
  try {
    if (carry.length > 0) emit(carry);
  } finally {
    await write(true);
  }
}
