/**
 * `demo` (what `deno task demo` runs): the model card's chain on the embedded demo corpus and vocab
 * (`fixtures/`, written by `fixtures/make_demo.ts`): tokenize → preprocess → pretrain → convert to HF →
 * fill-mask. Each step calls the same `run()` the subcommand uses; nothing is downloaded.
 * @module
 */
import type { DemoOptions } from "./flags.ts";
import { NotBuiltError } from "./not_built.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { BertTokenizer } from "../core/tokenizer/mod.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url);

/** Reads an embedded fixture (works from a checkout and from a `deno compile --include fixtures` binary). */
async function fixturePath(name: string): Promise<string> {
  const path = new URL(name, FIXTURES).pathname;
  await Deno.stat(path);
  return path;
}

/** One step of the chain; a step whose engine is not built yet is reported and skipped. */
async function step(title: string, quiet: boolean, body: () => Promise<void>): Promise<boolean> {
  if (!quiet) console.log(`\n== ${title}`);
  try {
    await body();
    return true;
  } catch (e) {
    if (e instanceof NotBuiltError) {
      console.log(`(skipped: ${e.message})`);
      return false;
    }
    throw e;
  }
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
  const preprocessed = await step("preprocess (--target albert)", opts.quiet, async () => {
    const { run: preprocess } = await import("./preprocess.ts");
    await preprocess({
      corpusPath,
      vocabPath,
      datasetPath: dataset,
      tokenizer: "bert",
      doLowerCase: "true",
      processesNum: 1,
      dataProcessor: "albert",
      docsBufferSize: 100000,
      seqLength: 32,
      dupFactor: 5,
      shortSeqProb: 0.1,
      fullSentences: false,
      seed: 7,
      dynamicMasking: false,
      wholeWordMasking: false,
      spanMasking: false,
      spanGeoProb: 0.2,
      spanMaxLength: 10,
      overwrite: true,
      encodingErrors: "strict",
      quiet: opts.quiet,
      json: false,
    });
  });
  if (!preprocessed) return;

  // Pretrain the demo model (configs/albert/demo_config.json) from scratch; reports show the loss falling.
  const steps = DEMO_STEPS;
  const trained = await step(
    `pretrain ${steps} steps from scratch (configs/albert/demo_config.json, UER-py report lines)`,
    opts.quiet,
    async () => {
      const config = JSON.parse(
        await Deno.readTextFile(new URL("../configs/albert/demo_config.json", import.meta.url)),
      );
      const { run: pretrain } = await import("./pretrain.ts");
      await pretrain({
        datasetPath: dataset,
        outputModelPath: model,
        totalSteps: steps,
        saveCheckpointSteps: steps,
        reportSteps: steps / 10,
        accumulationSteps: 1,
        batchSize: 32,
        instancesBufferSize: 25600,
        dropout: 0,
        seed: 7,
        tokenizer: "bert",
        vocabPath,
        doLowerCase: "true",
        embedding: config.embedding,
        maxSeqLength: config.max_seq_length,
        removeEmbeddingLayernorm: false,
        factorizedEmbeddingParameterization: true,
        encoder: "transformer",
        mask: "fully_visible",
        layernormPositioning: "post",
        feedForward: "dense",
        parameterSharing: true,
        target: ["mlm", "sp"],
        tieWeights: false,
        pooling: "first",
        dataProcessor: "albert",
        deepInit: false,
        dynamicMasking: false,
        wholeWordMasking: false,
        spanMasking: false,
        spanGeoProb: 0.2,
        spanMaxLength: 10,
        learningRate: DEMO_LR,
        warmup: 0.1,
        lrDecay: 0.5,
        optimizer: "adamw",
        scheduler: "linear",
        worldSize: 1,
        gpuRanks: [],
        masterIp: "tcp://localhost:12345",
        backend: "nccl",
        logLevel: "INFO",
        logFileLevel: "INFO",
        device: opts.device,
        quiet: opts.quiet,
        json: false,
        config,
      });
      log(`loss curve: ${model}.loss.svg, metrics: ${model}.metrics.jsonl`);
    },
  );
  if (!trained) return;

  const hf = `${work}/hf`;
  const converted = await step("convert --to hf (UER names -> HF AlbertForMaskedLM folder)", opts.quiet, async () => {
    const { run: convert } = await import("./convert.ts");
    await convert({
      to: "hf",
      inputModelPath: `${model}-${steps}`,
      outputModelPath: hf,
      vocabPath,
      hfFormat: "safetensors",
      overwrite: true,
      quiet: opts.quiet,
      json: false,
    });
  });
  if (!converted) return;

  await step("infer fill-mask on the HF folder", opts.quiet, async () => {
    const { run: infer } = await import("./infer.ts");
    await infer({
      modelPath: hf,
      text: ["中国的首都是[MASK]京。"],
      topK: 5,
      batchSize: 64,
      seqLength: 64,
      device: opts.device,
      quiet: opts.quiet,
      json: false,
    });
  });
}

/** Demo training length and lr (about a minute on 2 CPU cores). */
const DEMO_STEPS = 1500;
const DEMO_LR = 1e-3;
