/**
 * Inference speed on an ALBERT-base-shaped model (random weights made here, the reference
 * google_zh_vocab): for batch×seq 1×16, 1×128, 8×128 on CPU with 2 intra-op threads, three ways of
 * running fill-mask, interleaved rep by rep (the order rotating) so that load from other processes
 * hits them alike, after warm-up runs, reported as median and best of the reps:
 * - ours: `AlbertPipeline.fillMask()` end to end = tokenize → int64 feeds (+ [MASK] positions) →
 *   onnxruntime-node run (outputs copied to JS) → softmax/top-k → HF-style JSON objects with
 *   decoded `sequence`s. Its stage medians are printed too.
 * - raw: `InferenceSession.run()` on the very onnxruntime-node session our pipeline runs (same graph,
 *   same options, `nodeSessionOptions`), with feeds made beforehand and the same output fetched:
 *   the floor ours adds JS work to (goal ≤ 1.1×).
 * - transformers.js `pipeline("fill-mask")` on the same model exported in its layout (it needs logits
 *   at every position), same threads and session options (goal: ours at least as fast).
 * Each rep also records the process CPU time (user + sys, all threads), which load from other
 * processes disturbs far less than wall time: on a shared box, the CPU ratio is the steadier figure.
 * Peak RSS is read after our pipeline alone has run every shape, and at the end (transformers.js loaded too).
 * Prints a table; never fails on time. Run: `deno run -A bench/infer_bench.ts [--reps N]`.
 * @module
 */
import process from "node:process";
import * as ort from "onnxruntime-node";
import { env, pipeline } from "@huggingface/transformers";
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { AlbertPipeline, type PipelineTimings, type TextInput } from "../core/model/pipeline.ts";
import { nodeSessionOptions } from "../core/runtime/node.ts";
import type { Tensor } from "../core/tensor.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { bertTokenizerJson } from "../convert/onnx_export.ts";
import { nameTable, uerConfigToHf } from "../convert/names.ts";
import { inferenceGraph } from "../core/model/albert.ts";
import { toOnnx } from "../core/graph/onnx_proto.ts";
import { refPath } from "../tests/reference.ts";

const THREADS = 2;
const SHAPES: [number, number][] = [[1, 16], [1, 128], [8, 128]];

function peakRssMb(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss / 2 ** 20;
}

function randomParams(cfg: AlbertConfig, vocab: number): Map<string, Tensor> {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.04;
  const out = new Map<string, Tensor>();
  for (const r of nameTable(cfg, vocab)) {
    if (!r.uer) continue;
    const n = r.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isGamma = r.uer.endsWith(".gamma");
    for (let i = 0; i < n; i++) data[i] = isGamma ? 1 : rnd();
    out.set(r.uer, { dtype: "F32", shape: r.shape, data });
  }
  return out;
}

const CHARS = [
  ...("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"),
];

/** B texts of exactly T tokens ([CLS] + T−3 CJK chars with one [MASK] in the middle + [SEP]). */
function texts(B: number, T: number): string[] {
  return Array.from({ length: B }, (_, b) => {
    const body = Array.from({ length: T - 3 }, (_, i) => CHARS[(b * 31 + i * 7) % CHARS.length]).join("");
    return body.slice(0, (T - 3) >> 1) + "[MASK]" + body.slice((T - 3) >> 1);
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** ms per batch: wall median and best, and median process CPU time. */
export interface Stat {
  median: number;
  best: number;
  cpu: number;
}

/** One row of the table (ms per batch). */
export interface InferBenchRow {
  shape: string;
  reps: number;
  ours: Stat;
  raw: Stat;
  tjs: Stat;
  /** Medians of our stages. */
  stages: PipelineTimings;
}

/** Runs the bench, prints the table and returns its figures. */
export async function inferBench(args: string[] = []): Promise<{ rows: InferBenchRow[]; peakRssMb: object }> {
  const repsArg = args.indexOf("--reps");
  const repsOverride = repsArg >= 0 ? Number(args[repsArg + 1]) : undefined;
  const vocabPath = refPath("vocab/google_zh_vocab.txt");
  const vocab = await readVocabFile(vocabPath, "hf");
  const cfg: AlbertConfig = { ...ALBERT_BASE, vocab_size: vocab.size };
  const params = randomParams(cfg, vocab.size);
  const model = { config: cfg, params, semantics: "hf" as const, layerNormEps: 1e-12 };
  const tok = new BertTokenizer(vocab, { mode: "hf" });
  const ours = AlbertPipeline.create(model, tok, { device: "cpu", threads: THREADS, log: () => {} });
  const batches = new Map(SHAPES.map(([B, T]) => [`${B}×${T}`, texts(B, T).map((a): TextInput => ({ a }))]));
  const run = (inputs: TextInput[], timings?: PipelineTimings) =>
    ours.fillMask(inputs, 5, { batchSize: inputs.length, seqLength: 512, timings });
  for (const inputs of batches.values()) await run(inputs);
  const rssOurs = peakRssMb();

  // Raw: our pipeline's own onnxruntime-node session (one serves every shape on the CPU).
  const raw = (await ours.session("fill-mask", 16)).handle as ort.InferenceSession;

  // transformers.js: the same model exported in its layout (logits at every position, as it needs).
  const dir = await Deno.makeTempDir();
  const g = inferenceGraph(cfg, {
    semantics: "hf",
    inputs: "hf",
    outputs: ["mlm_logits"],
    outputNames: { mlm_logits: "logits" },
    fusedOps: true,
  });
  await Deno.mkdir(`${dir}/base/onnx`, { recursive: true });
  await Deno.writeFile(`${dir}/base/onnx/model.onnx`, toOnnx(g, { initializers: params }).model);
  await Deno.writeTextFile(
    `${dir}/base/config.json`,
    JSON.stringify({ ...uerConfigToHf(cfg, vocab.size), architectures: ["AlbertForMaskedLM"], model_type: "albert" }),
  );
  await Deno.writeTextFile(`${dir}/base/tokenizer.json`, JSON.stringify(bertTokenizerJson(vocab)));
  await Deno.writeTextFile(
    `${dir}/base/tokenizer_config.json`,
    JSON.stringify({
      tokenizer_class: "BertTokenizer",
      do_lower_case: true,
      model_max_length: 512,
      mask_token: "[MASK]",
    }),
  );
  env.allowRemoteModels = false;
  env.localModelPath = `${dir}/`;
  const { executionProviders: _, ...tjsOptions } = nodeSessionOptions({ threads: THREADS });
  const tjs = await pipeline("fill-mask", "base", { dtype: "fp32", device: "cpu", session_options: tjsOptions });

  console.log(
    `infer bench: ALBERT-base shape (E${cfg.emb_size} H${cfg.hidden_size} L${cfg.layers_num} F${cfg.feedforward_size} ` +
      `V${vocab.size}), random weights, fill-mask top-5, onnxruntime-node CPU, ${THREADS} intra-op threads, no spinning`,
  );
  console.log(
    "ours = end to end: tokenize → feeds → run (softmax in the graph) → top-k → JSON objects with decoded sequences;\n" +
      "raw = session.run on the same onnxruntime session with ready feeds; tjs = transformers.js pipeline, same model",
  );
  const rows: InferBenchRow[] = [];
  for (const [B, T] of SHAPES) {
    const shape = `${B}×${T}`;
    const inputs = batches.get(shape)!;
    const reps = repsOverride ?? (B * T >= 1024 ? 7 : B * T >= 128 ? 15 : 40);
    // Raw feeds: the ids and mask positions ours builds.
    const enc = inputs.map((t) => tok.encode(t.a).ids);
    const width = Math.max(...enc.map((e) => e.length));
    const flat = new BigInt64Array(B * width);
    enc.forEach((e, r) => e.forEach((v, c) => (flat[r * width + c] = BigInt(v))));
    const pos = enc.flatMap((e, r) => e.flatMap((v, c) => (v === vocab.maskId ? [BigInt(r * width + c)] : [])));
    const rowOf = enc.flatMap((e, r) => e.flatMap((v) => (v === vocab.maskId ? [BigInt(r)] : [])));
    const feeds = {
      input_ids: new ort.Tensor("int64", flat, [B, width]),
      token_type_ids: new ort.Tensor("int64", new BigInt64Array(B * width), [B, width]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(B * width).fill(1n), [B, width]),
      mlm_positions: new ort.Tensor("int64", BigInt64Array.from(pos), [pos.length]),
      mlm_rows: new ort.Tensor("int64", BigInt64Array.from(rowOf), [rowOf.length]),
    };
    const tjsInput = B === 1 ? inputs[0].a : inputs.map((i) => i.a);
    const stages: PipelineTimings[] = [];
    const fns: (() => Promise<unknown>)[] = [
      () => {
        const t: PipelineTimings = { tokenize: 0, feeds: 0, run: 0, post: 0 };
        stages.push(t);
        return run(inputs, t);
      },
      () => raw.run(feeds, ["mlm_probs"]),
      () => tjs(tjsInput, { top_k: 5 }),
    ];
    const times: number[][] = [[], [], []], cpu: number[][] = [[], [], []];
    for (let r = -2; r < reps; r++) { // two warm-up rounds
      for (let j = 0; j < 3; j++) {
        const i = (r + 2 + j) % 3; // rotate who goes first
        const c0 = process.cpuUsage(), t0 = performance.now();
        await fns[i]();
        const t = performance.now() - t0, c = process.cpuUsage(c0);
        if (r >= 0) {
          times[i].push(t);
          cpu[i].push((c.user + c.system) / 1000);
        }
      }
    }
    const stat = (i: number): Stat => ({ median: median(times[i]), best: Math.min(...times[i]), cpu: median(cpu[i]) });
    const kept = stages.slice(-reps);
    rows.push({
      shape,
      reps,
      ours: stat(0),
      raw: stat(1),
      tjs: stat(2),
      stages: {
        tokenize: median(kept.map((s) => s.tokenize)),
        feeds: median(kept.map((s) => s.feeds)),
        run: median(kept.map((s) => s.run)),
        post: median(kept.map((s) => s.post)),
      },
    });
  }
  const rssAll = peakRssMb();

  const f = (x: number) => x.toFixed(1);
  const cols = [
    "B×T",
    "reps",
    "ours ms",
    "raw ms",
    "ours/raw",
    "cpu ours/raw",
    "tjs ms",
    "tjs/ours",
    "cpu tjs/ours",
    "ours: tok+feeds / run / top-k",
  ];
  const lines = rows.map((r) => [
    r.shape,
    String(r.reps),
    `${f(r.ours.median)} (${f(r.ours.best)})`,
    `${f(r.raw.median)} (${f(r.raw.best)})`,
    `${(r.ours.median / r.raw.median).toFixed(2)} (${(r.ours.best / r.raw.best).toFixed(2)})`,
    (r.ours.cpu / r.raw.cpu).toFixed(2),
    `${f(r.tjs.median)} (${f(r.tjs.best)})`,
    `${(r.tjs.median / r.ours.median).toFixed(2)} (${(r.tjs.best / r.ours.best).toFixed(2)})`,
    (r.tjs.cpu / r.ours.cpu).toFixed(2),
    `${(r.stages.tokenize + r.stages.feeds).toFixed(2)} / ${f(r.stages.run)} / ${r.stages.post.toFixed(2)}`,
  ]);
  const w = cols.map((c, i) => Math.max(c.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  console.log(fmt(cols));
  console.log(`|${w.map((n) => "-".repeat(n + 2)).join("|")}|`);
  for (const l of lines) console.log(fmt(l));
  console.log(
    "ms per batch: wall median (best) of the interleaved reps; ratios of medians (of bests); " +
      "cpu = ratio of median process CPU time (user+sys)",
  );
  console.log(
    `peak RSS: ${rssOurs.toFixed(0)} MB after our pipeline alone ran every shape; ` +
      `${rssAll.toFixed(0)} MB with the transformers.js session loaded too (whole process)`,
  );
  await ours.release();
  await tjs.dispose();
  await Deno.remove(dir, { recursive: true });
  return { rows, peakRssMb: { ours: Math.round(rssOurs), all: Math.round(rssAll) } };
}

if (import.meta.main) await inferBench(Deno.args);
