import assert from "node:assert/strict";
import { CompressingThread } from "./chunk_compressor.ts";
import { DATASET_COMPRESSORS, partLayout, PartWriter, writeHere } from "./part_writer.ts";
import { PyRandom } from "./py_random.ts";
import { useNativeCodecs } from "../io/zarr.ts";

Deno.test("CompressingThread writes the bytes this thread writes; behind, the caller compresses; errors name the file", async () => {
  await useNativeCodecs();
  const dir = await Deno.makeTempDir();
  const sink = new CompressingThread();
  try {
    const values = (k: number) => Uint16Array.from({ length: 300_000 }, (_, i) => (i * (k + 7)) % 5000);
    writeHere.write(`${dir}/here`, values(1), DATASET_COMPRESSORS);
    const done = sink.write(`${dir}/there`, values(1), DATASET_COMPRESSORS);
    assert.ok(done instanceof Promise, "handed to the thread");
    await done;
    assert.deepEqual(await Deno.readFile(`${dir}/there`), await Deno.readFile(`${dir}/here`));
    // More than 8 MiB in flight at once: the rest is compressed here, synchronously.
    const writes = Array.from({ length: 20 }, (_, k) => sink.write(`${dir}/c${k}`, values(k), DATASET_COMPRESSORS));
    assert.ok(writes.some((w) => w === undefined) && writes.some((w) => w instanceof Promise));
    await Promise.all(writes);
    assert.equal(sink.counts.thread + sink.counts.here, 21);
    for (let k = 0; k < 20; k++) assert.ok((await Deno.stat(`${dir}/c${k}`)).size > 0);
    await assert.rejects(
      async () => await sink.write(`${dir}/missing/x`, values(2), DATASET_COMPRESSORS),
      (e: Error) => e.message.includes(`${dir}/missing/x`),
    );
  } finally {
    sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PartWriter writes the same part through a CompressingThread as on its own thread, chunk after chunk", async () => {
  const dir = await Deno.makeTempDir();
  const sink = new CompressingThread();
  try {
    const layout = { ...partLayout(24, 21128, true), chunkRows: 8 }; // 5 chunks, the last one partial
    const rng = new PyRandom(5);
    const rows = Array.from({ length: 37 }, () => {
      const len = rng.randint(6, 24);
      return {
        src: Array.from({ length: len }, () => rng.randint(104, 21127)),
        tgtMlm: [[1, rng.randint(104, 21127)], [3, rng.randint(104, 21127)]] as [number, number][],
        isWrongOrder: rng.randint(0, 1) as 0 | 1,
        segPos: [2, len] as [number, number],
      };
    });
    for (const [name, s] of [["here", writeHere], ["there", sink]] as const) {
      const w = await PartWriter.create(`${dir}/${name}`, layout, DATASET_COMPRESSORS, s);
      for (const r of rows) await w.append(r);
      assert.equal(await w.close(), rows.length);
    }
    assert.ok(sink.counts.thread >= 5 * 6, `${sink.counts.thread} chunks went through the thread`);
    const files = (d: string): [string, Uint8Array][] =>
      [...Deno.readDirSync(d)].flatMap((e) =>
        e.isDirectory
          ? files(`${d}/${e.name}`).map(([k, v]) => [`${e.name}/${k}`, v])
          : [[e.name, Deno.readFileSync(`${d}/${e.name}`)]]
      ).sort(([a], [b]) => a < b ? -1 : 1) as [string, Uint8Array][];
    const here = files(`${dir}/here`);
    assert.equal(here.length, 6 * 5 + 7); // 6 arrays × 5 chunks, 6 array and 1 group zarr.json
    assert.deepEqual(files(`${dir}/there`), here);
  } finally {
    sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});
