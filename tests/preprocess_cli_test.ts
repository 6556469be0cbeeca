/**
 * End-to-end `preprocess` and `inspect` through the CLI entry (`cli/main.ts`): the reference corpus
 * becomes UER-py's instances, `inspect` prints them in instances.jsonl's shape, and every bad input
 * ends in one `error:` line naming the file, line or flag with a non-zero exit.
 * @module
 */
import assert from "node:assert/strict";
import { main } from "../cli/main.ts";
import { refJsonl, refPath } from "./reference.ts";

const VOCAB = refPath("vocab/google_zh_vocab.txt");
const DOCS = refPath("albert-tiny/train_trace_docs/corpus.txt");
const tmp = await Deno.makeTempDir();

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const log = console.log, error = console.error;
  let out = "", err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { code: await main(args), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

function pre(corpus: string, dataset: string, ...extra: string[]): string[] {
  return [
    "preprocess",
    "--corpus_path",
    corpus,
    "--vocab_path",
    VOCAB,
    "--dataset_path",
    dataset,
    "--seq_length",
    "48",
    "--processes_num",
    "1",
    "--seed",
    "7",
    "--dup_factor",
    "1",
    "--target",
    "albert",
    "--quiet",
    ...extra,
  ];
}

/** One `error:` line naming the cause, then its hint; exit 1 (runtime/data error) unless `code` says 2 (usage). */
function assertOneLineError(r: { code: number; err: string }, pattern: RegExp, code: 1 | 2 = 1) {
  assert.equal(r.code, code, r.err);
  const first = r.err.split("\n")[0];
  assert.match(first, /^error: /);
  assert.match(first, pattern);
  assert.ok(!/\n\s+at /.test(r.err), "no stack trace");
}

Deno.test("preprocess --target albert then inspect prints UER-py's instances and a summary", async () => {
  const r = await cli(pre(DOCS, `${tmp}/docs`));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Wrote 136 instances from 240 lines/);
  const ins = await cli(["inspect", "--dataset_path", `${tmp}/docs`, "--limit", "200", "--json"]);
  assert.equal(ins.code, 0, ins.err);
  const lines = ins.out.trim().split("\n").map((l) => JSON.parse(l));
  const summary = lines.pop().summary;
  const ref = await refJsonl<Record<string, unknown>>("albert-tiny/train_trace_docs/instances.jsonl");
  assert.deepEqual(lines, ref.map(({ doc: _doc, ...rest }) => rest));
  assert.equal(summary.count, 136);
  assert.equal(summary.wrongOrder, ref.filter((x) => x.is_wrong_order === 1).length);
  assert.equal(summary.padded, ref.filter((x) => (x.pad_num as number) > 0).length);
  const text = await cli(["inspect", "--dataset_path", `${tmp}/docs`, "--limit", "1"]);
  assert.match(text.out, /136 instances, seq_length 48/);
  assert.match(text.out, /masked: \d+ of \d+ tokens/);
  assert.match(text.out, /SOP: \d+ swapped/);
});

Deno.test("preprocess refuses an existing --dataset_path unless --overwrite", async () => {
  await Deno.mkdir(`${tmp}/exists`);
  assertOneLineError(await cli(pre(DOCS, `${tmp}/exists`)), /"[^"]*exists": it already exists/);
  const r = await cli(pre(DOCS, `${tmp}/exists`, "--overwrite"));
  assert.equal(r.code, 0, r.err);
});

Deno.test("preprocess names the file for a missing or empty corpus and a vocab without special tokens", async () => {
  assertOneLineError(await cli(pre(`${tmp}/none.txt`, `${tmp}/x1`)), /corpus "[^"]*none.txt": file not found/);
  await Deno.writeTextFile(`${tmp}/empty.txt`, "");
  assertOneLineError(await cli(pre(`${tmp}/empty.txt`, `${tmp}/x2`)), /corpus "[^"]*empty.txt": file is empty/);
  await Deno.writeTextFile(`${tmp}/v.txt`, "a\nb\nc\n");
  const args = pre(DOCS, `${tmp}/x3`);
  args[args.indexOf(VOCAB)] = `${tmp}/v.txt`;
  assertOneLineError(await cli(args), /v\.txt/);
  for (const d of ["x1", "x2", "x3"]) assert.ok(!(await exists(`${tmp}/${d}`)));
});

Deno.test("preprocess names the line of invalid UTF-8, and --encoding_errors replace counts it", async () => {
  const bytes = new TextEncoder().encode("第一句\n第二句\n");
  await Deno.writeFile(`${tmp}/bad.txt`, new Uint8Array([...bytes, 0xc3, 0x28, 0x0a, ...bytes]));
  assertOneLineError(await cli(pre(`${tmp}/bad.txt`, `${tmp}/bad`)), /"[^"]*bad.txt": line 3 is not valid UTF-8/);
  assert.ok(!(await exists(`${tmp}/bad`)));
  const r = await cli(pre(`${tmp}/bad.txt`, `${tmp}/bad`, "--encoding_errors", "replace"));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /1 lines with invalid UTF-8 replaced/);
});

Deno.test("preprocess rejects --seq_length below 4 and --data_processor other than albert, naming the flag", async () => {
  const args = pre(DOCS, `${tmp}/s3`);
  args[args.indexOf("48")] = "3";
  assertOneLineError(await cli(args), /--seq_length' must be at least 4, got 3/, 2);
  const bert = pre(DOCS, `${tmp}/b`).filter((a) => a !== "--target" && a !== "albert");
  assertOneLineError(await cli(bert), /--data_processor': 'bert' \(UER-py's default\) is not built/, 2);
  assertOneLineError(await cli(pre(DOCS, `${tmp}/sh`, "--shard", "2/2")), /--shard "2\/2"/, 2);
  for (const d of ["s3", "b", "sh"]) assert.ok(!(await exists(`${tmp}/${d}`)));
});

Deno.test("inspect names a missing dataset", async () => {
  assertOneLineError(await cli(["inspect", "--dataset_path", `${tmp}/missing`]), /dataset "[^"]*missing"/);
});

Deno.test({ name: "preprocess_cli_test cleanup", fn: async () => await Deno.remove(tmp, { recursive: true }) });

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}
