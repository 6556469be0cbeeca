/**
 * The uer-ts command line: `deno run -A cli/main.ts <preprocess|pretrain|finetune|infer|convert|tokenize|inspect|demo>`.
 * Flags are UER-py's, declared once per subcommand in `core/flags/` and turned into options by
 * `cli/options.ts` (defaults < `--config_path` JSON < flags given); `cli/<cmd>.ts` runs them.
 * Exit codes: 0 success, 1 a runtime or data error (an input file missing or wrong, the work failed),
 * 2 a usage error (the command line or its config file cannot run as written). Errors are one
 * `error: …` line and a `hint:` line, never a stack trace (`UER_TS_DEBUG=1` prints it).
 * @module
 */
import { Command, CommanderError } from "commander";
import type { OptionsBySubcommand, Subcommand } from "../core/flags/mod.ts";
import { UsageError } from "../core/errors.ts";
import { commandFor, parsedOptions, usageMessage } from "./options.ts";
import { Interrupted, interrupts } from "./interrupt.ts";

/** Version printed by `--version`. */
export const VERSION = "0.1.0";

/** Exit codes: 1 = the work failed on its input, 2 = the command line (or config file) is wrong. */
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** A subcommand's module: `run(options)`. */
type Module<K extends Subcommand> = { run(opts: OptionsBySubcommand[K]): Promise<void> };

/** Summary and module of each subcommand (its flags are in core/flags). */
const SUBCOMMANDS: { [K in Subcommand]: { summary: string; load: () => Promise<Module<K>> } } = {
  preprocess: {
    summary: "Turn a corpus into ALBERT MLM + SOP instances (UER-py preprocess.py --data_processor albert)",
    load: () => import("./preprocess.ts"),
  },
  pretrain: {
    summary: "Pretrain ALBERT (MLM + SOP) from a preprocessed dataset (UER-py pretrain.py)",
    load: () => import("./pretrain.ts"),
  },
  finetune: {
    summary: "Fine-tune a sentence (pair) classifier on a TSV (UER-py finetune/run_classifier.py)",
    load: () => import("./finetune.ts"),
  },
  infer: {
    summary: "Fill masks or extract features with a model (HF pipelines, UER-py cloze_test/extract_features)",
    load: () => import("./infer.ts"),
  },
  convert: {
    summary: "Convert weights between UER .bin, HF folders, zarr checkpoints and ONNX",
    load: () => import("./convert.ts"),
  },
  tokenize: {
    summary: "Tokenize stdin lines with BERT WordPiece; prints one JSON id array per line",
    load: () => import("./tokenize.ts"),
  },
  inspect: {
    summary: "Print instances and a summary of a preprocessed dataset",
    load: () => import("./inspect.ts"),
  },
  demo: {
    summary: "Run the whole chain on the embedded demo corpus (what `deno task demo` runs)",
    load: () => import("./demo.ts"),
  },
};

const NAMES = Object.keys(SUBCOMMANDS) as Subcommand[];

async function runSubcommand<K extends Subcommand>(name: K, cmd: Command): Promise<void> {
  const opts = await parsedOptions(name, cmd);
  const mod = await SUBCOMMANDS[name].load();
  await mod.run(opts);
}

/** Builds the commander program; `onRun` runs a parsed subcommand (tests pass their own). */
export function buildProgram(onRun: (name: Subcommand, cmd: Command) => Promise<void> = runSubcommand): Command {
  const program = new Command("uer-ts")
    .description("UER-py's ALBERT toolkit in Deno + TypeScript: preprocess, pretrain, infer, convert")
    .version(VERSION)
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => {}, outputError: () => {} });
  for (const name of NAMES) {
    const cmd = commandFor(name).description(SUBCOMMANDS[name].summary);
    cmd.action(() => onRun(name, cmd));
    program.addCommand(cmd);
  }
  return program;
}

/**
 * Runs the CLI on `args`; returns the exit code instead of exiting (tests call this). While it runs,
 * Ctrl-C, SIGTERM and the death of an `npx` parent stop it (cli/interrupt.ts): temporary outputs are
 * removed and the exit code is 130 or 143.
 */
export async function main(args: string[]): Promise<number> {
  const current = NAMES.find((n) => n === args.find((a) => !a.startsWith("-")));
  const uninstall = interrupts.install();
  try {
    await buildProgram().parseAsync(args, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof Interrupted) {
      if (e.message) console.error(e.message);
      return e.code;
    }
    if (e instanceof CommanderError) {
      if (e.exitCode === 0 || e.code === "commander.help") return 0;
      console.error(`error: ${usageMessage(e, current)}`);
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      return EXIT_USAGE;
    }
    const err = e as Error;
    if (Deno.env.get("UER_TS_DEBUG")) console.error(err?.stack ?? err);
    else console.error(`error: ${err?.message ?? String(e)}`);
    return EXIT_RUNTIME;
  } finally {
    uninstall();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
