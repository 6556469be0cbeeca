/**
 * The benches' PyTorch baseline: a training step of the same ALBERT as uer-ts trains, written here in a
 * few lines of PyTorch after UER-py's modules (`uer/layers/layer_norm.py` unbiased-std LayerNorm,
 * `multi_headed_attn.py`, `transformer.py` post-LN layer applied `layers_num` times with shared weights,
 * `uer/targets/mlm_target.py` + `sp_target.py` with the MLM output layer only at the masked positions,
 * and `uer/utils/optimizers.py`'s AdamW without bias correction), run with a python that has torch
 * (`UER_TS_PYTHON`, else Debian's `/usr/bin/python3`, else `python3`). The script is written to a temp
 * folder per run (never into the repository), fed the same batch as the uer-ts side, and reports each
 * step's wall time, its RSS before the first step and the process's peak RSS (`ru_maxrss`).
 * @module
 */
import type { AlbertConfig } from "../core/config.ts";
import type { Batch } from "../core/train/pretrain_task.ts";
import { dropScratch, outputOf, scratchDir } from "./_scratch.ts";

/** The UER-py ALBERT step in PyTorch: args JSON path in argv[1]; prints one JSON line. */
const SCRIPT = String.raw`
import json, math, resource, sys, time
import torch
import torch.nn as nn

a = json.load(open(sys.argv[1]))
# Threads as UER-py leaves them (torch's default): calling set_num_threads(2) here made steps several
# times slower on this 2-core VM (OpenMP and OpenBLAS threads then contend).
torch.manual_seed(7)
c = a["config"]
V, E, H, F, N, L, P = c["vocab_size"], c["emb_size"], c["hidden_size"], c["feedforward_size"], c["heads_num"], c["layers_num"], c["max_seq_length"]
B, T = a["batch"], a["seq"]
act = torch.relu if c["hidden_act"] == "relu" else (lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))))

class LayerNorm(nn.Module):  # uer/layers/layer_norm.py
    def __init__(self, n):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n)); self.beta = nn.Parameter(torch.zeros(n))
    def forward(self, x):
        mean = x.mean(-1, keepdim=True); std = x.std(-1, keepdim=True)
        return self.gamma * (x - mean) / (std + 1e-6) + self.beta

class Layer(nn.Module):  # uer/layers/transformer.py (post-LN) + multi_headed_attn.py
    def __init__(self):
        super().__init__()
        self.linear_layers = nn.ModuleList([nn.Linear(H, H) for _ in range(3)])
        self.final_linear = nn.Linear(H, H)
        self.layer_norm_1 = LayerNorm(H); self.layer_norm_2 = LayerNorm(H)
        self.linear_1 = nn.Linear(H, F); self.linear_2 = nn.Linear(F, H)
    def forward(self, h, mask):
        d = H // N
        q, k, v = [l(h).view(B, -1, N, d).transpose(1, 2) for l in self.linear_layers]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(float(d)) + mask
        probs = nn.functional.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).contiguous().view(B, -1, H)
        inter = self.layer_norm_1(self.final_linear(ctx) + h)
        return self.layer_norm_2(self.linear_2(act(self.linear_1(inter))) + inter)

class Albert(nn.Module):
    def __init__(self):
        super().__init__()
        self.word = nn.Embedding(V, E); self.pos = nn.Embedding(P, E); self.seg = nn.Embedding(3, E)
        self.emb_norm = LayerNorm(E)
        self.linear = nn.Linear(E, H)
        self.layer = Layer()
        self.mlm_linear_1 = nn.Linear(H, E); self.mlm_norm = LayerNorm(E); self.mlm_linear_2 = nn.Linear(E, V)
        self.sp_linear_1 = nn.Linear(H, H); self.sp_linear_2 = nn.Linear(H, 2)
    def forward(self, src, seg, tgt_mlm, tgt_sp):
        pos = torch.arange(0, T, dtype=torch.long).unsqueeze(0).repeat(B, 1)
        emb = self.emb_norm(self.word(src) + self.pos(pos) + self.seg(seg))
        mask = (seg > 0).unsqueeze(1).repeat(1, T, 1).unsqueeze(1).float()  # uer/encoders/transformer_encoder.py
        mask = (1.0 - mask) * -10000.0
        h = self.linear(emb)
        for _ in range(L):
            h = self.layer(h, mask)
        out = self.mlm_norm(act(self.mlm_linear_1(h))).contiguous().view(-1, E)  # uer/targets/mlm_target.py
        t = tgt_mlm.contiguous().view(-1)
        logits = self.mlm_linear_2(out[t > 0, :])
        loss_mlm = nn.functional.nll_loss(nn.functional.log_softmax(logits, dim=-1), t[t > 0])
        sp = self.sp_linear_2(torch.tanh(self.sp_linear_1(h[:, 0, :])))  # uer/targets/sp_target.py
        return loss_mlm + nn.functional.nll_loss(nn.functional.log_softmax(sp, dim=-1), tgt_sp)

model = Albert()
for n, p in model.named_parameters():  # UER init: N(0, 0.02) for all but gamma/beta
    if "gamma" not in n and "beta" not in n:
        p.data.normal_(0, 0.02)
state = {}
def adamw(lr=1e-4, b1=0.9, b2=0.999, eps=1e-6):  # uer/utils/optimizers.py AdamW, correct_bias=False
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.grad is None:
                continue
            if p not in state:
                state[p] = (torch.zeros_like(p), torch.zeros_like(p))
            m, v = state[p]
            m.mul_(b1).add_(p.grad, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
            p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)
            if not any(s in n for s in ("bias", "gamma", "beta")):
                p.add_(p, alpha=-lr * 0.01)

def rss_now():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

src = torch.tensor(a["src"], dtype=torch.long).view(B, T)
seg = torch.tensor(a["seg"], dtype=torch.long).view(B, T)
tgt_mlm = torch.tensor(a["tgt_mlm"], dtype=torch.long).view(B, T)
tgt_sp = torch.tensor(a["tgt_sop"], dtype=torch.long)
before = rss_now()
ms = []
for i in range(a["steps"]):
    t0 = time.perf_counter()
    loss = model(src, seg, tgt_mlm, tgt_sp)
    loss.backward()
    adamw()
    model.zero_grad()
    ms.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"ms": ms, "loss": loss.item(), "rss_before": before,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
`;

/** What one PyTorch run measured. */
export interface TorchStepFigures {
  /** Wall ms of each step (forward + backward + AdamW). */
  ms: number[];
  /** The last step's loss. */
  loss: number;
  /** RSS before the first step (model, batch and torch loaded), bytes. */
  rssBefore: number;
  /** Peak RSS of the process, bytes. */
  peakRss: number;
  /** torch version. */
  torch: string;
  /** torch's intra-op threads (its default, as in UER-py). */
  threads: number;
}

/** A python that imports torch (`UER_TS_PYTHON`, `/usr/bin/python3`, `python3`), or undefined. */
export async function torchPython(): Promise<string | undefined> {
  for (const py of [Deno.env.get("UER_TS_PYTHON"), "/usr/bin/python3", "python3"]) {
    if (!py) continue;
    try {
      const r = await outputOf(py, { args: ["-c", "import torch"], stdout: "null", stderr: "null" });
      if (r.success) return py;
    } catch { /* not there */ }
  }
  return undefined;
}

/**
 * Runs `steps` PyTorch training steps of `config` (UER-py's ALBERT) on `batch` in a fresh python process
 * (torch's default thread count, as UER-py).
 *
 * @example
 * ```ts
 * const py = await torchPython();
 * if (py) console.log((await torchAlbertSteps(py, cfg, batch, { steps: 3 })).ms);
 * ```
 */
export async function torchAlbertSteps(
  python: string,
  config: AlbertConfig,
  batch: Batch,
  opts: { steps: number; env?: Record<string, string> },
): Promise<TorchStepFigures> {
  const dir = await scratchDir("uer-ts-torch-");
  try {
    await Deno.writeTextFile(`${dir}/albert_step.py`, SCRIPT);
    await Deno.writeTextFile(
      `${dir}/args.json`,
      JSON.stringify({
        config,
        batch: batch.batchSize,
        seq: batch.seqLength,
        steps: opts.steps,
        src: [...batch.src],
        seg: [...batch.seg],
        tgt_mlm: [...batch.tgtMlm],
        tgt_sop: [...batch.tgtSop],
      }),
    );
    const r = await outputOf(python, {
      args: [`${dir}/albert_step.py`, `${dir}/args.json`],
      env: opts.env,
      stdout: "piped",
      stderr: "piped",
    });
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`PyTorch step failed (${python}): ${dec.decode(r.stderr).slice(-800)}`);
    const o = JSON.parse(dec.decode(r.stdout).trim().split("\n").pop()!);
    return { ms: o.ms, loss: o.loss, rssBefore: o.rss_before, peakRss: o.peak_rss, torch: o.torch, threads: o.threads };
  } finally {
    await dropScratch(dir);
  }
}

/**
 * glibc settings that keep freed memory for reuse (mmap threshold at its 32 MiB maximum, no trimming).
 * PyTorch's CPU tensors come from malloc; by default every block over 128 KiB is a fresh mmap, and on
 * a VM where first-touching a page is slow (~30 µs here) that alone can cost PyTorch most of its step.
 */
export const GLIBC_KEEP_MEMORY: Record<string, string> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 36),
};

/**
 * UER-py itself (a checkout at `uerDir`): its `preprocess.py` on `corpus` at `seq` (albert, static
 * masking, 1 process) into `workDir`, then `pretrain.py` with `config` for `steps` steps reporting every
 * `reportSteps`, on the CPU. Returns the tokens/s of each report line (UER-py's own figure).
 */
export async function uerPyPretrain(
  python: string,
  uerDir: string,
  workDir: string,
  config: AlbertConfig,
  opts: {
    corpus: string;
    vocab: string;
    batch: number;
    seq: number;
    steps: number;
    reportSteps: number;
    /** Environment of the pretrain.py run (e.g. `GLIBC_KEEP_MEMORY`). */
    env?: Record<string, string>;
  },
): Promise<number[]> {
  const run = async (args: string[], env?: Record<string, string>) => {
    const r = await outputOf(python, { args, cwd: uerDir, env, stdout: "piped", stderr: "piped" });
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`UER-py ${args[0]} failed: ${dec.decode(r.stderr).slice(-800)}`);
    return dec.decode(r.stdout) + dec.decode(r.stderr);
  };
  const dataset = `${workDir}/dataset_${opts.seq}.pt`;
  try {
    await Deno.stat(dataset);
  } catch {
    await run([
      "preprocess.py",
      ...["--corpus_path", opts.corpus, "--vocab_path", opts.vocab, "--dataset_path", dataset],
      ...["--processes_num", "1", "--data_processor", "albert", "--seq_length", String(opts.seq)],
    ]);
  }
  const cfgPath = `${workDir}/config_${config.hidden_size}.json`;
  await Deno.writeTextFile(cfgPath, JSON.stringify(config));
  const log = await run([
    "pretrain.py",
    ...["--dataset_path", dataset, "--vocab_path", opts.vocab, "--config_path", cfgPath],
    ...["--output_model_path", `${workDir}/model.bin`, "--total_steps", String(opts.steps)],
    ...["--save_checkpoint_steps", String(opts.steps + 1), "--report_steps", String(opts.reportSteps)],
    ...["--batch_size", String(opts.batch), "--data_processor", "albert"],
  ], opts.env);
  return [...log.matchAll(/\|\s*([\d.]+) tokens\/s/g)].map((m) => Number(m[1]));
}
