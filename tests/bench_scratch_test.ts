/**
 * The benches' scratch helper (bench/_scratch.ts): a bench stopped by SIGTERM, as a killed parent script
 * would stop it, leaves neither its temporary folder nor its child process behind.
 */
import assert from "node:assert/strict";

Deno.test("a bench stopped by SIGTERM removes its scratch folder and stops its child process", async () => {
  const scratch = new URL("../bench/_scratch.ts", import.meta.url).href;
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { scratchDir, spawnTracked } from ${JSON.stringify(scratch)};
const dir = await scratchDir("uer-ts-scratch-test-");
await Deno.writeTextFile(dir + "/half-written", "x");
const child = spawnTracked("sleep", { args: ["60"], stdout: "null", stderr: "null" });
console.log(JSON.stringify({ dir, pid: child.pid }));
await child.status;
`,
    );
    const bench = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", script],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = bench.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      line += value;
    }
    const { dir, pid } = JSON.parse(line) as { dir: string; pid: number };
    assert.ok((await Deno.stat(dir)).isDirectory);
    bench.kill("SIGTERM");
    const [status] = await Promise.all([bench.status, reader.cancel()]);
    const stderr = new TextDecoder().decode(await new Response(bench.stderr).arrayBuffer());
    assert.equal(status.code, 143, stderr);
    assert.match(stderr, /interrupted by SIGTERM: stopped 1 child process\(es\); removed /);
    await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound);
    // The child got SIGTERM: gone, or a zombie until init reaps it.
    let state = "";
    for (let i = 0; i < 50; i++) {
      state = await Deno.readTextFile(`/proc/${pid}/stat`).then((s) => s.split(") ")[1][0], () => "gone");
      if (state === "gone" || state === "Z") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(state === "gone" || state === "Z", `the child ${pid} is still running (state ${state})`);
  } finally {
    await Deno.remove(script);
  }
});
