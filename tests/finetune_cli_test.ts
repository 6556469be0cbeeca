/**
 * `finetune` end to end, the way users run it: the command line recorded in UER-py's fine-tune trace
 * (`trace.json` `run_classifier_cli`) runs as written with the script name replaced, writes a `.bin`
 * that torch.load reads (Debian torch at /usr/bin/python3) within 5e-5 of UER-py's
 * `finetuned_model.bin`, a metrics JSONL with a row per step and per evaluation, and a loss curve; it
 * refuses to overwrite; UER-py flags not built and bad inputs are one-line errors (exit 2 / exit 1).
 */
import assert from "node:assert/strict";
import { loadModel } from "../convert/mod.ts";
import { cli } from "./_cli.ts";
import { refJson, refPath } from "./reference.ts";

const DIR = refPath("albert-tiny/finetune_trace");
const trace = await refJson<{ run_classifier_cli: string[]; steps: { loss: number; lr: number[] }[] }>(
  "albert-tiny/finetune_trace/trace.json",
);

/** The trace's command line with its paths made real (`out` for the model). */
function traceArgs(out: string): string[] {
  return trace.run_classifier_cli.slice(1).map((a) =>
    a === "<tmp>/finetuned.bin"
      ? out
      : a.startsWith("$UER_DIR/models/")
      ? refPath(`vocab/${a.slice("$UER_DIR/models/".length)}`)
      : a === "../uer_config.json"
      ? refPath("albert-tiny/uer_config.json")
      : a.endsWith(".tsv") || a.endsWith(".bin")
      ? `${DIR}/${a}`
      : a
  );
}

Deno.test("finetune runs UER-py's run_classifier command line as written: .bin for torch.load, metrics, curve", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/finetuned.bin`;
    const r = await cli(["finetune", ...traceArgs(out), "--device", "cpu"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Epoch id: 1, Training steps: 1, Avg loss: 0\.694$/m);
    assert.match(r.stdout, /^Acc\. \(Correct\/Total\): 0\.6375 \(51\/80\) $/m);
    assert.match(r.stdout, /Test set evaluation\.\n(.*\n){6}Acc\. \(Correct\/Total\): 0\.5625 \(45\/80\) /);
    assert.match(r.stderr, /its classifier layers output_layer_1\/2 are used/);
    // torch reads it, with UER-py's names and module metadata
    const py = new Deno.Command("/usr/bin/python3", {
      args: [
        "-c",
        "import sys, torch\n" +
        "a = torch.load(sys.argv[1], map_location='cpu'); b = torch.load(sys.argv[2], map_location='cpu')\n" +
        "assert list(a.keys()) == list(b.keys()) and list(a._metadata) == list(b._metadata)\n" +
        "print(max((a[k] - b[k]).abs().max().item() for k in a))",
        out,
        `${DIR}/finetuned_model.bin`,
      ],
      stdout: "piped",
      stderr: "piped",
    });
    const res = await py.output();
    assert.equal(res.code, 0, new TextDecoder().decode(res.stderr));
    assert.ok(Number(new TextDecoder().decode(res.stdout)) <= 5e-5);
    const ours = await loadModel(out, { configPath: refPath("albert-tiny/uer_config.json") });
    assert.deepEqual(ours.heads, ["classifier"]);
    const rows = (await Deno.readTextFile(`${out}.metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
    const steps = rows.filter((x) => x.step !== undefined);
    assert.equal(steps.length, 30);
    steps.forEach((s, i) => {
      assert.deepEqual(Object.keys(s), ["step", "epoch", "loss", "lr"]);
      assert.ok(Math.abs(s.loss - trace.steps[i].loss) <= 2e-5 && Math.abs(s.lr - trace.steps[i].lr[0]) <= 1e-12);
    });
    const evals = rows.filter((x) => x.split !== undefined);
    assert.deepEqual(evals.map((e) => [e.split, e.epoch, e.acc]), [
      ["dev", 1, 0.375],
      ["dev", 2, 0.6375],
      ["dev", 3, 0.6375],
      ["test", 2, 0.5625],
    ]);
    assert.deepEqual(Object.keys(evals[0].labels[0]), ["precision", "recall", "f1"]);
    assert.match(await Deno.readTextFile(`${out}.loss.svg`), /<polyline[^>]*><title>loss<\/title>/);
    // the same command again is refused, naming the file and the flag that replaces it
    const again = await cli(["finetune", ...traceArgs(out), "--device", "cpu"]);
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /^error: Cannot write --output_model_path ".*finetuned\.bin": .* already exists\n {2}hint: pass --overwrite/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finetune: UER-py flags not built and bad values are usage errors (exit 2), bad data exit 1 naming the line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = traceArgs(`${dir}/m.bin`);
    const usage: [string[], RegExp][] = [
      [["--use_adv"], /--use_adv is a UER-py flag uer-ts has not built: adversarial training/],
      [["--soft_targets"], /--soft_targets is a UER-py flag uer-ts has not built/],
      [
        ["--scheduler", "tri_stage"],
        /tri_stage.*not built[\s\S]*hint: tri_stage: UER-py's run_classifier\.py passes it no total steps/,
      ],
      [["--target", "mlm", "sp"], /--target has no effect on finetune/],
      [["--pooling", "cls"], /option '--pooling' got invalid value 'cls'/],
      [["--dropout", "1"], /option '--dropout' must be below 1/],
    ];
    for (const [extra, re] of usage) {
      const r = await cli(["finetune", ...base, ...extra]);
      assert.equal(r.code, 2, `${extra}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    const bad = `${dir}/bad.tsv`;
    await Deno.writeTextFile(bad, "label\ttext_a\n1\t很好\n0\t太差\n2\t一般\nx\t坏\n");
    const swap = (flag: string, value: string) => base.map((a, i) => (base[i - 1] === flag ? value : a));
    const r = await cli(["finetune", ...swap("--train_path", bad)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: Cannot read ".*bad\.tsv" line 5: label "x" is not an integer\n {2}hint: /m);
    const missing = await cli(["finetune", ...swap("--dev_path", `${dir}/nope.tsv`)]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: Cannot read --dev_path ".*nope\.tsv": no such file/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finetune from a pretrained model without a classifier says what it starts fresh and what it leaves unused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = (await Deno.readTextFile(`${DIR}/train.tsv`)).split("\n").slice(0, 9).join("\n") + "\n";
    await Deno.writeTextFile(`${dir}/t.tsv`, rows);
    const r = await cli([
      "finetune",
      ...["--pretrained_model_path", refPath("albert-tiny/uer_model.bin")],
      ...[
        "--config_path",
        refPath("albert-tiny/uer_config.json"),
        "--vocab_path",
        refPath("vocab/google_zh_vocab.txt"),
      ],
      ...["--train_path", `${dir}/t.tsv`, "--dev_path", `${dir}/t.tsv`, "--output_model_path", `${dir}/m.bin`],
      ...["--seq_length", "16", "--batch_size", "8", "--epochs_num", "1", "--device", "cpu"],
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /output_layer_1\/2 are not in it and start as torch's nn\.Linear init \(seed 7\)/);
    assert.match(r.stderr, /not used: target\.mlm\.\*, target\.sp\.\*/);
    assert.match(r.stdout, /^Acc\. \(Correct\/Total\): [01]\.\d{4} \(\d\/8\) $/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
