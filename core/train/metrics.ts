/**
 * Training metrics: the running sums of UER-py's `BertTrainer` (`forward_propagation` adds each step's
 * `loss.item()`, counts and instances; `report_and_reset_stats` averages them over `report_steps` and
 * resets), the report line in UER-py's exact format, the JSON record of a report (one line of the
 * metrics JSONL file beside the checkpoints), and a self-contained SVG loss curve drawn from those
 * records. Pure functions and strings; the caller writes files. Browser compatible.
 * @module
 */
import type { StepInfo } from "./loop.ts";
import type { StepStats } from "./pretrain_task.ts";

/**
 * The running sums between two reports (JSON-serializable, saved with checkpoints): a step's statistics
 * summed, instances counted (`StepStats.batchSize`).
 */
export type ReportSums = Omit<StepStats, "nMasked" | "batchSize"> & { instances: number };

/** One report, UER-py's fields plus what a log reader wants. */
export interface Report {
  step: number;
  totalSteps: number;
  tokensPerS: number;
  /** Averages over `report_steps` (UER-py divides by report_steps, not by the steps summed). */
  loss: number;
  lossMlm: number;
  lossSp: number;
  accMlm: number;
  accSp: number;
  /** lr of the last step. */
  lr: number;
  /** Seconds since the run (or resume) started. */
  elapsedS: number;
}

/** Empty sums. */
export function emptySums(): ReportSums {
  return { loss: 0, lossMlm: 0, lossSp: 0, correctMlm: 0, denominator: 0, correctSp: 0, instances: 0 };
}

/**
 * Adds a pretraining trainer's taken sums (core/train/pretrain_task.ts names: loss, loss_mlm, loss_sp,
 * correct_mlm, correct_sp, denominator, instances) to the report sums, in place.
 */
export function addSums(sums: ReportSums, s: Readonly<Record<string, number>>): void {
  sums.loss += s.loss ?? 0;
  sums.lossMlm += s.loss_mlm ?? 0;
  sums.lossSp += s.loss_sp ?? 0;
  sums.correctMlm += s.correct_mlm ?? 0;
  sums.denominator += s.denominator ?? 0;
  sums.correctSp += s.correct_sp ?? 0;
  sums.instances += s.instances ?? 0;
}

/**
 * `report_and_reset_stats`: averages over `reportSteps`; `doneTokens` is
 * `batch_size * seq_length * report_steps` (× world_size), over `seconds`.
 */
export function makeReport(
  sums: ReportSums,
  a: { step: number; totalSteps: number; reportSteps: number; doneTokens: number; seconds: number; lr: number },
  elapsedS: number,
): Report {
  return {
    step: a.step,
    totalSteps: a.totalSteps,
    tokensPerS: a.doneTokens / a.seconds,
    loss: sums.loss / a.reportSteps,
    lossMlm: sums.lossMlm / a.reportSteps,
    lossSp: sums.lossSp / a.reportSteps,
    accMlm: sums.correctMlm / sums.denominator,
    accSp: sums.correctSp / sums.instances,
    lr: a.lr,
    elapsedS,
  };
}

/**
 * Python's `format(x, ".{digits}f")`: fixed point, round half to even on the exact binary value
 * (JavaScript's `toFixed` rounds exact ties up), `nan`/`inf` spelled as Python does.
 */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  let s = x.toFixed(digits);
  // An exact tie has a 5 right after the kept digits and nothing else.
  const exact = x.toFixed(Math.min(100, digits + 60));
  const tail = exact.slice(exact.length - 60);
  if (/^50*$/.test(tail)) {
    const lastKept = Number(s[s.length - 1]);
    // toFixed rounded the tie away from zero; Python keeps the even digit (no borrow: the digit is odd).
    if (lastKept % 2 === 1) s = s.slice(0, -1) + String(lastKept - 1);
  }
  return s;
}

/**
 * Python's `repr(float)` / `str(float)` of a double: the shortest digits that read back to it (as
 * JavaScript's), written as Python does — fixed notation for 1e-4 ≤ |x| < 1e16 with at least one
 * decimal (`1.0`), else `d.ddde±XX` (`1e-05`, `1.5e+16`); `nan`, `inf`, `-inf`.
 *
 * @example
 * ```ts
 * pyRepr(1e-5); // "1e-05"   (JavaScript: "0.00001")
 * pyRepr(2);    // "2.0"
 * ```
 */
export function pyRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e"); // shortest round-trip digits
  const exp = Number(expStr);
  const sign = mant.startsWith("-") ? "-" : "";
  const digits = mant.replace("-", "").replace(".", "");
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const int = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${int}.${frac || "0"}`;
}

/** `"{:Nd}"` / `"{:N.Df}"`: right-aligned in a field of width N. */
function pad(s: string, width: number): string {
  return s.length >= width ? s : " ".repeat(width - s.length) + s;
}

/**
 * The report line exactly as UER-py's `BertTrainer.report_and_reset_stats` formats it:
 * `"| {:8d}/{:8d} steps| {:8.2f} tokens/s| loss {:7.2f}| loss_mlm: {:3.3f}| loss_sp: {:3.3f}| acc_mlm: {:3.3f}| acc_sp: {:3.3f}"`.
 *
 * @example
 * ```ts
 * formatReport(report); // "|       10/      30 steps|  1234.56 tokens/s| loss   10.35| loss_mlm: 9.657| ..."
 * ```
 */
export function formatReport(r: Report): string {
  return `| ${pad(String(r.step), 8)}/${pad(String(r.totalSteps), 8)} steps` +
    `| ${pad(pyFixed(r.tokensPerS, 2), 8)} tokens/s` +
    `| loss ${pad(pyFixed(r.loss, 2), 7)}` +
    `| loss_mlm: ${pad(pyFixed(r.lossMlm, 3), 3)}` +
    `| loss_sp: ${pad(pyFixed(r.lossSp, 3), 3)}` +
    `| acc_mlm: ${pad(pyFixed(r.accMlm, 3), 3)}` +
    `| acc_sp: ${pad(pyFixed(r.accSp, 3), 3)}`;
}

/** A duration for people: `1h02m`, `3m05s`, `42s` (`?` when unknown). */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

/**
 * The progress line of a step (a terminal redraws it in place): step, speed, ETA, the last report's
 * loss and the lr.
 *
 * @example
 * ```ts
 * progressLine({ step: 10, totalSteps: 100, lr: 1e-4, lastLoss: 9.5, stepsPerS: 2 });
 * // "  step 10/100  2.00 steps/s  ETA 45s  loss 9.500  lr 1.00e-4"
 * ```
 */
export function progressLine(s: StepInfo): string {
  const left = (s.totalSteps - s.step) / s.stepsPerS;
  return `  step ${s.step}/${s.totalSteps}  ${s.stepsPerS.toFixed(2)} steps/s  ETA ${duration(left)}` +
    (Number.isNaN(s.lastLoss) ? "" : `  loss ${s.lastLoss.toFixed(3)}`) + `  lr ${s.lr.toExponential(2)}`;
}

/** A report as one JSONL record (UER-py's names in snake_case). */
export interface ReportRecord {
  step: number;
  total_steps: number;
  tokens_per_s: number;
  loss: number;
  loss_mlm: number;
  loss_sp: number;
  acc_mlm: number;
  acc_sp: number;
  lr: number;
  elapsed_s: number;
}

/** The JSONL record of a report. */
export function reportRecord(r: Report): ReportRecord {
  return {
    step: r.step,
    total_steps: r.totalSteps,
    tokens_per_s: r.tokensPerS,
    loss: r.loss,
    loss_mlm: r.lossMlm,
    loss_sp: r.lossSp,
    acc_mlm: r.accMlm,
    acc_sp: r.accSp,
    lr: r.lr,
    elapsed_s: r.elapsedS,
  };
}

/** Parses the records of a metrics JSONL file (blank and malformed trailing lines are skipped). */
export function parseRecords(text: string): ReportRecord[] {
  const out: ReportRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const r = JSON.parse(line);
      if (typeof r?.step === "number" && typeof r?.loss === "number") out.push(r);
    } catch {
      // A run killed mid-write leaves at most one partial last line.
    }
  }
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * An SVG line chart against the step of `series` (default loss, loss_mlm and loss_sp: pretraining's
 * report records; fine-tuning draws its per-step `loss`).
 *
 * @example
 * ```ts
 * await Deno.writeTextFile("model-loss.svg", lossCurveSvg(records, { title: "albert demo" }));
 * ```
 */
export function lossCurveSvg<Rec extends { step: number }>(
  records: readonly Rec[],
  opts: { title?: string; series?: readonly string[] } = {},
): string {
  const W = 720, H = 400, L = 60, R = 130, T = 36, B = 44;
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
  const series = (opts.series ?? ["loss", "loss_mlm", "loss_sp"]).map((key, i) => ({ key, color: colors[i % 4] }));
  const val = (r: Rec, key: string) => (r as unknown as Record<string, number>)[key];
  const pts = records.filter((r) => series.every((s) => Number.isFinite(val(r, s.key))));
  const title = esc(opts.title ?? "pretraining loss");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
  ];
  if (pts.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no report yet</text>`, "</svg>");
    return parts.join("\n") + "\n";
  }
  const x0 = Math.min(0, pts[0].step), x1 = Math.max(pts[pts.length - 1].step, x0 + 1);
  let y0 = Infinity, y1 = -Infinity;
  for (const r of pts) for (const s of series) (y0 = Math.min(y0, val(r, s.key))), (y1 = Math.max(y1, val(r, s.key)));
  y0 = Math.min(0, y0);
  if (!(y1 > y0)) y1 = y0 + 1;
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const f = (v: number) => v.toFixed(1);
  parts.push(
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
  );
  for (const t of ticks(x0, x1, 6)) {
    parts.push(
      `<line x1="${f(px(t))}" y1="${H - B}" x2="${f(px(t))}" y2="${H - B + 4}" stroke="black"/>`,
      `<text x="${f(px(t))}" y="${H - B + 16}" text-anchor="middle">${t}</text>`,
    );
  }
  for (const t of ticks(y0, y1, 5)) {
    parts.push(
      `<line x1="${L}" y1="${f(py(t))}" x2="${W - R}" y2="${f(py(t))}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${f(py(t) + 4)}" text-anchor="end">${t}</text>`,
    );
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">step</text>`);
  series.forEach((s, k) => {
    const d = pts.map((r) => `${f(px(r.step))},${f(py(val(r, s.key)))}`).join(" ");
    parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${d}"><title>${s.key}</title></polyline>`,
      `<line x1="${W - R + 12}" y1="${T + 10 + 18 * k}" x2="${W - R + 32}" y2="${T + 10 + 18 * k}" ` +
        `stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${W - R + 38}" y="${T + 14 + 18 * k}">${s.key}</text>`,
    );
  });
  const last = pts[pts.length - 1];
  parts.push(
    `<text x="${W - R + 12}" y="${T + 80}">step ${last.step}</text>`,
    `<text x="${W - R + 12}" y="${T + 96}">${series[0].key} ${pyFixed(val(last, series[0].key), 3)}</text>`,
    "</svg>",
  );
  return parts.join("\n") + "\n";
}
