/**
 * Inference speed on an ALBERT-base-shaped model (random weights made here, the reference
 * google_zh_vocab): for batch×seq 1×16, 1×128, 8×128 on CPU with 2 threads, our end-to-end
 * fill-mask (tokenize → onnxruntime-node → top-k) per batch vs a raw onnxruntime-node
 * `session.run` of the same graph with ready feeds (goal ≤ 1.1×), vs transformers.js
 * `pipeline("fill-mask")` end to end on the same model exported (goal: at least as fast), and the
 * peak RSS. Prints figures; never fails on time.
 * @module
 */
import * as ort from "onnxruntime-node";
import { env, pipeline } from "@huggingface/transformers";
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import { AlbertPipeline } from "../core/model/pipeline.ts";
import type { Tensor } from "../core/tensor.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { bertTokenizerJson } from "../convert/onnx_export.ts";
import { nameTable, uerConfigToHf } from "../convert/names.ts";
import { inferenceGraph } from "../core/model/albert.ts";
import { toOnnx } from "../core/graph/onnx_proto.ts";
import { refPath } from "../tests/reference.ts";

const THREADS = 2;

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

async function time(reps: number, f: () => Promise<unknown>): Promise<number> {
  await f(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await f();
  return (performance.now() - t0) / reps;
}

/** Runs the bench and prints one line per shape. */
export async function inferBench(): Promise<void> {
  const vocabPath = refPath("vocab/google_zh_vocab.txt");
  const vocab = await readVocabFile(vocabPath, "hf");
  const cfg: AlbertConfig = { ...ALBERT_BASE, vocab_size: vocab.size };
  const params = randomParams(cfg, vocab.size);
  const model = { config: cfg, params, semantics: "hf" as const, layerNormEps: 1e-12 };
  const tok = new BertTokenizer(vocab, { mode: "hf" });
  const ours = AlbertPipeline.create(model, tok, { device: "cpu", threads: THREADS, log: () => {} });

  // Raw session: the same fill-mask graph, params baked, feeds made once.
  const raw = await ort.InferenceSession.create(ours.onnxModel("fill-mask"), {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
  });

  // transformers.js: the same model exported in its layout (logits at every position, as it needs).
  const dir = await Deno.makeTempDir();
  const g = inferenceGraph(cfg, {
    semantics: "hf",
    inputs: "hf",
    outputs: ["mlm_logits"],
    outputNames: { mlm_logits: "logits" },
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
  const tjs = await pipeline("fill-mask", "base", {
    dtype: "fp32",
    device: "cpu",
    session_options: { intraOpNumThreads: THREADS, interOpNumThreads: 1 },
  });

  const chars = [
    ...("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"),
  ];
  const texts = (B: number, T: number) =>
    Array.from({ length: B }, (_, b) => {
      const body = Array.from({ length: T - 3 }, (_, i) => chars[(b * 31 + i * 7) % chars.length]).join("");
      return body.slice(0, (T - 3) >> 1) + "[MASK]" + body.slice((T - 3) >> 1);
    });

  console.log(
    `infer bench: ALBERT-base shape (E128 H768 L12 F3072 V${vocab.size}), random weights, CPU ${THREADS} threads`,
  );
  console.log("B×T      ours ms   raw ort ms  ours/raw  transformers.js ms  tjs/ours");
  for (const [B, T] of [[1, 16], [1, 128], [8, 128]]) {
    const batch = texts(B, T);
    const inputs = batch.map((a) => ({ a }));
    const reps = B * T >= 1024 ? 3 : B * T >= 128 ? 10 : 30;
    const oursMs = await time(reps, () => ours.fillMask(inputs, 5, { batchSize: B, seqLength: 512 }));
    // Raw feeds: the same ids and mask positions ours builds.
    const enc = batch.map((t) => tok.encode(t).ids);
    const width = Math.max(...enc.map((e) => e.length));
    const flat = new BigInt64Array(B * width);
    enc.forEach((e, r) => e.forEach((v, c) => (flat[r * width + c] = BigInt(v))));
    const pos = enc.flatMap((e, r) => e.flatMap((v, c) => (v === vocab.maskId ? [BigInt(r * width + c)] : [])));
    const feeds = {
      input_ids: new ort.Tensor("int64", flat, [B, width]),
      token_type_ids: new ort.Tensor("int64", new BigInt64Array(B * width), [B, width]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(B * width).fill(1n), [B, width]),
      mlm_positions: new ort.Tensor("int64", BigInt64Array.from(pos), [pos.length]),
    };
    const rawMs = await time(reps, () => raw.run(feeds));
    const tjsMs = await time(reps, () => tjs(B === 1 ? batch[0] : batch, { top_k: 5 }));
    console.log(
      `${`${B}×${T}`.padEnd(8)} ${oursMs.toFixed(1).padStart(8)} ${rawMs.toFixed(1).padStart(11)} ${
        (oursMs / rawMs).toFixed(2).padStart(9)
      } ${tjsMs.toFixed(1).padStart(19)} ${(tjsMs / oursMs).toFixed(2).padStart(9)}`,
    );
  }
  console.log(`peak RSS ${peakRssMb().toFixed(0)} MB (whole process: our, raw and transformers.js sessions)`);
  await ours.release();
  await raw.release();
  await tjs.dispose();
  await Deno.remove(dir, { recursive: true });
}

if (import.meta.main) await inferBench();
