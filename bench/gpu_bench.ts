/**
 * Every GPU figure of issue #14 in one run on one machine (bench/gpu.sh prepares a bare GPU machine and
 * calls this): uer-ts pretraining steps on WebGPU (the executor, through `Trainer` as `pretrain` runs
 * them: tiny config batch 16 and 64, ALBERT-base shape batch 8 and 32, seq 128), the same steps in
 * PyTorch on CUDA with a small ALBERT this bench writes (bench/torch_albert.ts: UER-py's modules, MLM on
 * the masked rows + SOP, AdamW) in fp32 with TF32 off — the yardstick — and TF32 / bf16 autocast as
 * reference rows, onnxruntime-node on the machine's CPU cores for the tiny config, and fill-mask
 * inference (1×16, 1×128, 8×128, ALBERT-base shape) on WebGPU against PyTorch CUDA fp32. Also the
 * `--gpu_ranks` device listing and selection on this machine, and the executor's slowest kernels at
 * ALBERT-base batch 32 (`--profile`). Timings are back-to-back steps after warm-up, the statistics read
 * once at the end (GPU work included). Steps shrink to stay inside `--budget-s`. Prints a table and
 * the goals; `--json FILE` writes every figure. Never passes or fails on time.
 *
 * Run: `deno run -A bench/gpu_bench.ts [--python python3] [--budget-s 400] [--json out.json] [--profile]
 * [--smoke]` (`--smoke`: tiny shapes and a few steps, to check the script on a machine without a GPU).
 * @module
 */
import { Command } from "commander";
import type { AlbertConfig } from "../core/config.ts";
import { BASE, TINY } from "./_shapes.ts";
import { inferenceGraph } from "../core/model/albert.ts";
import { describeGpu, gpuSelection, numberedGpus, vulkanInventory } from "../core/parallel/gpu_select.ts";
import { probeWebGpu } from "../core/runtime/mod.ts";
import type { Tensor } from "../core/tensor.ts";
import type { Batch } from "../core/train/loader.ts";
import { pretrainTask } from "../core/train/pretrain_task.ts";
import { initParams, Trainer } from "../core/train/trainer.ts";
import { openDevice } from "../core/webgpu/executor.ts";
import { GraphSession } from "../core/webgpu/graph_session.ts";
import { WebGpuRecorder } from "../core/webgpu/instrument.ts";
import { tuning } from "../core/webgpu/kernels.ts";
import { syntheticBatch } from "../tests/webgpu_steps.ts";
import { runPython, TORCH_ALBERT } from "./torch_albert.ts";

interface TrainCase {
  name: string;
  cfg: AlbertConfig;
  batch: number;
  seq: number;
  steps: number;
}

/** The PyTorch pretraining step and fill-mask forward (UER-py semantics; MLM on the masked rows). */
const TORCH_SCRIPT = `
import json, sys, time
${TORCH_ALBERT}
a = json.loads(sys.argv[1])
dev = "cuda" if torch.cuda.is_available() else "cpu"
if dev == "cpu": torch.set_num_threads(a["threads"])
torch.manual_seed(7)

class Pretrain(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.albert = Albert(c["E"], c["H"], c["F"], c["NH"], c["L"], c["V"], c["act"])
        s.act = ACTS[c["act"]]
        s.mlm1, s.mlm_ln, s.mlm2 = nn.Linear(c["H"], c["E"]), LayerNorm(c["E"]), nn.Linear(c["E"], c["V"])
        s.sp1, s.sp2 = nn.Linear(c["H"], c["H"]), nn.Linear(c["H"], 2)
    def mlm(s, h, pos):
        t = s.mlm_ln(s.act(s.mlm1(h.reshape(-1, h.shape[-1])[pos])))
        return s.mlm2(t)
    def forward(s, src, seg, pos, lab, sop):
        h = s.albert(src, seg)
        loss_mlm = nn.NLLLoss()(nn.LogSoftmax(dim=-1)(s.mlm(h, pos)), lab)
        loss_sp = nn.NLLLoss()(nn.LogSoftmax(dim=-1)(s.sp2(torch.tanh(s.sp1(h[:, 0])))), sop)
        return loss_mlm + loss_sp

def sync():
    if dev == "cuda": torch.cuda.synchronize()

def batch(c, B, T):
    g = torch.Generator().manual_seed(7)
    src = torch.randint(104, c["V"], (B, T), generator=g); seg = torch.ones(B, T, dtype=torch.long)
    seg[:, T // 2:] = 2
    for r in range(3, B, 4): src[r, int(T * 0.6):] = 0; seg[r, int(T * 0.6):] = 0
    pos = torch.tensor([r * T + t for r in range(B) for t in range(1, T - 1, 7)][: max(1, B * T * 15 // 100)])
    lab = src.reshape(-1)[pos].clone()
    return [x.to(dev) for x in (src, seg, pos, lab, torch.arange(B) % 2)]

def train(c, B, T, steps, mode):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    model = Pretrain(c).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6)
    xs = batch(c, B, T)
    def step():
        if mode == "bf16":
            with torch.autocast(device_type=dev, dtype=torch.bfloat16): loss = model(*xs)
        else:
            loss = model(*xs)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    for _ in range(3): step()
    sync(); t0 = time.perf_counter()
    for _ in range(steps): step()
    sync()
    return B * T * steps / (time.perf_counter() - t0)

def fill_mask(c, B, T, reps):
    torch.backends.cuda.matmul.allow_tf32 = False
    model = Pretrain(c).to(dev).eval()
    src, seg, _, _, _ = batch(c, B, T)
    pos = torch.arange(B, device=dev) * T + T // 2  # one [MASK] per row
    def run():
        with torch.no_grad(): return torch.softmax(model.mlm(model.albert(src, seg), pos), dim=-1).cpu()
    for _ in range(3): run()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter(); run(); ms.append((time.perf_counter() - t0) * 1000)
    return sorted(ms)[len(ms) // 2]

out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "train": {}, "infer": {}}
for t in a["train"]:
    out["train"][t["name"]] = {m: train(t["cfg"], t["B"], t["T"], t["steps"], m) for m in t["modes"]}
for t in a["infer"]:
    out["infer"][t["name"]] = fill_mask(t["cfg"], t["B"], t["T"], t["reps"])
print(json.dumps(out))
`;

function torchCfg(c: AlbertConfig) {
  return {
    E: c.emb_size,
    H: c.hidden_size,
    F: c.feedforward_size,
    NH: c.heads_num,
    L: c.layers_num,
    V: c.vocab_size,
    act: c.hidden_act,
  };
}

/** uer-ts on WebGPU: tokens/s of back-to-back `Trainer.step`s (statistics read once at the end), and the first step. */
async function ourTrain(c: TrainCase, rec: WebGpuRecorder) {
  const task = pretrainTask(c.cfg);
  const trainer = await Trainer.create({ task, params: initParams(task.params, 7), device: "webgpu" });
  const batches = [0, 1, 2, 3].map((s) => syntheticBatch(c.batch, c.seq, c.cfg.vocab_size!, s));
  let t0 = performance.now();
  await trainer.step(batches[0], 1e-4);
  await trainer.takeStats();
  const firstMs = performance.now() - t0;
  for (let i = 1; i < 3; i++) await trainer.step(batches[i], 1e-4);
  await trainer.takeStats();
  rec.reset();
  await trainer.step(batches[3], 1e-4);
  const counts = rec.counts();
  await trainer.takeStats();
  t0 = performance.now();
  for (let i = 0; i < c.steps; i++) await trainer.step(batches[i % 4], 1e-4);
  const taken = await trainer.takeStats();
  const ms = (performance.now() - t0) / c.steps;
  await trainer.dispose();
  if (!Number.isFinite(taken.sums.loss)) throw new Error(`${c.name}: the loss is ${taken.sums.loss}`);
  return {
    tokensPerS: (c.batch * c.seq) / (ms / 1000),
    msPerStep: ms,
    firstStepMs: firstMs,
    submits: counts.submits,
    dispatches: counts.dispatches,
    readbacks: counts.mapAsyncs,
  };
}

/** onnxruntime-node on the CPU cores: tokens/s of the same steps. */
async function cpuTrain(c: TrainCase, threads: number) {
  const task = pretrainTask(c.cfg);
  const trainer = await Trainer.create({ task, params: initParams(task.params, 7), device: "cpu", threads });
  const batches = [0, 1, 2, 3].map((s) => syntheticBatch(c.batch, c.seq, c.cfg.vocab_size!, s));
  for (let i = 0; i < 2; i++) await trainer.step(batches[i], 1e-4);
  await trainer.takeStats();
  const t0 = performance.now();
  for (let i = 0; i < c.steps; i++) await trainer.step(batches[i % 4], 1e-4);
  await trainer.takeStats();
  const ms = (performance.now() - t0) / c.steps;
  await trainer.dispose();
  return { tokensPerS: (c.batch * c.seq) / (ms / 1000), msPerStep: ms };
}

/** Fill-mask on the executor: ms per batch of B rows × T tokens, one [MASK] per row (HF semantics, fused LayerNorm). */
async function ourFillMask(device: GPUDevice, cfg: AlbertConfig, B: number, T: number, reps: number) {
  const g = inferenceGraph(cfg, {
    semantics: "hf",
    eps: 1e-12,
    outputs: ["mlm_logits"],
    mlmPositions: true,
    lastLayerAtPositions: true,
    fusedOps: true,
    batch: B,
    seq: T,
  });
  const logits = g.outputs().find((v) => v.name === "mlm_logits")!;
  g.output(g.op("Softmax", [logits], {}, { shapes: [{ dtype: "F32", shape: [...logits.shape] }] }), "mlm_probs");
  const s = await GraphSession.create(device, g, ["mlm_probs"], { masked: B });
  const params = initParams(g.params().map((p) => ({ name: p.name, shape: p.shape as number[] })), 7);
  const b: Batch = syntheticBatch(B, T, cfg.vocab_size!, 1);
  const i64 = (a: ArrayLike<number>, shape: number[]): Tensor => ({
    dtype: "I64",
    shape,
    data: BigInt64Array.from(Array.from(a), BigInt),
  });
  const feeds: Record<string, Tensor> = {
    input_ids: i64(b.src, [B, T]),
    token_type_ids: i64(Array.from(b.seg, (x) => (x === 2 ? 1 : 0)), [B, T]),
    attention_mask: i64(Array.from(b.seg, (x) => (x > 0 ? 1 : 0)), [B, T]),
    mlm_positions: i64(Array.from({ length: B }, (_, r) => r * T + (T >> 1)), [B]),
    mlm_rows: i64(Array.from({ length: B }, (_, r) => r), [B]),
  };
  s.setInputs(Object.fromEntries(params));
  const run = () => s.run(feeds);
  for (let i = 0; i < 3; i++) await run();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  s.destroy();
  ms.sort((x, y) => x - y);
  return { msPerBatch: ms[ms.length >> 1], dispatches: s.dispatches };
}

/** Top kernels of one ALBERT-base step, one pass each (timestamp queries). */
async function profile(rec: WebGpuRecorder, B: number) {
  const { WebGpuStateStore } = await import("../core/webgpu/state_store.ts");
  const { pretrainStep, BASE_SHAPE } = await import("../tests/webgpu_steps.ts");
  const step = pretrainStep(BASE_SHAPE, B, 128);
  const store = await WebGpuStateStore.create();
  step.init(store);
  const prog = await store.compile(step.graph) as import("../core/webgpu/state_store.ts").GpuStepProgram;
  const feeds = step.feeds(syntheticBatch(B, 128, BASE_SHAPE.vocab_size!, 0), 1e-4);
  await store.run(prog, feeds);
  await store.sync();
  store.profile = true;
  rec.reset();
  await store.run(prog, feeds);
  const t = await rec.gpuTimes();
  await store.dispose();
  if (!t) return { lines: ["(no timestamp queries on this adapter)"], busyMs: NaN };
  const rows = t.passMs.map((ms, i) => [ms, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 20);
  return {
    busyMs: t.busyMs,
    lines: rows.map(([ms, i]) => `${ms.toFixed(3).padStart(9)} ms  #${i} ${prog.runner.describe(i)}`),
  };
}

/** Runs the bench; returns every figure. */
export async function gpuBench(args: string[] = []): Promise<Record<string, unknown>> {
  const o = new Command()
    .option("--python <path>", "the Python with torch (CUDA where present)", "python3")
    .option("--budget-s <s>", "wall-clock budget of the whole bench", "400")
    .option("--json <file>", "write every figure to this file")
    .option("--profile", "time each kernel of one ALBERT-base batch-32 step")
    .option("--smoke", "tiny shapes, few steps (checks the script without a GPU)")
    .exitOverride()
    .parse(args, { from: "user" })
    .opts();
  const t0 = performance.now();
  const left = () => Number(o.budgetS) - (performance.now() - t0) / 1000;
  const smoke = !!o.smoke;
  const base: AlbertConfig = smoke
    ? { ...BASE, layers_num: 2, hidden_size: 128, feedforward_size: 256, heads_num: 2 }
    : BASE;
  const seq = smoke ? 32 : 128;
  const cases: TrainCase[] = [
    { name: "tiny B16", cfg: TINY, batch: 16, seq, steps: smoke ? 2 : 60 },
    { name: "tiny B64", cfg: TINY, batch: smoke ? 4 : 64, seq, steps: smoke ? 2 : 40 },
    { name: "base B8", cfg: base, batch: smoke ? 2 : 8, seq, steps: smoke ? 2 : 20 },
    { name: "base B32", cfg: base, batch: smoke ? 4 : 32, seq, steps: smoke ? 2 : 10 },
  ];
  const infers = smoke ? [[1, 16], [1, 32], [2, 32]] : [[1, 16], [1, 128], [8, 128]];
  const result: Record<string, unknown> = { smoke };
  const log = (s: string) => console.error(s);

  // The device, and --gpu_ranks on this machine.
  const probe = await probeWebGpu();
  const inv = vulkanInventory();
  const gpus = inv ? numberedGpus(inv.devices) : [];
  const select: Record<string, unknown> = {
    adapter: probe.description,
    fallback: probe.fallback,
    vulkan: inv ? inv.devices.map((d, i) => describeGpu(d, i)) : "no Vulkan loader",
    selectLayer: inv?.selectLayer,
  };
  if (inv) {
    try {
      select.gpu0 = gpuSelection(inv, 0, "--gpu_ranks 0").env;
    } catch (e) {
      select.gpu0 = (e as Error).message;
    }
    try {
      gpuSelection(inv, gpus.length, `--gpu_ranks ${gpus.length}`);
    } catch (e) {
      select.missingGpu = (e as Error).message.split("\n")[0];
    }
  }
  result.device = select;
  log(`adapter: ${probe.description}${probe.fallback ? " (software)" : ""}; GPUs: ${gpus.length}`);
  const { adapter, device } = await openDevice();
  result.features = [...adapter.features].sort();
  device.destroy();

  const rec = WebGpuRecorder.install();
  const ours: Record<string, unknown> = {};
  for (const c of cases) {
    if (left() < 60) {
      log(`skipping ${c.name}: ${left().toFixed(0)} s of budget left`);
      continue;
    }
    log(`uer-ts WebGPU ${c.name} × seq ${c.seq} ...`);
    try {
      ours[c.name] = await ourTrain(c, rec);
    } catch (e) {
      ours[c.name] = { error: (e as Error).message.split("\n")[0] };
    }
  }
  result.webgpu = ours;
  const threads = navigator.hardwareConcurrency;
  log(`onnxruntime-node CPU (${threads} threads) tiny B16 ...`);
  result.cpu = { threads, "tiny B16": await cpuTrain({ ...cases[0], steps: smoke ? 2 : 30 }, threads) };

  const inferOurs: Record<string, unknown> = {};
  {
    const { device } = await openDevice();
    for (const [B, T] of infers) {
      log(`uer-ts WebGPU fill-mask ${B}×${T} ...`);
      try {
        inferOurs[`${B}x${T}`] = await ourFillMask(device, base, B, T, smoke ? 3 : 20);
      } catch (e) {
        inferOurs[`${B}x${T}`] = { error: (e as Error).message.split("\n")[0] };
      }
    }
    device.destroy();
  }
  result.webgpuInfer = inferOurs;

  log(`PyTorch (${o.python}) ...`);
  const torchArgs = {
    threads,
    train: cases.map((c) => ({
      name: c.name,
      cfg: torchCfg(c.cfg),
      B: c.batch,
      T: c.seq,
      steps: c.steps,
      modes: c.cfg === TINY ? ["fp32"] : ["fp32", "tf32", "bf16"],
    })),
    infer: infers.map(([B, T]) => ({ name: `${B}x${T}`, cfg: torchCfg(base), B, T, reps: smoke ? 3 : 20 })),
  };
  const torch = await runPython<Record<string, unknown>>(o.python, TORCH_SCRIPT, torchArgs);
  result.torch = torch.ok ? torch.value : { error: torch.error };

  // Matrix-product tiles at ALBERT-base batch 32 (the figure the goals are about): which one this GPU likes.
  const sweep: Record<string, unknown> = {};
  for (const tile of ["4x4", "8x4", "8x8"] as const) {
    if (left() < 90) break;
    tuning.tile = tile;
    log(`tile sweep ${tile} (${cases[3].name}) ...`);
    try {
      sweep[tile] = (await ourTrain({ ...cases[3], steps: Math.max(2, cases[3].steps >> 1) }, rec)).tokensPerS;
    } catch (e) {
      sweep[tile] = (e as Error).message.split("\n")[0];
    } finally {
      tuning.tile = "auto";
    }
  }
  result.tileSweep = sweep;

  if (o.profile && !smoke && left() > 30) {
    log("profile of one ALBERT-base batch-32 step ...");
    result.profile = await profile(WebGpuRecorder.install({ timestamps: true }), 32);
  }
  result.seconds = (performance.now() - t0) / 1000;
  report(result, cases, infers);
  if (o.json) await Deno.writeTextFile(o.json, JSON.stringify(result, null, 1));
  return result;
}

function report(r: Record<string, unknown>, cases: TrainCase[], infers: number[][]): void {
  const ours = r.webgpu as Record<
    string,
    { tokensPerS?: number; firstStepMs?: number; dispatches?: number; error?: string }
  >;
  const tr =
    (r.torch as { train?: Record<string, Record<string, number>>; infer?: Record<string, number>; device?: string }) ??
      {};
  const f0 = (x?: number) => (x === undefined || !Number.isFinite(x) ? "-" : Math.round(x).toLocaleString("en-US"));
  const f2 = (x?: number) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(2));
  const rows: string[][] = [[
    "training step (tokens/s)",
    "uer-ts WebGPU",
    "PyTorch fp32",
    "× PyTorch fp32",
    "PyTorch TF32",
    "PyTorch bf16",
    "first step ms",
    "dispatches",
  ]];
  for (const c of cases) {
    const o = ours[c.name], t = tr.train?.[c.name];
    rows.push([
      `${c.name} × seq ${c.seq}`,
      o?.error ? `error: ${o.error}` : f0(o?.tokensPerS),
      f0(t?.fp32),
      f2(o?.tokensPerS !== undefined && t?.fp32 ? o.tokensPerS / t.fp32 : undefined),
      f0(t?.tf32),
      f0(t?.bf16),
      f0(o?.firstStepMs),
      String(o?.dispatches ?? "-"),
    ]);
  }
  const cpu = (r.cpu as Record<string, { tokensPerS: number }>)["tiny B16"];
  const inf = r.webgpuInfer as Record<string, { msPerBatch?: number; error?: string }>;
  const rows2: string[][] = [["fill-mask (ms per batch)", "uer-ts WebGPU", "PyTorch fp32", "× PyTorch"]];
  for (const [B, T] of infers) {
    const k = `${B}x${T}`, o = inf[k], t = tr.infer?.[k];
    rows2.push([
      `${B} × ${T}`,
      o?.error ? `error: ${o.error}` : f2(o?.msPerBatch),
      f2(t),
      f2(o?.msPerBatch && t ? o.msPerBatch / t : undefined),
    ]);
  }
  const table = (rs: string[][]) => {
    const w = rs[0].map((_, c) => Math.max(...rs.map((x) => x[c].length)));
    const line = (x: string[]) => `| ${x.map((v, c) => v.padEnd(w[c])).join(" | ")} |`;
    return [line(rs[0]), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rs.slice(1).map(line)].join("\n");
  };
  const dev = r.device as Record<string, unknown>;
  console.log(`GPU: ${dev.adapter}; PyTorch ${(r.torch as { torch?: string }).torch ?? "-"} on ${tr.device ?? "-"}`);
  console.log(table(rows));
  console.log(
    `onnxruntime-node CPU, ${(r.cpu as { threads: number }).threads} threads, tiny B16: ${
      f0(cpu?.tokensPerS)
    } tokens/s`,
  );
  console.log(table(rows2));
  const b32 = ours["base B32"]?.tokensPerS, t32 = tr.train?.["base B32"]?.fp32;
  const i8 = inf["8x128"]?.msPerBatch, ti8 = tr.infer?.["8x128"];
  console.log("goals:");
  console.log(
    `  ALBERT-base B32 ≥ 40,000 tokens/s: ${f0(b32)}; ≥ 0.5× PyTorch fp32: ${f2(b32 && t32 ? b32 / t32 : undefined)}×`,
  );
  console.log(
    `  tiny B16 WebGPU ≥ onnxruntime-node CPU: ${f0(ours["tiny B16"]?.tokensPerS)} vs ${f0(cpu?.tokensPerS)}`,
  );
  console.log(`  fill-mask 8×128 within 2× PyTorch fp32: ${f2(i8 && ti8 ? i8 / ti8 : undefined)}×`);
  console.log(
    `--gpu_ranks: ${JSON.stringify(dev.vulkan)}; GPU 0 → ${JSON.stringify(dev.gpu0)}; ${dev.missingGpu ?? ""}`,
  );
  console.log(`matrix-product tiles at ${cases[3].name} (tokens/s): ${JSON.stringify(r.tileSweep)} (auto: ${f0(b32)})`);
  const prof = r.profile as { busyMs: number; lines: string[] } | undefined;
  if (prof) {
    console.log(
      [`ALBERT-base B32 step, one pass per kernel: ${f2(prof.busyMs)} ms busy; slowest:`, ...prof.lines].join("\n"),
    );
  }
  console.log(`bench wall time ${f0(r.seconds as number)} s`);
}

if (import.meta.main) await gpuBench(Deno.args);
