/**
 * The command-line side of the flag tables (core/flags): builds each subcommand's commander command
 * from its table (help text with defaults and built choices; not-built UER-py flags parsed but hidden)
 * and turns a command line into typed options with `parseOptions`, reading `--config_path` for
 * subcommands that take a UER config. The CLI, the demo, the benches and the tests all build options
 * here, so every flag is declared once, in its table.
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import {
  buildOptions,
  type ConfigFile,
  type FlagRow,
  type OptionsBySubcommand,
  type Subcommand,
  SUBCOMMAND_FLAGS,
} from "../core/flags/mod.ts";
import { closest } from "../core/flags/suggest.ts";
import { UsageError } from "../core/errors.ts";

function helpText(row: FlagRow): string {
  const parts = [row.help];
  const shown = row.built ?? row.choices?.filter((c) => !row.older?.includes(c));
  if (shown && row.type !== "truefalse") parts.push(`(choices: ${shown.join(", ")})`);
  if (row.default !== undefined && !(Array.isArray(row.default) && row.default.length === 0)) {
    parts.push(`(default: ${Array.isArray(row.default) ? row.default.join(" ") : row.default})`);
  }
  if (row.uer) parts.push(`[UER-py ${row.uer}]`);
  return parts.join(" ");
}

function option(name: string, row: FlagRow): Option {
  const arg = row.type === "bool" ? "" : row.type === "list" || row.type === "ints" ? " <values...>" : " <value>";
  const opt = new Option(`--${name}${arg}`, helpText(row));
  if (row.repeat) opt.argParser((raw: string, prev: unknown) => [...(Array.isArray(prev) ? prev : []), raw]);
  if (row.notBuilt) opt.hideHelp();
  return opt;
}

/**
 * The commander command of subcommand `name` (options only; the caller adds the action). Values are
 * left as typed: `parsedOptions` reads them through the table.
 */
export function commandFor(name: Subcommand): Command {
  const cmd = new Command(name).exitOverride().showSuggestionAfterError(false).allowExcessArguments(false)
    .configureOutput({ writeErr: () => {}, outputError: () => {} });
  for (const [flag, row] of Object.entries(SUBCOMMAND_FLAGS[name].flags)) cmd.addOption(option(flag, row));
  return cmd;
}

/** Reads `--config_path` as UER-py's `load_hyperparam` does (a JSON object). */
async function readConfig(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new UsageError(`Cannot read config "${path}": ${why}\n  hint: check --config_path`);
  }
  try {
    return { json: JSON.parse(text), source: path };
  } catch (e) {
    throw new UsageError(
      `Cannot parse config "${path}": ${(e as Error).message}\n  hint: a UER config is a JSON object`,
    );
  }
}

/** The options of a commander command that has parsed its arguments. */
export async function parsedOptions<K extends Subcommand>(
  name: K,
  cmd: Command,
): Promise<OptionsBySubcommand[K]> {
  const raw = cmd.opts();
  const given = new Set(Object.keys(SUBCOMMAND_FLAGS[name].flags).filter((f) => cmd.getOptionValueSource(f) === "cli"));
  const configPath = given.has("config_path") && "config" in SUBCOMMAND_FLAGS[name]
    ? String(raw.config_path)
    : undefined;
  return buildOptions(name, raw, given, configPath === undefined ? undefined : await readConfig(configPath));
}

/**
 * Commander's message for a bad command line, in our one-line form with the closest valid flag or
 * subcommand.
 */
export function usageMessage(err: CommanderError, name: Subcommand | undefined): string {
  const m = /unknown option '([^']+)'/.exec(err.message);
  if (m) {
    const flag = m[1].split("=")[0];
    const candidates = name
      ? [...new Set(Object.entries(SUBCOMMAND_FLAGS[name].flags).map(([f]) => `--${f}`)), "--help"]
      : ["--help", "--version"];
    const near = closest(flag, candidates);
    return `unknown option '${flag}'${name ? ` for '${name}'` : ""}` + (near ? ` (did you mean ${near}?)` : "") +
      `\n  hint: \`${name ?? "uer-ts"} --help\` lists every flag`;
  }
  const c = /unknown command '([^']+)'/.exec(err.message);
  if (c) {
    const near = closest(c[1], Object.keys(SUBCOMMAND_FLAGS));
    return `unknown command '${c[1]}'` + (near ? ` (did you mean ${near}?)` : "") +
      "\n  hint: `uer-ts --help` lists the subcommands";
  }
  return err.message.replace(/^error: /, "").split("\n")[0];
}

/**
 * The options of subcommand `name` for the flags `argv`, exactly as the CLI would build them (a
 * mistake is a UsageError). What the demo, the benches and the tests use to make options.
 *
 * @example
 * ```ts
 * const opts = await parseOptions("preprocess", ["--corpus_path", "c.txt", "--vocab_path", "v.txt",
 *   "--target", "albert"]);
 * await (await import("./preprocess.ts")).run(opts);
 * ```
 */
export async function parseOptions<K extends Subcommand>(name: K, argv: string[]): Promise<OptionsBySubcommand[K]> {
  const cmd = commandFor(name);
  try {
    cmd.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) throw new UsageError(usageMessage(e, name));
    throw e;
  }
  return await parsedOptions(name, cmd);
}
