/**
 * The flags of `infer`: HF pipelines `fill-mask`, `feature-extraction` and `text-classification` on a
 * model folder or file, with UER-py's `infer_opts` names where they exist (`--test_path`,
 * `--batch_size`, `--seq_length`, `--vocab_path`, `--config_path`; UER-py `scripts/cloze_test.py`,
 * `scripts/extract_features.py`), and for text-classification those of
 * `inference/run_classifier_infer.py` (`--load_model_path`, `--prediction_path`, `--labels_num`,
 * `--output_logits`, `--output_prob`, `--pooling`, the model flags its command lines carry), so its
 * command line runs as written after `infer --task text-classification`. Browser compatible.
 * @module
 */
import { DEVICE_OPTS, MODEL_OPTS, OUTPUT_OPTS, TOKENIZER_OPTS } from "./groups.ts";
import type { FlagTable, OptionsOf } from "./row.ts";
import { UsageError } from "../errors.ts";

const TC = "text-classification (run_classifier_infer.py)";

/** Flags of `infer`. */
export const INFER_FLAGS = {
  model_path: {
    type: "string",
    help: "HF folder, UER .bin (with --config_path) or zarr checkpoint (required; UER-py: --load_model_path).",
  },
  load_model_path: {
    type: "string",
    help: "UER-py's name for --model_path (run_classifier_infer.py).",
    uer: "uer/opts.py:115",
  },
  vocab_path: {
    type: "string",
    help: "Vocabulary file (default: the model folder's vocab.txt).",
    uer: "uer/opts.py:142",
  },
  config_path: {
    type: "string",
    help: "UER config of a .bin model (HF folders and zarr checkpoints carry their own).",
    uer: "uer/opts.py:121",
  },
  text: { type: "string", repeat: true, help: "Input text (repeatable); text_a<TAB>text_b for pairs." },
  test_path: {
    type: "string",
    help: "File with one text per line, or text_a<TAB>text_b; one output row per line.",
    uer: "uer/opts.py:117",
  },
  task: {
    type: "string",
    choices: ["fill-mask", "feature-extraction", "text-classification"],
    help: "Pipeline (default: fill-mask when the text holds [MASK], else feature-extraction).",
  },
  prediction_path: {
    type: "string",
    help: `${TC}: write label[<TAB>logits][<TAB>prob] per row of --test_path here.`,
    uer: "uer/opts.py:119",
  },
  labels_num: {
    type: "int",
    min: 1,
    help: `${TC}: number of labels; checked against the model's classifier.`,
    uer: "inference/run_classifier_infer.py:73",
  },
  output_logits: { type: "bool", help: `${TC}: add the logits column.`, uer: "inference/run_classifier_infer.py:78" },
  output_prob: {
    type: "bool",
    help: `${TC}: add the probabilities column.`,
    uer: "inference/run_classifier_infer.py:79",
  },
  pooling: { ...MODEL_OPTS.pooling, built: ["mean", "max", "first", "last"], help: `${TC}: the classifier's pooling.` },
  embedding: {
    ...MODEL_OPTS.embedding,
    default: ["word", "pos", "seg"],
    differs: "UER-py reads it from --config_path; ALBERT's is word pos seg",
  },
  encoder: MODEL_OPTS.encoder,
  mask: MODEL_OPTS.mask,
  tokenizer: TOKENIZER_OPTS.tokenizer,
  do_lower_case: TOKENIZER_OPTS.do_lower_case,
  top_k: { type: "int", min: 1, help: "fill-mask: predictions per mask (default 5, as HF pipelines' top_k)." },
  batch_size: { type: "int", default: 64, min: 1, help: "Batch size.", uer: "uer/opts.py:128" },
  seq_length: {
    type: "int",
    default: 128,
    min: 3,
    help: "Longer rows are truncated (with a warning).",
    uer: "uer/opts.py:130",
  },
  output_path: {
    type: "string",
    help: "Write the results to this file: fill-mask .jsonl; feature-extraction .safetensors or .npy.",
  },
  overwrite: { type: "bool", help: "Replace an existing --output_path." },
  dtype: {
    type: "string",
    default: "fp32",
    choices: ["fp32", "q8"],
    help: "Weights of fill-mask and feature-extraction: fp32, or q8 = int8 per output row, quantized in memory " +
      "(MatMulInteger on CPU, MatMulNBits on WebGPU); text-classification runs fp32.",
  },
  ...DEVICE_OPTS,
  ...OUTPUT_OPTS,
} as const satisfies FlagTable;

/** Options of `infer`, derived from `INFER_FLAGS` (`modelPath` set from either spelling). */
export type InferOptions = OptionsOf<typeof INFER_FLAGS> & { modelPath: string };

/**
 * After the flags are read: `--load_model_path` is `--model_path`; one of them is required; the
 * run_classifier_infer.py flags need `--task text-classification`, which runs fp32 only (`--dtype q8` is
 * refused); `--prediction_path` and `--output_path` name the same file (one of them).
 */
export function finishInfer(values: Record<string, unknown>, given: ReadonlySet<string>): void {
  if (given.has("load_model_path")) {
    if (given.has("model_path")) {
      throw new UsageError("--model_path and --load_model_path name the same model\n  hint: pass one of them");
    }
    values.model_path = values.load_model_path;
  }
  if (values.model_path === undefined) {
    throw new UsageError(
      "required option '--model_path' not specified\n  hint: pass --model_path <HF folder | UER .bin | zarr> (UER-py: --load_model_path)",
    );
  }
  values.embedding = (values.embedding as string[]).flatMap((w) => w === "word_pos_seg" ? ["word", "pos", "seg"] : [w]);
  const tc = values.task === "text-classification";
  for (const f of ["prediction_path", "labels_num", "output_logits", "output_prob", "pooling"]) {
    if (given.has(f) && !tc) {
      throw new UsageError(`--${f} has no effect without --task text-classification\n  hint: drop --${f}`);
    }
  }
  if (tc && values.dtype !== "fp32") {
    // NOTE: the classifier runs UER-py's run_classifier_infer.py path in fp32; q8 is built for fill-mask and features.
    throw new UsageError(
      `--dtype ${values.dtype} is not built for --task text-classification (it runs fp32)\n  hint: drop --dtype`,
    );
  }
  if (given.has("prediction_path") && given.has("output_path")) {
    throw new UsageError("--prediction_path and --output_path name the same file\n  hint: pass one of them");
  }
}
