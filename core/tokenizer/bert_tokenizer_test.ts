/**
 * BertTokenizer against ../shared/reference/tokenizer/cases.jsonl: one Deno.test per case (332).
 * uer mode must give UER-py's ids and basic tokens; hf mode HF tokenizers' ids, except where HF's Rust
 * tokenizers departs from the Python rule (README §5: CJK range starting at U+2B920, per-character
 * final sigma), where hf mode keeps the Python rule; decode must give transformers.js' strings; pairs
 * `[CLS] a [SEP] b [SEP]` with UER segment ids and HF token types.
 */
import assert from "node:assert/strict";
import { refJson, refJsonl, refPath } from "../../tests/reference.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { basicTokenize, BertTokenizer } from "./mod.ts";

interface Case {
  id: string;
  category: string;
  text: string;
  uer_basic_tokens: string[];
  uer_tokens: string[];
  uer_ids: number[];
  uer_ids_with_specials: number[];
  tjs_ids: number[];
  tjs_decode: string;
  tjs_decode_skip_special: string;
  tjs_decode_of_uer_ids: string | null;
  "tjs_pair_with_第二句": { ids: number[]; token_type_ids: number[] };
  hf_rust_ids: number[];
}

const cases = await refJsonl<Case>("tokenizer/cases.jsonl");
const uer = new BertTokenizer(await readVocabFile(refPath("vocab/google_zh_vocab.txt"), "uer"), { mode: "uer" });
const hf = new BertTokenizer(await readVocabFile(refPath("albert-tiny/hf/vocab.txt"), "hf"), { mode: "hf" });
const SECOND = "第二句";

/** Why HF's Rust tokenizers gives other ids than the Python rule for this text, if it does. */
function rustQuirk(text: string): string | undefined {
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0x2b820 && cp <= 0x2b91f) return "HF tokenizers' CJK range starts at U+2B920, Python's at U+2B820";
  }
  // Per-character lower-casing never yields ς (U+03C2) from Σ; Python's str.lower() does at a word end.
  const perChar = [...text].map((c) => c.toLowerCase()).join("");
  if (text.toLowerCase() !== perChar) {
    return "HF tokenizers lower-cases per character, Python's lower() knows final sigma";
  }
  return undefined;
}

assert.equal(cases.length, 332);

for (const c of cases) {
  const quirk = rustQuirk(c.text);
  const label = `${c.id} (${c.category}) ${JSON.stringify(c.text).slice(0, 40)}`;
  const hfWhat = quirk ? `hf mode keeps the Python rule, not hf_rust_ids (${quirk})` : "hf mode gives hf_rust_ids";
  Deno.test(`BertTokenizer matches reference case ${label}: uer mode gives uer_ids; ${hfWhat}; decode/pair match`, () => {
    // uer mode: UER-py's basic tokens, tokens and ids.
    assert.deepEqual(basicTokenize(c.text), c.uer_basic_tokens, "basic tokens");
    assert.deepEqual(uer.tokenize(c.text), c.uer_tokens, "uer tokens");
    assert.deepEqual(uer.tokenizeToIds(c.text), c.uer_ids, "uer ids");
    assert.deepEqual(uer.convertTokensToIds(uer.tokenize(c.text)), c.uer_ids, "uer convertTokensToIds");
    const u = uer.encode(c.text);
    assert.deepEqual(u.ids, c.uer_ids_with_specials, "uer encode");

    // hf mode: HF tokenizers' ids, or the Python rule where Rust departs from it.
    const h = hf.encode(c.text).ids;
    if (quirk) {
      assert.deepEqual(h, c.uer_ids_with_specials, "hf encode (Python rule)");
    } else {
      assert.deepEqual(h, c.hf_rust_ids, "hf encode");
    }

    // decode = transformers.js decode.
    assert.equal(hf.decode(c.tjs_ids), c.tjs_decode, "decode");
    assert.equal(hf.decode(c.tjs_ids, { skipSpecialTokens: true }), c.tjs_decode_skip_special, "decode skip special");
    if (c.tjs_decode_of_uer_ids !== null) assert.equal(hf.decode(c.uer_ids), c.tjs_decode_of_uer_ids, "decode uer");

    // Pair with "第二句": transformers.js' second half (ids and token types) after our first half.
    const pair = c["tjs_pair_with_第二句"];
    const tailIds = pair.ids.slice(c.tjs_ids.length);
    const tailTypes = pair.token_type_ids.slice(c.tjs_ids.length);
    assert.deepEqual(pair.ids.slice(0, c.tjs_ids.length), c.tjs_ids);
    const hp = hf.encode(c.text, SECOND);
    assert.deepEqual(hp.ids, [...h, ...tailIds], "hf pair ids");
    assert.deepEqual(hp.tokenTypeIds, [...h.map(() => 0), ...tailTypes], "hf token types");
    assert.deepEqual(hp.segmentIds, [...h.map(() => 1), ...tailTypes.map((t) => t + 1)], "UER segment ids");
    assert.deepEqual(hp.attentionMask, hp.ids.map(() => 1));
    if (JSON.stringify(h) === JSON.stringify(c.tjs_ids)) assert.deepEqual(hp.ids, pair.ids, "same as transformers.js");
    const up = uer.encode(c.text, SECOND);
    assert.deepEqual(up.ids, [...c.uer_ids_with_specials, ...tailIds], "uer pair ids");
    assert.deepEqual(up.segmentIds, [...u.ids.map(() => 1), ...tailIds.map(() => 2)], "uer pair segments");
  });
}

Deno.test("BertTokenizer cleans NUL and control characters out of the text in both modes", () => {
  for (const t of [uer, hf]) {
    assert.deepEqual(t.tokenize("北\u0000京"), ["北", "京"]);
    assert.deepEqual(t.tokenizeToIds("ab\u0000c"), t.tokenizeToIds("abc"));
    assert.deepEqual(t.tokenizeToIds("\u0000\u0001\ufffd"), []);
  }
});

Deno.test("BertTokenizer hf mode matches only the exact special-token literals", () => {
  assert.deepEqual(hf.tokenize("[mask]"), ["[", "mask", "]"].flatMap((w) => uer.tokenize(w)));
  assert.deepEqual(hf.tokenize("x[SEP][PAD]"), ["x", "[SEP]", "[PAD]"]);
  assert.deepEqual(uer.tokenize("[SEP]"), ["[", "sep", "]"]);
});

Deno.test("BertTokenizer keeps case and accents when doLowerCase is false", () => {
  const t = new BertTokenizer(uer.vocab, { doLowerCase: false });
  assert.notDeepEqual(t.tokenizeToIds("Hello"), uer.tokenizeToIds("Hello"));
  assert.deepEqual(t.tokenizeToIds("hello"), uer.tokenizeToIds("hello"));
});

Deno.test("BertTokenizer.tokenizeToIds() appends to the given array and agrees with tokenize()", () => {
  const out = [7];
  uer.tokenizeToIds("北京 hello, world!", out);
  assert.deepEqual(out, [7, ...uer.convertTokensToIds(uer.tokenize("北京 hello, world!"))]);
  assert.deepEqual(uer.convertTokensToIds(["北", "no-such-token"]), [uer.tokenizeToIds("北")[0], uer.vocab.unkId]);
});

Deno.test("BertTokenizer.encode() of empty texts gives [CLS] [SEP] ([SEP]) with UER segments", () => {
  const e = uer.encode("", "");
  assert.deepEqual(e.ids, [uer.vocab.clsId, uer.vocab.sepId, uer.vocab.sepId]);
  assert.deepEqual(e.segmentIds, [1, 1, 2]);
  assert.deepEqual(e.tokenTypeIds, [0, 0, 1]);
  assert.equal(uer.decode([]), "");
});

Deno.test("BertTokenizer word cache gives the same ids on a second pass over long varied text", () => {
  const text = Array.from({ length: 3000 }, (_, i) => `word${i}, Σ${i}ΑΣ x${i % 7}`).join(" ");
  const fresh = new BertTokenizer(uer.vocab);
  const first = fresh.tokenizeToIds(text);
  assert.deepEqual(fresh.tokenizeToIds(text), first);
  assert.deepEqual(new BertTokenizer(uer.vocab).tokenize(text), fresh.tokenize(text));
});

for (const trace of ["train_trace", "train_trace_docs"]) {
  Deno.test(`BertTokenizer uer mode gives UER-py's sentence ids for every line of ${trace}/corpus.txt`, async () => {
    // documents.json holds the ids UER-py's preprocess made of each corpus line, in corpus order; lines
    // that tokenize to nothing (blank lines) are dropped, a last line without "\n" is never read.
    const docs = await refJson<{ sentences: number[][] }[]>(`albert-tiny/${trace}/documents.json`);
    const expected = docs.flatMap((d) => d.sentences);
    const lines = (await Deno.readTextFile(refPath(`albert-tiny/${trace}/corpus.txt`))).split("\n");
    lines.pop();
    const got = lines.map((l) => uer.tokenizeToIds(l)).filter((ids) => ids.length > 0);
    assert.equal(got.length, expected.length);
    got.forEach((ids, i) => assert.deepEqual(ids, expected[i], `sentence ${i}`));
  });
}

Deno.test("BertTokenizer.tokenizeToIdView() equals basic tokenization + WordPiece, through its one-character word table", () => {
  const tok = new BertTokenizer(uer.vocab, { mode: "uer" });
  // Independent of the tokenizer's caches: basicTokenize, then WordPiece per basic token.
  const expected = (line: string) =>
    basicTokenize(line).flatMap((w) => {
      const ids: number[] = [];
      tok.wordPiece.encodeWord(w, ids);
      return ids;
    });
  // Punctuation between CJK characters (the table's path), characters that are not one id, a lone
  // accent (no id), and the same characters inside longer words.
  const lines = ["北京，上海。", "a,b，c…d", "½ ½x x½", "\u0301 é \u0301", "（注）", "【】「」", "，，，", "Ⅻ ﬁ ㎏"];
  for (let pass = 0; pass < 2; pass++) {
    for (const line of [...lines, ...cases.map((c) => c.text)]) {
      assert.deepEqual(Array.from(tok.tokenizeToIdView(line)), expected(line), JSON.stringify(line));
    }
  }
});
