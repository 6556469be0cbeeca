import assert from "node:assert/strict";
import { makeSchedule, type ScheduleOptions, type SchedulerName } from "./schedule.ts";
import { refJson } from "../../tests/reference.ts";

interface Trace {
  resolved_args: { total_steps: number; learning_rate: number; warmup: number; scheduler: "linear" };
  steps: { step: number; lr: number[] }[];
}

for (const name of ["train_trace", "train_trace_docs"]) {
  Deno.test(`makeSchedule().lrAt() equals UER-py's lr at every step of ${name}`, async () => {
    const trace = await refJson<Trace>(`albert-tiny/${name}/trace.json`);
    const a = trace.resolved_args;
    const s = makeSchedule({
      scheduler: a.scheduler,
      learningRate: a.learning_rate,
      totalSteps: a.total_steps,
      warmup: a.warmup,
    });
    assert.equal(trace.steps.length, a.total_steps);
    for (const st of trace.steps) {
      for (const lr of st.lr) {
        assert.ok(Math.abs(s.lrAt(st.step) - lr) <= 1e-12, `step ${st.step}: ${s.lrAt(st.step)} vs ${lr}`);
      }
    }
  });
}

Deno.test("makeSchedule() linear warmup is a float: step 1 at lr 0, T=12 W=1.2 gives 1/1.2 then 10/10.8", () => {
  const s = makeSchedule({ scheduler: "linear", learningRate: 1, totalSteps: 12, warmup: 0.1 });
  assert.equal(s.warmupSteps, 12 * 0.1);
  assert.equal(s.lrAt(1), 0);
  assert.equal(s.lrAt(2), 1 / (12 * 0.1)); // 12*0.1 = 1.2000000000000002 in double, as in Python
  assert.equal(s.lrAt(3), 10 / (12 - 12 * 0.1));
  assert.equal(s.lrAt(13), 0); // past the end: max(0, ...)
});

Deno.test("makeSchedule() constant and constant_with_warmup follow torch LambdaLR factors", () => {
  const c = makeSchedule({ scheduler: "constant", learningRate: 2e-5, totalSteps: 10, warmup: 0.1 });
  for (let t = 1; t <= 10; t++) assert.equal(c.lrAt(t), 2e-5);
  const w = makeSchedule({ scheduler: "constant_with_warmup", learningRate: 1, totalSteps: 25, warmup: 0.1 });
  assert.deepEqual([1, 2, 3, 4, 100].map((t) => w.lrAt(t)), [0, 1 / 2.5, 2 / 2.5, 1, 1]);
  // warmup shorter than one step: max(1.0, W) keeps the factor at k/1 for k < W, i.e. 0 at step 1.
  const z = makeSchedule({ scheduler: "constant_with_warmup", learningRate: 1, totalSteps: 5, warmup: 0.1 });
  assert.deepEqual([1, 2].map((t) => z.lrAt(t)), [0, 1]);
});

Deno.test("makeSchedule() advances once per optimizer step with accumulation_steps", () => {
  const s = makeSchedule({ scheduler: "linear", learningRate: 1, totalSteps: 40, warmup: 0.1, accumulationSteps: 2 });
  // Updates happen at steps 2, 4, 6, …; the k-th update uses factor(k-1).
  assert.deepEqual([2, 4, 6].map((t) => s.lrAt(t)), [0, 1 / 4, 2 / 4]);
  assert.equal(s.lrAt(3), s.lrAt(4));
});

Deno.test("makeSchedule() cosine, cosine_with_restarts, polynomial, inverse_sqrt and tri_stage follow UER-py's lambdas", () => {
  const mk = (scheduler: SchedulerName, extra: Partial<ScheduleOptions> = {}) =>
    makeSchedule({ scheduler, learningRate: 1, totalSteps: 100, warmup: 0.1, ...extra });
  const near = (a: number, b: number) => Math.abs(a - b) <= 1e-12;
  const cos = mk("cosine");
  // factor(k) = k/W in warmup, then 0.5(1 + cos(pi progress)), progress = (k - W)/(T - W)
  assert.ok(
    near(cos.factor(5), 0.5) && near(cos.factor(10), 1) && near(cos.factor(55), 0.5) && near(cos.factor(100), 0),
  );
  assert.equal(cos.factor(150), 0.5 * (1 + Math.cos(Math.PI * 140 / 90))); // past the end it rises again, as UER-py's
  const rs = mk("cosine_with_restarts");
  assert.ok(near(rs.factor(55), 0.5) && rs.factor(100) === 0 && rs.factor(120) === 0);
  const poly = mk("polynomial");
  assert.ok(
    near(poly.factor(55), (1 - 1e-7) * 0.5 + 1e-7) && near(poly.factor(100), 1e-7) && poly.factor(101) === 1e-7,
  );
  assert.throws(() => mk("polynomial", { learningRate: 1e-8 }), /--learning_rate 1e-8: the polynomial scheduler/);
  const inv = mk("inverse_sqrt");
  assert.ok(
    near(inv.factor(5), 0.5) && near(inv.factor(10), 1) && near(inv.factor(40), 0.5) && near(inv.factor(101), 1e-7),
  );
  assert.throws(() => mk("inverse_sqrt", { warmup: 0 }), /--warmup 0: inverse_sqrt/);
  const tri = mk("tri_stage", { lrDecay: 0.5 }); // W 10, D 50: hold until T - D = 50, then exp decay to 0.05
  assert.ok(near(tri.factor(0), 0.01) && near(tri.factor(5), 0.01 + 5 * 0.099) && tri.factor(49) === 1);
  assert.ok(near(tri.factor(50), 1) && near(tri.factor(100), 0.05) && near(tri.factor(75), Math.sqrt(0.05)));
  assert.ok(near(tri.factor(101), 0.05));
  // step t runs at lr · factor(t − 1)
  assert.equal(cos.lrAt(56), cos.factor(55));
});

Deno.test("makeSchedule() rejects an unknown scheduler and bad totals naming the flag", () => {
  assert.throws(
    () => makeSchedule({ scheduler: "cosinus" as "linear", learningRate: 1, totalSteps: 1, warmup: 0 }),
    /--scheduler/,
  );
  assert.throws(
    () => makeSchedule({ scheduler: "linear", learningRate: 1, totalSteps: 0, warmup: 0 }),
    /--total_steps/,
  );
});
