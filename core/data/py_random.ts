/**
 * CPython's `random` module, bit for bit: the MT19937 generator seeded from an integer the way
 * `random.seed(int)` does (init_by_array over the 32-bit words of |n|), `random()` (53 bits from two
 * outputs), `getrandbits`, `randrange`/`randint` through `_randbelow` (getrandbits rejection) and
 * `shuffle` (CPython's backwards Fisher-Yates). UER-py draws every preprocessing and loader decision
 * from this module (`uer/utils/dataset.py`, `mask.py`, `dataloader.py`), so reproducing its output
 * exactly is what makes our instances equal UER-py's. Browser compatible.
 * @module
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df | 0;
const UPPER_MASK = 0x80000000 | 0;
const LOWER_MASK = 0x7fffffff;

/** A saved generator state (CPython `getstate()` without the gauss cache): 624 words and the index. */
export interface PyRandomState {
  mt: number[];
  index: number;
}

/**
 * CPython-compatible random number generator.
 *
 * @example
 * ```ts
 * const rng = new PyRandom(7);
 * rng.random(); // 0.32383276483316237, as python3 -c "import random; random.seed(7); print(random.random())"
 * ```
 */
export class PyRandom {
  #mt = new Int32Array(N); // words as int32 bit patterns (keeps V8 on 32-bit integer paths)
  #out = new Uint32Array(N); // tempered outputs of the current block (valid when #tempered)
  #index = N + 1;
  // Tempering is lazy: `halfCounts` (most draws of a preprocessing run) reads the top bit of the
  // tempered output straight from the untempered word, so blocks it consumes are never tempered.
  #tempered = false;

  /** Seeds like `random.seed(seed)`; without a seed the generator must be seeded before use. */
  constructor(seed?: number | bigint) {
    if (seed !== undefined) this.seed(seed);
  }

  /** `random.seed(n)` for an integer `n` (the absolute value's 32-bit little-endian words). */
  seed(n: number | bigint): void {
    if (typeof n === "number" && !Number.isInteger(n)) {
      throw new RangeError(`Cannot seed PyRandom with ${n}: only integer seeds are supported`);
    }
    let v = BigInt(n);
    if (v < 0n) v = -v;
    const key: number[] = [];
    while (v > 0n) {
      key.push(Number(v & 0xffffffffn));
      v >>= 32n;
    }
    if (key.length === 0) key.push(0);
    this.#initByArray(key);
  }

  #initGenrand(s: number): void {
    const mt = this.#mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.#index = N;
  }

  #initByArray(key: number[]): void {
    this.#initGenrand(19650218);
    const mt = this.#mt;
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB is 1, assuring a non-zero initial array
    this.#index = N;
  }

  #twist(): void {
    const mt = this.#mt;
    let kk = 0;
    for (; kk < N - M; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
      mt[kk] = mt[kk + M] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
    }
    for (; kk < N - 1; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
      mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
    }
    const y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
    mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
    this.#tempered = false;
    this.#index = 0;
  }

  // Temper the rest of the block once (words before `#index` were consumed untempered); draws then
  // just read it.
  #retemper(): void {
    const mt = this.#mt;
    const out = this.#out;
    this.#tempered = true;
    for (let i = this.#index; i < N; i++) {
      let t = mt[i];
      t ^= t >>> 11;
      t ^= (t << 7) & 0x9d2c5680;
      t ^= (t << 15) & 0xefc60000;
      t ^= t >>> 18;
      out[i] = t;
    }
  }

  /** The next raw 32-bit output (`genrand_uint32`). */
  nextUint32(): number {
    if (this.#index >= N) this.#refill();
    if (!this.#tempered) this.#retemper();
    return this.#out[this.#index++];
  }

  #refill(): void {
    if (this.#index > N) throw new RangeError("PyRandom used before seed()");
    this.#twist();
  }

  /** `random.random()`: a double in [0, 1) with 53 random bits. */
  random(): number {
    const i = this.#index;
    if (i < N - 1) {
      if (!this.#tempered) this.#retemper();
      this.#index = i + 2;
      return ((this.#out[i] >>> 5) * 67108864 + (this.#out[i + 1] >>> 6)) / 9007199254740992;
    }
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /**
   * Exactly `random() < 0.5` (consumes the same two outputs): true iff the first output's top bit
   * is 0. The hot path of UER-py's `truncate_seq_pair`.
   */
  half(): boolean {
    const i = this.#index;
    if (i < N - 1) {
      this.#index = i + 2;
      return temperedTopBit(this.#mt[i]) === 0;
    }
    return this.random() < 0.5;
  }

  /**
   * Makes `n` draws of `random() < 0.5` at once; returns how many were true at even and at odd draw
   * indices (0-based). Bulk form of {@link half} for `truncate_seq_pair`, same draws consumed.
   */
  halfCounts(n: number): [number, number] {
    let even = 0, odd = 0; // true draws at even / odd k
    let k = 0;
    const mt = this.#mt;
    while (k < n) {
      const i = this.#index;
      if (i >= N - 1) {
        if (i === N - 1) {
          // The draw straddles two blocks: its first word is the last of this one.
          if (temperedTopBit(mt[i]) === 0) {
            if ((k & 1) === 0) even++;
            else odd++;
          }
          this.#twist();
          this.#index = 1;
          k++;
        } else {
          this.#refill();
        }
        continue;
      }
      const m = Math.min(n - k, (N - i) >> 1);
      // Draw j uses words i + 2j, i + 2j + 1; it is < 0.5 iff the first tempered output has its
      // top bit clear. Count the set top bits of draws j = 0, 2, 4, ... and j = 1, 3, 5, ...
      const end = i + 2 * m;
      let setA = 0, setB = 0;
      for (let p = i; p < end; p += 4) setA += temperedTopBit(mt[p]);
      for (let p = i + 2; p < end; p += 4) setB += temperedTopBit(mt[p]);
      const nA = (m + 1) >> 1, nB = m >> 1;
      if ((k & 1) === 0) {
        even += nA - setA;
        odd += nB - setB;
      } else {
        odd += nA - setA;
        even += nB - setB;
      }
      this.#index = end;
      k += m;
    }
    return [even, odd];
  }

  /** `random.getrandbits(k)` for 0 ≤ k ≤ 53 (exact as a number). */
  getrandbits(k: number): number {
    if (k <= 32) {
      if (k <= 0) {
        if (k < 0) throw new RangeError(`getrandbits(${k}): number of bits must be non-negative`);
        return 0;
      }
      return this.nextUint32() >>> (32 - k);
    }
    if (k > 53) throw new RangeError(`getrandbits(${k}): at most 53 bits are supported`);
    // CPython fills 32-bit words from the least significant; the last word keeps its top bits.
    const lo = this.nextUint32();
    const hi = this.nextUint32() >>> (64 - k);
    return hi * 4294967296 + lo;
  }

  /** `random._randbelow(n)` for n ≥ 1: getrandbits(bit_length(n)) until the draw is below n. */
  randbelow(n: number): number {
    const k = bitLength(n);
    if (k <= 32) {
      const shift = 32 - k;
      let r = this.nextUint32() >>> shift;
      while (r >= n) r = this.nextUint32() >>> shift;
      return r;
    }
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `random.randrange(start, stop)` (step 1). */
  randrange(start: number, stop: number): number {
    const width = stop - start;
    if (width <= 0) throw new RangeError(`empty range for randrange(${start}, ${stop})`);
    return start + this.randbelow(width);
  }

  /** `random.randint(a, b)`: an integer in [a, b], both ends included. */
  randint(a: number, b: number): number {
    return this.randrange(a, b + 1);
  }

  /** {@link shuffle} of the first `n` entries of an Int32Array (no allocation; same draws). */
  shuffleInt32(x: Int32Array, n: number): void {
    if (n < 2) return;
    let idx = this.#index;
    if (idx > N) throw new RangeError("PyRandom used before seed()");
    if (idx < N && !this.#tempered) this.#retemper();
    const out = this.#out;
    for (let i = n - 1; i > 0; i--) {
      const bound = i + 1;
      const shift = Math.clz32(bound); // 32 - bit_length(bound): _randbelow's getrandbits(k)
      let r: number;
      do {
        if (idx >= N) {
          this.#twist();
          this.#retemper();
          idx = 0;
        }
        r = out[idx++] >>> shift;
      } while (r >= bound);
      const t = x[i];
      x[i] = x[r];
      x[r] = t;
    }
    this.#index = idx;
  }

  /** `random.shuffle(x)` in place: for i from len-1 down to 1, swap x[i] with x[_randbelow(i+1)]. */
  shuffle<T>(x: T[] | { length: number; [i: number]: T }): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
  }

  /** A copy of the generator state (resume a loader exactly where it stopped). */
  getState(): PyRandomState {
    return { mt: Array.from(this.#mt, (w) => w >>> 0), index: this.#index };
  }

  /** Restores a state from {@link getState} (or CPython's `getstate()[1]`: 624 words then the index). */
  setState(state: PyRandomState): void {
    if (state.mt.length !== N || !(state.index >= 0 && state.index <= N)) {
      throw new RangeError(`Cannot restore PyRandom state: expected ${N} words and an index in [0, ${N}]`);
    }
    this.#mt.set(state.mt);
    this.#index = 0;
    this.#retemper();
    this.#index = state.index;
  }
}

/**
 * Top bit of MT19937's tempered output of word `y`: tempering maps bit 31 to y31 ^ y27 ^ y24 ^ y16
 * (the `<< 7` and `<< 15` steps fold bits 24 and 16 into it, the first `>>> 11` folds bit 27 into
 * bit 16; the shifts right never reach bit 31).
 */
function temperedTopBit(y: number): number {
  return (y ^ (y << 4) ^ (y << 7) ^ (y << 15)) >>> 31;
}

/** Python's `int.bit_length()` for a non-negative integer below 2^53. */
function bitLength(n: number): number {
  if (n < 4294967296) return 32 - Math.clz32(n);
  return 32 + bitLength(Math.floor(n / 4294967296));
}
