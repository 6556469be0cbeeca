/**
 * Fill-mask speed on an ALBERT-base-shaped model (random weights made here, the reference
 * google_zh_vocab): for batch×seq 1×16, 1×128, 8×128 on CPU with 2 intra-op threads, these runs
 * interleaved rep by rep (the order rotating) so that load from other processes hits them alike,
 * after warm-up runs, reported as median and best of the reps:
 * - today: `AlbertPipeline.fillMask()` with standard ONNX ops only (`fused: false`) and fp32 weights —
 *   what `infer` ran before onnxruntime's fused kernels and int8 weights; every ratio is against it;
 * - fused: the same with onnxruntime's com.microsoft kernels (Attention, SkipLayerNormalization; the
 *   default of `infer`);
 * - q8: fused with int8 weights (`infer --dtype q8`: MatMulInteger, fused by onnxruntime into int8 GEMMs);
 * - raw: `InferenceSession.run()` on the fused pipeline's own onnxruntime-node session with feeds made
 *   beforehand: the floor the pipeline adds JS work to (tokenize, feeds, top-k, decoded sequences);
 * - transformers.js `pipeline("fill-mask")` on the same weights exported in its layout, fp32
 *   (`onnx/model.onnx`) and `dtype: "q8"` (`onnx/model_quantized.onnx`); it computes logits at
 *   every position;
 * - torch: an HF-transformers-style `AlbertForMaskedLM` step (bench/_albert_base.ts) in PyTorch on
 *   `torchPython()` (Debian's `/usr/bin/python3`), same weights; its top-5 probabilities are checked against ours.
 * Each rep also records the process CPU time (user + sys, all threads), which load from other
 * processes disturbs far less than wall time: on a shared box the CPU ratio is the steadier figure.
 * With `--device webgpu` only our three pipelines run (on onnxruntime-web's WebGPU provider), and the bench
 * prints where each session's nodes were placed (the GPU script runs this on a real GPU).
 * Prints a table; never fails on time.
 * Run: `deno run -A bench/infer_bench.ts [--reps N] [--shapes 8x128,…] [--device cpu|webgpu]`.
 * @module
 */
import process from "node:process";
import * as ort from "onnxruntime-node";
import { env, pipeline } from "@huggingface/transformers";
import { AlbertPipeline, type Dtype, type PipelineTimings, type TextInput } from "../core/model/pipeline.ts";
import { nodeSessionOptions } from "../core/runtime/node.ts";
import { BertTokenizer } from "../core/tokenizer/bert_tokenizer.ts";
import { transformersJsFiles } from "../convert/onnx_export.ts";
import { albertBase, maskedTexts, median, startTorch, writeFiles } from "./_albert_base.ts";
import { dropScratch, scratchDir } from "./_scratch.ts";

const THREADS = 2;
const SHAPES: [number, number][] = [[1, 16], [1, 128], [8, 128]];

function peakRssMb(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** ms per batch: wall median and best, and median process CPU time. */
export interface Stat {
  median: number;
  best: number;
  cpu: number;
}

/** One shape's figures (ms per batch) per run name. */
export interface InferBenchRow {
  shape: string;
  reps: number;
  runs: Record<string, Stat>;
  /** Medians of the fused fp32 pipeline's stages. */
  stages: PipelineTimings;
  /** Largest relative difference of torch's top-5 probabilities from ours (fp32), over every [MASK]. */
  torchDiff?: number;
}

const RUNS = ["today", "fused", "q8", "raw", "tjs fp32", "tjs q8", "torch"] as const;
const LABEL: Record<(typeof RUNS)[number], string> = {
  today: "today: fp32, standard ONNX ops",
  fused: "fused: fp32, onnxruntime contrib kernels",
  q8: "q8: int8 weights, fused",
  raw: "raw session.run (fused fp32)",
  "tjs fp32": "transformers.js fp32",
  "tjs q8": "transformers.js q8",
  torch: "torch, HF-style AlbertForMaskedLM",
};

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs the bench, prints the table and returns its figures. */
export async function inferBench(args: string[] = []): Promise<{ rows: InferBenchRow[]; peakRssMb: object }> {
  const repsOverride = argValue(args, "--reps") ? Number(argValue(args, "--reps")) : undefined;
  const shapes = argValue(args, "--shapes")?.split(",").map((s) => s.split("x").map(Number) as [number, number]) ??
    SHAPES;
  const { model, vocab } = await albertBase();
  const cfg = model.config;
  const tok = new BertTokenizer(vocab, { mode: "hf" });
  const device = (argValue(args, "--device") ?? "cpu") as "cpu" | "webgpu";
  const gpu = device === "webgpu";
  const make = (dtype: Dtype, fused: boolean) =>
    AlbertPipeline.create(model, tok, { device, threads: THREADS, log: () => {}, dtype, fused, reportPlacement: gpu });
  const pipes = { today: make("fp32", false), fused: make("fp32", true), q8: make("q8", true) };
  const batches = new Map(shapes.map(([B, T]) => [`${B}×${T}`, maskedTexts(B, T).map((a): TextInput => ({ a }))]));
  const run = (p: AlbertPipeline, inputs: TextInput[], timings?: PipelineTimings) =>
    p.fillMask(inputs, 5, { batchSize: inputs.length, seqLength: 512, timings });
  for (const inputs of batches.values()) for (const p of Object.values(pipes)) await run(p, inputs);
  const rssOurs = peakRssMb();

  // Raw: the fused pipeline's own onnxruntime-node session (one serves every shape on the CPU).
  const raw = gpu ? undefined : (await pipes.fused.session("fill-mask", 16)).handle as ort.InferenceSession;

  // transformers.js: the same weights exported in its layout (logits at every position, as it needs).
  const dir = await scratchDir();
  const { files } = transformersJsFiles({ ...model, heads: ["mlm"] }, vocab, {
    dtypes: ["fp32", "q8"],
    source: "bench",
    maxLength: 512,
  });
  await writeFiles(`${dir}/base`, files);
  env.allowRemoteModels = false;
  env.localModelPath = `${dir}/`;
  const { executionProviders: _, ...tjsOptions } = nodeSessionOptions({ threads: THREADS });
  // On WebGPU only our pipelines run (the GPU script measures its own PyTorch CUDA step).
  const tjs = gpu ? undefined : {
    fp32: await pipeline("fill-mask", "base", { dtype: "fp32", device: "cpu", session_options: tjsOptions }),
    q8: await pipeline("fill-mask", "base", { dtype: "q8", device: "cpu", session_options: tjsOptions }),
  };
  const torch = gpu ? undefined : await startTorch(model, THREADS, dir);

  console.log(
    `infer bench: ALBERT-base shape (E${cfg.emb_size} H${cfg.hidden_size} L${cfg.layers_num} F${cfg.feedforward_size} ` +
      `V${vocab.size}, ${cfg.hidden_act}), random weights, fill-mask top-5, ` +
      (gpu ? "WebGPU (onnxruntime-web)" : `CPU, ${THREADS} intra-op threads, no spinning`),
  );
  console.log(
    "ours = AlbertPipeline end to end: tokenize → feeds → run (softmax in the graph) → top-k → JSON objects; " +
      "raw = session.run with ready feeds; tjs = transformers.js pipeline, same weights",
  );
  if (!torch && !gpu) {
    console.log("torch: no python with torch (UER_TS_PYTHON, /usr/bin/python3, python3); its row is left out");
  } else if (torch) console.log(`torch ${torch.version}, OpenBLAS ${THREADS} threads, timed inside python`);
  const rows: InferBenchRow[] = [];
  for (const [B, T] of shapes) {
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
    let torchTop: number[][] | undefined;
    // Each returns the CPU/wall time measured by the caller, except torch (timed inside python).
    const fns: Record<string, () => Promise<{ ms: number; cpuMs: number } | void>> = {
      today: () => run(pipes.today, inputs).then(() => {}),
      fused: () => {
        const t: PipelineTimings = { tokenize: 0, feeds: 0, run: 0, post: 0 };
        stages.push(t);
        return run(pipes.fused, inputs, t).then(() => {});
      },
      q8: () => run(pipes.q8, inputs).then(() => {}),
      ...(raw ? { raw: () => raw.run(feeds, ["mlm_probs"]).then(() => {}) } : {}),
      ...(tjs
        ? {
          "tjs fp32": () => tjs.fp32(tjsInput, { top_k: 5 }).then(() => {}),
          "tjs q8": () => tjs.q8(tjsInput, { top_k: 5 }).then(() => {}),
        }
        : {}),
      ...(torch
        ? {
          torch: async () => {
            const r = await torch.run("fill-mask", enc, vocab.maskId);
            torchTop = r.out as number[][];
            return r;
          },
        }
        : {}),
    };
    const names = RUNS.filter((n) => fns[n]);
    const times: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
    for (const n of names) {
      times[n] = [];
      cpu[n] = [];
    }
    for (let r = -2; r < reps; r++) { // two warm-up rounds
      for (let j = 0; j < names.length; j++) {
        const name = names[(r + 2 + j) % names.length]; // rotate who goes first
        const c0 = process.cpuUsage(), t0 = performance.now();
        const inner = await fns[name]();
        const t = performance.now() - t0, c = process.cpuUsage(c0);
        if (r < 0) continue;
        times[name].push(inner ? inner.ms : t);
        cpu[name].push(inner ? inner.cpuMs : (c.user + c.system) / 1000);
      }
    }
    // Random weights give near-uniform probabilities, so top-5 ids swap between near-ties: compare the values.
    const ours = (await run(pipes.fused, inputs)).map((m) => m[0].map((p) => p.score));
    const torchDiff = torchTop &&
      Math.max(...ours.flatMap((o, i) => o.map((v, k) => Math.abs(torchTop![i][k] - v) / v)));
    const kept = stages.slice(-reps);
    rows.push({
      shape,
      reps,
      runs: Object.fromEntries(
        names.map((n) => [n, { median: median(times[n]), best: Math.min(...times[n]), cpu: median(cpu[n]) }]),
      ),
      stages: {
        tokenize: median(kept.map((s) => s.tokenize)),
        feeds: median(kept.map((s) => s.feeds)),
        run: median(kept.map((s) => s.run)),
        post: median(kept.map((s) => s.post)),
      },
      ...(torchDiff === undefined ? {} : { torchDiff }),
    });
  }
  const rssAll = peakRssMb();

  const f = (x: number) => x.toFixed(1);
  const cols = ["B×T", "run", "ms median (best)", "cpu ms", "today / run (wall)", "today / run (cpu)"];
  const lines: string[][] = [];
  for (const r of rows) {
    const base = r.runs.today;
    for (const [name, s] of Object.entries(r.runs)) {
      lines.push([
        `${r.shape} (${r.reps})`,
        LABEL[name as (typeof RUNS)[number]],
        `${f(s.median)} (${f(s.best)})`,
        f(s.cpu),
        `${(base.median / s.median).toFixed(2)} (${(base.best / s.best).toFixed(2)})`,
        (base.cpu / s.cpu).toFixed(2),
      ]);
    }
  }
  const w = cols.map((c, i) => Math.max(c.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  console.log(fmt(cols));
  console.log(`|${w.map((n) => "-".repeat(n + 2)).join("|")}|`);
  for (const l of lines) console.log(fmt(l));
  console.log(
    "ms per batch: wall median (best) of the interleaved reps (in parentheses after B×T); ratios of medians " +
      "(of bests); cpu = median process CPU time (user+sys, all threads). Goals at 8×128: q8 ≥ 2× today, fused ≥ 1.2×",
  );
  for (const r of rows) {
    console.log(
      `${r.shape}: fused pipeline stages tok+feeds / run / top-k ${
        (r.stages.tokenize + r.stages.feeds).toFixed(2)
      } / ` +
        `${f(r.stages.run)} / ${r.stages.post.toFixed(2)} ms` +
        (r.torchDiff === undefined
          ? ""
          : `; torch's top-5 probabilities within ${r.torchDiff.toExponential(1)} of ours`),
    );
  }
  console.log(
    `peak RSS: ${rssOurs.toFixed(0)} MB after our three pipelines ran every shape; ` +
      `${rssAll.toFixed(0)} MB with the transformers.js sessions loaded too (whole process)`,
  );
  if (gpu) {
    // Which nodes onnxruntime-web left on the CPU, per pipeline and padded length.
    for (const [name, p] of Object.entries(pipes)) {
      for (const { session, placement } of await p.placements()) {
        const cpuNodes = placement?.nodes.CPUExecutionProvider ?? [];
        console.log(
          `placement ${name} ${session}: ${JSON.stringify(placement?.counts)}` +
            (cpuNodes.length ? ` on the CPU: ${cpuNodes.join(", ")}` : ""),
        );
      }
    }
  }
  for (const p of Object.values(pipes)) await p.release();
  await tjs?.fp32.dispose();
  await tjs?.q8.dispose();
  await torch?.close();
  await dropScratch(dir);
  return { rows, peakRssMb: { ours: Math.round(rssOurs), all: Math.round(rssAll) } };
}

if (import.meta.main) await inferBench(Deno.args);
