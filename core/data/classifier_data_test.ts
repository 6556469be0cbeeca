/**
 * Classification TSVs as UER-py's run_classifier.py reads them (header columns in any order, pairs,
 * `[CLS] a [SEP] b [SEP]` with segments 1/2, truncation and padding), and the bad inputs it would
 * crash on (or train wrongly on) as one-line errors naming the file and the line.
 */
import assert from "node:assert/strict";
import { Vocab } from "../tokenizer/vocab.ts";
import { BertTokenizer } from "../tokenizer/bert_tokenizer.ts";
import { checkLabels, countLabels, encodeRows, parseClassifierTsv } from "./classifier_data.ts";

const vocab = Vocab.parse(
  ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "差", "很", "太"].join("\n") + "\n",
  "v",
);
const tok = new BertTokenizer(vocab, { mode: "uer" });

Deno.test("parseClassifierTsv() reads columns by the header's names, pairs and CRLF lines", () => {
  const f = parseClassifierTsv("text_b\tlabel\ttext_a\r\n好\t1\t很好\r\n差\t0\t太差\r\n", "pairs.tsv");
  assert.equal(f.pairs, true);
  assert.deepEqual(f.rows, [
    { line: 2, label: 1, textA: "很好", textB: "好" },
    { line: 3, label: 0, textA: "太差", textB: "差" },
  ]);
  assert.equal(countLabels(f), 2);
  const nolabel = parseClassifierTsv("text_a\n很好\n", "test_nolabel.tsv", { requireLabel: false });
  assert.deepEqual([nolabel.labelled, nolabel.rows[0].label], [false, undefined]);
});

Deno.test("encodeRows() builds [CLS] a [SEP] b [SEP] with segments 1 and 2, cut to seq_length, padded with segment 0", () => {
  const f = parseClassifierTsv("label\ttext_a\ttext_b\n1\t很好\t好\n0\t太差太差\t差差差\n", "p.tsv");
  const e = encodeRows(f.rows, tok, 8);
  assert.deepEqual([...e.src.subarray(0, 8)], [2, 7, 5, 3, 5, 3, 0, 0]);
  assert.deepEqual([...e.seg.subarray(0, 8)], [1, 1, 1, 1, 2, 2, 0, 0]);
  assert.deepEqual([...e.src.subarray(8, 16)], [2, 8, 6, 8, 6, 3, 6, 6]); // cut: no final [SEP]
  assert.deepEqual([...e.seg.subarray(8, 16)], [1, 1, 1, 1, 1, 1, 2, 2]);
  assert.deepEqual([...e.labels], [1, 0]);
});

Deno.test("classification TSV errors name the file and the line", () => {
  const cases: [string, string, RegExp][] = [
    ["", "empty.tsv", /^Cannot read "empty\.tsv": the file is empty\n {2}hint: /],
    ["1\t很好\n0\t太差\n", "noheader.tsv", /^Cannot read "noheader\.tsv" line 1: no header line/],
    ["lbl\ttext_a\n1\t很好\n", "nolabel.tsv", /^Cannot read "nolabel\.tsv" line 1: the header has no "label" column/],
    ["label\ttext\n1\t很好\n", "notext.tsv", /line 1: the header has no "text_a" column/],
    ["label\ttext_a\n1\t很好\nx\t太差\n", "bad.tsv", /^Cannot read "bad\.tsv" line 3: label "x" is not an integer/],
    [
      "label\ttext_a\ttext_b\n1\t很好\n",
      "short.tsv",
      /^Cannot read "short\.tsv" line 2: 2 columns, the header names 3/,
    ],
    ["label\ttext_a\n1\t很好\n\n0\t差\n", "blank.tsv", /line 3: empty line/],
    ["label\ttext_a\n", "onlyheader.tsv", /^Cannot read "onlyheader\.tsv": no example after the header/],
  ];
  for (const [text, name, re] of cases) {
    assert.throws(() => parseClassifierTsv(text, name), (e: Error) => {
      assert.match(e.message, re);
      assert.equal(e.message.split("\n").length, 2, "one line and a hint");
      return true;
    }, name);
  }
  const skipped = parseClassifierTsv("label\ttext_a\n1\t很好\n3\t太差\n", "gap.tsv");
  const msg = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  };
  assert.match(
    msg(() => countLabels(skipped)),
    /^Cannot read "gap\.tsv" line 3: label 3, but the 2 labels of the file must be 0…1/,
  );
  const dev = parseClassifierTsv("label\ttext_a\n0\t很好\n2\t太差\n", "dev.tsv");
  assert.match(
    msg(() => checkLabels(dev, 2, "train.tsv")),
    /^Cannot read "dev\.tsv" line 3: label 2 does not occur in the training file "train\.tsv"/,
  );
});
