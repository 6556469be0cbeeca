/** WordPiece over a small vocab: greedy longest match, `##` continuations, whole-word [UNK], limits. */
import assert from "node:assert/strict";
import { Vocab } from "./vocab.ts";
import { WordPiece } from "./wordpiece.ts";

const vocab = Vocab.fromTokens([
  "[PAD]",
  "[UNK]",
  "[CLS]",
  "[SEP]",
  "[MASK]",
  "un",
  "##aff",
  "##able",
  "una",
  "a",
  "##a",
  "\u{20000}",
  "##\u{20001}",
]);
const ids = (wp: WordPiece, w: string) => {
  const out: number[] = [];
  wp.encodeWord(w, out);
  return out.map((i) => vocab.token(i));
};

Deno.test("WordPiece.encodeWord() takes the longest piece first and never backtracks", () => {
  const wp = new WordPiece(vocab, 200);
  assert.deepEqual(ids(wp, "una"), ["una"]);
  assert.deepEqual(ids(wp, "aaa"), ["a", "##a", "##a"]);
  // "una" wins over "un", then "##ffable" has no piece: the whole word is [UNK] (as in UER-py).
  assert.deepEqual(ids(wp, "unaffable"), ["[UNK]"]);
  const v2 = Vocab.fromTokens(vocab.tokens.filter((t) => t !== "una"));
  const out: number[] = [];
  new WordPiece(v2, 200).encodeWord("unaffable", out);
  assert.deepEqual(out.map((i) => v2.token(i)), ["un", "##aff", "##able"]);
});

Deno.test("WordPiece.encodeWord() gives one [UNK] for the whole word when a piece is missing", () => {
  const wp = new WordPiece(vocab, 200);
  assert.deepEqual(ids(wp, "unaffablex"), ["[UNK]"]);
});

Deno.test("WordPiece.encodeWord() counts code points against maxInputCharsPerWord (200 UER, 100 HF)", () => {
  assert.deepEqual(ids(new WordPiece(vocab, 200), "a".repeat(150)), ["a", ...Array(149).fill("##a")]);
  assert.deepEqual(ids(new WordPiece(vocab, 100), "a".repeat(150)), ["[UNK]"]);
  assert.deepEqual(ids(new WordPiece(vocab, 100), "a".repeat(100)).length, 100);
  // 3 code points = 5 UTF-16 units: within a limit of 3.
  assert.deepEqual(ids(new WordPiece(vocab, 3), "\u{20000}\u{20001}a"), ["\u{20000}", "##\u{20001}", "##a"]);
  assert.deepEqual(ids(new WordPiece(vocab, 2), "\u{20000}\u{20001}a"), ["[UNK]"]);
});
