/**
 * Every flag of every subcommand, declared once as data: UER-py's names (underscores) and defaults
 * (`preprocess.py`, `pretrain.py`, `uer/opts.py`), the older spellings of the model card, and the
 * project's own additions. `cli/main.ts` builds the commander commands from these tables; the parsed
 * values are converted to camelCase option objects here, once, at the CLI boundary.
 * @module
 */

/** How a flag's value is read. `list` takes one or more words (argparse `nargs='+'`). */
export type FlagType = "string" | "int" | "float" | "bool" | "list" | "ints";

/** One flag as the user types it. */
export interface FlagSpec {
  /** UER-py spelling without dashes, e.g. `corpus_path`. */
  name: string;
  type: FlagType;
  help: string;
  default?: string | number | boolean | string[] | number[];
  choices?: readonly string[];
  required?: boolean;
  /** Repeatable string flag (`--text a --text b`). */
  repeat?: boolean;
}

const progress: FlagSpec[] = [
  { name: "quiet", type: "bool", help: "Print no progress bar or report lines, only results and errors." },
  { name: "json", type: "bool", help: "Print machine-readable JSON instead of text." },
];

const tokenizerFlags: FlagSpec[] = [
  {
    name: "tokenizer",
    type: "string",
    default: "bert",
    choices: ["bert"],
    help: "Tokenizer type; ALBERT Chinese uses BERT's WordPiece.",
  },
  { name: "vocab_path", type: "string", help: "Path of the vocabulary file (google_zh_vocab.txt)." },
  {
    name: "do_lower_case",
    type: "string",
    default: "true",
    choices: ["true", "false"],
    help: "Whether to lower case the input.",
  },
];

const maskingFlags: FlagSpec[] = [
  { name: "whole_word_masking", type: "bool", help: "Whole word masking (Chinese words segmented with jieba)." },
  { name: "span_masking", type: "bool", help: "Span masking." },
  {
    name: "span_geo_prob",
    type: "float",
    default: 0.2,
    help: "Hyperparameter of geometric distribution for span masking.",
  },
  { name: "span_max_length", type: "int", default: 10, help: "Max length for span masking." },
];

const deviceFlag: FlagSpec = {
  name: "device",
  type: "string",
  default: "auto",
  choices: ["auto", "cpu", "webgpu", "wasm"],
  help: "Where graphs run: auto = WebGPU on a hardware adapter, else native CPU.",
};

/** The data processors of UER-py; only `albert` is built. */
const DATA_PROCESSORS = [
  "bert",
  "lm",
  "mlm",
  "bilm",
  "albert",
  "mt",
  "t5",
  "cls",
  "prefixlm",
  "gsg",
  "bart",
  "cls_mlm",
] as const;

/** Flags of `preprocess` (UER-py `preprocess.py`). */
export const PREPROCESS_FLAGS: FlagSpec[] = [
  { name: "corpus_path", type: "string", required: true, help: "Path of the corpus for pretraining." },
  { name: "dataset_path", type: "string", default: "dataset.pt", help: "Path of the preprocessed dataset (zarr)." },
  ...tokenizerFlags,
  {
    name: "processes_num",
    type: "int",
    default: 1,
    help: "Split the corpus into `processes_num` line ranges processed in parallel.",
  },
  {
    name: "data_processor",
    type: "string",
    default: "bert",
    choices: DATA_PROCESSORS,
    help: "The data processor of the pretraining model (only albert is built).",
  },
  {
    name: "target",
    type: "string",
    choices: ["albert"],
    help: "Older UER-py spelling used by the model card: `--target albert` = `--data_processor albert`.",
  },
  {
    name: "docs_buffer_size",
    type: "int",
    default: 100000,
    help: "The buffer size of documents in memory.",
  },
  { name: "seq_length", type: "int", default: 128, help: "Sequence length of instances." },
  { name: "dup_factor", type: "int", default: 5, help: "Duplicate instances multiple times." },
  { name: "short_seq_prob", type: "float", default: 0.1, help: "Probability of using a short (truncated) sequence." },
  {
    name: "full_sentences",
    type: "bool",
    help: "Full sentences (accepted for UER-py compatibility; unused by albert).",
  },
  { name: "seed", type: "int", default: 7, help: "Random seed." },
  { name: "dynamic_masking", type: "bool", help: "Dynamic masking (masks drawn by the loader; forces dup_factor 1)." },
  ...maskingFlags,
  { name: "overwrite", type: "bool", help: "Replace an existing --dataset_path." },
  { name: "shard", type: "string", help: "K/N: process only the K-th of N line ranges, into its own part." },
  {
    name: "encoding_errors",
    type: "string",
    default: "strict",
    choices: ["strict", "replace"],
    help: "Invalid UTF-8 in the corpus: stop naming the line (strict) or replace and count (replace).",
  },
  ...progress,
];

/** Model flags of `pretrain` that a config file may also set (UER-py `model_opts`). */
const modelFlags: FlagSpec[] = [
  {
    name: "embedding",
    type: "list",
    default: ["word"],
    help: "Embedding type(s): word pos seg (older spelling: word_pos_seg).",
  },
  { name: "max_seq_length", type: "int", default: 512, help: "Max sequence length for position embedding." },
  { name: "remove_embedding_layernorm", type: "bool", help: "Remove layernorm on embedding (not supported)." },
  { name: "factorized_embedding_parameterization", type: "bool", help: "Factorized embedding parameterization." },
  { name: "encoder", type: "string", default: "transformer", choices: ["transformer"], help: "Encoder type." },
  { name: "mask", type: "string", default: "fully_visible", choices: ["fully_visible"], help: "Mask type." },
  {
    name: "layernorm_positioning",
    type: "string",
    default: "post",
    choices: ["post"],
    help: "Layernorm positioning.",
  },
  { name: "feed_forward", type: "string", default: "dense", choices: ["dense"], help: "Feed forward type." },
  { name: "parameter_sharing", type: "bool", help: "Parameter sharing." },
  {
    name: "target",
    type: "list",
    default: ["mlm"],
    help: "Training target(s): mlm sp (older spelling: albert = mlm sp with data_processor albert).",
  },
  { name: "tie_weights", type: "bool", help: "Tie the word embedding and softmax weights." },
  { name: "pooling", type: "string", default: "first", choices: ["first"], help: "Pooling type." },
];

/** Flags of `pretrain` (UER-py `pretrain.py`). */
export const PRETRAIN_FLAGS: FlagSpec[] = [
  { name: "dataset_path", type: "string", default: "dataset.pt", help: "Path of the preprocessed dataset." },
  {
    name: "pretrained_model_path",
    type: "string",
    help: "Model to start from: zarr checkpoint, UER .bin or HF folder.",
  },
  {
    name: "output_model_path",
    type: "string",
    required: true,
    help: "Path of the output model; checkpoints are <path>-<step>.",
  },
  {
    name: "config_path",
    type: "string",
    help: "Config file of model hyper-parameters (default: ALBERT base, configs/albert/base_config.json).",
  },
  { name: "total_steps", type: "int", default: 100000, help: "Total training steps." },
  { name: "save_checkpoint_steps", type: "int", default: 10000, help: "Save a checkpoint every this many steps." },
  { name: "report_steps", type: "int", default: 100, help: "Print a report line every this many steps." },
  { name: "accumulation_steps", type: "int", default: 1, help: "Steps to accumulate gradient." },
  {
    name: "batch_size",
    type: "int",
    default: 32,
    help: "Batch size; the actual batch is batch_size x world_size x accumulation_steps.",
  },
  { name: "instances_buffer_size", type: "int", default: 25600, help: "The buffer size of instances in memory." },
  { name: "dropout", type: "float", default: 0.1, help: "Dropout value (ALBERT configs set 0.0)." },
  { name: "seed", type: "int", default: 7, help: "Random seed." },
  ...tokenizerFlags,
  ...modelFlags,
  {
    name: "data_processor",
    type: "string",
    default: "bert",
    choices: DATA_PROCESSORS,
    help: "The data processor of the pretraining model (only albert is built).",
  },
  { name: "deep_init", type: "bool", help: "Scale initialization of projection layers by 1/sqrt(2N)." },
  { name: "dynamic_masking", type: "bool", help: "Draw masks in the loader (dataset preprocessed without masks)." },
  ...maskingFlags,
  { name: "learning_rate", type: "float", default: 2e-5, help: "Learning rate." },
  { name: "warmup", type: "float", default: 0.1, help: "Warm up value (fraction of total_steps)." },
  { name: "lr_decay", type: "float", default: 0.5, help: "Learning rate decay value." },
  { name: "optimizer", type: "string", default: "adamw", choices: ["adamw"], help: "Optimizer type." },
  {
    name: "scheduler",
    type: "string",
    default: "linear",
    choices: ["linear", "constant", "constant_with_warmup"],
    help: "Scheduler type.",
  },
  { name: "world_size", type: "int", default: 1, help: "Total number of processes for training." },
  { name: "gpu_ranks", type: "ints", default: [], help: "List of ranks of each process (device index per rank)." },
  {
    name: "master_ip",
    type: "string",
    default: "tcp://localhost:12345",
    help: "IP-Port of master (accepted for UER-py compatibility; MPI finds its peers itself).",
  },
  {
    name: "backend",
    type: "string",
    default: "nccl",
    choices: ["nccl", "gloo", "mpi"],
    help: "Distributed backend (accepted for UER-py compatibility; uer-ts uses MPI).",
  },
  { name: "log_path", type: "string", help: "Log file path, default no output file." },
  {
    name: "log_level",
    type: "string",
    default: "INFO",
    choices: ["ERROR", "INFO", "DEBUG", "NOTSET"],
    help: "Console log level.",
  },
  {
    name: "log_file_level",
    type: "string",
    default: "INFO",
    choices: ["ERROR", "INFO", "DEBUG", "NOTSET"],
    help: "Log file level.",
  },
  deviceFlag,
  ...progress,
];

/** Flags of `infer` (HF pipelines; UER-py `scripts/cloze_test.py`, `scripts/extract_features.py`). */
export const INFER_FLAGS: FlagSpec[] = [
  {
    name: "model_path",
    type: "string",
    required: true,
    help: "HF folder, UER .bin (with --config_path) or zarr checkpoint.",
  },
  { name: "vocab_path", type: "string", help: "Vocabulary file (default: the model folder's vocab.txt)." },
  { name: "config_path", type: "string", help: "UER config of a .bin model." },
  { name: "text", type: "string", repeat: true, help: "Input text (repeatable); text_a<TAB>text_b for pairs." },
  { name: "test_path", type: "string", help: "File with one text per line, or text_a<TAB>text_b." },
  {
    name: "task",
    type: "string",
    choices: ["fill-mask", "feature-extraction"],
    help: "Pipeline (default: fill-mask when the text holds [MASK], else feature-extraction).",
  },
  { name: "top_k", type: "int", default: 5, help: "Predictions per mask." },
  { name: "batch_size", type: "int", default: 64, help: "Batch size." },
  { name: "seq_length", type: "int", default: 128, help: "Longer rows are truncated (with a warning)." },
  { name: "output_path", type: "string", help: "Write features to this .safetensors or .npy file." },
  deviceFlag,
  ...progress,
];

/** Flags of `convert`. */
export const CONVERT_FLAGS: FlagSpec[] = [
  {
    name: "from",
    type: "string",
    choices: ["uer", "hf", "zarr"],
    help: "Input format (default: detected from the path).",
  },
  {
    name: "to",
    type: "string",
    default: "hf",
    choices: ["uer", "hf", "zarr", "onnx"],
    help: "Output format.",
  },
  { name: "input_model_path", type: "string", required: true, help: "Path of the input model." },
  { name: "output_model_path", type: "string", required: true, help: "Path of the output model." },
  { name: "config_path", type: "string", help: "UER config (needed to read a UER .bin)." },
  { name: "vocab_path", type: "string", help: "Vocabulary copied into HF/ONNX folders." },
  {
    name: "hf_format",
    type: "string",
    default: "bin",
    choices: ["bin", "safetensors", "both"],
    help: "Weights file(s) of an HF folder.",
  },
  { name: "overwrite", type: "bool", help: "Replace an existing output." },
  ...progress,
];

/** Flags of `tokenize`. */
export const TOKENIZE_FLAGS: FlagSpec[] = [
  { name: "vocab_path", type: "string", required: true, help: "Path of the vocabulary file." },
  {
    name: "mode",
    type: "string",
    default: "uer",
    choices: ["uer", "hf"],
    help: "uer = UER-py's BertTokenizer; hf = HuggingFace's (special tokens in text).",
  },
  {
    name: "do_lower_case",
    type: "string",
    default: "true",
    choices: ["true", "false"],
    help: "Whether to lower case the input.",
  },
  { name: "json", type: "bool", help: "Print {ids, tokens} objects instead of bare id arrays." },
];

/** Flags of `inspect`. */
export const INSPECT_FLAGS: FlagSpec[] = [
  { name: "dataset_path", type: "string", required: true, help: "Path of a preprocessed dataset." },
  { name: "limit", type: "int", default: 10, help: "Instances to print." },
  { name: "json", type: "bool", help: "Print the summary as JSON too." },
];

/** Flags of `demo`. */
export const DEMO_FLAGS: FlagSpec[] = [
  { name: "work_dir", type: "string", default: ".tmp/demo", help: "Where the demo writes its files." },
  deviceFlag,
  { name: "quiet", type: "bool", help: "Print only the results." },
];

/** snake_case -> camelCase, the one conversion at the CLI boundary. */
export function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Options of `preprocess`. */
export interface PreprocessOptions {
  corpusPath: string;
  datasetPath: string;
  tokenizer: "bert";
  vocabPath?: string;
  doLowerCase: "true" | "false";
  processesNum: number;
  dataProcessor: string;
  docsBufferSize: number;
  seqLength: number;
  dupFactor: number;
  shortSeqProb: number;
  fullSentences: boolean;
  seed: number;
  dynamicMasking: boolean;
  wholeWordMasking: boolean;
  spanMasking: boolean;
  spanGeoProb: number;
  spanMaxLength: number;
  overwrite: boolean;
  shard?: string;
  encodingErrors: "strict" | "replace";
  quiet: boolean;
  json: boolean;
}

/** Options of `pretrain` after the config file was merged in (UER precedence). */
export interface PretrainOptions {
  datasetPath: string;
  pretrainedModelPath?: string;
  outputModelPath: string;
  configPath?: string;
  totalSteps: number;
  saveCheckpointSteps: number;
  reportSteps: number;
  accumulationSteps: number;
  batchSize: number;
  instancesBufferSize: number;
  dropout: number;
  seed: number;
  tokenizer: "bert";
  vocabPath?: string;
  doLowerCase: "true" | "false";
  embedding: string[];
  maxSeqLength: number;
  removeEmbeddingLayernorm: boolean;
  factorizedEmbeddingParameterization: boolean;
  encoder: string;
  mask: string;
  layernormPositioning: string;
  feedForward: string;
  parameterSharing: boolean;
  target: string[];
  tieWeights: boolean;
  pooling: string;
  dataProcessor: string;
  deepInit: boolean;
  dynamicMasking: boolean;
  wholeWordMasking: boolean;
  spanMasking: boolean;
  spanGeoProb: number;
  spanMaxLength: number;
  learningRate: number;
  warmup: number;
  lrDecay: number;
  optimizer: "adamw";
  scheduler: "linear" | "constant" | "constant_with_warmup";
  worldSize: number;
  gpuRanks: number[];
  masterIp: string;
  backend: string;
  logPath?: string;
  logLevel: string;
  logFileLevel: string;
  device: Device;
  quiet: boolean;
  json: boolean;
  /** The model keys of the merged config (emb_size, hidden_size, …), UER names. */
  config: Record<string, unknown>;
}

/** Where graphs run. */
export type Device = "auto" | "cpu" | "webgpu" | "wasm";

/** Options of `infer`. */
export interface InferOptions {
  modelPath: string;
  vocabPath?: string;
  configPath?: string;
  text: string[];
  testPath?: string;
  task?: "fill-mask" | "feature-extraction";
  topK: number;
  batchSize: number;
  seqLength: number;
  outputPath?: string;
  device: Device;
  quiet: boolean;
  json: boolean;
}

/** Options of `convert`. */
export interface ConvertOptions {
  from?: "uer" | "hf" | "zarr";
  to: "uer" | "hf" | "zarr" | "onnx";
  inputModelPath: string;
  outputModelPath: string;
  configPath?: string;
  vocabPath?: string;
  hfFormat: "bin" | "safetensors" | "both";
  overwrite: boolean;
  quiet: boolean;
  json: boolean;
}

/** Options of `tokenize`. */
export interface TokenizeOptions {
  vocabPath: string;
  mode: "uer" | "hf";
  doLowerCase: "true" | "false";
  json: boolean;
}

/** Options of `inspect`. */
export interface InspectOptions {
  datasetPath: string;
  limit: number;
  json: boolean;
}

/** Options of `demo`. */
export interface DemoOptions {
  workDir: string;
  device: Device;
  quiet: boolean;
}
