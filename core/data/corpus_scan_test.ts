import assert from "node:assert/strict";
import { LINE_INDEX_STRIDE } from "./corpus_lines.ts";
import { combineScans, offsetOfLine, scanPiece, scanPieces } from "./corpus_scan.ts";
import { PyRandom } from "./py_random.ts";

// Where each universal-newline line starts, and count_lines, computed plainly over the whole text.
function plain(bytes: Uint8Array): { starts: number[]; newlines: number } {
  const starts = [0];
  let newlines = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 10) {
      newlines++;
      starts.push(i + 1);
    } else if (bytes[i] === 13) {
      if (bytes[i + 1] === 10) {
        newlines++;
        i++;
      }
      starts.push(i + 1);
    }
  }
  return { starts, newlines };
}

// Lines of 0-3 characters ended by \n, \r\n or \r at random; cuts then land inside \r\n pairs too.
function corpus(lines: number, seed: number): Uint8Array {
  const rng = new PyRandom(seed);
  const ends = ["\n", "\r\n", "\r"];
  let text = "";
  for (let i = 0; i < lines; i++) text += "北x京".slice(0, rng.randint(0, 3)) + ends[rng.randint(0, 2)];
  return new TextEncoder().encode(text);
}

async function scanInPieces(path: string, bytes: number, pieceBytes: number) {
  const pieces = [];
  for (const [a, b] of scanPieces(bytes, pieceBytes)) pieces.push(await scanPiece(path, a, b));
  return combineScans(pieces);
}

Deno.test("corpus pieces scanned apart add up to one scan, and every line start is found from them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [lines, seed] of [[40, 1], [3 * LINE_INDEX_STRIDE + 17, 2]]) {
      const bytes = corpus(lines, seed);
      const path = `${dir}/c${seed}.txt`;
      await Deno.writeFile(path, bytes);
      const truth = plain(bytes);
      const small = lines < 100 ? [1, 2, 3, 7] : [];
      for (const pieceBytes of [...small, 4099, Math.ceil(bytes.length / 3), bytes.length]) {
        const scan = await scanInPieces(path, bytes.length, pieceBytes);
        const what = `${lines} lines, pieces of ${pieceBytes} bytes`;
        assert.equal(scan.bytes, bytes.length, what);
        assert.equal(scan.newlines, truth.newlines, what);
        assert.equal(scan.pieces.reduce((s, p) => s + p.lines, 0), truth.starts.length - 1, what);
        // Lines near stride multiples and piece cuts, the last ones, and past the end.
        const ks = lines < 100 ? Array.from({ length: lines + 3 }, (_, k) => k) : [
          0,
          1,
          LINE_INDEX_STRIDE - 1,
          LINE_INDEX_STRIDE,
          LINE_INDEX_STRIDE + 1,
          2 * LINE_INDEX_STRIDE,
          lines - 1,
          lines,
          lines + 1,
          ...scan.pieces.slice(1, 40).map((p) => truth.starts.findIndex((s) => s >= p.from)),
        ];
        for (const k of ks) {
          const want = k < truth.starts.length ? truth.starts[k] : bytes.length;
          assert.equal(await offsetOfLine(path, scan, k), want, `${what}: line ${k}`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a corpus ending in a lone \\r, and an empty corpus, scan as one piece does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const text of ["a\r", "a\r\r", "\r\n\r", ""]) {
      const bytes = new TextEncoder().encode(text);
      const path = `${dir}/c.txt`;
      await Deno.writeFile(path, bytes);
      const truth = plain(bytes);
      for (const pieceBytes of [1, 2, 100]) {
        const scan = await scanInPieces(path, bytes.length, pieceBytes);
        assert.equal(scan.newlines, truth.newlines, JSON.stringify(text));
        for (let k = 0; k < truth.starts.length + 2; k++) {
          const want = k < truth.starts.length ? truth.starts[k] : bytes.length;
          assert.equal(await offsetOfLine(path, scan, k), want, `${JSON.stringify(text)} line ${k}`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
