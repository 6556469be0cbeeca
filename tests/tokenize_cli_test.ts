/**
 * End-to-end: `deno run -A cli/main.ts tokenize` as a subprocess, stdin → one id array per line,
 * checked against the reference tokenizer cases; bad input ends in one `error:` line and exit 1.
 */
import assert from "node:assert/strict";
import { refJsonl, refPath } from "./reference.ts";
import { cli } from "./_cli.ts";

const VOCAB = refPath("vocab/google_zh_vocab.txt");

function tokenize(args: string[], stdin: Uint8Array | string) {
  return cli(["tokenize", ...args], { stdin });
}

interface Case {
  text: string;
  uer_ids_with_specials: number[];
  tjs_ids: number[];
  hf_rust_ids: number[];
}
const cases = (await refJsonl<Case>("tokenizer/cases.jsonl")).filter((c) => !/[\n\r\u2028\u2029]/.test(c.text));

Deno.test("tokenize CLI prints UER-py's ids with [CLS]/[SEP] for every reference case line (uer mode)", async () => {
  const r = await tokenize(["--vocab_path", VOCAB], cases.map((c) => c.text).join("\n") + "\n");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, cases.length);
  cases.forEach((c, i) => assert.deepEqual(lines[i], c.uer_ids_with_specials, c.text));
});

Deno.test("tokenize CLI --mode hf --json gives HF's ids on the BMP cases where HF and transformers.js agree", async () => {
  // Outside the BMP, HF tokenizers' CJK range differs from the Python rule hf mode keeps.
  const picked = cases.filter((c) =>
    JSON.stringify(c.tjs_ids) === JSON.stringify(c.hf_rust_ids) && !/[\u{10000}-\u{10ffff}]/u.test(c.text)
  );
  const r = await tokenize(
    ["--vocab_path", refPath("albert-tiny/hf/vocab.txt"), "--mode", "hf", "--json"],
    picked.map((c) => c.text).join("\n"),
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, picked.length); // last line had no newline
  picked.forEach((c, i) => {
    assert.deepEqual(lines[i].ids, c.hf_rust_ids, c.text);
    assert.equal(lines[i].tokens.length, c.hf_rust_ids.length);
    assert.equal(lines[i].tokens[0], "[CLS]");
  });
});

Deno.test("tokenize CLI cleans NUL and control characters inside a line, as UER-py and HF do", async () => {
  const r = await tokenize(["--vocab_path", VOCAB], "北\u0000京\u0001!\n北京!\n");
  assert.equal(r.code, 0, r.stderr);
  const [a, b] = r.stdout.trimEnd().split("\n");
  assert.equal(a, b);
  assert.equal(JSON.parse(a).length, 5);
});

Deno.test("tokenize CLI stops at invalid UTF-8 naming stdin:LINE, after printing the lines before", async () => {
  const bytes = new Uint8Array([...new TextEncoder().encode("北京\nok\n"), 0x61, 0xff, 0x0a, 0x62, 0x0a]);
  const r = await tokenize(["--vocab_path", VOCAB], bytes);
  assert.equal(r.code, 1);
  assert.equal(r.stdout.trimEnd().split("\n").length, 2);
  const first = r.stderr.split("\n")[0];
  assert.match(first, /^error: Cannot tokenize "stdin:3": invalid UTF-8 at byte 2/);
  assert.ok(!r.stderr.includes("    at "), "no stack trace");
});

Deno.test("tokenize CLI rejects a missing, empty or special-token-less vocab with one error line naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenize_cli_" });
  try {
    const empty = `${dir}/empty.txt`;
    await Deno.writeTextFile(empty, "");
    const plain = `${dir}/plain.txt`;
    await Deno.writeTextFile(plain, "北\n京\n");
    for (const [path, what] of [[`${dir}/none.txt`, "file not found"], [empty, "file is empty"], [plain, "missing"]]) {
      const r = await tokenize(["--vocab_path", path], "北京\n");
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, "");
      const [first, ...rest] = r.stderr.trimEnd().split("\n");
      assert.ok(first.startsWith(`error: Cannot load vocab "${path}"`) && first.includes(what), first);
      assert.ok(rest.every((l) => l.startsWith("  hint: ")), r.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
