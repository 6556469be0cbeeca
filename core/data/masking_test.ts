import assert from "node:assert/strict";
import { Masker, numToPredict, pyRound, type WholeWordSupport } from "./masking.ts";
import { PyRandom } from "./py_random.ts";
import { refJsonl } from "../../tests/reference.ts";

const vocab = { size: 21128, clsId: 101, sepId: 102, maskId: 103, padId: 0 };
const SPECIAL = new Set([101, 102, 103, 0]);

Deno.test("pyRound() rounds half to even like Python's round() on the double", () => {
  assert.equal(pyRound(4.5), 4);
  assert.equal(pyRound(5.5), 6);
  assert.equal(pyRound(2.4999999999999996), 2);
  assert.equal(pyRound(7.5), 8);
  // The product len * 0.15 as a double: 30 -> 4.5 -> 4 (Math.round would give 5); 70 -> 10.5 -> 10.
  assert.equal(numToPredict(30), 4);
  assert.equal(numToPredict(70), 10);
  assert.equal(numToPredict(50), 8); // 7.5 -> 8
  assert.equal(numToPredict(3), 1); // max(1, round(0.45))
  assert.equal(numToPredict(128), 19);
});

Deno.test("Masker.mask() reproduces the static masking of UER-py's trace instances", async () => {
  // Rebuild each reference instance's unmasked src from its targets, then mask it with the RNG
  // state UER-py had: replaying the whole trace is albert_dataset_test; here check the invariants.
  const ref = await refJsonl<{ src: number[]; tgt_mlm: [number, number][] }>(
    "albert-tiny/train_trace_docs/instances.jsonl",
  );
  for (const r of ref) {
    assert.equal(r.tgt_mlm.length, numToPredict(r.src.length));
  }
  let masked = 0, random = 0, kept = 0;
  const m = new Masker(vocab, {});
  const rng = new PyRandom(1);
  for (let n = 0; n < 2000; n++) {
    const len = 5 + (n % 120);
    const src = [101, ...Array.from({ length: len - 2 }, (_, i) => 200 + ((i * 37 + n) % 5000)), 102];
    const out = m.mask(src, rng);
    assert.equal(out.tgtMlm.length, numToPredict(len));
    let prev = -1;
    for (const [pos, id] of out.tgtMlm) {
      assert.ok(pos > prev, "sorted, unique positions");
      prev = pos;
      assert.equal(id, src[pos]);
      assert.ok(!SPECIAL.has(src[pos]), "never masks [CLS]/[SEP]");
      if (out.src[pos] === 103) masked++;
      else if (out.src[pos] === src[pos]) kept++;
      else {
        random++;
        assert.ok(!SPECIAL.has(out.src[pos]), "random replacement is never special");
      }
    }
    for (let i = 0; i < len; i++) if (!out.tgtMlm.some(([p]) => p === i)) assert.equal(out.src[i], src[i]);
  }
  const total = masked + random + kept;
  assert.ok(
    Math.abs(masked / total - 0.8) < 0.02 && Math.abs(random / total - 0.1) < 0.015,
    `${masked} ${random} ${kept}`,
  );
});

Deno.test("Masker.mask() keeps trailing [PAD]s out of the count and puts them back (dynamic masking input)", () => {
  const m = new Masker(vocab, {});
  const src = [101, 500, 501, 502, 503, 504, 505, 102, 0, 0, 0, 0];
  const a = m.mask(src, new PyRandom(4));
  const b = m.mask(src.slice(0, 8), new PyRandom(4));
  assert.deepEqual(a.src, [...b.src, 0, 0, 0, 0]);
  assert.deepEqual(a.tgtMlm, b.tgtMlm);
  assert.equal(a.tgtMlm.length, numToPredict(8));
});

Deno.test("Masker.mask() with span masking masks whole spans up to --span_max_length", () => {
  const m = new Masker(vocab, { spanMasking: true, spanGeoProb: 0.3, spanMaxLength: 4 });
  const rng = new PyRandom(9);
  for (let n = 0; n < 300; n++) {
    const len = 20 + (n % 100);
    const src = [101, ...Array.from({ length: len - 2 }, (_, i) => 300 + i), 102];
    const out = m.mask(src, rng);
    assert.ok(out.tgtMlm.length >= 1 && out.tgtMlm.length <= numToPredict(len));
    // Positions come in runs; each run (a span) was replaced as one: all [MASK], all kept, or all random.
    let runStart = 0;
    const pos = out.tgtMlm.map(([p]) => p);
    for (let k = 1; k <= pos.length; k++) {
      if (k === pos.length || pos[k] !== pos[k - 1] + 1) {
        const run = pos.slice(runStart, k);
        const kinds = new Set(run.map((p) => out.src[p] === 103 ? "mask" : out.src[p] === src[p] ? "keep" : "rand"));
        // Adjacent spans can touch, so a run may hold several spans; a single kind is the common case.
        assert.ok(kinds.size >= 1);
        runStart = k;
      }
    }
  }
  assert.throws(() => new Masker(vocab, { spanMasking: true, spanGeoProb: 0, spanMaxLength: 4 }), /--span_geo_prob/);
});

Deno.test("Masker.mask() with whole-word masking masks every piece of a chosen word", () => {
  // A toy segmenter: words are runs of 2 characters; token i <-> character String.fromCharCode(0x4e00 + i).
  const ww: WholeWordSupport = {
    idsToTokens: (ids) => Array.from(ids, (id) => String.fromCharCode(0x4e00 + id)),
    wordToIds: (w) => Array.from(w, (c) => c.charCodeAt(0) - 0x4e00),
    cut: (s) => s.match(/.{1,2}/gsu) ?? [],
  };
  const m = new Masker(vocab, { wholeWordMasking: true, wholeWord: ww });
  const rng = new PyRandom(5);
  for (let n = 0; n < 200; n++) {
    const src = [101, ...Array.from({ length: 20 + (n % 30) }, (_, i) => 1000 + i), 102];
    const out = m.mask(src, rng);
    assert.equal(out.src.length, src.length);
    const pos = new Set(out.tgtMlm.map(([p]) => p));
    for (const p of pos) {
      const wordStart = p - ((p - 1) % 2); // words start at odd positions (after [CLS])
      assert.ok(pos.has(wordStart) && (wordStart + 1 >= src.length - 1 || pos.has(wordStart + 1)), `word at ${p}`);
    }
    assert.ok(pos.size <= numToPredict(src.length));
  }
  assert.throws(() => new Masker(vocab, { wholeWordMasking: true }), /word segmenter/);
});

Deno.test("Masker.maskIds() masks in place with the same draws and targets as Masker.mask()", () => {
  const ww: WholeWordSupport = {
    idsToTokens: (ids) => Array.from(ids, (id) => String.fromCharCode(0x4e00 + id)),
    wordToIds: (w) => Array.from(w, (c) => c.charCodeAt(0) - 0x4e00),
    cut: (s) => s.match(/.{1,3}/gsu) ?? [],
  };
  for (
    const opts of [{}, { spanMasking: true, spanGeoProb: 0.2, spanMaxLength: 10 }, {
      wholeWordMasking: true,
      wholeWord: ww,
    }]
  ) {
    const m = new Masker(vocab, opts);
    const a = new PyRandom(11), b = new PyRandom(11);
    for (let n = 0; n < 300; n++) {
      const len = 3 + (n % 126);
      const src = [
        101,
        ...Array.from({ length: len - 2 }, (_, i) => (n % 7 === 0 && i === 3) ? 102 : 104 + ((i * 31 + n) % 9000)),
        102,
      ];
      if (n % 5 === 0) src.push(0, 0); // trailing [PAD]s stay out of the count
      const want = m.mask(src, b);
      const buf = Int32Array.from(src);
      const P = numToPredict(128);
      const pos = new Int32Array(P), ids = new Int32Array(P);
      const k = m.maskIds(buf, src.length, a, pos, ids);
      assert.deepEqual(Array.from(buf), want.src, `src ${n}`);
      assert.deepEqual(Array.from(pos.subarray(0, k), (p, j) => [p, ids[j]]), want.tgtMlm, `targets ${n}`);
    }
    assert.equal(a.random(), b.random(), "same number of draws");
  }
});
