import assert from "node:assert/strict";
import { PyRandom } from "./py_random.ts";
import { refJson } from "../../tests/reference.ts";

interface PySequence {
  seed: number;
  getrandbits32: number[];
  random: number[];
  random_repr: string[];
  randint_1_21127: number[];
  randint_2_61: number[];
  shuffle_range20: number[];
  interleaved: [string, number | number[]][];
  mt_state_first8_after_seed: number[];
  mt_state_index_after_seed: number;
}

const ref = await refJson<{ sequences: PySequence[] }>("pyrandom.json");

Deno.test("PyRandom.seed() sets the MT state as CPython's init_by_array", () => {
  for (const s of ref.sequences) {
    const st = new PyRandom(s.seed).getState();
    assert.deepEqual(st.mt.slice(0, 8), s.mt_state_first8_after_seed);
    assert.equal(st.index, s.mt_state_index_after_seed);
  }
});

Deno.test("PyRandom draws equal CPython's for every sequence of pyrandom.json", () => {
  for (const s of ref.sequences) {
    let r = new PyRandom(s.seed);
    assert.deepEqual(s.getrandbits32.map(() => r.getrandbits(32)), s.getrandbits32, `getrandbits seed ${s.seed}`);
    r = new PyRandom(s.seed);
    const xs = s.random.map(() => r.random());
    assert.deepEqual(xs, s.random, `random seed ${s.seed}`);
    assert.deepEqual(xs.map(String), s.random_repr, `repr seed ${s.seed}`);
    r = new PyRandom(s.seed);
    assert.deepEqual(s.randint_1_21127.map(() => r.randint(1, 21127)), s.randint_1_21127);
    r = new PyRandom(s.seed);
    assert.deepEqual(s.randint_2_61.map(() => r.randint(2, 61)), s.randint_2_61);
    r = new PyRandom(s.seed);
    const arr = Array.from({ length: 20 }, (_, i) => i);
    r.shuffle(arr);
    assert.deepEqual(arr, s.shuffle_range20);
  }
});

Deno.test("PyRandom interleaves random/randint/shuffle like CPython", () => {
  for (const s of ref.sequences) {
    const r = new PyRandom(s.seed);
    for (const [what, expected] of s.interleaved) {
      let got: number | number[];
      if (what === "random") got = r.random();
      else if (what.startsWith("randint(")) {
        const [a, b] = what.slice(8, -1).split(",").map(Number);
        got = r.randint(a, b);
      } else if (what.startsWith("shuffle(range(")) {
        const n = Number(what.slice(14, -2));
        got = Array.from({ length: n }, (_, i) => i);
        r.shuffle(got);
      } else throw new Error(`unknown call ${what} in pyrandom.json`);
      assert.deepEqual(got, expected, what);
    }
  }
});

Deno.test("PyRandom.getState()/setState() resume the same sequence", () => {
  const a = new PyRandom(12345);
  for (let i = 0; i < 700; i++) a.random(); // crosses a twist
  const saved = JSON.parse(JSON.stringify(a.getState()));
  const expected = Array.from({ length: 50 }, () => a.randint(1, 1000));
  const b = new PyRandom(0);
  b.setState(saved);
  assert.deepEqual(Array.from({ length: 50 }, () => b.randint(1, 1000)), expected);
  assert.throws(() => b.setState({ mt: [1, 2], index: 0 }), RangeError);
});

Deno.test("PyRandom.getrandbits() above 32 bits and big seeds follow CPython's word order", () => {
  // Derived from the 32-bit stream: CPython fills the low word first, the high word keeps its top bits.
  const a = new PyRandom(7);
  const b = new PyRandom(7);
  const lo = b.getrandbits(32);
  const hi = b.getrandbits(32) >>> (64 - 40);
  assert.equal(a.getrandbits(40), hi * 2 ** 32 + lo);
  // seed(n) and seed(-n) agree; a seed above 2^32 uses two key words (differs from its low word).
  assert.equal(new PyRandom(-7).random(), new PyRandom(7).random());
  assert.notEqual(new PyRandom(2n ** 32n + 7n).random(), new PyRandom(7).random());
});

Deno.test("PyRandom.half() equals random() < 0.5 and consumes the same draws", () => {
  const a = new PyRandom(99);
  const b = new PyRandom(99);
  for (let i = 0; i < 5000; i++) {
    assert.equal(a.half(), b.random() < 0.5);
    if (i % 7 === 0) assert.equal(a.nextUint32(), b.nextUint32()); // shifts the block alignment
  }
});

Deno.test("PyRandom.halfCounts() counts random() < 0.5 by draw parity across block boundaries", () => {
  for (const [n, skip] of [[1, 0], [5, 623], [1000, 3], [3001, 622]]) {
    const a = new PyRandom(5);
    const b = new PyRandom(5);
    for (let i = 0; i < skip; i++) a.nextUint32(), b.nextUint32();
    const expected = [0, 0];
    for (let k = 0; k < n; k++) if (b.random() < 0.5) expected[k & 1]++;
    assert.deepEqual(a.halfCounts(n), expected);
    assert.equal(a.nextUint32(), b.nextUint32());
  }
});

Deno.test("PyRandom draws stay CPython's when halfCounts, random, randbelow and shuffleInt32 interleave", () => {
  // `a` mixes the bulk and typed-array paths (lazily tempered blocks); `b` uses only the plain
  // CPython-shaped calls. Same seed, same sequence of operations -> same results and state.
  const a = new PyRandom(2024);
  const b = new PyRandom(2024);
  const pick = new PyRandom(1);
  for (let step = 0; step < 4000; step++) {
    const op = pick.randbelow(5);
    if (op === 0) {
      const n = pick.randbelow(1500);
      const expected = [0, 0];
      for (let k = 0; k < n; k++) if (b.random() < 0.5) expected[k & 1]++;
      assert.deepEqual(a.halfCounts(n), expected, `step ${step}`);
    } else if (op === 1) {
      assert.equal(a.random(), b.random());
    } else if (op === 2) {
      const n = 1 + pick.randbelow(30000);
      assert.equal(a.randbelow(n), b.randbelow(n));
    } else if (op === 3) {
      const n = pick.randbelow(200);
      const x = Int32Array.from({ length: n + 3 }, (_, i) => i);
      const y = Array.from({ length: n }, (_, i) => i);
      a.shuffleInt32(x, n);
      b.shuffle(y);
      assert.deepEqual(Array.from(x.subarray(0, n)), y);
      assert.deepEqual(Array.from(x.subarray(n)), [n, n + 1, n + 2], "entries past n untouched");
    } else {
      assert.equal(a.half(), b.random() < 0.5);
    }
  }
  assert.deepEqual(a.getState(), b.getState());
});
