/**
 * The flag tables against UER-py: every row that names a UER-py `file:line` has UER-py's name, default
 * (unless the row says why it differs), type and a subset of its choices there, and every flag of
 * `preprocess.py` and `pretrain.py` has a row (built, or refused by name). UER-py's declarations come
 * from tests/uer_py_flags.json, extracted from its source by tests/uer_py_flags.ts; with `UER_DIR`
 * set, they are extracted again from that checkout and must equal the file. Also: each table is
 * consistent on its own, every not-built flag is refused naming itself, and the derived option types
 * are what the subcommands expect.
 */
import assert from "node:assert/strict";
import { type FlagRow, type FlagTable, type OptionsBySubcommand, SUBCOMMAND_FLAGS } from "./mod.ts";
import { parseOptions } from "../../cli/options.ts";
import { UsageError } from "../errors.ts";
import { extractUerFlags, type UerFlag, type UerFlagList } from "../../tests/uer_py_flags.ts";

const LIST: UerFlagList = JSON.parse(
  await Deno.readTextFile(new URL("../../tests/uer_py_flags.json", import.meta.url)),
);
const BY_AT = new Map<string, UerFlag>();
for (const flags of Object.values(LIST.scripts)) for (const f of flags) BY_AT.set(f.at, f);

const TABLES = Object.entries(SUBCOMMAND_FLAGS) as [string, { flags: FlagTable }][];

/** UER-py's default as the row would hold it: None = no default, a string for `nargs='+'` = one word. */
function uerDefault(f: UerFlag, row: FlagRow): unknown {
  if (f.default === null) return row.type === "bool" ? false : undefined;
  if (f.nargs === "+" && !Array.isArray(f.default)) return [f.default];
  return f.default;
}

function rowDefault(row: FlagRow): unknown {
  return row.default ?? (row.type === "bool" ? false : undefined);
}

/** The row type UER-py's declaration calls for. */
function uerType(f: UerFlag): string[] {
  if (f.action === "store_true") return ["bool"];
  if (f.choices?.includes("true") && f.choices.includes("false")) return ["truefalse"];
  if (f.nargs === "+") return f.type === "int" ? ["ints"] : ["list"];
  if (f.type === "int") return ["int"];
  if (f.type === "float") return ["float"];
  return ["string"];
}

Deno.test("every row naming a UER-py line has UER-py's name, default, type and choices there", () => {
  let checked = 0;
  for (const [cmd, { flags }] of TABLES) {
    for (const [name, row] of Object.entries(flags)) {
      if (!row.uer) continue;
      const f = BY_AT.get(row.uer);
      assert.ok(f, `${cmd} --${name}: no add_argument at ${row.uer} in UER-py ${LIST.uer_py_commit}`);
      assert.equal(f.name, name, `${cmd}: ${row.uer} declares --${f.name}, not --${name}`);
      assert.ok(uerType(f).includes(row.type), `${cmd} --${name}: type ${row.type}, UER-py's is ${uerType(f)}`);
      const same = JSON.stringify(rowDefault(row)) === JSON.stringify(uerDefault(f, row));
      if (row.differs) {
        assert.ok(!same, `${cmd} --${name} says its default differs from UER-py's, but it does not`);
      } else {
        assert.ok(
          same,
          `${cmd} --${name}: default ${JSON.stringify(rowDefault(row))}, UER-py's (${row.uer}) is ` +
            `${JSON.stringify(uerDefault(f, row))}; fix it or say why in \`differs\``,
        );
      }
      for (const c of row.choices ?? []) {
        if (row.older?.includes(c)) continue;
        assert.ok(f.choices?.includes(c), `${cmd} --${name}: choice ${c} is not one of UER-py's ${f.choices}`);
      }
      checked++;
    }
  }
  assert.ok(checked >= 90, `only ${checked} rows checked`);
});

Deno.test("every flag of UER-py's preprocess.py, pretrain.py and run_classifier.py has a row (built, or refused by name)", () => {
  for (
    const [script, cmd] of [
      ["preprocess.py", "preprocess"],
      ["pretrain.py", "pretrain"],
      ["finetune/run_classifier.py", "finetune"],
    ] as const
  ) {
    const table: FlagTable = SUBCOMMAND_FLAGS[cmd].flags;
    for (const f of LIST.scripts[script]) {
      assert.ok(table[f.name], `${cmd} has no row for UER-py's --${f.name} (${f.at})`);
      assert.equal(table[f.name].uer, f.at, `${cmd} --${f.name}`);
    }
  }
});

Deno.test("each table is consistent: defaults within choices and bounds, built within choices, required without default", () => {
  for (const [cmd, { flags }] of TABLES) {
    for (const [name, row] of Object.entries(flags)) {
      const where = `${cmd} --${name}`;
      const d = row.default;
      const items = Array.isArray(d) ? d : d === undefined ? [] : [d];
      if (row.choices) { for (const x of items) assert.ok(row.choices.includes(String(x)), `${where}: default ${x}`); }
      for (const b of row.built ?? []) {
        if (typeof b === "string") assert.ok(row.choices?.includes(b), `${where}: built ${b} is not a choice`);
      }
      for (const o of row.older ?? []) assert.ok(row.choices?.includes(o), `${where}: older ${o} is not a choice`);
      for (const x of items) {
        if (typeof x !== "number") continue;
        if (row.min !== undefined) assert.ok(x >= row.min, `${where}: default below min`);
        if (row.max !== undefined) assert.ok(x <= row.max, `${where}: default above max`);
      }
      if (row.required) assert.equal(d, undefined, `${where}: required with a default`);
      if (row.notBuilt) assert.ok(row.uer, `${where}: a not-built flag names its UER-py line`);
      const kind = { int: "number", float: "number", bool: "none", truefalse: "string", string: "string" } as const;
      if (d !== undefined && !Array.isArray(d) && row.type in kind) {
        assert.equal(typeof d, kind[row.type as keyof typeof kind], `${where}: default type`);
      }
    }
  }
});

Deno.test("UER-py's declarations in tests/uer_py_flags.json are what its source says (UER_DIR)", async () => {
  const dir = Deno.env.get("UER_DIR");
  if (!dir) {
    console.log(`UER_DIR is not set: tests/uer_py_flags.json (UER-py ${LIST.uer_py_commit}) not re-extracted`);
    return;
  }
  assert.deepEqual(await extractUerFlags(dir), LIST.scripts, `UER_DIR=${dir} differs from tests/uer_py_flags.json`);
});

/** The fewest flags each subcommand needs to parse. */
const REQUIRED: Record<string, string[]> = {
  preprocess: ["--corpus_path", "c.txt", "--vocab_path", "v.txt", "--target", "albert"],
  pretrain: ["--output_model_path", "m", "--vocab_path", "v.txt"],
  finetune: ["--train_path", "t.tsv", "--dev_path", "d.tsv", "--vocab_path", "v.txt"],
  infer: ["--model_path", "m"],
  convert: ["--input_model_path", "a", "--output_model_path", "b"],
  tokenize: ["--vocab_path", "v.txt"],
  inspect: ["--dataset_path", "d"],
  demo: [],
};

Deno.test("every not-built UER-py flag is refused naming itself (exit 2), and the defaults parse", async () => {
  let refused = 0;
  for (const [cmd, { flags }] of TABLES) {
    const name = cmd as keyof OptionsBySubcommand;
    await parseOptions(name, REQUIRED[cmd]); // the defaults alone are built
    for (const [flag, row] of Object.entries(flags)) {
      if (!row.notBuilt) continue;
      const value = row.type === "bool" ? [] : [String(row.choices?.[0] ?? (row.type === "string" ? "x" : 1))];
      await assert.rejects(
        () => parseOptions(name, [...REQUIRED[cmd], `--${flag}`, ...value]),
        (e: Error) =>
          e instanceof UsageError && e.message.startsWith(`--${flag} is a UER-py flag uer-ts has not built`),
        `${cmd} --${flag}`,
      );
      refused++;
    }
  }
  assert.ok(refused >= 35, `${refused} refused`);
});

Deno.test("a UER-py value uer-ts has not built is refused, naming the flag and what is built", async () => {
  const req = REQUIRED.pretrain;
  await assert.rejects(
    () => parseOptions("pretrain", [...req, "--scheduler", "cosine"]),
    /--scheduler.*'cosine'.*not built.*linear/,
  );
  await assert.rejects(
    () => parseOptions("pretrain", [...req, "--target", "mlm"]),
    /--target.*mlm.*builds --target mlm sp/,
  );
  await assert.rejects(() => parseOptions("pretrain", [...req, "--dropout", "1"]), /--dropout' must be below 1/);
  await assert.rejects(
    () => parseOptions("preprocess", ["--corpus_path", "c", "--vocab_path", "v"]),
    /--data_processor.*'bert' \(UER-py's default\) is not built[^]*hint: pass --data_processor albert/,
  );
  await assert.rejects(() => parseOptions("pretrain", [...req, "--tokenizer", "bpe"]), /--tokenizer.*'bpe'.*not built/);
});

Deno.test("values are read by type and checked against bounds and choices (usage errors)", async () => {
  const p = ["--corpus_path", "c", "--vocab_path", "v", "--target", "albert"];
  await assert.rejects(
    () => parseOptions("preprocess", [...p, "--seq_length", "-5"]),
    /--seq_length' must be at least 4, got -5/,
  );
  await assert.rejects(() => parseOptions("preprocess", [...p, "--seq_length", "1.5"]), /must be an integer/);
  await assert.rejects(() => parseOptions("preprocess", [...p, "--short_seq_prob", "2"]), /at most 1/);
  await assert.rejects(
    () => parseOptions("preprocess", [...p, "--do_lower_case", "yes"]),
    /must be "true" or "false", got "yes"/,
  );
  await assert.rejects(
    () => parseOptions("preprocess", [...p, "--span_geo_prob", "0.3"]),
    /no effect without --span_masking/,
  );
  await assert.rejects(() => parseOptions("preprocess", ["--corpus_path", "c", "--target", "albert"]), /--vocab_path/);
  const o = await parseOptions("preprocess", [
    ...p,
    "--do_lower_case",
    "false",
    "--span_masking",
    "--span_geo_prob",
    "0.3",
  ]);
  assert.equal(o.doLowerCase, false);
  assert.equal(o.spanGeoProb, 0.3);
  assert.deepEqual((await parseOptions("pretrain", [...REQUIRED.pretrain, "--gpu_ranks", "0", "1"])).gpuRanks, [0, 1]);
});

Deno.test("a config file's unknown key gets the closest known one; a not-built key is refused unless UER-py's default", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = async (json: Record<string, unknown>) => {
      await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(json));
      return parseOptions("pretrain", [...REQUIRED.pretrain, "--config_path", `${dir}/c.json`]);
    };
    const base = JSON.parse(await Deno.readTextFile(new URL("../../configs/albert/tiny_config.json", import.meta.url)));
    await assert.rejects(
      () => config({ ...base, hiden_size: 64 }),
      (e: Error) =>
        e instanceof UsageError && /unknown key "hiden_size" \(did you mean "hidden_size"\?\)/.test(e.message),
    );
    await assert.rejects(() => config({ ...base, tie_weights: true }), /"tie_weights" in config .* not built/);
    await assert.rejects(() => config({ ...base, decoder_layers_num: 6 }), /"decoder_layers_num" .*not built/);
    await assert.rejects(
      () => config({ ...base, learning_rate: "fast" }),
      /"learning_rate" in config .*must be a number/,
    );
    const o = await config({ ...base, tie_weights: false, relative_attention_buckets_num: 32 });
    assert.equal(o.model.hidden_size, base.hidden_size);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Compile-time: the derived option types are what the subcommands read (this file fails `deno check` otherwise).
type Is<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const typeChecks: [
  Is<OptionsBySubcommand["preprocess"]["seqLength"], number>,
  Is<OptionsBySubcommand["preprocess"]["doLowerCase"], boolean>,
  Is<OptionsBySubcommand["preprocess"]["vocabPath"], string>,
  Is<OptionsBySubcommand["pretrain"]["scheduler"], "linear" | "constant" | "constant_with_warmup">,
  Is<OptionsBySubcommand["pretrain"]["gpuRanks"], number[]>,
  Is<OptionsBySubcommand["pretrain"]["pretrainedModelPath"], string | undefined>,
  Is<OptionsBySubcommand["infer"]["text"], string[]>,
  Is<"tieWeights" extends keyof OptionsBySubcommand["pretrain"] ? true : false, false>,
] = [true, true, true, true, true, true, true, true];
void typeChecks;
