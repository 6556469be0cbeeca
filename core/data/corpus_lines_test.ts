import assert from "node:assert/strict";
import { isBlankLine, LINE_INDEX_STRIDE, LineDecoder, LineScanner } from "./corpus_lines.ts";

const enc = new TextEncoder();

function chunks(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

// Python's universal newlines, written plainly: \r\n, \r and \n end a line.
function pyLines(text: string): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

const SAMPLES = ["a\nb\r\nc\rd\n", "x\r\r\ny\r", "\n\n北京\r\n\r\n", "no newline at end", "\r\n\r\n\r", "一\n二\n三\n"];

Deno.test("LineScanner counts \\n bytes as count_lines and universal lines as Python, for any chunking", () => {
  for (const text of SAMPLES) {
    const bytes = enc.encode(text);
    const expectedNl = bytes.filter((b) => b === 10).length;
    const terminators = (text.match(/\r\n|\r|\n/g) ?? []).length;
    for (const size of [1, 2, 3, 64]) {
      const s = new LineScanner();
      for (const c of chunks(bytes, size)) s.push(c);
      s.end();
      assert.equal(s.newlines, expectedNl, `${JSON.stringify(text)} / ${size}`);
      assert.equal(s.lines, terminators, `${JSON.stringify(text)} / ${size}`);
    }
  }
});

Deno.test("LineScanner.stopAtLine finds where a line starts and the index records every stride", () => {
  const text = "aa\r\nb\rccc\n\ndd\r\n";
  const bytes = enc.encode(text);
  const starts = [0, 4, 6, 10, 11, 15];
  for (let k = 1; k < starts.length; k++) {
    for (const size of [1, 2, 5, 100]) {
      const s = new LineScanner();
      s.stopAtLine = k;
      let base = 0, at = -1;
      for (const c of chunks(bytes, size)) {
        at = s.push(c);
        if (at >= 0) {
          at += base;
          break;
        }
        base += c.length;
      }
      if (at < 0) at = bytes.length;
      assert.equal(at, starts[k], `line ${k} chunk ${size}`);
    }
  }
  const many = enc.encode("x\n".repeat(LINE_INDEX_STRIDE * 2 + 5));
  const s = new LineScanner();
  for (const c of chunks(many, 4096)) s.push(c);
  assert.deepEqual(s.index, [0, 2 * LINE_INDEX_STRIDE, 4 * LINE_INDEX_STRIDE]);
});

Deno.test("LineDecoder splits like Python's text mode, drops a leading BOM, for any chunking", () => {
  for (const text of SAMPLES) {
    for (const size of [1, 2, 7, 100]) {
      const d = new LineDecoder("t.txt", "strict");
      const got: string[] = [];
      const parts = chunks(enc.encode(text), size);
      parts.forEach((c, i) => got.push(...d.push(c, i === parts.length - 1)));
      assert.deepEqual(got, pyLines(text), `${JSON.stringify(text)} / ${size}`);
    }
  }
  const d = new LineDecoder("t.txt", "strict");
  assert.deepEqual(d.push(enc.encode("\ufeff第一\r\n第二\r\n"), true), ["第一", "第二"]);
  // Not at the start of the file: a U+FEFF is kept (the tokenizer drops it).
  assert.deepEqual(new LineDecoder("t.txt", "strict", 5, false).push(enc.encode("\ufeffx\n")), ["\ufeffx"]);
});

Deno.test("LineDecoder names the line of invalid UTF-8, or replaces and counts with replace", () => {
  const bytes = new Uint8Array([...enc.encode("好\nok\n"), 0xe4, 0xb8, 0x0a, ...enc.encode("fine\n")]);
  const strict = new LineDecoder("corpus.txt", "strict", 10);
  assert.throws(() => strict.push(bytes, true), (e: Error) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /^Cannot read corpus "corpus.txt": line 13 is not valid UTF-8/);
    assert.match(e.message, /--encoding_errors replace/);
    return true;
  });
  const lenient = new LineDecoder("corpus.txt", "replace");
  assert.deepEqual(lenient.push(bytes, true), ["好", "ok", "\ufffd", "fine"]);
  assert.equal(lenient.replacedLines, 1);
});

Deno.test("isBlankLine() is Python's `not line.strip()`", () => {
  for (const s of ["", " ", "\t\u3000\u00a0\u2028\x1c\x85"]) assert.ok(isBlankLine(s), JSON.stringify(s));
  for (const s of ["a", "\ufeff", "\u200b", " x "]) assert.ok(!isBlankLine(s), JSON.stringify(s));
});
