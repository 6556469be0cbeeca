/**
 * Turns what the user typed (and, for `pretrain`, a UER config file) into a subcommand's typed
 * options, using nothing but its flag table: defaults < config file < flags given (UER-py
 * `load_hyperparam`), each value read by its row's type and checked against its choices and bounds,
 * a not-built flag or config key refused by name, an unknown config key answered with the closest
 * known one, and finally every value checked against what uer-ts has built. Every mistake is a
 * `UsageError` (exit 2). Browser compatible: the caller reads files.
 * @module
 */
import { UsageError } from "../errors.ts";
import { camel, defaultOf, type FlagRow, type FlagTable } from "./row.ts";
import { closest } from "./suggest.ts";

/** Where a value came from, for messages. */
type Origin = "default" | "flag" | { config: string };

/** The values of a subcommand's flags while they are assembled (UER names). */
export interface FlagState {
  command: string;
  table: FlagTable;
  values: Record<string, unknown>;
  /** Flags given on the command line. */
  given: Set<string>;
  origin: Map<string, Origin>;
}

function hint(state: FlagState, row: FlagRow | undefined): string {
  return `\n  hint: ${row?.hint ?? `\`${state.command} --help\` lists every flag with its default`}`;
}

function where(name: string, origin: Origin): string {
  return typeof origin === "object" ? `"${name}" in config "${origin.config}"` : `option '--${name}'`;
}

function fail(state: FlagState, name: string, origin: Origin, detail: string): never {
  throw new UsageError(`${where(name, origin)} ${detail}${hint(state, state.table[name])}`);
}

function show(v: unknown): string {
  return Array.isArray(v) ? v.join(" ") : typeof v === "string" ? `'${v}'` : String(v);
}

/** Reads one value (`raw`: a string / string[] / true from the command line, JSON from a config). */
function read(state: FlagState, name: string, row: FlagRow, raw: unknown, origin: Origin): unknown {
  const fromConfig = origin !== "flag";
  const bad = (what: string): never => fail(state, name, origin, `must be ${what}, got ${JSON.stringify(raw)}`);
  const num = (x: unknown, int: boolean): number => {
    const v = typeof x === "number" ? x : typeof x === "string" && x.trim() !== "" ? Number(x) : NaN;
    if (!Number.isFinite(v) || (int && !Number.isInteger(v)) || (fromConfig && typeof x !== "number")) {
      return bad(int ? "an integer" : "a number");
    }
    return v;
  };
  switch (row.type) {
    case "int":
    case "float":
      return num(raw, row.type === "int");
    case "bool":
      if (fromConfig && typeof raw !== "boolean") return bad("true or false");
      return fromConfig ? raw : true;
    case "truefalse":
      if (raw === true || raw === false) return raw;
      if (raw !== "true" && raw !== "false") return bad('"true" or "false"');
      return raw === "true";
    case "ints": {
      const list = Array.isArray(raw) ? raw : [raw];
      return list.map((x) => num(x, true));
    }
    case "list": {
      const list = Array.isArray(raw) ? raw : [raw];
      if (list.length === 0 || list.some((x) => typeof x !== "string")) return bad("one or more words");
      return list;
    }
    case "string":
      if (row.repeat) return (Array.isArray(raw) ? raw : [raw]).map(String);
      if (typeof raw !== "string") return bad("a string");
      return raw;
  }
}

/** Checks a value against its row's choices and bounds. */
function check(state: FlagState, name: string, row: FlagRow, v: unknown, origin: Origin): void {
  const items = Array.isArray(v) ? v : [v];
  for (const x of items) {
    if (row.choices && row.type !== "truefalse" && !row.choices.includes(x as string)) {
      fail(state, name, origin, `got invalid value '${x}': expected one of ${row.choices.join(", ")}`);
    }
    if (typeof x !== "number") continue;
    if (row.min !== undefined && x < row.min) fail(state, name, origin, `must be at least ${row.min}, got ${x}`);
    if (row.above !== undefined && !(x > row.above)) {
      fail(state, name, origin, `must be greater than ${row.above}, got ${x}`);
    }
    if (row.max !== undefined && x > row.max) fail(state, name, origin, `must be at most ${row.max}, got ${x}`);
    if (row.below !== undefined && !(x < row.below)) fail(state, name, origin, `must be below ${row.below}, got ${x}`);
  }
}

function notBuiltMessage(name: string, reason: string, origin: Origin): string {
  const what = typeof origin === "object" ? `"${name}" in config "${origin.config}"` : `--${name}`;
  return `${what} is a UER-py ${typeof origin === "object" ? "key" : "flag"} uer-ts has not built: ${reason}` +
    `\n  hint: ${typeof origin === "object" ? "remove it from the config" : `drop --${name}`}`;
}

/**
 * The defaults of `table`, then the flags given (`raw`: commander's values by UER name, `given`: the
 * names typed). A not-built flag or a bad value is a UsageError naming the flag.
 *
 * @example
 * ```ts
 * const state = readFlags("preprocess", PREPROCESS_FLAGS, { seq_length: "64" }, new Set(["seq_length"]));
 * state.values.seq_length; // 64
 * ```
 */
export function readFlags(
  command: string,
  table: FlagTable,
  raw: Record<string, unknown>,
  given: ReadonlySet<string>,
): FlagState {
  const state: FlagState = { command, table, values: {}, given: new Set(given), origin: new Map() };
  for (const [name, row] of Object.entries(table)) {
    if (row.notBuilt) continue;
    state.values[name] = defaultOf(row);
    state.origin.set(name, "default");
  }
  for (const name of given) {
    const row = table[name];
    if (!row) throw new UsageError(`unknown option '--${name}'${hint(state, undefined)}`);
    if (row.notBuilt) throw new UsageError(notBuiltMessage(name, row.notBuilt, "flag"));
    const v = read(state, name, row, raw[name], "flag");
    check(state, name, row, v, "flag");
    state.values[name] = v;
    state.origin.set(name, "flag");
  }
  for (const [name, row] of Object.entries(table)) {
    if (row.required && state.values[name] === undefined) {
      throw new UsageError(`required option '--${name}' not specified${hint(state, row)}`);
    }
  }
  return state;
}

/** What a config file may hold besides the flags. */
export interface ConfigKeys {
  /** Model keys read into `model` (e.g. `emb_size`). */
  model: readonly string[];
  /** Keys of other UER-py models, with the reason they are refused. */
  notBuilt: Record<string, string>;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A not-built row's UER-py default, as a config file would hold it. */
function uerDefault(row: FlagRow): unknown {
  if (row.type === "bool") return false;
  return row.default ?? null;
}

/**
 * Merges a UER config file (parsed JSON, named `source` in messages) under the flags given: each flag
 * key not given on the command line takes the file's value; model keys go to the returned `model`.
 * A not-built key is refused unless it holds UER-py's default; an unknown key gets the closest known
 * one.
 *
 * @example
 * ```ts
 * const model = applyConfig(state, { hidden_size: 768, learning_rate: 1e-4 }, "base.json", keys);
 * ```
 */
export function applyConfig(
  state: FlagState,
  json: unknown,
  source: string,
  keys: ConfigKeys,
): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new UsageError(
      `Cannot use config "${source}": not a JSON object\n  hint: see configs/albert/base_config.json`,
    );
  }
  const model: Record<string, unknown> = {};
  const origin = { config: source };
  for (const [key, v] of Object.entries(json)) {
    const row = state.table[key];
    if (row?.notBuilt) {
      if (!sameValue(v, uerDefault(row))) throw new UsageError(notBuiltMessage(key, row.notBuilt, origin));
    } else if (row) {
      const value = read(state, key, row, v, origin);
      check(state, key, row, value, origin);
      if (!state.given.has(key)) {
        state.values[key] = value;
        state.origin.set(key, origin);
      }
    } else if (keys.model.includes(key)) {
      model[key] = v;
    } else if (key in keys.notBuilt) {
      throw new UsageError(notBuiltMessage(key, keys.notBuilt[key], origin));
    } else {
      const near = closest(key, [...Object.keys(state.table), ...keys.model]);
      throw new UsageError(
        `Cannot use config "${source}": unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ""}` +
          `\n  hint: a UER config holds ${state.command}'s flags and the model keys ${keys.model.join(", ")}`,
      );
    }
  }
  return model;
}

/**
 * Checks every value against what uer-ts has built (`built` rows): a UER-py value uer-ts does not
 * build — given, from the config or UER-py's default — is a UsageError naming the flag.
 */
export function checkBuilt(state: FlagState): void {
  for (const [name, row] of Object.entries(state.table)) {
    if (!row.built || row.notBuilt) continue;
    const v = state.values[name];
    const ok = Array.isArray(v)
      ? v.length === row.built.length && row.built.every((b) => v.includes(b))
      : row.built.includes(v as string | number);
    if (ok) continue;
    const origin = state.origin.get(name) ?? "default";
    const from = origin === "default" ? " (UER-py's default)" : "";
    const want = row.type === "list" ? `--${name} ${row.built.join(" ")}` : row.built.map(show).join(", ");
    throw new UsageError(
      `${where(name, origin)}: ${show(v)}${from} is not built in uer-ts, which builds ${want}` +
        `\n  hint: ${row.hint ?? (origin === "default" ? `pass --${name} ${row.built.join(" ")}` : `use ${want}`)}`,
    );
  }
}

/**
 * The camelCase options object of the built flags.
 *
 * @example
 * ```ts
 * toOptions({ seq_length: 64, span_geo_prob: 0.2 }, PREPROCESS_FLAGS); // { seqLength: 64, spanGeoProb: 0.2, … }
 * ```
 */
export function toOptions(state: FlagState): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, row] of Object.entries(state.table)) if (!row.notBuilt) out[camel(name)] = state.values[name];
  return out;
}
