import assert from "node:assert/strict";
import { removeActiveTempsSync, removeStaleTemps, withTempSibling, writeDirAtomic } from "./atomic.ts";

Deno.test("removeStaleTemps() removes the temps of dead processes beside a path, and keeps live ones and others", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // pid 2^22+1 is beyond Linux's pid_max: never a running process.
    const dead = `.ds.tmp-${2 ** 22 + 1}-0123abcd`;
    const alive = `.ds.tmp-${Deno.ppid}-89abcdef`; // our parent runs
    const family = `.m-100.tmp-${2 ** 22 + 1}-00000000`;
    for (const n of [dead, `${dead}.old`, alive, family, "ds", ".other.tmp-1-zz"]) await Deno.mkdir(`${dir}/${n}`);
    const removed = await removeStaleTemps(`${dir}/ds`);
    assert.deepEqual(removed.map((r) => r.name).sort(), [`${dir}/${dead}`, `${dir}/${dead}.old`]);
    assert.equal(removed[0].pid, 2 ** 22 + 1);
    assert.deepEqual((await removeStaleTemps(`${dir}/m`, { family: true })).map((r) => r.name), [`${dir}/${family}`]);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(left, [".other.tmp-1-zz", alive, "ds"].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an interrupted write's temporary is registered until it is renamed, and removeActiveTempsSync() removes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let seen: string | undefined;
    await withTempSibling(`${dir}/out`, async (tmp) => {
      seen = tmp;
      await Deno.writeTextFile(tmp, "partial");
      assert.deepEqual(removeActiveTempsSync(), [tmp]); // what an interrupt does
    });
    assert.ok(seen && !(await Deno.stat(seen).catch(() => null)));
    // A completed write leaves nothing registered.
    await writeDirAtomic(`${dir}/d`, (tmp) => Deno.writeTextFile(`${tmp}/a`, "x"));
    assert.deepEqual(removeActiveTempsSync(), []);
    // overwrite swaps the folder in place.
    await writeDirAtomic(`${dir}/d`, (tmp) => Deno.writeTextFile(`${tmp}/b`, "y"), { overwrite: true });
    assert.deepEqual([...Deno.readDirSync(`${dir}/d`)].map((e) => e.name), ["b"]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["d"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
