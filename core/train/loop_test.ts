import assert from "node:assert/strict";
import { type ResumeState, type TrainerLike, trainLoop } from "./loop.ts";
import { AlbertLoader, type Batch, type InstanceSource } from "./loader.ts";
import { makeSchedule } from "./schedule.ts";
import type { Report } from "./metrics.ts";
import type { TakenStats } from "./trainer.ts";

/**
 * A stand-in trainer whose loss depends on the batch and on a "weight" moved by every update; it sums
 * its statistics until they are taken, as the real trainer does on the device.
 */
class FakeTrainer implements TrainerLike {
  w = 1;
  lrs: number[] = [];
  losses: number[] = [];
  takes = 0;
  #sums: Record<string, number> = {};
  #steps = 0;
  takeStats(): Promise<TakenStats> {
    const out = { steps: this.#steps, sums: this.#sums, rows: null };
    this.#sums = {};
    this.#steps = 0;
    this.takes++;
    return Promise.resolve(out);
  }
  step(batch: Batch, lr: number): Promise<void> {
    this.lrs.push(lr);
    let s = 0;
    for (let i = 0; i < batch.src.length; i++) s += batch.src[i] * ((i % 7) + 1);
    const loss = Math.fround((s % 1000) / 100 + this.w);
    this.w -= lr * (loss - 5);
    this.losses.push(loss);
    let n = 0;
    for (const t of batch.tgtMlm) if (t > 0) n++;
    const row: Record<string, number> = {
      loss,
      loss_mlm: Math.fround(loss - 0.5),
      loss_sp: 0.5,
      correct_mlm: n % 3,
      denominator: Math.fround(n + 1e-6),
      correct_sp: batch.batchSize >> 1,
      instances: batch.batchSize,
    };
    for (const [k, v] of Object.entries(row)) this.#sums[k] = (this.#sums[k] ?? 0) + v;
    this.#steps++;
    return Promise.resolve();
  }
}

function source(): InstanceSource {
  const list = Array.from({ length: 37 }, (_, i) => ({
    src: [101, 2000 + i, 3000 + i, 4000 + (i % 5), 102],
    tgtMlm: [[1, 2000 + i] as [number, number]],
    isWrongOrder: i % 2,
    segPos: [3, 5] as [number, number],
  }));
  return { count: list.length, seqLength: 8, instance: (i) => list[i] };
}

const settings = { totalSteps: 23, reportSteps: 3, saveCheckpointSteps: 5, batchSize: 4 };
const schedule = () => makeSchedule({ scheduler: "linear", learningRate: 0.01, totalSteps: 23, warmup: 0.1 });
const clock = () => {
  let t = 0;
  return () => (t += 250);
};

Deno.test("trainLoop() runs total_steps steps at the scheduled lr, reports and saves on UER-py's steps", async () => {
  const trainer = new FakeTrainer();
  const reports: Report[] = [];
  const saved: number[] = [];
  const res = await trainLoop({
    ...settings,
    trainer,
    loader: new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10, seed: 7 }),
    schedule: schedule(),
    now: clock(),
    onReport: (r) => void reports.push(r),
    onCheckpoint: (s) => Promise.resolve(void saved.push(s)),
  });
  assert.equal(res.step, 23);
  assert.deepEqual(trainer.lrs, Array.from({ length: 23 }, (_, i) => schedule().lrAt(i + 1)));
  assert.equal(trainer.lrs[0], 0);
  assert.deepEqual(reports.map((r) => r.step), [3, 6, 9, 12, 15, 18, 21]);
  assert.deepEqual(saved, [5, 10, 15, 20, 23]); // 23: the final step is saved too
  // Statistics are read only at reports and checkpoints (steps 3 5 6 9 10 12 15 18 20 21 23), never per step.
  assert.equal(trainer.takes, 11);
  // Averages over report_steps of the steps in the window.
  const l = trainer.losses;
  assert.equal(reports[1].loss, (l[3] + l[4] + l[5]) / 3);
  // tokens/s: batch_size * seq_length * report_steps over the window (each step is 250 ms on this clock).
  assert.ok(Math.abs(reports[1].tokensPerS - (4 * 8 * 3) / 0.75) < 1e-6, String(reports[1].tokensPerS));
});

Deno.test("trainLoop() resumed from a checkpoint's state continues with the uninterrupted run's numbers", async () => {
  const full = new FakeTrainer();
  const fullReports: Report[] = [];
  await trainLoop({
    ...settings,
    trainer: full,
    loader: new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10, seed: 7 }),
    schedule: schedule(),
    now: clock(),
    onReport: (r) => void fullReports.push(r),
  });

  // First run: stop after the checkpoint of step 10 (not a report step: the sums of step 10 are carried).
  const first = new FakeTrainer();
  let saved: { state: ResumeState; w: number } | undefined;
  await trainLoop({
    ...settings,
    trainer: first,
    loader: new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10, seed: 7 }),
    schedule: schedule(),
    now: clock(),
    stop: () => first.losses.length === 10,
    onCheckpoint: (step, state) => {
      if (step === 10) {
        saved = { state: JSON.parse(JSON.stringify(state)), w: first.w };
      }
      return Promise.resolve();
    },
  });
  assert.ok(saved);
  assert.equal(first.losses.length, 10);

  const second = new FakeTrainer();
  second.w = saved.w;
  const loader = new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10, seed: 999 });
  loader.restore(saved.state.loader);
  const resumedReports: Report[] = [];
  await trainLoop({
    ...settings,
    trainer: second,
    loader,
    schedule: schedule(),
    startStep: saved.state.step,
    sums: saved.state.sums,
    now: clock(),
    onReport: (r) => void resumedReports.push(r),
  });
  assert.deepEqual([...first.losses, ...second.losses], full.losses);
  const pick = (rs: Report[]) => rs.map((r) => [r.step, r.loss, r.lossMlm, r.lossSp, r.accMlm, r.accSp, r.lr]);
  assert.deepEqual(pick(resumedReports), pick(fullReports.filter((r) => r.step > 10)));
});

Deno.test("trainLoop() rejects a zero --report_steps naming the flag", async () => {
  await assert.rejects(
    () =>
      trainLoop({
        ...settings,
        reportSteps: 0,
        trainer: new FakeTrainer(),
        loader: new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10 }),
        schedule: schedule(),
      }),
    /--report_steps/,
  );
});

Deno.test("trainLoop() stopped between checkpoints saves the step it stopped at; elapsed_s continues on resume", async () => {
  const saved: ResumeState[] = [];
  const trainer = new FakeTrainer();
  const res = await trainLoop({
    ...settings,
    trainer,
    loader: new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10, seed: 7 }),
    schedule: schedule(),
    now: clock(), // 250 ms per call
    stop: () => trainer.losses.length === 7, // asked after each step: stop after step 7
    onCheckpoint: (_, state) => Promise.resolve(void saved.push(state)),
  });
  assert.equal(res.stopped, true);
  assert.equal(res.step, 7);
  assert.deepEqual(saved.map((s) => s.step), [5, 7], "the regular checkpoint of step 5, then the stop at 7");
  const last = saved[1];
  assert.ok(last.elapsedS > 0);
  const reports: Report[] = [];
  const loader = new AlbertLoader(source(), { batchSize: 4, instancesBufferSize: 10, seed: 1 });
  loader.restore(last.loader);
  const more = await trainLoop({
    ...settings,
    trainer: new FakeTrainer(),
    loader,
    schedule: schedule(),
    startStep: 7,
    sums: last.sums,
    elapsedS: last.elapsedS,
    now: clock(),
    onReport: (r) => void reports.push(r),
  });
  assert.equal(more.stopped, false);
  assert.equal(reports[0].step, 9);
  assert.ok(reports[0].elapsedS > last.elapsedS, `elapsed ${reports[0].elapsedS} continues from ${last.elapsedS}`);
});
