import assert from "node:assert/strict";
import {
  addSums,
  emptySums,
  formatReport,
  lossCurveSvg,
  makeReport,
  parseRecords,
  pyFixed,
  reportRecord,
} from "./metrics.ts";

// Expected strings below were printed by CPython 3 (`format(x, ".2f")` and UER-py's format string).
Deno.test("pyFixed() rounds like Python's format(x, '.nf'): exact ties to even, others to nearest", () => {
  const cases: [number, number, string][] = [
    [0.125, 2, "0.12"], // exact tie: Python keeps the even digit, toFixed would give 0.13
    [0.375, 2, "0.38"],
    [2.675, 2, "2.67"], // below the tie in binary
    [1e-9, 3, "0.000"],
    [-0.0015, 2, "-0.00"],
    [-0.0015, 3, "-0.002"],
    [123456789.125, 2, "123456789.12"],
    [0.0005, 3, "0.001"], // 0.0005 is slightly above the tie in binary
  ];
  for (const [x, d, want] of cases) assert.equal(pyFixed(x, d), want, `${x} .${d}f`);
  assert.equal(pyFixed(NaN, 2), "nan");
});

Deno.test("formatReport() prints UER-py's AlbertTrainer report line", () => {
  const line = formatReport({
    step: 10,
    totalSteps: 30,
    tokensPerS: 1234.565,
    loss: 10.355,
    lossMlm: 9.9475,
    lossSp: 0.6895,
    accMlm: 0.0125,
    accSp: 0.5,
    lr: 1e-3,
    elapsedS: 1,
  });
  assert.equal(
    line,
    "|       10/      30 steps|  1234.57 tokens/s| loss   10.36| loss_mlm: 9.947| loss_sp: 0.690| acc_mlm: 0.013| acc_sp: 0.500",
  );
});

Deno.test("makeReport() averages over report_steps and divides accuracies by the summed counts", () => {
  const sums = emptySums();
  addSums(sums, { loss: 3, loss_mlm: 2, loss_sp: 1, correct_mlm: 4, denominator: 10, correct_sp: 5, instances: 8 });
  addSums(sums, { loss: 5, loss_mlm: 4, loss_sp: 1, correct_mlm: 1, denominator: 10, correct_sp: 3, instances: 4 });
  const r = makeReport(sums, { step: 2, totalSteps: 9, reportSteps: 2, doneTokens: 1000, seconds: 4, lr: 0.5 }, 7);
  assert.equal(r.loss, 4);
  assert.equal(r.lossMlm, 3);
  assert.equal(r.lossSp, 1);
  assert.equal(r.accMlm, 5 / 20);
  assert.equal(r.accSp, 8 / 12);
  assert.equal(r.tokensPerS, 250);
  const rec = reportRecord(r);
  assert.deepEqual(parseRecords(JSON.stringify(rec) + "\n" + '{"step": 3, "lo'), [rec]);
});

Deno.test("lossCurveSvg() draws one polyline per loss with a point per record", () => {
  const recs = [1, 2, 3, 4].map((s) => ({
    step: s * 10,
    total_steps: 40,
    tokens_per_s: 1,
    loss: 10 - s,
    loss_mlm: 9 - s,
    loss_sp: 1,
    acc_mlm: 0,
    acc_sp: 0.5,
    lr: 1,
    elapsed_s: s,
  }));
  const svg = lossCurveSvg(recs, { title: "a <b>" });
  assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
  const lines = [...svg.matchAll(/<polyline[^>]*points="([^"]*)"/g)].map((m) => m[1].split(" "));
  assert.equal(lines.length, 3);
  for (const l of lines) assert.equal(l.length, 4);
  // loss falls: the y coordinate (down = smaller) grows along the first polyline.
  const ys = lines[0].map((p) => Number(p.split(",")[1]));
  assert.ok(ys[0] < ys[3]);
  assert.ok(svg.includes("a &lt;b&gt;"));
  assert.ok(lossCurveSvg([]).includes("no report yet"));
});
