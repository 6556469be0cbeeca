import assert from "node:assert/strict";
import { type AlbertInstance, AlbertInstanceBuilder } from "./albert_dataset.ts";
import { PyRandom } from "./py_random.ts";
import { refJson, refJsonl } from "../../tests/reference.ts";

interface RefDoc {
  doc: number;
  n_instances: number;
  sentences: number[][];
}
interface RefInstance {
  index: number;
  doc: number;
  src: number[];
  pad_num: number;
  tgt_mlm: [number, number][];
  is_wrong_order: number;
  seg_pos: [number, number];
}

const vocab = { size: 21128, clsId: 101, sepId: 102, maskId: 103, padId: 0 }; // google_zh_vocab.txt

for (const [dir, seqLength] of [["train_trace", 64], ["train_trace_docs", 48]] as const) {
  Deno.test(`AlbertInstanceBuilder.buildDocument() equals UER-py's instances for ${dir}/documents.json`, async () => {
    const docs = await refJson<RefDoc[]>(`albert-tiny/${dir}/documents.json`);
    const ref = await refJsonl<RefInstance>(`albert-tiny/${dir}/instances.jsonl`);
    const b = new AlbertInstanceBuilder(
      vocab,
      { seqLength, shortSeqProb: 0.1, dynamicMasking: false },
      new PyRandom(7),
    );
    const got: (AlbertInstance & { doc: number })[] = [];
    for (const d of docs) {
      const n = b.buildDocument(d.sentences, (ins) => got.push({ ...ins, doc: d.doc }));
      assert.equal(n, d.n_instances, `instances of document ${d.doc}`);
    }
    assert.equal(got.length, ref.length);
    for (let i = 0; i < ref.length; i++) {
      const g = got[i], r = ref[i];
      assert.deepEqual(
        { doc: g.doc, src: g.src, pad_num: seqLength - g.src.length, tgt: g.tgtMlm, w: g.isWrongOrder, seg: g.segPos },
        { doc: r.doc, src: r.src, pad_num: r.pad_num, tgt: r.tgt_mlm, w: r.is_wrong_order, seg: r.seg_pos },
        `instance ${i}`,
      );
    }
  });
}

Deno.test("AlbertInstanceBuilder with dynamic masking keeps src unmasked and consumes no masking draws", async () => {
  const docs = await refJson<RefDoc[]>("albert-tiny/train_trace_docs/documents.json");
  const b = new AlbertInstanceBuilder(
    vocab,
    { seqLength: 48, shortSeqProb: 0.1, dynamicMasking: true },
    new PyRandom(7),
  );
  const got: AlbertInstance[] = [];
  for (const d of docs) b.buildDocument(d.sentences, (ins) => got.push(ins));
  const ids = new Set(docs.flatMap((d) => d.sentences.flat()));
  for (const ins of got) {
    assert.equal(ins.tgtMlm, null);
    assert.ok(ins.src.length <= 48);
    assert.equal(ins.src[0], 101);
    assert.equal(ins.src[ins.segPos[0] - 1], 102);
    assert.equal(ins.src[ins.segPos[1] - 1], 102);
    assert.equal(ins.segPos[1], ins.src.length);
    for (const t of ins.src.slice(1, ins.segPos[0] - 1)) assert.ok(ids.has(t), "A holds corpus ids only");
  }
  // Without mask_seq draws the first document's instances still match the static ones' structure.
  assert.ok(got.length > 0);
});

Deno.test("AlbertInstanceBuilder.line() carries the last document of a pass into the next one (UER-py quirk)", () => {
  const sentences = [[11, 12, 13], [21, 22], [31, 32, 33, 34]];
  const opts = { seqLength: 64, shortSeqProb: 0, dynamicMasking: true };
  // Two passes through line(): the second pass builds a document made of both passes' lines.
  const viaLines = new AlbertInstanceBuilder(vocab, opts, new PyRandom(3));
  const fromLines: AlbertInstance[] = [];
  for (let pass = 0; pass < 2; pass++) {
    sentences.forEach((s, k) => viaLines.line(s, k === sentences.length - 1, (i) => fromLines.push(i)));
  }
  const direct = new AlbertInstanceBuilder(vocab, opts, new PyRandom(3));
  const expected: AlbertInstance[] = [];
  direct.buildDocument(sentences, (i) => expected.push(i));
  direct.buildDocument([...sentences, ...sentences], (i) => expected.push(i));
  assert.deepEqual(fromLines, expected);
  // A blank line ends a document and clears it, so nothing is carried.
  const blank = new AlbertInstanceBuilder(vocab, opts, new PyRandom(3));
  const fromBlank: AlbertInstance[] = [];
  for (let pass = 0; pass < 2; pass++) {
    sentences.forEach((s) => blank.line(s, false, (i) => fromBlank.push(i)));
    blank.line(null, true, (i) => fromBlank.push(i));
  }
  const direct2 = new AlbertInstanceBuilder(vocab, opts, new PyRandom(3));
  const expected2: AlbertInstance[] = [];
  direct2.buildDocument(sentences, (i) => expected2.push(i));
  direct2.buildDocument(sentences, (i) => expected2.push(i));
  assert.deepEqual(fromBlank, expected2);
});

Deno.test("AlbertInstanceBuilder truncates like truncate_seq_pair: one random() per trimmed token", () => {
  // truncate_seq_pair written out step by step, against the bulk implementation.
  for (const [la, lb, seed] of [[7, 40, 11], [12, 30, 12], [12, 13, 13], [1, 50, 14], [12, 200, 15]]) {
    const rng = new PyRandom(seed);
    const opts = { seqLength: 16, shortSeqProb: 0, dynamicMasking: true };
    const short = Array.from({ length: la }, (_, i) => 2000 + i);
    const long = Array.from({ length: lb }, (_, i) => 1000 + i);
    const got: AlbertInstance[] = [];
    new AlbertInstanceBuilder(vocab, opts, rng).buildDocument([short, long], (i) => got.push(i));
    const r = new PyRandom(seed);
    r.random(); // short_seq_prob draw
    assert.equal(r.randint(1, 1), 1); // a two-sentence chunk: A = short, B = long
    let a = [...short], b = [...long];
    let wrong = 0;
    if (r.random() < 0.5) [a, b, wrong] = [b, a, 1];
    while (a.length + b.length > 13) {
      const t = a.length > b.length ? a : b;
      if (r.random() < 0.5) t.shift();
      else t.pop();
    }
    assert.deepEqual(got[0].src, [101, ...a, 102, ...b, 102], `lengths ${la}, ${lb}`);
    assert.equal(got[0].isWrongOrder, wrong);
    assert.equal(rng.random(), r.random(), "same number of draws consumed");
  }
});

Deno.test("AlbertInstanceBuilder rejects --seq_length below 4", () => {
  assert.throws(
    () => new AlbertInstanceBuilder(vocab, { seqLength: 3, shortSeqProb: 0.1, dynamicMasking: false }, new PyRandom(7)),
    /--seq_length 3/,
  );
});
