/**
 * End-to-end tests of data-parallel pretraining over MPI (DESIGN.md §5; UER-py's DDP in `uer/trainer.py`):
 * real `mpirun` jobs with 2 ranks on the CPU. They need Open MPI (`apt-get install -y openmpi-bin
 * libopenmpi-dev`); without it they fail with that hint rather than pass vacuously.
 * @module
 */
import assert from "node:assert/strict";
import { isRoot, launchRanks, mpirunArgv } from "../core/parallel/launch.ts";
import { readCheckpoint } from "../core/checkpoint/zarr.ts";
import { DEMO_VOCAB, demoDataset, finish, MAIN, maxParamDiff, spawnCli, TINY_CONFIG } from "./_cli.ts";

const PROBE = new URL("../core/parallel/rank_probe.ts", import.meta.url).pathname;

function probeArgv(mode: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", PROBE, mode, ...args];
}

/** Runs `mpirun -np n` over the probe and returns its exit code and output. */
async function mpirun(n: number, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = mpirunArgv({ worldSize: n, rankArgv: argv, isRoot: isRoot() });
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("mpirun is missing\n  hint: apt-get install -y openmpi-bin libopenmpi-dev");
    }
    throw e;
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("mpirun -np 2: all-reduce sums, means, broadcast and the layout check agree on both ranks", async () => {
  const r = await mpirun(2, probeArgv("check"));
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l)).sort((a, b) => a.rank - b.rank);
  assert.deepEqual(lines.map((l) => [l.rank, l.size, l.localRank]), [[0, 2, 0], [1, 2, 1]]);
  for (const l of lines) {
    // Inputs are multiples of 1/8 below 2^20: float32 sums of two of them are exact.
    assert.equal(l.sumErr, 0);
    assert.deepEqual(l.mean, [0.5, 2]); // mean of [0, 1] and [1, 3]
    assert.deepEqual(l.f64, [1e-300, 1]); // float64 all-reduce keeps a denormal-range value
    assert.deepEqual(l.w, [0, 10, 20, 30, 40, 50]); // rank 0's parameters after syncParams
    assert.deepEqual(l.stats, { denominator: 20, loss: 2 });
    assert.match(l.layoutError, /ranks disagree on the gradients/);
    assert.deepEqual(l.gathered, [{ rank: 0, text: "é" }, { rank: 1, text: "éé" }]);
  }
  assert.notEqual(lines[0].before, lines[1].before);
  assert.equal(lines[0].after, lines[1].after);
});

const TINY = {
  ...JSON.parse(Deno.readTextFileSync(TINY_CONFIG)),
  vocab_size: 120,
};

interface TrainOut {
  rank: number;
  size: number;
  checksum: string;
  steps: { loss: number; lossMlm: number; correctMlm: number; denominator: number }[];
}

/** Runs the `train` probe on 2 ranks with `acc` and on 1 rank with 2·acc; returns both outputs. */
async function equivalentRuns(dir: string, acc: number) {
  const job = (a: number, out: string) =>
    JSON.stringify({ config: TINY, batch: 4, seq: 32, steps: 3, acc: a, lr: 1e-3, seed: 7, out: `${dir}/${out}` });
  const two = await mpirun(2, probeArgv("train", job(acc, "two.bin")));
  assert.equal(two.code, 0, two.stderr);
  const one = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", PROBE, "train", job(2 * acc, "one.bin")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(one.code, 0, new TextDecoder().decode(one.stderr));
  const a = new Float32Array((await Deno.readFile(`${dir}/two.bin`)).buffer);
  const b = new Float32Array((await Deno.readFile(`${dir}/one.bin`)).buffer);
  assert.equal(a.length, b.length);
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
  return {
    ranks: two.stdout.trim().split("\n").map((l) => JSON.parse(l)) as TrainOut[],
    single: JSON.parse(new TextDecoder().decode(one.stdout)) as TrainOut,
    maxDiff,
  };
}

Deno.test("2 ranks × batch 4 reproduce 1 rank accumulating the same batches (--accumulation_steps 2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dist_eq_" });
  try {
    const { ranks, single, maxDiff } = await equivalentRuns(dir, 1);
    // The ranks start from different random parameters; rank 0's broadcast makes them agree, and after
    // 3 averaged updates they are still bit-identical on both ranks.
    assert.equal(ranks.length, 2);
    assert.equal(ranks[0].checksum, ranks[1].checksum);
    // Same update as the one-rank accumulation: (g0 + g1) × 1/2 against 1/2·g0 + 1/2·g1, equal in
    // float32 (×1/2 is exact). Parameters are O(0.02–1), ulp ≤ 1.2e-7; 1e-6 allows a few ulps.
    // Observed here: 0 (bit-identical).
    assert.ok(maxDiff <= 1e-6, `max |Δparam| = ${maxDiff}`);
    // The job-wide report statistics equal the accumulated run's: mean loss, summed counts.
    for (let s = 0; s < 3; s++) {
      assert.ok(Math.abs(ranks[0].steps[s].loss - single.steps[s].loss) <= 1e-5);
      assert.equal(ranks[0].steps[s].denominator, single.steps[s].denominator);
      assert.equal(ranks[0].steps[s].correctMlm, single.steps[s].correctMlm);
    }
    // And the training did something: parameters moved off the shared start.
    assert.notEqual(ranks[0].steps[0].loss, ranks[0].steps[2].loss);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("2 ranks with --accumulation_steps 2 match 1 rank with --accumulation_steps 4 within float32 rounding", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dist_eq_acc_" });
  try {
    const { ranks, maxDiff } = await equivalentRuns(dir, 2);
    assert.equal(ranks[0].checksum, ranks[1].checksum);
    // Rank r accumulates batches r and r+2, then the ranks are averaged: ((g0+g2)/2 + (g1+g3)/2)/2
    // against ((g0/4 + g1/4) + g2/4) + g3/4 on one rank — another summation order, so float32
    // rounding differs by an ulp or so (observed: 1.2e-7). 1e-6 ≈ 8 ulps at |w| ≈ 1.
    assert.ok(maxDiff <= 1e-6, `max |Δparam| = ${maxDiff}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mpirun -np 2: a rank killed by SIGKILL stops the whole job within seconds, naming the rank", async () => {
  const t0 = performance.now();
  const r = await launchRanks(2, { rankArgv: probeArgv("die") });
  const seconds = (performance.now() - t0) / 1000;
  assert.notEqual(r.code, 0);
  assert.equal(r.failedRank, 1);
  // Start-up of two Deno ranks takes ~1 s here; mpirun tears the job down ~1 s after the kill.
  assert.ok(seconds < 20, `job took ${seconds.toFixed(1)} s to stop`);
});

// ---- `pretrain` over MPI, end to end (demo corpus, tiny config, CPU) ----

const work = await Deno.makeTempDir({ prefix: "uer-ts-dist-" });
let dataset: Promise<string> | undefined;

/** The demo corpus preprocessed once for the tests below (259 instances of seq_length 64). */
function demoDs(): Promise<string> {
  dataset ??= demoDataset(`${work}/ds`);
  return dataset;
}

/** `pretrain` flags of a tiny 2-rank run; constant lr so that runs of different lengths share steps. */
function pretrainFlags(ds: string, out: string, totalSteps: number, extra: string[] = []): string[] {
  return [
    "pretrain",
    "--dataset_path",
    ds,
    "--vocab_path",
    DEMO_VOCAB,
    "--config_path",
    TINY_CONFIG,
    "--data_processor",
    "albert",
    "--output_model_path",
    out,
    "--total_steps",
    String(totalSteps),
    "--save_checkpoint_steps",
    "4",
    "--report_steps",
    "4",
    "--batch_size",
    "4",
    "--learning_rate",
    "1e-3",
    "--scheduler",
    "constant",
    "--device",
    "cpu",
    ...extra,
  ];
}

/** The pid of MPI rank `rank` whose command line mentions `marker` (Linux /proc). */
async function rankPid(rank: number, marker: string): Promise<number | undefined> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const env = await Deno.readTextFile(`/proc/${e.name}/environ`);
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (env.includes(`\0OMPI_COMM_WORLD_RANK=${rank}\0`) && cmd.includes(marker)) return Number(e.name);
    } catch {
      // gone or not ours
    }
  }
  return undefined;
}

Deno.test("pretrain --world_size 2 launches its ranks: rank 0 alone reports and saves, parameters stay identical", async () => {
  const ds = await demoDs();
  const out = `${work}/launched/m`;
  const r = await finish(spawnCli(pretrainFlags(ds, out, 8, ["--world_size", "2", "--gpu_ranks", "0", "1"])));
  assert.equal(r.code, 0, r.stderr);
  // One report line per report step, not one per rank.
  const reports = r.stdout.trim().split("\n");
  assert.equal(reports.length, 2);
  assert.match(reports[1], /^\|\s+8\/\s+8 steps\|/);
  // acc_sp counts every rank's instances: 4 steps x 4 rows x 2 ranks = 32, so it is a multiple of 1/32.
  const accSp = JSON.parse((await Deno.readTextFile(`${out}.metrics.jsonl`)).trim().split("\n")[1]).acc_sp;
  assert.ok(Math.abs(accSp * 32 - Math.round(accSp * 32)) < 1e-9, `acc_sp ${accSp}`);
  assert.match(r.stderr, /--gpu_ranks 0 1 unused: --device cpu runs every rank on the CPU/);
  assert.match(r.stderr, /data parallel: 2 ranks under mpirun/);
  // The end-of-run check: both ranks' parameter checksums agree.
  assert.match(r.stderr, /ranks in sync: parameter checksum [0-9a-f]{8} on all 2 ranks/);
  assert.equal(r.stderr.match(/saved checkpoint/g)?.length, 2); // printed by rank 0 only
  const saved = [...Deno.readDirSync(`${work}/launched`)].map((e) => e.name).sort();
  assert.deepEqual(saved, ["m-4", "m-8", "m.loss.svg", "m.metrics.jsonl", "m.run.json"]);
  const ck = await readCheckpoint(`${out}-8`);
  assert.equal(ck.step, 8);
  const extra = ck.extra as { loaders?: unknown[]; run?: { identity: { world_size: number } } };
  assert.equal(extra.loaders?.length, 2); // each rank's shard position, for resuming
  assert.equal(extra.run?.identity.world_size, 2);
});

Deno.test("pretrain over MPI: SIGKILL of rank 1 stops the job naming the rank; resuming reproduces the uninterrupted run", async () => {
  const ds = await demoDs();
  // Reference: 16 uninterrupted steps, started as users do with their own mpirun (no --world_size).
  const ref = `${work}/ref/m`;
  const refRun = mpirunArgv({
    worldSize: 2,
    rankArgv: [Deno.execPath(), "run", "-A", MAIN, ...pretrainFlags(ds, ref, 16, ["--quiet"])],
    isRoot: isRoot(),
  });
  const rr = await new Deno.Command(refRun[0], { args: refRun.slice(1), stdout: "piped", stderr: "piped" }).output();
  assert.equal(rr.code, 0, new TextDecoder().decode(rr.stderr));

  // A long run, killed once its checkpoint at step 4 exists.
  const out = `${work}/killed/m`;
  const child = spawnCli(pretrainFlags(ds, out, 1000, ["--world_size", "2"]));
  const done = finish(child);
  let pid: number | undefined;
  // Up to 2 minutes on a loaded CI machine.
  for (let i = 0; i < 2400 && pid === undefined; i++) {
    await new Promise((res) => setTimeout(res, 50));
    try {
      await Deno.stat(`${out}-4`);
      pid = await rankPid(1, out);
    } catch {
      // not yet
    }
  }
  if (pid === undefined) {
    child.kill("SIGTERM"); // the launcher passes it on to mpirun, which stops both ranks
    await done;
    assert.fail("rank 1 never reached its first checkpoint");
  }
  const t0 = performance.now();
  Deno.kill(pid, "SIGKILL");
  const r = await done;
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\nerror: Data-parallel job stopped: rank 1 of 2 ended with signal 9 \(Killed\)/);
  assert.ok(seconds < 15, `the job took ${seconds.toFixed(1)} s to stop after the kill`);

  // Resume from the last complete checkpoint (4 or 8: steps take ~0.1 s, finding and killing rank 1 less).
  const last = Math.max(
    ...[...Deno.readDirSync(`${work}/killed`)].map((e) => e.name.match(/^m-(\d+)$/)?.[1]).filter((x) => x)
      .map(Number),
  );
  assert.ok(last >= 4 && last < 16, `last checkpoint ${last}`);
  const resumed = await finish(
    // --resume: the killed run had --total_steps 1000; it goes on to 16 (constant lr: the same updates).
    spawnCli(pretrainFlags(ds, out, 16, ["--world_size", "2", "--resume"])),
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stderr,
    new RegExp(
      `resuming the run in "${out}" from ${out}-${last} \\(step ${last}\\) with --total_steps 16 \\(was 1000\\)`,
    ),
  );
  // Same batches per rank (each rank's loader position was saved), same updates: the final weights
  // match the uninterrupted run. Both runs use the same ops in the same order on 1 thread per rank,
  // so they are bit-identical here; 1e-6 leaves room for a float32 ulp at |w| ≈ 1.
  const diff = await maxParamDiff(`${out}-16`, `${ref}-16`);
  assert.ok(diff <= 1e-6, `max |Δparam| ${diff}`);
});

Deno.test("pretrain --world_size 2 without Open MPI installed is a one-line error naming the packages", async () => {
  const ds = await demoDs();
  const r = await finish(
    spawnCli(pretrainFlags(ds, `${work}/nompi/m`, 4, ["--world_size", "2"]), { env: { PATH: "/nonexistent" } }),
  );
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^error: Cannot launch --world_size 2: "mpirun" is not on PATH\n {2}hint: install Open MPI with `apt-get install -y openmpi-bin libopenmpi-dev`\n$/,
  );
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch {
    // already gone
  }
});

Deno.test("pretrain --world_size 2 interrupted (SIGINT to the launcher) stops every rank after the same step with a checkpoint (130)", async () => {
  const ds = await demoDs();
  const out = `${work}/sigint/m`;
  const child = spawnCli(pretrainFlags(ds, out, 100000, ["--world_size", "2", "--save_checkpoint_steps", "1000"]));
  const done = finish(child);
  // Wait until both ranks train (rank 1 exists and rank 0 has written the run's settings).
  for (let i = 0; i < 2400; i++) {
    await new Promise((res) => setTimeout(res, 50));
    if ((await rankPid(1, out)) !== undefined && (await Deno.stat(`${out}.run.json`).catch(() => null))) break;
  }
  await new Promise((res) => setTimeout(res, 1000));
  child.kill("SIGINT");
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted by a stop request \(SIGUSR2 from mpirun\)/);
  const m = /stopped by SIGINT at step (\d+) of 100000; the last checkpoint is (\S+)\nresume with:\n/.exec(r.stderr);
  assert.ok(m, r.stderr);
  assert.equal(m[2], `${out}-${m[1]}`);
  const ck = await readCheckpoint(m[2]);
  assert.equal((ck.extra as { loaders?: unknown[] }).loaders?.length, 2, "both ranks' loader positions");
  assert.match(r.stderr, /ranks in sync/);
  assert.equal(await rankPid(0, out), undefined, "no rank left running");
  assert.equal(await rankPid(1, out), undefined, "no rank left running");
});
