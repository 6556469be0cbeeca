/**
 * README.md runs as written: every ```sh block is run, in order, in a scratch folder laid out as the
 * clone (`cli core convert configs fixtures node_modules` linked, `deno.json package.json` copied), each
 * command through `bash` exactly as printed but for these documented substitutions, which keep the
 * run short on a CPU-only machine:
 * - the block of "The files the examples use" (it clones UER-py) is replaced by copies of the same files
 *   from `UER_DIR` when set, else from `../shared/reference` (vocab, CLUECorpusSmall sample, chnsenticorp
 *   rows);
 * - `npm ci --ignore-scripts && ` is dropped (the checkout is installed) and `npx deno task test` is
 *   skipped (it runs this test);
 * - `npx deno task demo` gets `--total_steps 20`;
 * - `configs/albert/base_config.json` → `configs/albert/tiny_config.json` (ALBERT-base's stages and
 *   fine-tuning take minutes here even for 2 steps);
 * - `--world_size 8 --gpu_ranks 0 … 7` → `--world_size 2 --device cpu`; pretrain's `--total_steps N` →
 *   2 (and the checkpoint names `…-N` → `…-2`), `--save_checkpoint_steps` → 2, `--report_steps` → 1,
 *   `--batch_size 64` → 2; finetune's `--epochs_num 3` → 1, `--batch_size 32` → 16.
 * Lines of a block that are not commands are its expected output: each (but `...`) must appear in the
 * command's stdout.
 */
import assert from "node:assert/strict";
import { refPath } from "./reference.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const COMMAND = /^(npx|npm|echo|printf|git|mkdir|cp) /;

/** The ```sh blocks of README.md: each a list of commands (continuations joined) and its output lines. */
function blocks(readme: string): { line: number; commands: string[]; output: string[] }[] {
  const out: { line: number; commands: string[]; output: string[] }[] = [];
  const lines = readme.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== "```sh") continue;
    const b = { line: i + 1, commands: [] as string[], output: [] as string[] };
    for (i++; lines[i] !== "```"; i++) {
      const l = lines[i];
      const prev = b.commands.at(-1);
      if (prev?.endsWith("\\")) b.commands[b.commands.length - 1] = prev.slice(0, -1) + " " + l.trim();
      else if (COMMAND.test(l)) b.commands.push(l);
      else b.output.push(l);
    }
    out.push(b);
  }
  return out;
}

/** The documented substitutions (header of this file). */
function shorten(cmd: string, totals: Set<string>): string {
  let c = cmd.replace(/^npm ci --ignore-scripts && /, "");
  if (c === "npx deno task demo") return "npx deno task demo --total_steps 20";
  c = c.replace(/--world_size 8 --gpu_ranks 0 1 2 3 4 5 6 7/, "--world_size 2 --device cpu")
    .replaceAll("configs/albert/base_config.json", "configs/albert/tiny_config.json");
  if (/ pretrain /.test(c)) {
    const total = /--total_steps (\d+)/.exec(c);
    if (total) totals.add(total[1]);
    c = c.replace(/--total_steps \d+/, "--total_steps 2").replace(
      /--save_checkpoint_steps \d+/,
      "--save_checkpoint_steps 2",
    )
      .replace(/--report_steps \d+/, "--report_steps 1").replace(/--batch_size 64/, "--batch_size 2");
  }
  if (/ finetune /.test(c)) {
    c = c.replace(/--epochs_num 3/, "--epochs_num 1").replace(/--batch_size 32/, "--batch_size 16");
  }
  for (const n of totals) c = c.replaceAll(new RegExp(`(models/\\S+)-${n}\\b`, "g"), "$1-2");
  return c;
}

/** The files of "The files the examples use", from UER_DIR or the reference data. */
async function stageFiles(dir: string): Promise<void> {
  const uer = Deno.env.get("UER_DIR");
  const from = uer
    ? {
      vocab: `${uer}/models/google_zh_vocab.txt`,
      corpus: `${uer}/corpora/CLUECorpusSmall_sampled.txt`,
      tsv: `${uer}/datasets/chnsenticorp`,
    }
    : {
      vocab: refPath("vocab/google_zh_vocab.txt"),
      corpus: refPath("corpora/CLUECorpusSmall_sampled.txt"),
      tsv: refPath("albert-tiny/finetune_trace"), // 160/80/80 rows of chnsenticorp
    };
  console.log(`README files from ${uer ? `UER_DIR=${uer}` : "../shared/reference (UER_DIR is not set)"}`);
  for (const d of ["models", "corpora", "datasets/chnsenticorp"]) await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  await Deno.copyFile(from.vocab, `${dir}/models/google_zh_vocab.txt`);
  await Deno.copyFile(from.corpus, `${dir}/corpora/cluecorpussmall.txt`);
  for (const f of ["train", "dev", "test", "test_nolabel"]) {
    await Deno.copyFile(`${from.tsv}/${f}.tsv`, `${dir}/datasets/chnsenticorp/${f}.tsv`);
  }
}

Deno.test("every command of README.md runs as written (with the documented substitutions) and prints what it shows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uer-ts-readme-" });
  try {
    for (const d of ["cli", "core", "convert", "configs", "fixtures", "node_modules"]) {
      await Deno.symlink(`${ROOT}${d}`, `${dir}/${d}`);
    }
    for (const f of ["deno.json", "package.json"]) await Deno.copyFile(`${ROOT}${f}`, `${dir}/${f}`);
    const totals = new Set<string>();
    let ran = 0;
    for (const b of blocks(await Deno.readTextFile(`${ROOT}README.md`))) {
      if (b.commands.some((c) => c.startsWith("git clone"))) {
        await stageFiles(dir);
        continue;
      }
      for (const [i, raw] of b.commands.entries()) {
        if (raw === "npx deno task test") continue;
        const cmd = shorten(raw, totals);
        const t0 = performance.now();
        const r = await new Deno.Command("bash", {
          args: ["-c", cmd],
          cwd: dir,
          stdout: "piped",
          stderr: "piped",
          env: { NO_COLOR: "1" },
        }).output();
        const stdout = new TextDecoder().decode(r.stdout);
        console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s  ${cmd.slice(0, 100)}`);
        assert.equal(r.code, 0, `README line ${b.line}: ${cmd}\n${new TextDecoder().decode(r.stderr)}`);
        if (i === b.commands.length - 1) {
          for (const want of b.output.filter((l) => l !== "..." && l !== "")) {
            assert.ok(
              stdout.includes(want),
              `README line ${b.line}: "${want}" not in the output of ${cmd}:\n${stdout}`,
            );
          }
        }
        ran++;
      }
    }
    assert.ok(ran >= 14, `${ran} commands ran`);
    // The chain got where README says: stage 2's checkpoint, the HF folder, the classifier, the predictions.
    for (const p of ["models/albert_base_seq512-2", "models/albert_hf/config.json", "models/finetuned_model.bin"]) {
      assert.ok(await Deno.stat(`${dir}/${p}`), p);
    }
    const lines = async (f: string) => (await Deno.readTextFile(`${dir}/${f}`)).trim().split("\n").length;
    assert.equal(
      await lines("predictions.tsv"),
      await lines("datasets/chnsenticorp/test_nolabel.tsv"),
      "a row per row",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
