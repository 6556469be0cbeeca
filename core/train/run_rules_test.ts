import assert from "node:assert/strict";
import { decideStart, differences, type FoundRun, type RunSettings } from "./run_rules.ts";

const settings: RunSettings = {
  identity: {
    dataset: { vocab_hash: "ab", seq_length: 64, count: 259 },
    model: { hidden_size: 64 },
    pretrained_model_path: null,
    batch_size: 4,
    seed: 7,
    instances_buffer_size: 25600,
    world_size: 1,
    accumulation_steps: 1,
    masking: {},
  },
  schedule: { total_steps: 10, learning_rate: 1e-3, warmup: 0.1, scheduler: "linear", dropout: 0 },
};
const none: FoundRun = { settings: null, checkpoints: [], files: [] };
const found = (over: Partial<FoundRun> = {}): FoundRun => ({
  settings,
  checkpoints: [5],
  files: ["m-5", "m.metrics.jsonl", "m.run.json"],
  ...over,
});
const decide = (f: FoundRun, s = settings, resume = false, overwrite = false) =>
  decideStart({ out: "m", settings: s, found: f, resume, overwrite });
const withSchedule = (over: Partial<RunSettings["schedule"]>) => ({
  ...settings,
  schedule: { ...settings.schedule, ...over },
});
const withIdentity = (over: Partial<RunSettings["identity"]>) => ({
  ...settings,
  identity: { ...settings.identity, ...over },
});

Deno.test("decideStart(): an empty output starts fresh; --resume there has nothing to resume", () => {
  assert.deepEqual(decide(none), { kind: "new", replace: false });
  assert.throws(() => decide(none, settings, true), /Cannot resume "m": no run there/);
});

Deno.test("decideStart(): the same settings resume from the last checkpoint, or are complete at total_steps", () => {
  assert.deepEqual(decide(found({ checkpoints: [2, 5] })), { kind: "resume", step: 5, changed: [] });
  assert.deepEqual(decide(found({ checkpoints: [10] })), { kind: "complete", step: 10 });
  const started = decide(found({ checkpoints: [], files: ["m.run.json"] }));
  assert.equal(started.kind, "new");
  assert.ok(started.kind === "new" && started.replace, "an earlier start without a checkpoint is replaced");
});

Deno.test("decideStart(): another schedule is refused unless --resume, which names each change", () => {
  assert.throws(
    () => decide(found(), withSchedule({ total_steps: 20 })),
    /differs in --total_steps 20 \(was 10\)[^]*--resume continues it/,
  );
  assert.deepEqual(decide(found(), withSchedule({ total_steps: 20, learning_rate: 1e-4 }), true), {
    kind: "resume",
    step: 5,
    changed: ["--total_steps 20 (was 10)", "--learning_rate 0.0001 (was 0.001)"],
  });
});

Deno.test("decideStart(): another identity is refused even with --resume; --overwrite replaces any run", () => {
  for (const resume of [false, true]) {
    assert.throws(
      () => decide(found(), withIdentity({ batch_size: 8 }), resume),
      /--batch_size 8 \(was 4\)[^]*--overwrite replaces it/,
    );
  }
  assert.throws(
    () => decide(found(), withIdentity({ dataset: { ...settings.identity.dataset, count: 9 } })),
    /dataset: count 9 \(was 259\)/,
  );
  assert.throws(() => decide(found({ settings: null })), /settings are not recorded/);
  assert.deepEqual(decide(found(), withIdentity({ seed: 1 }), false, true).kind, "new");
});

Deno.test("differences() names nested changes", () => {
  assert.deepEqual(differences({ a: 1, m: { x: 1, y: 2 } }, { a: 1, m: { x: 1, y: 3 } }), ["m: y 3 (was 2)"]);
});
