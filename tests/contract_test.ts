/**
 * The CLI contract, subcommand by subcommand, through real processes: exit 0 on success, 1 on a
 * runtime or data error (an input missing or wrong, an output that exists), 2 on a usage error (a bad
 * or not-built flag, a missing required flag, a bad config key); every error is one `error:` line
 * naming the cause, then a `hint:` line, never a stack trace. Also: `infer --output_path` is honoured
 * for fill-mask (.jsonl) and feature-extraction (.safetensors) and refused otherwise; `--test_path`
 * gives one output row per input line, a blank line being the empty text; a corpus that yields no
 * instance is an error; accepted flags show their effect (`--log_path`, `--dropout`).
 */
import assert from "node:assert/strict";
import { cli, type CliResult, DEMO_VOCAB, demoDataset, ownLines, TINY_CONFIG } from "./_cli.ts";
import { refPath } from "./reference.ts";
import { readSafetensors } from "../convert/safetensors.ts";
import { parseRecords } from "../core/train/metrics.ts";

const work = await Deno.makeTempDir({ prefix: "uer-ts-contract-" });
const HF = refPath("albert-tiny/hf");
let dataset: Promise<string> | undefined;
const ds = () => (dataset ??= demoDataset(`${work}/ds`));

/** Exit `code` with one error line matching `re` and a hint line (`code` 1 or 2); or success (0). */
function expect(r: CliResult, code: 0 | 1 | 2, re?: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}, expected ${code}\n${r.stderr}`);
  if (code === 0) return;
  const lines = ownLines(r.stderr);
  assert.equal(lines.length, 2, `one error line and one hint line:\n${r.stderr}`);
  assert.match(lines[0], /^error: /);
  if (re) assert.match(lines[0], re);
  assert.match(lines[1], /^ {2}hint: /);
}

const pretrain = (out: string, extra: string[] = []) => [
  "pretrain",
  ...["--dataset_path", `${work}/ds`, "--vocab_path", DEMO_VOCAB, "--config_path", TINY_CONFIG],
  ...["--output_model_path", out, "--total_steps", "2", "--batch_size", "4", "--device", "cpu", "--quiet", ...extra],
];

Deno.test("preprocess: 0 / 1 (no corpus; a corpus without instances) / 2 (bad value, missing flag, not built)", async () => {
  await ds();
  const base = (corpus: string, out: string) => [
    "preprocess",
    ...["--corpus_path", corpus, "--vocab_path", DEMO_VOCAB, "--dataset_path", out, "--target", "albert", "--quiet"],
  ];
  expect(await cli(base(`${work}/none.txt`, `${work}/p1`)), 1, /corpus ".*none\.txt": file not found/);
  await Deno.writeTextFile(`${work}/blank.txt`, "\n \n\n");
  expect(await cli(base(`${work}/blank.txt`, `${work}/p2`)), 1, /its 3 lines gave no instance/);
  expect(await cli([...base(`${work}/blank.txt`, `${work}/p3`), "--seq_length", "-5"]), 2, /--seq_length.*-5/);
  expect(await cli(["preprocess", "--corpus_path", "c.txt", "--target", "albert"]), 2, /--vocab_path/);
  expect(
    await cli([...base(`${work}/blank.txt`, `${work}/p4`), "--full_sentences"]),
    2,
    /--full_sentences is a UER-py flag/,
  );
  for (const p of ["p1", "p2", "p3", "p4"]) assert.ok(!(await Deno.stat(`${work}/${p}`).catch(() => null)));
});

Deno.test("pretrain: 0 / 1 (no dataset) / 2 (missing --vocab_path, not-built flag, unknown config key)", async () => {
  await ds();
  expect(await cli(pretrain(`${work}/t0/m`)), 0);
  const missing = pretrain(`${work}/t1/m`);
  missing[missing.indexOf(`${work}/ds`)] = `${work}/nods`;
  expect(await cli(missing), 1, /nods/);
  expect(
    await cli(pretrain(`${work}/t2/m`).filter((a) => a !== "--vocab_path" && a !== DEMO_VOCAB)),
    2,
    /--vocab_path/,
  );
  for (const flag of ["--tie_weights", "--deep_init", "--remove_embedding_layernorm"]) {
    expect(await cli(pretrain(`${work}/t2/m`, [flag])), 2, new RegExp(`${flag} is a UER-py flag uer-ts has not built`));
  }
  expect(await cli(pretrain(`${work}/t2/m`, ["--master_ip", "tcp://h:1"])), 2, /--master_ip is a UER-py flag/);
  const config = JSON.parse(await Deno.readTextFile(TINY_CONFIG));
  await Deno.writeTextFile(`${work}/typo.json`, JSON.stringify({ ...config, hiden_size: 64 }));
  const typo = pretrain(`${work}/t2/m`);
  typo[typo.indexOf(TINY_CONFIG)] = `${work}/typo.json`;
  expect(await cli(typo), 2, /unknown key "hiden_size" \(did you mean "hidden_size"\?\)/);
  assert.ok(!(await Deno.stat(`${work}/t2`).catch(() => null)), "usage errors write nothing");
});

Deno.test("pretrain --log_path appends the run's lines to the file; --dropout changes the training", async () => {
  await ds();
  const log = `${work}/run.log`;
  expect(await cli(pretrain(`${work}/l/m`, ["--report_steps", "1", "--log_path", log, "--dropout", "0.5"])), 0);
  const text = await Deno.readTextFile(log);
  assert.match(text, /^pretraining \d+ instances/m);
  assert.equal(text.match(/^\| +\d\/ +2 steps\|/gm)?.length, 2, "both report lines");
  expect(await cli(pretrain(`${work}/l/n`, ["--report_steps", "1", "--dropout", "0"])), 0);
  const [a, b] = [
    parseRecords(await Deno.readTextFile(`${work}/l/m.metrics.jsonl`)),
    parseRecords(
      await Deno.readTextFile(`${work}/l/n.metrics.jsonl`),
    ),
  ];
  assert.notEqual(a[0].loss, b[0].loss, "dropout 0.5 changes the first step's loss");
});

Deno.test("infer: 0 / 1 (no model; an existing --output_path) / 2 (a format the task does not write, --top_k for features)", async () => {
  const infer = (...a: string[]) => cli(["infer", "--model_path", HF, "--device", "cpu", "--quiet", ...a]);
  expect(await infer("--text", "中国的首都是[MASK]京。"), 0);
  expect(await cli(["infer", "--model_path", `${work}/nomodel`, "--text", "x"]), 1, /nomodel/);
  expect(await infer("--text", "[MASK]", "--output_path", `${work}/x.npy`), 2, /fill-mask writes \.jsonl files/);
  expect(await infer("--text", "你好", "--output_path", `${work}/x.jsonl`), 2, /feature-extraction writes/);
  expect(await infer("--text", "你好", "--top_k", "3"), 2, /--top_k has no effect with --task feature-extraction/);

  // fill-mask honours --output_path: one JSON line per input line, refused when it exists.
  await Deno.writeTextFile(`${work}/masks.txt`, "中国的首都是[MASK]京。\n[MASK]天\n");
  const out = `${work}/preds.jsonl`;
  expect(await infer("--test_path", `${work}/masks.txt`, "--top_k", "2", "--output_path", out), 0);
  const rows = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(rows.length, 2);
  assert.equal(rows[0].length, 2, "--top_k 2");
  assert.ok(rows.every((r) => r.length === 2 && r.every((p: { score: number }) => p.score > 0 && p.score <= 1)));
  expect(await infer("--test_path", `${work}/masks.txt`, "--output_path", out), 1, /already exists/);
  expect(await infer("--test_path", `${work}/masks.txt`, "--output_path", out, "--overwrite"), 0);
});

Deno.test("infer feature-extraction --test_path: one row per input line; a blank line is the empty text", async () => {
  await Deno.writeTextFile(`${work}/lines.txt`, "你好\n\n世界和平\n");
  const out = `${work}/feats.safetensors`;
  const r = await cli([
    "infer",
    ...["--model_path", HF, "--device", "cpu", "--quiet", "--test_path", `${work}/lines.txt`, "--output_path", out],
  ]);
  expect(r, 0);
  const t = readSafetensors(await Deno.readFile(out), out).tensors;
  const lengths = Array.from(t.get("lengths")!.data as BigInt64Array, Number);
  assert.deepEqual(lengths, [4, 2, 6], "[CLS] 你 好 [SEP], [CLS] [SEP], [CLS] 世 界 和 平 [SEP]");
  assert.equal(t.get("last_hidden_state")!.shape[0], 3);
});

Deno.test("convert, tokenize, inspect, demo: 0 / 1 / 2", async () => {
  await ds();
  expect(
    await cli(["convert", "--input_model_path", HF, "--output_model_path", `${work}/c.bin`, "--to", "uer", "--quiet"]),
    0,
  );
  expect(await cli(["convert", "--input_model_path", `${work}/no`, "--output_model_path", `${work}/c2`]), 1, /no/);
  expect(
    await cli(["convert", "--input_model_path", HF, "--output_model_path", `${work}/c.bin`, "--to", "uer"]),
    1,
    /exists/,
  );
  expect(
    await cli(["convert", "--input_model_path", HF, "--output_model_path", `${work}/c3`, "--to", "tf"]),
    2,
    /'tf'/,
  );
  expect(await cli(["tokenize", "--vocab_path", DEMO_VOCAB], { stdin: "中国\n" }), 0);
  expect(await cli(["tokenize", "--vocab_path", DEMO_VOCAB], { stdin: new Uint8Array([0xff, 0x0a]) }), 1, /stdin:1/);
  expect(await cli(["tokenize"], { stdin: "x\n" }), 2, /--vocab_path/);
  expect(await cli(["inspect", "--dataset_path", `${work}/ds`, "--limit", "1"]), 0);
  expect(await cli(["inspect", "--dataset_path", `${work}/nods`]), 1, /nods/);
  expect(await cli(["inspect", "--dataset_path", `${work}/ds`, "--limit", "-1"]), 2, /--limit/);
  expect(await cli(["demo", "--device", "tpu"]), 2, /'tpu'/);
  expect(await cli(["nosuch"]), 2, /unknown command 'nosuch'/);
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch {
    // already gone
  }
});
