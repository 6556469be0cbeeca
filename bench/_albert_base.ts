/**
 * Shared pieces of the inference benches: an ALBERT-base-shaped model with random weights over the
 * reference google_zh_vocab, texts of a given token count, a transformers.js folder of a model, medians,
 * and a PyTorch fill-mask / feature step the bench writes itself (an HF-transformers-style
 * `AlbertForMaskedLM` forward in plain torch: eager attention, logits at every position as HF's
 * FillMaskPipeline computes them), run as a long-lived process of `torchPython()` (`UER_TS_PYTHON`, Debian's
 * `/usr/bin/python3` with python3-torch, `python3`) that answers one request per line, so its reps interleave with ours. Debian's torch 1.13
 * multiplies through OpenBLAS (`BLAS_INFO=generic`), not MKL as pip's wheels do: a weaker baseline than
 * the pip transformers + torch DESIGN.md §7 measured.
 * Not browser compatible (files, subprocesses).
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { readVocabFile } from "../core/io/vocab_file.ts";
import type { PipelineModel } from "../core/model/pipeline.ts";
import type { Tensor } from "../core/tensor.ts";
import type { Vocab } from "../core/tokenizer/vocab.ts";
import { nameTable } from "../convert/names.ts";
import { refPath } from "../tests/reference.ts";
import { torchPython } from "./_torch_albert.ts";
import { outputOf, spawnTracked } from "./_scratch.ts";

/** Random parameters (uniform ±0.02, LayerNorm gammas 1) for every UER name of `cfg`, seeded. */
export function randomParams(cfg: AlbertConfig, vocab: number, seed = 7): Map<string, Tensor> {
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

/** ALBERT-base shape (UER-py's base_config.json: relu, shared layers), random weights, HF semantics. */
export async function albertBase(): Promise<{ model: PipelineModel; vocab: Vocab }> {
  const vocab = await readVocabFile(refPath("vocab/google_zh_vocab.txt"), "hf");
  const cfg: AlbertConfig = { ...ALBERT_BASE, vocab_size: vocab.size };
  return { model: { config: cfg, params: randomParams(cfg, vocab.size), semantics: "hf", layerNormEps: 1e-12 }, vocab };
}

const CHARS = [
  ...("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"),
];

/** B texts of exactly T tokens ([CLS] + T−3 CJK chars with one [MASK] in the middle + [SEP]). */
export function maskedTexts(B: number, T: number): string[] {
  return Array.from({ length: B }, (_, b) => {
    const body = Array.from({ length: T - 3 }, (_, i) => CHARS[(b * 31 + i * 7) % CHARS.length]).join("");
    return body.slice(0, (T - 3) >> 1) + "[MASK]" + body.slice((T - 3) >> 1);
  });
}

/** Median of a list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Writes a file map (path inside `dir` → content) under `dir`. */
export async function writeFiles(dir: string, files: Map<string, Uint8Array | string>): Promise<void> {
  for (const [name, data] of files) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(path, data);
    else await Deno.writeFile(path, data);
  }
}

const TORCH_STEP = String.raw`
import json, math, sys, time
import numpy as np
import torch
import torch.nn.functional as F

# torch's own thread count left as is (see bench/_torch_albert.ts: set_num_threads(2) next to OpenBLAS's
# threads made steps several times slower here); the GEMMs run on OpenBLAS with OPENBLAS_NUM_THREADS.
man = json.load(open(sys.argv[1]))
blob = np.fromfile(sys.argv[2], dtype=np.float32)
P = {n: torch.from_numpy(blob[o:o + int(np.prod(s))].reshape(s)) for n, (s, o) in man["params"].items()}
cfg = man["config"]
H, n, L = cfg["hidden_size"], cfg["heads_num"], cfg["layers_num"]
d = H // n
eps = man["eps"]
act = {"relu": F.relu, "gelu": F.gelu, "gelu_fast": lambda x: F.gelu(x, approximate="tanh")}[cfg["hidden_act"]]
seg = P["embedding.seg.embedding.weight"][1:]  # HF token_type table = UER rows 1..2

def ln(x, name):
    return F.layer_norm(x, x.shape[-1:], P[name + ".gamma"], P[name + ".beta"], eps)

def lin(x, name):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"])

def encoder(ids, types, mask):  # modeling_albert.AlbertModel, eager attention
    B, T = ids.shape
    h = P["embedding.word.embedding.weight"][ids] + P["embedding.pos.embedding.weight"][:T] + seg[types]
    h = lin(ln(h, "embedding.layer_norm"), "encoder.linear")
    bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
    p = "encoder.transformer"
    for _ in range(L):
        q, k, v = (lin(h, p + ".self_attn.linear_layers.%d" % i).view(B, T, n, d).transpose(1, 2) for i in range(3))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(d) + bias).softmax(-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, H)
        h = ln(lin(ctx, p + ".self_attn.final_linear") + h, p + ".layer_norm_1")
        h = ln(lin(act(lin(h, p + ".feed_forward.linear_1")), p + ".feed_forward.linear_2") + h, p + ".layer_norm_2")
    return h

with torch.inference_mode():
    for line in sys.stdin:
        req = json.loads(line)
        rows = req["rows"]
        T = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
        types = torch.zeros_like(ids)
        c0, t0 = time.process_time(), time.perf_counter()
        h = encoder(ids, types, mask)
        if req["task"] == "fill-mask":  # AlbertForMaskedLM: logits at every position, then the [MASK] rows
            logits = lin(ln(act(lin(h, "target.mlm.linear_1")), "target.mlm.layer_norm"), "target.mlm.linear_2")
            at = ids == req["mask_id"]
            out = logits[at].softmax(-1).topk(5).values.tolist()
        else:  # feature-extraction: last hidden state per row, unpadded
            out = [h[i, :len(r)].shape[0] for i, r in enumerate(rows)]
        t, c = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps({"ms": t * 1000, "cpu_ms": c * 1000, "out": out}), flush=True)
`;

/** One timed torch step: wall and process CPU ms (measured inside python), and its result. */
export interface TorchResult {
  ms: number;
  cpuMs: number;
  /** fill-mask: top-5 probabilities per [MASK]; feature-extraction: rows' lengths. */
  out: number[] | number[][];
}

/** A running PyTorch step server; `undefined` from `startTorch` when /usr/bin/python3 has no torch. */
export interface TorchStep {
  version: string;
  run(task: "fill-mask" | "feature-extraction", rows: number[][], maskId: number): Promise<TorchResult>;
  close(): Promise<void>;
}

/** Starts the PyTorch step on `model` (HF semantics) with `threads` BLAS threads (`torchPython()`'s python). */
export async function startTorch(model: PipelineModel, threads: number, dir: string): Promise<TorchStep | undefined> {
  const python = await torchPython();
  if (!python) return undefined;
  const v = await outputOf(python, { args: ["-c", "import torch; print(torch.__version__)"] });
  const version = new TextDecoder().decode(v.stdout).trim();
  const manifest: Record<string, [number[], number]> = {};
  let total = 0;
  for (const [k, t] of model.params) {
    manifest[k] = [t.shape, total];
    total += t.data.length;
  }
  const blob = new Float32Array(total);
  for (const [k, t] of model.params) blob.set(t.data as Float32Array, manifest[k][1]);
  await Deno.writeTextFile(
    `${dir}/torch_manifest.json`,
    JSON.stringify({ params: manifest, config: model.config, eps: model.layerNormEps }),
  );
  await Deno.writeFile(`${dir}/torch_params.f32`, new Uint8Array(blob.buffer));
  await Deno.writeTextFile(`${dir}/torch_step.py`, TORCH_STEP);
  const proc = spawnTracked(python, {
    args: [`${dir}/torch_step.py`, `${dir}/torch_manifest.json`, `${dir}/torch_params.f32`],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
    // The BLAS Debian links torch with gets the thread count onnxruntime has.
    env: { OPENBLAS_NUM_THREADS: String(threads) },
  });
  const writer = proc.stdin.getWriter();
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const readLine = async (): Promise<string> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the PyTorch step ended early (see its error above)");
      buffered += value;
    }
    const i = buffered.indexOf("\n");
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return line;
  };
  const enc = new TextEncoder();
  return {
    version,
    async run(task, rows, maskId) {
      await writer.write(enc.encode(JSON.stringify({ task, rows, mask_id: maskId }) + "\n"));
      const r = JSON.parse(await readLine());
      return { ms: r.ms, cpuMs: r.cpu_ms, out: r.out };
    },
    async close() {
      await writer.close();
      await reader.cancel().catch(() => {});
      await proc.status;
    },
  };
}
