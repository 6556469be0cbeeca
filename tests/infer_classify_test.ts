/**
 * `infer --task text-classification` against UER-py's `inference/run_classifier_infer.py`: the command
 * line recorded in the fine-tune trace (`run_classifier_infer_cli`) runs as written after `infer --task
 * text-classification` on UER-py's own `finetuned_model.bin` and writes `predictions.tsv` (labels
 * exact; logits and probabilities within 1e-5 + 1e-4·|x|, printed as Python prints floats); `--text`
 * prints HF's pipeline shape; misuse is a one-line error.
 */
import assert from "node:assert/strict";
import { cli, ownLines } from "./_cli.ts";
import { refJson, refPath } from "./reference.ts";
import { pyRepr } from "../core/train/metrics.ts";

const DIR = refPath("albert-tiny/finetune_trace");
const trace = await refJson<{ run_classifier_infer_cli: string[] }>("albert-tiny/finetune_trace/trace.json");
const want = (await Deno.readTextFile(`${DIR}/predictions.tsv`)).trimEnd().split("\n").map((l) => l.split("\t"));

function inferArgs(model: string, prediction: string): string[] {
  return trace.run_classifier_infer_cli.slice(1).map((a) =>
    a === "<tmp>/finetuned.bin"
      ? model
      : a === "predictions.tsv"
      ? prediction
      : a.startsWith("$UER_DIR/models/")
      ? refPath(`vocab/${a.slice("$UER_DIR/models/".length)}`)
      : a === "../uer_config.json"
      ? refPath("albert-tiny/uer_config.json")
      : a.endsWith(".tsv")
      ? `${DIR}/${a}`
      : a
  );
}

Deno.test("pyRepr() prints every float of UER-py's predictions.tsv as Python did", () => {
  let n = 0;
  for (const row of want.slice(1)) {
    for (const s of [...row[1].split(" "), ...row[2].split(" ")]) {
      assert.equal(pyRepr(Number(s)), s);
      n++;
    }
  }
  assert.equal(n, 4 * (want.length - 1));
});

Deno.test("infer --task text-classification runs run_classifier_infer.py's command line and writes its predictions.tsv", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/predictions.tsv`;
    const r = await cli(["infer", "--task", "text-classification", ...inferArgs(`${DIR}/finetuned_model.bin`, out)]);
    assert.equal(r.code, 0, r.stderr);
    const got = (await Deno.readTextFile(out)).trimEnd().split("\n").map((l) => l.split("\t"));
    assert.deepEqual(got[0], ["label", "logits", "prob"]);
    assert.equal(got.length, want.length);
    let worst = 0;
    got.slice(1).forEach((row, i) => {
      const ref = want[i + 1];
      assert.equal(row[0], ref[0], `row ${i + 1}: label`);
      for (const c of [1, 2]) {
        const a = row[c].split(" ").map(Number), b = ref[c].split(" ").map(Number);
        assert.equal(a.length, 2);
        a.forEach((x, j) => {
          const d = Math.abs(x - b[j]);
          worst = Math.max(worst, d);
          assert.ok(d <= 1e-5 + 1e-4 * Math.abs(b[j]), `row ${i + 1} column ${c}: ${x} vs UER ${b[j]}`);
        });
      }
    });
    console.log(`predictions.tsv: labels equal, worst value diff ${worst.toExponential(2)}`);
    // --text: HF's text-classification pipeline shape, the label of the largest probability
    const first = (await Deno.readTextFile(`${DIR}/test_nolabel.tsv`)).split("\n")[1];
    const t = await cli([
      "infer",
      "--task",
      "text-classification",
      "--model_path",
      `${DIR}/finetuned_model.bin`,
      "--config_path",
      refPath("albert-tiny/uer_config.json"),
      "--vocab_path",
      refPath("vocab/google_zh_vocab.txt"),
      "--seq_length",
      "64",
      "--text",
      first,
    ]);
    assert.equal(t.code, 0, t.stderr);
    const shown = JSON.parse(t.stdout);
    const probs = want[1][2].split(" ").map(Number);
    assert.deepEqual(Object.keys(shown[0]), ["label", "score"]);
    assert.equal(shown[0].label, `LABEL_${want[1][0]}`);
    assert.ok(Math.abs(shown[0].score - Math.max(...probs)) <= 1e-5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infer text-classification misuse: flags without the task (exit 2), wrong --labels_num, a model without classifier", async () => {
  const base = ["--model_path", `${DIR}/finetuned_model.bin`, "--config_path", refPath("albert-tiny/uer_config.json")];
  const noTask = await cli(["infer", ...base, "--text", "好", "--output_prob"]);
  assert.equal(noTask.code, 2);
  assert.match(noTask.stderr, /--output_prob has no effect without --task text-classification/);
  const q8 = await cli(["infer", "--task", "text-classification", ...base, "--text", "好", "--dtype", "q8"]);
  assert.equal(q8.code, 2);
  assert.deepEqual(ownLines(q8.stderr), [
    "error: --dtype q8 is not built for --task text-classification (it runs fp32)",
    "  hint: drop --dtype",
  ]);
  const labels = await cli(["infer", "--task", "text-classification", ...base, "--text", "好", "--labels_num", "3"]);
  assert.equal(labels.code, 1);
  assert.match(labels.stderr, /its classifier has 2 labels, --labels_num says 3/);
  const pre = await cli([
    "infer",
    "--task",
    "text-classification",
    "--model_path",
    refPath("albert-tiny/uer_model.bin"),
    "--text",
    "好",
  ]);
  assert.equal(pre.code, 1);
  assert.match(
    pre.stderr,
    /^error: Cannot run text-classification with .*uer_model\.bin": the model has no classification head/m,
  );
});
