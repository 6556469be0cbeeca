/**
 * Basic tokenization and character classes: the rules of UER-py `BasicTokenizer` that the reference
 * cases exercise only in passing (Python `str.lower()` final sigma, cleaning, CJK ranges by code point).
 * Expected values are what CPython 3.11's `str.lower()` / `unicodedata` give for these strings.
 */
import assert from "node:assert/strict";
import { refJsonl } from "../../tests/reference.ts";
import { basicTokenize, normalizeWord } from "./basic.ts";
import { charClass, CJK, isChineseCodePoint, OTHER, PRIVATE, PUNCT, REMOVE, SPACE } from "./char_class.ts";

Deno.test("normalizeWord() lower-cases like Python str.lower(), final sigma by word context", () => {
  assert.deepEqual(normalizeWord("ΑΣ", true), ["ας"]);
  assert.deepEqual(normalizeWord("ΑΣ,Β", true), ["ας", ",", "β"]); // ',' is not case-ignorable
  assert.deepEqual(normalizeWord("Α,Σ", true), ["α", ",", "σ"]); // no cased letter before Σ
  assert.deepEqual(normalizeWord("ΑΣ.Β", true), ["ασ", ".", "β"]); // '.' is case-ignorable (MidNumLet)
  assert.deepEqual(normalizeWord("İstanbul", true), ["istanbul"]); // i + U+0307, then Mn dropped
  assert.deepEqual(normalizeWord("KELVIN\u212a", true), ["kelvink"]);
});

Deno.test("JS toLowerCase() agrees with Python lower() on every reference case's words", async () => {
  // uer_basic_tokens are Python's lower()+NFD-Mn+punctuation split; basicTokenize uses toLowerCase().
  const cases = await refJsonl<{ text: string; uer_basic_tokens: string[] }>("tokenizer/cases.jsonl");
  let cased = 0;
  for (const c of cases) {
    if (c.text.toLowerCase() !== c.text) cased++;
    assert.deepEqual(basicTokenize(c.text), c.uer_basic_tokens, c.text);
  }
  assert.ok(cased > 30, `only ${cased} cases have upper-case letters`);
});

Deno.test("normalizeWord() keeps case and accents when doLowerCase is false", () => {
  assert.deepEqual(normalizeWord("Héllo,World", false), ["Héllo", ",", "World"]);
  assert.deepEqual(basicTokenize("Héllo 北京", { doLowerCase: false }), ["Héllo", "北", "京"]);
});

Deno.test("basicTokenize() cleans NUL, U+FFFD, Cc and Cf inside words and keeps private use (UER)", () => {
  assert.deepEqual(basicTokenize("a\u0000b"), ["ab"]);
  assert.deepEqual(basicTokenize("a\ufffdb\u00adc\u200dd\u0001e"), ["abcde"]);
  assert.deepEqual(basicTokenize("x\ue000y"), ["x\ue000y"]);
  assert.deepEqual(basicTokenize("x\ue000y", { removePrivate: true }), ["xy"]);
  assert.deepEqual(basicTokenize("\u{f0000}", { removePrivate: true }), []);
});

Deno.test("basicTokenize() splits on \\t\\n\\r, Zs and U+2028/2029 like Python str.split()", () => {
  assert.deepEqual(basicTokenize("a\tb\nc\rd\u3000e\u00a0f\u2028g\u2029h"), ["a", "b", "c", "d", "e", "f", "g", "h"]);
  assert.deepEqual(basicTokenize("北京\u2028上海"), ["北", "京", "上", "海"]);
});

Deno.test("basicTokenize() spaces out CJK by code point, outside the BMP too", () => {
  assert.deepEqual(basicTokenize("a\u{20000}b"), ["a", "\u{20000}", "b"]);
  assert.deepEqual(basicTokenize("a\u3007b"), ["a\u3007b"]); // 〇 is not in the ranges
  // Compatibility ideograph U+2F800 → its canonical U+4E3D by NFD.
  assert.deepEqual(basicTokenize("a\u{2f800}b"), ["a", "\u4e3d", "b"]);
});

Deno.test("charClass() follows UER's _is_whitespace/_is_control/_is_punctuation/_is_chinese_char", () => {
  const cls = (s: string) => charClass(s.codePointAt(0)!);
  assert.equal(cls(" "), SPACE);
  assert.equal(cls("\t"), SPACE);
  assert.equal(cls("\u3000"), SPACE);
  assert.equal(cls("\u0000"), REMOVE);
  assert.equal(cls("\u0085"), REMOVE); // Cc, though Python's split() would treat it as space
  assert.equal(cls("\ufeff"), REMOVE); // Cf
  assert.equal(cls("$"), PUNCT); // ASCII non-alphanumerics count as punctuation
  assert.equal(cls("^"), PUNCT);
  assert.equal(cls("，"), PUNCT);
  assert.equal(cls("¿"), PUNCT);
  assert.equal(cls("+"), PUNCT);
  assert.equal(cls("×"), OTHER); // Sm outside ASCII is not punctuation
  assert.equal(cls("中"), CJK);
  assert.equal(cls("\u{2b820}"), CJK);
  assert.equal(cls("\ue000"), PRIVATE);
  assert.equal(cls("a"), OTHER);
  assert.equal(isChineseCodePoint(0x2ceaf), true);
  assert.equal(isChineseCodePoint(0x2ceb0), false);
});
