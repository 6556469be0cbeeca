/** Vocab reading (UER-py vs HF rules) on the real google_zh_vocab.txt, special tokens and the hash. */
import assert from "node:assert/strict";
import { refPath } from "../../tests/reference.ts";
import { Vocab, vocabHash } from "./vocab.ts";

const text = await Deno.readTextFile(refPath("vocab/google_zh_vocab.txt"));
const SPECIALS = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";

Deno.test("Vocab.parse() reads google_zh_vocab.txt the UER-py way: ##\\u2028 → ##, \\u2028 kept", () => {
  const v = Vocab.parse(text, "google_zh_vocab.txt", "uer");
  assert.equal(v.size, 21128);
  assert.equal(v.token(13502), "##");
  assert.equal(v.token(343), "\u2028");
  assert.equal(v.id("##"), 13502);
  assert.deepEqual([v.padId, v.unkId, v.clsId, v.sepId, v.maskId], [0, 100, 101, 102, 103]);
});

Deno.test("Vocab.parse() reads google_zh_vocab.txt the HF way: every line as it is", () => {
  const v = Vocab.parse(text, "vocab.txt", "hf");
  assert.equal(v.size, 21128);
  assert.equal(v.token(13502), "##\u2028");
  assert.equal(v.id("##"), undefined);
  assert.equal(v.id("[MASK]"), 103);
});

Deno.test("Vocab.parse() uer mode: first word per line, universal newlines, last duplicate wins", () => {
  const v = Vocab.parse(SPECIALS + "a b\r\nc\rd \n  \n", "x", "uer");
  assert.deepEqual(v.tokens.slice(5), ["a", "c", "d", "  "]);
  const d = Vocab.parse(SPECIALS + "x\nx\n", "x", "uer");
  assert.equal(d.id("x"), 6);
  assert.equal(d.size, 7);
});

Deno.test("Vocab.parse() hf mode keeps spaces and strips only the line end", () => {
  const v = Vocab.parse(SPECIALS + "a b\r\nc \n", "x", "hf");
  assert.deepEqual(v.tokens.slice(5), ["a b", "c "]);
});

Deno.test("Vocab.parse() names the source when special tokens are missing or the text is empty", () => {
  assert.throws(() => Vocab.parse("[PAD]\n[UNK]\n[CLS]\na\n", "my_vocab.txt", "uer"), (e: Error) => {
    assert.ok(e instanceof TypeError);
    assert.match(
      e.message,
      /^Cannot load vocab "my_vocab.txt": special tokens "\[SEP\]", "\[MASK\]" missing\n {2}hint: /,
    );
    return true;
  });
  assert.throws(() => Vocab.parse("", "e.txt", "hf"), /Cannot load vocab "e.txt": file is empty/);
});

Deno.test("Vocab.token() rejects ids outside the vocab", () => {
  const v = Vocab.parse(SPECIALS, "s", "uer");
  assert.throws(() => v.token(5), RangeError);
  assert.throws(() => v.token(-1), RangeError);
});

Deno.test("vocabHash() is the SHA-256 of the tokens joined by newlines and tells the readings apart", async () => {
  const u = Vocab.parse(text, "v", "uer");
  const h = Vocab.parse(text, "v", "hf");
  const hu = await vocabHash(u);
  assert.match(hu, /^[0-9a-f]{64}$/);
  assert.notEqual(hu, await vocabHash(h)); // line 13502 differs
  assert.equal(hu, await vocabHash(Vocab.fromTokens(u.tokens)));
  const bytes = new TextEncoder().encode(u.tokens.join("\n"));
  const ref = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  assert.equal(hu, Array.from(ref, (b) => b.toString(16).padStart(2, "0")).join(""));
});
