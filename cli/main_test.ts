/**
 * The command line: the model card's commands parse, UER-py's config precedence holds, mistakes get
 * one-line errors with the closest flag, and every subcommand has --help.
 */
import assert from "node:assert/strict";
import { main } from "./main.ts";
import { parseOptions } from "./options.ts";

/** Runs main() while capturing console.error lines. */
async function mainErr(args: string[]): Promise<{ code: number; err: string[] }> {
  const err: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    return { code: await main(args), err };
  } finally {
    console.error = orig;
  }
}

const CONFIG = new URL("../configs/albert/base_config.json", import.meta.url).pathname;

Deno.test("preprocess parses the model card's command, --target albert meaning --data_processor albert", async () => {
  const o = await parseOptions(
    "preprocess",
    "--corpus_path corpora/cluecorpussmall.txt --vocab_path models/google_zh_vocab.txt --dataset_path dataset_seq128 --seq_length 128 --processes_num 32 --target albert"
      .split(" "),
  );
  assert.equal(o.dataProcessor, "albert");
  assert.equal(o.processesNum, 32);
  assert.equal(o.seqLength, 128);
  assert.equal(o.dupFactor, 5, "UER-py default dup_factor");
  assert.equal(o.shortSeqProb, 0.1);
  assert.equal(o.datasetPath, "dataset_seq128");
});

Deno.test("preprocess --dynamic_masking forces dup_factor 1 as UER-py does", async () => {
  const o = await parseOptions("preprocess", [
    ...["--corpus_path", "c.txt", "--vocab_path", "v.txt", "--target", "albert", "--dynamic_masking"],
    ...["--dup_factor", "3"],
  ]);
  assert.equal(o.dupFactor, 1);
});

Deno.test("pretrain parses the model card's stage-1 command with its older spellings", async () => {
  const args = [
    ...`--dataset_path dataset_seq128 --vocab_path models/google_zh_vocab.txt --config_path ${CONFIG} --output_model_path models/albert_base_seq128 --world_size 8 --gpu_ranks 0 1 2 3 4 5 6 7 --total_steps 1000000 --save_checkpoint_steps 100000 --report_steps 50000 --learning_rate 1e-4 --batch_size 64 --factorized_embedding_parameterization --parameter_sharing --embedding word_pos_seg --encoder transformer --mask fully_visible --target albert`
      .split(" "),
  ];
  const o = await parseOptions("pretrain", args);
  assert.deepEqual(o.gpuRanks, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(o.worldSize, 8);
  assert.deepEqual(o.embedding, ["word", "pos", "seg"]);
  assert.deepEqual(o.target, ["mlm", "sp"]);
  assert.equal(o.dataProcessor, "albert");
  assert.equal(o.learningRate, 1e-4);
  assert.equal(o.totalSteps, 1000000);
  assert.equal(o.factorizedEmbeddingParameterization, true);
  assert.equal(o.model.hidden_size, 768);
  assert.equal(o.dropout, 0, "the config's dropout 0.0 overrides pretrain.py's default 0.1");
});

Deno.test("pretrain precedence is defaults < --config_path JSON < flags given", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      emb_size: 16,
      hidden_size: 32,
      heads_num: 4,
      dropout: 0.0,
      learning_rate: 0.5,
      seed: 11,
      total_steps: 9,
      data_processor: "albert",
      target: ["mlm", "sp"],
      embedding: ["word", "pos", "seg"],
    }),
  );
  const o = await parseOptions("pretrain", [
    ...["--output_model_path", "m", "--vocab_path", "v", "--config_path", path, "--seed", "3"],
  ]);
  assert.equal(o.learningRate, 0.5, "config beats default");
  assert.equal(o.totalSteps, 9, "config beats default");
  assert.equal(o.seed, 3, "flag given beats config");
  assert.equal(o.model.emb_size, 16);
  const d = await parseOptions("pretrain", ["--output_model_path", "m", "--vocab_path", "v"]);
  assert.equal(d.seed, 7);
  assert.equal(d.learningRate, 2e-5, "UER-py default learning rate");
  assert.equal(d.totalSteps, 100000);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("convert parses the model card's --from uer --to hf command", async () => {
  const opts = await parseOptions(
    "convert",
    "--from uer --to hf --input_model_path models/albert_base_seq512.bin-250000 --output_model_path pytorch_model.bin"
      .split(" "),
  );
  assert.equal(opts.from, "uer");
  assert.equal(opts.to, "hf");
  assert.equal(opts.inputModelPath, "models/albert_base_seq512.bin-250000");
});

Deno.test("infer takes --text more than once", async () => {
  const opts = await parseOptions("infer", ["--model_path", "m", "--text", "a[MASK]", "--text", "b"]);
  assert.deepEqual(opts.text, ["a[MASK]", "b"]);
  assert.equal(opts.topK, undefined, "fill-mask applies HF's top_k 5 itself");
});

Deno.test("main() rejects an unknown flag in one line naming the closest valid flag", async () => {
  const r = await mainErr(["preprocess", "--corpus", "x.txt"]);
  assert.equal(r.code, 2);
  assert.equal(r.err.length, 1);
  assert.match(r.err[0], /^error: unknown option '--corpus'.*did you mean --corpus_path\?\)\n {2}hint: /);
  const t = await mainErr(["pretrain", "--output_model_path", "m", "--learningrate", "1"]);
  assert.equal(t.code, 2);
  assert.match(t.err[0], /did you mean --learning_rate\?/);
});

Deno.test("main() names the flag whose value is not a number, and a missing required flag", async () => {
  const r = await mainErr(["preprocess", "--corpus_path", "c", "--seq_length", "12x"]);
  assert.equal(r.code, 2);
  assert.match(r.err[0], /--seq_length.*integer.*12x/);
  const m = await mainErr(["convert", "--input_model_path", "a"]);
  assert.equal(m.code, 2);
  assert.match(m.err[0], /--output_model_path/);
  const c = await mainErr(["convert", "--input_model_path", "a", "--output_model_path", "b", "--to", "tf"]);
  assert.match(c.err[0], /'tf'.*invalid|invalid.*'tf'|Allowed choices/i);
});

Deno.test("main() suggests the closest subcommand", async () => {
  const r = await mainErr(["pretrian"]);
  assert.equal(r.code, 2);
  assert.match(r.err[0], /did you mean pretrain\?/);
});

Deno.test("every subcommand answers --help with exit 0", async () => {
  for (const cmd of ["preprocess", "pretrain", "infer", "convert", "tokenize", "inspect", "demo"]) {
    // commander writes help to process.stdout, so run the CLI as a subprocess.
    const p = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname, cmd, "--help"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(p.code, 0, `${cmd} --help exit code`);
    assert.match(new TextDecoder().decode(p.stdout), new RegExp(`Usage: uer-ts ${cmd}`));
  }
});
