import assert from "node:assert/strict";
import { bmpClassTable, computeCharClass, setBmpClassTable } from "./char_class.ts";

Deno.test("bmpClassTable() equals computeCharClass() for every BMP code point", () => {
  const t = bmpClassTable();
  const wrong: string[] = [];
  for (let cp = 0; cp < 0x10000; cp++) {
    const want = computeCharClass(cp);
    if (t[cp] !== want) wrong.push(`U+${cp.toString(16).padStart(4, "0")}: ${t[cp]} != ${want}`);
  }
  assert.deepEqual(wrong.slice(0, 10), []);
});

Deno.test("setBmpClassTable() refuses a table that is not 65,536 entries", () => {
  assert.throws(() => setBmpClassTable(new Uint8Array(10)), /65536/);
});
