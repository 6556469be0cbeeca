/**
 * `demo` (what `deno task demo` runs): the model card's chain on the embedded demo corpus and vocab
 * (`fixtures/`, written by `fixtures/make_demo.ts`): tokenize → preprocess → pretrain → convert to HF →
 * fill-mask → fine-tune a classifier on the embedded labelled set (is the city a country's capital or a
 * province's? the dev cities are unseen in fine-tuning) → text-classification. Each step builds its options with the CLI's own parser and calls the same `run()` the
 * subcommand uses; nothing is downloaded.
 * @module
 */
import type { DemoOptions } from "../core/flags/mod.ts";
import { parseOptions } from "./options.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/mod.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url);
/** The demo model's config (pretrain, finetune and infer read it). */
const DEMO_CONFIG = new URL("../configs/albert/demo_config.json", import.meta.url).pathname;

/** Reads an embedded fixture (works from a checkout and from a `deno compile --include fixtures` binary). */
async function fixturePath(name: string): Promise<string> {
  const path = new URL(name, FIXTURES).pathname;
  await Deno.stat(path);
  return path;
}

/** One step of the chain, under its title. */
async function step(title: string, quiet: boolean, body: () => Promise<void>): Promise<void> {
  if (!quiet) console.log(`\n== ${title}`);
  await body();
}

/** Runs the demo. */
export async function run(opts: DemoOptions): Promise<void> {
  const corpusPath = await fixturePath("demo_corpus.txt");
  const vocabPath = await fixturePath("demo_vocab.txt");
  const work = opts.workDir;
  await Deno.mkdir(work, { recursive: true });
  const log = (s: string) => void (!opts.quiet && console.log(s));

  await step("tokenize the demo corpus (BERT WordPiece, UER-py semantics)", opts.quiet, async () => {
    const vocab = await readVocabFile(vocabPath, "uer");
    const tok = new BertTokenizer(vocab, { mode: "uer" });
    const lines = (await Deno.readTextFile(corpusPath)).split("\n").filter((l) => l.trim() !== "");
    const t0 = performance.now();
    let tokens = 0;
    let unk = 0;
    for (const line of lines) {
      const ids = tok.convertTokensToIds(tok.tokenize(line));
      tokens += ids.length;
      for (const id of ids) if (id === vocab.unkId) unk++;
    }
    const ms = performance.now() - t0;
    const first = tok.encode(lines[0]);
    log(`corpus ${corpusPath}: ${lines.length} lines, ${tokens} tokens, ${unk} [UNK], ${ms.toFixed(1)} ms`);
    log(`"${lines[0]}" -> ${JSON.stringify(first.ids)}`);
    log(`segments ${JSON.stringify(first.segmentIds)}; decoded: ${tok.decode(first.ids)}`);
  });

  const dataset = `${work}/dataset`;
  const model = `${work}/model`;
  const quiet = opts.quiet ? ["--quiet"] : [];
  await step("preprocess (--target albert)", opts.quiet, async () => {
    const { run: preprocess } = await import("./preprocess.ts");
    await preprocess(
      await parseOptions("preprocess", [
        ...["--corpus_path", corpusPath, "--vocab_path", vocabPath, "--dataset_path", dataset],
        ...["--target", "albert", "--seq_length", "32", "--overwrite", ...quiet],
      ]),
    );
  });

  // Pretrain the demo model (configs/albert/demo_config.json) from scratch; reports show the loss falling.
  const steps = opts.totalSteps;
  await step(
    `pretrain ${steps} steps from scratch (configs/albert/demo_config.json, UER-py report lines)`,
    opts.quiet,
    async () => {
      const { run: pretrain } = await import("./pretrain.ts");
      await pretrain(
        await parseOptions("pretrain", [
          ...["--dataset_path", dataset, "--vocab_path", vocabPath, "--output_model_path", model],
          ...["--config_path", DEMO_CONFIG],
          ...["--total_steps", String(steps), "--save_checkpoint_steps", String(steps)],
          ...[
            "--report_steps",
            String(Math.max(1, Math.floor(steps / 10))),
            "--batch_size",
            "32",
            "--learning_rate",
            String(DEMO_LR),
          ],
          ...["--device", opts.device, "--overwrite", ...quiet],
        ]),
      );
      log(`loss curve: ${model}.loss.svg, metrics: ${model}.metrics.jsonl`);
    },
  );

  const hf = `${work}/hf`;
  await step("convert --to hf (UER names -> HF AlbertForMaskedLM folder)", opts.quiet, async () => {
    const { run: convert } = await import("./convert.ts");
    await convert(
      await parseOptions("convert", [
        ...["--input_model_path", `${model}-${steps}`, "--output_model_path", hf, "--vocab_path", vocabPath],
        ...["--hf_format", "safetensors", "--overwrite", ...quiet],
      ]),
    );
  });

  await step("infer fill-mask on the HF folder", opts.quiet, async () => {
    const { run: infer } = await import("./infer.ts");
    await infer(
      await parseOptions("infer", [
        ...["--model_path", hf, "--text", "中国的首都是[MASK]京。", "--seq_length", "64"],
        ...["--device", opts.device, ...quiet],
      ]),
    );
  });

  const classifier = `${work}/classifier.bin`;
  await step(
    "finetune a classifier from the pretrained model (is the city a country's capital? dev cities unseen)",
    opts.quiet,
    async () => {
      const { run: finetune } = await import("./finetune.ts");
      await finetune(
        await parseOptions("finetune", [
          ...["--pretrained_model_path", `${model}-${steps}`, "--vocab_path", vocabPath],
          ...["--config_path", DEMO_CONFIG],
          ...["--train_path", await fixturePath("demo_train.tsv"), "--dev_path", await fixturePath("demo_dev.tsv")],
          ...["--output_model_path", classifier, "--seq_length", "24", "--batch_size", "8"],
          ...["--learning_rate", "1e-4", "--epochs_num", "6", "--report_steps", "100", "--overwrite"],
          ...["--device", opts.device, ...quiet],
        ]),
      );
    },
  );

  await step(
    "infer text-classification with the fine-tuned model (a city it never saw labelled)",
    opts.quiet,
    async () => {
      const { run: infer } = await import("./infer.ts");
      await infer(
        await parseOptions("infer", [
          ...["--task", "text-classification", "--model_path", classifier, "--vocab_path", vocabPath],
          ...["--config_path", DEMO_CONFIG],
          ...["--text", "小明住在罗马。", "--text", "小明住在昆明。", "--seq_length", "24"],
          ...["--device", opts.device, ...quiet],
        ]),
      );
    },
  );
}

/** Demo learning rate. */
const DEMO_LR = 1e-3;
