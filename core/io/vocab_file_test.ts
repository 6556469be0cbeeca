/** readVocabFile: the real vocab in both modes, and one-line errors naming the file for bad input. */
import assert from "node:assert/strict";
import { refPath } from "../../tests/reference.ts";
import { firstInvalidUtf8, readVocabFile } from "./vocab_file.ts";

const dir = await Deno.makeTempDir({ prefix: "vocab_file_test_" });
const at = (name: string) => `${dir}/${name}`;

function assertOneLine(e: Error, path: string) {
  const [first, ...rest] = e.message.split("\n");
  assert.ok(first.includes(`"${path}"`), first);
  assert.ok(rest.every((l) => l.startsWith("  hint: ")), e.message);
}

Deno.test("readVocabFile() reads google_zh_vocab.txt (21128 ids) in both modes", async () => {
  const u = await readVocabFile(refPath("vocab/google_zh_vocab.txt"));
  const h = await readVocabFile(refPath("albert-tiny/hf/vocab.txt"), "hf");
  assert.equal(u.size, 21128);
  assert.equal(h.size, 21128);
  assert.equal(u.mode, "uer");
  assert.equal(h.mode, "hf");
});

Deno.test("readVocabFile() throws NotFound naming a missing file", async () => {
  const p = at("missing.txt");
  await assert.rejects(() => readVocabFile(p), (err: Error) => {
    assert.ok(err instanceof Deno.errors.NotFound);
    assertOneLine(err, p);
    assert.match(err.message, /file not found/);
    return true;
  });
});

Deno.test("readVocabFile() rejects a directory, naming it", async () => {
  await assert.rejects(() => readVocabFile(dir), (err: Error) => {
    assert.ok(err instanceof TypeError);
    assertOneLine(err, dir);
    assert.match(err.message, /is a directory/);
    return true;
  });
});

Deno.test("readVocabFile() rejects an empty file, naming it", async () => {
  const p = at("empty.txt");
  await Deno.writeFile(p, new Uint8Array(0));
  await assert.rejects(() => readVocabFile(p), (err: Error) => {
    assert.ok(err instanceof TypeError);
    assertOneLine(err, p);
    assert.match(err.message, /file is empty/);
    return true;
  });
});

Deno.test("readVocabFile() rejects non-UTF-8 bytes, naming the file and line", async () => {
  const p = at("latin1.txt");
  // "[PAD]\n[UNK]\ncaf\xe9\n": Latin-1 é on line 3, byte 4.
  await Deno.writeFile(p, new Uint8Array([...new TextEncoder().encode("[PAD]\n[UNK]\ncaf"), 0xe9, 0x0a]));
  await assert.rejects(() => readVocabFile(p), (err: Error) => {
    assert.ok(err instanceof TypeError);
    assertOneLine(err, p);
    assert.match(err.message, /invalid UTF-8 at line 3, byte 4/);
    return true;
  });
});

Deno.test("readVocabFile() rejects a vocab without the special tokens, naming the file", async () => {
  const p = at("nospecial.txt");
  await Deno.writeTextFile(p, "[PAD]\n[UNK]\n北\n京\n");
  for (const mode of ["uer", "hf"] as const) {
    await assert.rejects(() => readVocabFile(p, mode), (err: Error) => {
      assert.ok(err instanceof TypeError);
      assertOneLine(err, p);
      assert.match(err.message, /"\[CLS\]", "\[SEP\]", "\[MASK\]" missing/);
      return true;
    });
  }
});

Deno.test("firstInvalidUtf8() finds bad, overlong, surrogate and truncated sequences", () => {
  const b = (...x: number[]) => new Uint8Array(x);
  assert.equal(firstInvalidUtf8(new TextEncoder().encode("a北\u{20000}")), -1);
  assert.equal(firstInvalidUtf8(b(0x61, 0xff)), 1);
  assert.equal(firstInvalidUtf8(b(0xc0, 0x80)), 0); // overlong NUL
  assert.equal(firstInvalidUtf8(b(0x61, 0xed, 0xa0, 0x80)), 1); // UTF-16 surrogate
  assert.equal(firstInvalidUtf8(b(0x61, 0x62, 0xe4, 0xb8)), 2); // truncated
});

Deno.test({
  name: "readVocabFile() test cleanup",
  fn: async () => {
    await Deno.remove(dir, { recursive: true });
  },
});
