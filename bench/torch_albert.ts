/**
 * The PyTorch ALBERT the benches compare with, written here (no UER-py or transformers import): UER-py's
 * modules and semantics (`uer/layers/layer_norm.py`: unbiased std, eps added to the std;
 * `uer/layers/transformer.py`, `multi_headed_attn.py`: post-LN layer, shared across `layers_num`
 * applications; word + position + segment embeddings, factorized projection E → H), as Python source
 * that a bench script prepends to its own step, plus the helper that runs such a script. Used by
 * bench/finetune_bench.ts (classifier head) and bench/gpu_bench.ts (MLM + SOP pretraining on CUDA).
 * Not browser compatible (spawns Python).
 * @module
 */
import { dropScratch, outputOf, scratchDir } from "./_scratch.ts";

/**
 * Python: `LayerNorm`, `Layer`, `Albert(E, H, F, NH, L, V, act)` with `forward(src, seg) -> [B,T,H]`.
 * Reads nothing global but `torch`, `nn`, `math`.
 */
export const TORCH_ALBERT = `
import math
import torch, torch.nn as nn

class LayerNorm(nn.Module):  # UER-py: unbiased std, eps added to the std
    def __init__(s, n):
        super().__init__(); s.gamma = nn.Parameter(torch.ones(n)); s.beta = nn.Parameter(torch.zeros(n))
    def forward(s, x):
        m = x.mean(-1, keepdim=True); sd = x.std(-1, keepdim=True)
        return s.gamma * (x - m) / (sd + 1e-6) + s.beta

ACTS = {"relu": torch.relu, "gelu": nn.functional.gelu, "gelu_fast": lambda x: nn.functional.gelu(x, approximate="tanh")}

class Layer(nn.Module):
    def __init__(s, H, F, NH, act):
        super().__init__()
        s.H, s.NH, s.act = H, NH, ACTS[act]
        s.q, s.k, s.v, s.o = (nn.Linear(H, H) for _ in range(4))
        s.ln1, s.ln2 = LayerNorm(H), LayerNorm(H)
        s.ff1, s.ff2 = nn.Linear(H, F), nn.Linear(F, H)
    def forward(s, x, mask):
        b, t, _ = x.shape; d = s.H // s.NH
        heads = lambda y: y.view(b, t, s.NH, d).transpose(1, 2)
        scores = heads(s.q(x)) @ heads(s.k(x)).transpose(-2, -1) / math.sqrt(d) + mask
        ctx = (torch.softmax(scores, dim=-1) @ heads(s.v(x))).transpose(1, 2).contiguous().view(b, t, s.H)
        x = s.ln1(s.o(ctx) + x)
        return s.ln2(s.ff2(s.act(s.ff1(x))) + x)

class Albert(nn.Module):
    def __init__(s, E, H, F, NH, L, V, act):
        super().__init__()
        s.L = L
        s.word, s.pos, s.seg = nn.Embedding(V, E), nn.Embedding(512, E), nn.Embedding(3, E)
        s.ln, s.proj, s.layer = LayerNorm(E), nn.Linear(E, H), Layer(H, F, NH, act)
    def forward(s, src, seg):
        pos = torch.arange(src.shape[1], device=src.device)
        emb = s.ln(s.word(src) + s.pos(pos)[None] + s.seg(seg))
        mask = ((1.0 - (seg > 0).float()) * -10000.0)[:, None, None, :]
        h = s.proj(emb)
        for _ in range(s.L): h = s.layer(h, mask)  # parameter sharing
        return h
`;

/** Runs a Python script (source) with one JSON argument; returns its last stdout line as JSON, or why it failed. */
export async function runPython<T>(
  python: string,
  source: string,
  args: unknown,
  env: Record<string, string> = {},
): Promise<{ ok: true; value: T } | { ok: false; error: string }> {
  const dir = await scratchDir("uer-bench-");
  try {
    await Deno.writeTextFile(`${dir}/bench.py`, source);
    let out: Deno.CommandOutput;
    try {
      out = await outputOf(python, {
        args: [`${dir}/bench.py`, JSON.stringify(args)],
        stdout: "piped",
        stderr: "piped",
        env: { PYTHONUNBUFFERED: "1", ...env },
      });
    } catch {
      return { ok: false, error: `${python} is missing` };
    }
    const stdout = new TextDecoder().decode(out.stdout).trim();
    if (out.code !== 0) {
      const last = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
      return { ok: false, error: `the PyTorch script failed: ${last}` };
    }
    return { ok: true, value: JSON.parse(stdout.split("\n").at(-1)!) as T };
  } finally {
    await dropScratch(dir);
  }
}
