/**
 * A run's lifecycle through the CLI (DESIGN.md §1.3, §1.4), with real processes and real signals:
 * the same command resumes, another run is refused naming what differs, `--resume` continues with a
 * new schedule, `--overwrite` leaves nothing of the old run, `--keep_checkpoints` prunes, `elapsed_s`
 * continues; `--pretrained_model_path` starts at step 1 (UER-py). Ctrl-C (SIGINT) stops after the
 * current step with a checkpoint and the command that resumes it (exit 130), and resuming gives the
 * uninterrupted run's weights bit for bit; a second SIGTERM exits at once (143) without temp files;
 * killing `npx` (the parent) stops the deno child the same way; an interrupted `preprocess` removes its
 * temporary dataset, and one killed with SIGKILL leaves a temp that the next run removes, saying so.
 * Tiny model (configs/albert/tiny_config.json) on the demo corpus, CPU.
 */
import assert from "node:assert/strict";
import {
  checkpoints,
  cli,
  DEMO_CORPUS,
  DEMO_VOCAB,
  demoDataset,
  finish,
  maxParamDiff,
  ownLines,
  spawnCli,
  TINY_CONFIG,
} from "./_cli.ts";
import { readCheckpoint } from "../core/checkpoint/zarr.ts";
import { parseRecords } from "../core/train/metrics.ts";

const work = await Deno.makeTempDir({ prefix: "uer-ts-lifecycle-" });
let dataset: Promise<string> | undefined;
const ds = () => (dataset ??= demoDataset(`${work}/ds`));

/** A tiny run: constant lr (so a run's lr does not depend on --total_steps), batch 4. */
function pretrain(out: string, steps: number, extra: string[] = []): string[] {
  return [
    "pretrain",
    ...["--dataset_path", `${work}/ds`, "--vocab_path", DEMO_VOCAB, "--config_path", TINY_CONFIG],
    ...["--output_model_path", out, "--total_steps", String(steps), "--batch_size", "4"],
    ...["--learning_rate", "1e-3", "--scheduler", "constant", "--device", "cpu", "--seed", "3"],
    ...extra,
  ];
}

const every2 = ["--save_checkpoint_steps", "2", "--report_steps", "2"];

/** The files in `dir`, temporaries included. */
function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

async function records(out: string) {
  return parseRecords(await Deno.readTextFile(`${out}.metrics.jsonl`));
}

Deno.test("the same command resumes or says it is complete; another run is refused; --resume, --overwrite, --keep_checkpoints", async () => {
  await ds();
  const out = `${work}/a/m`;
  const first = await cli(pretrain(out, 6, every2));
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(listing(`${work}/a`), ["m-2", "m-4", "m-6", "m.loss.svg", "m.metrics.jsonl", "m.run.json"]);

  // The same command again: nothing left to do, nothing written.
  const again = await cli(pretrain(out, 6, every2));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /the run in ".*\/a\/m" is complete: .*m-6 is at step 6 of --total_steps 6; nothing to do/);
  assert.equal((await records(out)).length, 3);

  // Another schedule into the same output: refused (exit 1), naming the difference and the ways out.
  const longer = await cli(pretrain(out, 8, every2));
  assert.equal(longer.code, 1);
  assert.match(
    ownLines(longer.stderr).join("\n"),
    /^error: Cannot pretrain into ".*\/a\/m": it holds another run \(checkpoints up to .*m-6\); this command differs in --total_steps 8 \(was 6\)\n {2}hint: --resume continues it/,
  );

  // --resume continues it with the new total; --keep_checkpoints 2 prunes; elapsed_s goes on.
  const resumed = await cli(pretrain(out, 8, [...every2, "--resume", "--keep_checkpoints", "2"]));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming the run in ".*\/a\/m" from .*m-6 \(step 6\) with --total_steps 8 \(was 6\)/);
  assert.match(resumed.stderr, /removed checkpoint .*m-2 \(--keep_checkpoints 2\)/);
  assert.deepEqual(await checkpoints(out), [6, 8]);
  const recs = await records(out);
  assert.deepEqual(recs.map((r) => r.step), [2, 4, 6, 8]);
  assert.ok(recs[3].elapsed_s > recs[2].elapsed_s, `elapsed_s ${recs[3].elapsed_s} continues ${recs[2].elapsed_s}`);
  assert.equal((await readCheckpoint(`${out}-8`)).step, 8);

  // Another batch size cannot be resumed: refused even with --resume.
  const other = await cli(pretrain(out, 10, [...every2, "--resume", "--batch_size", "2"]));
  assert.equal(other.code, 1);
  assert.match(other.stderr, /differs in --batch_size 2 \(was 4\)[^]*hint: --overwrite replaces it/);

  // --overwrite: nothing of the old run is left beside the new one.
  const over = await cli(pretrain(out, 2, [...every2, "--overwrite"]));
  assert.equal(over.code, 0, over.stderr);
  assert.match(over.stderr, /removed the earlier run in ".*\/a\/m" \(--overwrite\)/);
  assert.deepEqual(listing(`${work}/a`), ["m-2", "m.loss.svg", "m.metrics.jsonl", "m.run.json"]);
  assert.deepEqual((await records(out)).map((r) => [r.step, r.total_steps]), [[2, 2]]);

  // Usage and state errors.
  const both = await cli(pretrain(out, 2, ["--resume", "--overwrite"]));
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--resume and --overwrite contradict each other/);
  const nothing = await cli(pretrain(`${work}/empty/m`, 2, ["--resume"]));
  assert.equal(nothing.code, 1);
  assert.match(nothing.stderr, /Cannot resume ".*empty\/m": no run there/);
});

Deno.test("--pretrained_model_path loads a checkpoint's weights and starts a new run at step 1 (UER-py)", async () => {
  await ds();
  const a = `${work}/p/a`, b = `${work}/p/b`;
  assert.equal((await cli(pretrain(a, 4, ["--save_checkpoint_steps", "4", "--report_steps", "4"]))).code, 0);
  const r = await cli(pretrain(b, 2, ["--save_checkpoint_steps", "1", "--pretrained_model_path", `${a}-4`]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /starting a new run at step 1 from the weights of ".*a-4" \(zarr\); as in UER-py/);
  assert.deepEqual(await checkpoints(b), [1, 2]);
  // Step 1's update starts from a-4's weights with fresh moments: the result differs from a-4 by one step.
  const ck = await readCheckpoint(`${b}-1`);
  assert.equal(ck.step, 1);
  assert.ok((await maxParamDiff(`${a}-4`, `${b}-1`)) > 0);
});

/** Reads stdout lines as they come; resolves when `until` holds for a line. */
async function waitForLine(child: Deno.ChildProcess, until: (line: string) => boolean): Promise<string[]> {
  const lines: string[] = [];
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the run ended before the expected line:\n${lines.join("\n")}`);
    buf += value;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
    if (parts.some(until)) {
      reader.releaseLock();
      return lines;
    }
  }
}

async function stderrOf(child: Deno.ChildProcess): Promise<{ code: number; stderr: string }> {
  const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
  await child.stdout.cancel().catch(() => {});
  return { code: status.code, stderr: err };
}

Deno.test("SIGINT stops after the current step with a checkpoint and the resume command (130); resuming matches the uninterrupted run", async () => {
  await ds();
  const ref = `${work}/s/ref`, out = `${work}/s/m`;
  const args = (o: string) => pretrain(o, 30, ["--save_checkpoint_steps", "30", "--report_steps", "1", "--json"]);
  assert.equal((await cli(args(ref))).code, 0);

  const child = spawnCli(args(out));
  await waitForLine(child, (l) => JSON.parse(l).step === 5);
  child.kill("SIGINT");
  const r = await stderrOf(child);
  assert.equal(r.code, 130, r.stderr);
  const m = /stopped by SIGINT at step (\d+) of 30; the last checkpoint is (\S+)\nresume with:\n {2}(.+)\n/.exec(
    r.stderr,
  );
  assert.ok(m, r.stderr);
  const step = Number(m[1]);
  assert.ok(step >= 5 && step < 30, `stopped at ${step}`);
  assert.equal(m[2], `${out}-${step}`);
  assert.deepEqual(await checkpoints(out), [step]);
  assert.ok(!listing(`${work}/s`).some((n) => n.includes(".tmp-")), "no temporary files left");
  assert.match(m[3], new RegExp(`run -A \\S+/cli/main.ts pretrain .*--output_model_path ${out} `));

  // The printed command resumes the run and ends where the uninterrupted one did, bit for bit.
  const words = m[3].split(" ");
  const resumed = await new Deno.Command(words[0], { args: words.slice(1), stdout: "piped", stderr: "piped" })
    .output();
  const err = new TextDecoder().decode(resumed.stderr);
  assert.equal(resumed.code, 0, err);
  assert.match(err, new RegExp(`resuming the run in "${out}" from ${out}-${step} \\(step ${step}\\)\\n`));
  assert.equal(await maxParamDiff(`${ref}-30`, `${out}-30`), 0);
  const pick = (rs: { step: number; loss: number; acc_mlm: number }[]) => rs.map((x) => [x.step, x.loss, x.acc_mlm]);
  assert.deepEqual(pick(await records(out)), pick(await records(ref)));
});

Deno.test("a second SIGTERM exits at once (143), naming the last checkpoint, with no temporary files left", async () => {
  await ds();
  // ALBERT base's shape: a step and a checkpoint take long enough for the second signal to land in them.
  const out = `${work}/t/m`;
  const args = pretrain(out, 100000, ["--save_checkpoint_steps", "1", "--report_steps", "1"]);
  args[args.indexOf(TINY_CONFIG)] = new URL("../configs/albert/base_config.json", import.meta.url).pathname;
  const child = spawnCli(args);
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  const until = async (re: RegExp) => {
    while (!re.test(err)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the run ended early:\n${err}`);
      err += value;
    }
  };
  await until(/saved checkpoint \S+-1\n/);
  child.kill("SIGTERM");
  // Signals are not queued: the second is sent once the first was taken.
  await until(/interrupted by SIGTERM: stopping after the current step\n/);
  try {
    child.kill("SIGTERM");
  } catch (e) {
    throw new Error(`the run ended before the second signal (${e}):\n${err}`);
  }
  for (let r = await reader.read(); !r.done; r = await reader.read()) err += r.value;
  const { code } = await child.status;
  await child.stdout.cancel();
  assert.equal(code, 143, err);
  // The second one: temporaries (an unfinished checkpoint, a loss curve) removed, then the last words.
  assert.match(err, /\ninterrupted by SIGTERM(: removed \S+\.tmp-\d+-[0-9a-f]{8}(, \S+\.tmp-\d+-[0-9a-f]{8})*)?\n/);
  assert.match(err, new RegExp(`the last checkpoint is ${out}-\\d+; resume with:\\n {2}\\S+ run -A `));
  assert.ok(!listing(`${work}/t`).some((n) => n.includes(".tmp-")), `${listing(`${work}/t`).join(" ")}\n${err}`);
});

/** Pids of processes whose command line holds `marker` (Linux /proc). */
function pidsWith(marker: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(marker)) out.push(Number(e.name));
    } catch {
      // gone
    }
  }
  return out;
}

Deno.test("killing npx (SIGKILL) stops the deno child it started, with a checkpoint", async () => {
  await ds();
  const out = `${work}/n/m`;
  const root = new URL("..", import.meta.url).pathname;
  const npx = new Deno.Command("npx", {
    args: ["deno", "run", "-A", "cli/main.ts", ...pretrain(out, 100000, ["--save_checkpoint_steps", "3"])],
    cwd: root,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const errText = new Response(npx.stderr).text();
  for (let i = 0; i < 1200 && (await checkpoints(out).catch(() => [])).length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const deno = pidsWith(out).filter((p) => Deno.readTextFileSync(`/proc/${p}/cmdline`).startsWith(Deno.execPath()));
  assert.equal(deno.length, 1, "the deno child runs");
  npx.kill("SIGKILL");
  await npx.status;
  let alive = true;
  for (let i = 0; i < 200 && alive; i++) {
    await new Promise((r) => setTimeout(r, 50));
    alive = pidsWith(out).includes(deno[0]);
  }
  assert.ok(!alive, "the deno child stopped within 10 s of npx's death");
  const err = await errText;
  assert.match(err, /interrupted by the death of its parent process \(npx\): stopping after the current step/);
  assert.match(err, /stopped by the death of its parent process \(npx\) at step \d+ .*; the last checkpoint is /);
  assert.ok((await checkpoints(out)).length >= 2, "the stop saved its step");
});

Deno.test("preprocess: SIGINT removes its temporary dataset (130); a SIGKILLed one's temp is removed by the next run", async () => {
  const corpus = `${work}/big.txt`;
  await Deno.writeTextFile(corpus, (await Deno.readTextFile(DEMO_CORPUS)).repeat(200));
  const args = (out: string) => [
    "preprocess",
    ...["--corpus_path", corpus, "--vocab_path", DEMO_VOCAB, "--dataset_path", out, "--seq_length", "32"],
    ...["--dup_factor", "5", "--target", "albert", "--quiet"],
  ];
  const temps = (name: string) => listing(work).filter((n) => n.startsWith(`.${name}.tmp-`));
  const waitTemp = async (name: string) => {
    for (let i = 0; i < 1200 && temps(name).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(temps(name).length, 1, "the run is writing its temporary dataset");
  };

  const child = spawnCli(args(`${work}/big_ds`));
  await waitTemp("big_ds");
  child.kill("SIGINT");
  const r = await finish(child);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /^interrupted by SIGINT: removed .*\.big_ds\.tmp-\d+-[0-9a-f]{8}$/m);
  assert.deepEqual(temps("big_ds"), []);
  assert.ok(!listing(work).includes("big_ds"));

  const killed = spawnCli(args(`${work}/big_ds`));
  await waitTemp("big_ds");
  killed.kill("SIGKILL");
  await finish(killed);
  const [left] = temps("big_ds");
  assert.ok(left, "SIGKILL leaves the temporary dataset");
  const next = await cli(args(`${work}/big_ds`).filter((a) => a !== "--quiet"));
  assert.equal(next.code, 0, next.stderr);
  assert.match(
    next.stderr,
    new RegExp(`removed .*${left.replaceAll(".", "\\.")}, left by process \\d+ which is no longer running`),
  );
  assert.deepEqual(temps("big_ds"), []);
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch {
    // already gone
  }
});
