/**
 * The uer-ts command line: `deno run -A cli/main.ts <preprocess|pretrain|infer|convert|tokenize|inspect|demo>`.
 * Flags are UER-py's (see `cli/flags.ts`); this file only parses them, applies UER-py's config precedence
 * (defaults < `--config_path` JSON < flags given) and hands a camelCase options object to `cli/<cmd>.ts`.
 * User mistakes end in one `error: …` line and a non-zero exit, never a stack trace.
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import {
  camel,
  CONVERT_FLAGS,
  DEMO_FLAGS,
  type FlagSpec,
  INFER_FLAGS,
  INSPECT_FLAGS,
  PREPROCESS_FLAGS,
  PRETRAIN_FLAGS,
  type PretrainOptions,
  TOKENIZE_FLAGS,
} from "./flags.ts";
import { closest } from "./suggest.ts";
import { NotBuiltError } from "./not_built.ts";
import { ALBERT_BASE } from "../core/config.ts";

/** Version printed by `--version`. */
export const VERSION = "0.1.0";

/** Exit codes: 1 = the work failed on its input, 2 = the command line itself is wrong or not built. */
const EXIT_INPUT = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

function parseNumber(flag: string, kind: "int" | "float") {
  return (raw: string, prev?: unknown): number => {
    void prev;
    const v = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(v) || (kind === "int" && !Number.isInteger(v))) {
      throw new UsageError(`option '--${flag}' must be ${kind === "int" ? "an integer" : "a number"}, got '${raw}'`);
    }
    return v;
  };
}

function addFlag(cmd: Command, spec: FlagSpec): void {
  const arg = spec.type === "bool" ? "" : spec.type === "list" || spec.type === "ints" ? " <values...>" : " <value>";
  const opt = new Option(`--${spec.name}${arg}`, spec.help);
  if (spec.choices && spec.type !== "list") opt.choices(spec.choices as string[]);
  if (spec.type === "int" || spec.type === "float") opt.argParser(parseNumber(spec.name, spec.type));
  if (spec.type === "ints") {
    const p = parseNumber(spec.name, "int");
    opt.argParser((raw: string, prev: unknown) => {
      const list = Array.isArray(prev) && !Object.is(prev, spec.default) ? prev : [];
      return [...list, p(raw)];
    });
  }
  if (spec.repeat) {
    opt.argParser((raw: string, prev: unknown) => [...(Array.isArray(prev) ? prev : []), raw]);
    opt.default([]);
  }
  if (spec.default !== undefined && !spec.repeat) opt.default(spec.default);
  if (spec.type === "bool") opt.default(false);
  cmd.addOption(opt);
}

/** Options as commander parsed them, keyed by UER name, and the names the user typed. */
interface Parsed {
  values: Record<string, unknown>;
  given: Set<string>;
}

function parsed(cmd: Command, specs: FlagSpec[]): Parsed {
  const raw = cmd.opts();
  const given = new Set<string>();
  const values: Record<string, unknown> = {};
  // commander camel-cases dashes only; our flags use underscores, so its keys are the UER names.
  for (const s of specs) {
    values[s.name] = raw[s.name];
    if (cmd.getOptionValueSource(s.name) === "cli") given.add(s.name);
  }
  for (const s of specs) {
    if (s.required && values[s.name] === undefined) {
      throw new UsageError(`required option '--${s.name}' not specified\n  hint: see \`${cmd.name()} --help\``);
    }
  }
  return { values, given };
}

function toCamel(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) out[camel(k)] = v;
  return out;
}

/** `--embedding word_pos_seg` (model card) = `--embedding word pos seg`. */
function normalizeEmbedding(list: unknown): string[] {
  const words = (Array.isArray(list) ? list : [list]).flatMap((w) => String(w).split("_"));
  for (const w of words) {
    if (!["word", "pos", "seg"].includes(w)) {
      throw new UsageError(`option '--embedding' got '${w}'; ALBERT uses word pos seg`);
    }
  }
  return words;
}

/** `--target albert` (older UER-py) = `--target mlm sp` with `--data_processor albert`. */
function normalizeTarget(list: unknown, values: Record<string, unknown>): string[] {
  const words = Array.isArray(list) ? list.map(String) : [String(list)];
  if (words.includes("albert")) {
    values.data_processor = "albert";
    return ["mlm", "sp"];
  }
  for (const w of words) {
    if (!["mlm", "sp"].includes(w)) throw new UsageError(`option '--target' got '${w}'; ALBERT uses mlm sp`);
  }
  return words;
}

/** Keys of a UER config file that are model hyper-parameters rather than flags. */
const MODEL_KEYS = ["emb_size", "hidden_size", "feedforward_size", "heads_num", "layers_num", "hidden_act"];

async function pretrainOptions(p: Parsed): Promise<PretrainOptions> {
  const values = { ...p.values };
  const flagNames = new Set(PRETRAIN_FLAGS.map((s) => s.name));
  let fileConfig: Record<string, unknown> = { ...ALBERT_BASE };
  const configPath = values.config_path as string | undefined;
  if (configPath !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(configPath);
    } catch (e) {
      throw new UsageError(`Cannot read config "${configPath}": ${(e as Error).message}\n  hint: check --config_path`);
    }
    try {
      fileConfig = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`Cannot parse config "${configPath}": ${(e as Error).message}`);
    }
    if (typeof fileConfig !== "object" || fileConfig === null || Array.isArray(fileConfig)) {
      throw new UsageError(`Cannot use config "${configPath}": not a JSON object`);
    }
  }
  // UER-py load_hyperparam: defaults < config file < flags given on the command line.
  for (const [k, v] of Object.entries(fileConfig)) {
    if (flagNames.has(k) && !p.given.has(k)) values[k] = v;
  }
  values.embedding = normalizeEmbedding(values.embedding);
  values.target = normalizeTarget(values.target, values);
  const config: Record<string, unknown> = {};
  for (const k of MODEL_KEYS) if (k in fileConfig) config[k] = fileConfig[k];
  for (
    const k of [
      "max_seq_length",
      "dropout",
      "embedding",
      "encoder",
      "mask",
      "target",
      "data_processor",
      "factorized_embedding_parameterization",
      "parameter_sharing",
    ]
  ) config[k] = values[k];
  return { ...toCamel(values), config } as unknown as PretrainOptions;
}

function preprocessValues(p: Parsed): Record<string, unknown> {
  const values = { ...p.values };
  if (values.target === "albert") values.data_processor = "albert";
  delete values.target;
  if (values.dynamic_masking) values.dup_factor = 1; // as UER-py preprocess.py
  return toCamel(values);
}

type Runner = (opts: never) => Promise<void>;

interface Sub {
  name: string;
  summary: string;
  flags: FlagSpec[];
  load: () => Promise<{ run: Runner }>;
  options?: (p: Parsed) => Promise<Record<string, unknown>> | Record<string, unknown>;
}

const SUBCOMMANDS: Sub[] = [
  {
    name: "preprocess",
    summary: "Turn a corpus into ALBERT MLM + SOP instances (UER-py preprocess.py --data_processor albert)",
    flags: PREPROCESS_FLAGS,
    load: () => import("./preprocess.ts"),
    options: preprocessValues,
  },
  {
    name: "pretrain",
    summary: "Pretrain ALBERT (MLM + SOP) from a preprocessed dataset (UER-py pretrain.py)",
    flags: PRETRAIN_FLAGS,
    load: () => import("./pretrain.ts"),
    options: (p) => pretrainOptions(p) as unknown as Promise<Record<string, unknown>>,
  },
  {
    name: "infer",
    summary: "Fill masks or extract features with a model (HF pipelines, UER-py cloze_test/extract_features)",
    flags: INFER_FLAGS,
    load: () => import("./infer.ts"),
  },
  {
    name: "convert",
    summary: "Convert weights between UER .bin, HF folders, zarr checkpoints and ONNX",
    flags: CONVERT_FLAGS,
    load: () => import("./convert.ts"),
  },
  {
    name: "tokenize",
    summary: "Tokenize stdin lines with BERT WordPiece; prints one JSON id array per line",
    flags: TOKENIZE_FLAGS,
    load: () => import("./tokenize.ts"),
  },
  {
    name: "inspect",
    summary: "Print instances and a summary of a preprocessed dataset",
    flags: INSPECT_FLAGS,
    load: () => import("./inspect.ts"),
  },
  {
    name: "demo",
    summary: "Run the whole chain on the embedded demo corpus (what `deno task demo` runs)",
    flags: DEMO_FLAGS,
    load: () => import("./demo.ts"),
  },
];

function flagList(flags: FlagSpec[]): string[] {
  return [...new Set(flags.map((f) => `--${f.name}`)), "--help"];
}

/** Rewrites commander's messages into our one-line form, with our own closest-flag suggestion. */
function usageMessage(err: CommanderError, cmdName: string | undefined): string {
  const sub = SUBCOMMANDS.find((s) => s.name === cmdName);
  const m = /unknown option '([^']+)'/.exec(err.message);
  if (m) {
    const flag = m[1].split("=")[0];
    const candidates = sub ? flagList(sub.flags) : ["--help", "--version"];
    const near = closest(flag, candidates);
    return `unknown option '${flag}'${cmdName ? ` for '${cmdName}'` : ""}` +
      (near ? ` (did you mean ${near}?)` : "");
  }
  const c = /unknown command '([^']+)'/.exec(err.message);
  if (c) {
    const near = closest(c[1], SUBCOMMANDS.map((s) => s.name));
    return `unknown command '${c[1]}'` + (near ? ` (did you mean ${near}?)` : "");
  }
  return err.message.replace(/^error: /, "").split("\n")[0];
}

/** Builds the commander program; exported for tests. */
export function buildProgram(onRun: (sub: Sub, opts: Record<string, unknown>) => Promise<void>): Command {
  const program = new Command("uer-ts")
    .description("UER-py's ALBERT toolkit in Deno + TypeScript: preprocess, pretrain, infer, convert")
    .version(VERSION)
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => {}, outputError: () => {} });
  for (const sub of SUBCOMMANDS) {
    const cmd = program.command(sub.name).description(sub.summary).exitOverride()
      .showSuggestionAfterError(false).allowExcessArguments(false)
      .configureOutput({ writeErr: () => {}, outputError: () => {} });
    for (const f of sub.flags) addFlag(cmd, f);
    cmd.action(async () => {
      const p = parsed(cmd, sub.flags);
      const opts = sub.options ? await sub.options(p) : toCamel(p.values);
      await onRun(sub, opts);
    });
  }
  return program;
}

/** Runs the CLI on `args`; returns the exit code instead of exiting (tests call this). */
export async function main(args: string[]): Promise<number> {
  let current: string | undefined = args.find((a) => SUBCOMMANDS.some((s) => s.name === a));
  const program = buildProgram(async (sub, opts) => {
    current = sub.name;
    const mod = await sub.load();
    await mod.run(opts as never);
  });
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0) return 0;
      if (e.code === "commander.help") return 0;
      console.error(`error: ${usageMessage(e, current)}`);
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      return EXIT_USAGE;
    }
    if (e instanceof NotBuiltError) {
      console.error(`error: ${e.message}`);
      return EXIT_USAGE;
    }
    const err = e as Error;
    if (Deno.env.get("UER_TS_DEBUG")) console.error(err?.stack ?? err);
    else console.error(`error: ${err?.message ?? String(e)}`);
    return EXIT_INPUT;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
