/**
 * Conversion speed: an ALBERT-base-sized UER `.bin` (random weights made here: vocab 21128, emb 128,
 * hidden 768, ff 3072, shared layer) converted to an HF folder and to a zarr checkpoint by
 * `deno run cli/main.ts convert` (a child process each, so startup and peak RSS are measured as a
 * user sees them), compared with UER-py's `scripts/convert_albert_from_uer_to_huggingface.py` on the
 * same file when python3 with torch is present (the script is taken from the UER-py mirror into a
 * temp folder, never into the repo). Prints seconds, MB/s, peak RSS and the speed ratio; never
 * passes or fails on time.
 * @module
 */
import { ALBERT_BASE } from "../core/config.ts";
import { randomUerParams } from "../convert/random_model.ts";
import { writeTorchBin } from "../convert/torch_bin.ts";
import { uerModuleMetadata } from "../convert/names.ts";

const MIRROR = "/work/.mirror/dbiir+UER-py/repo";
const ROOT = new URL("..", import.meta.url).pathname;

/** Peak resident set (VmHWM) of this process in bytes, or the current RSS where /proc is missing. */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss;
}

async function timeCommand(cmd: string, args: string[], cwd?: string): Promise<{ s: number; out: string }> {
  const t0 = performance.now();
  const r = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const s = (performance.now() - t0) / 1000;
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr).slice(-500)}`);
  return { s, out };
}

function denoBin(): string {
  return `${ROOT}node_modules/.bin/deno`;
}

async function torchPython(): Promise<string | undefined> {
  for (const py of [Deno.env.get("UER_TS_PYTHON"), "/usr/bin/python3", "python3"]) {
    if (!py) continue;
    try {
      const r = await new Deno.Command(py, { args: ["-c", "import torch"], stdout: "null", stderr: "null" }).output();
      if (r.success) return py;
    } catch { /* not there */ }
  }
  return undefined;
}

/** Runs the benchmark and returns its figures (seconds, MB/s, bytes, ratio). */
export async function convertBench(): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: "convert_bench_" });
  const res: Record<string, number> = {};
  try {
    const cfg = { ...ALBERT_BASE, max_seq_length: 512 };
    const params = randomUerParams(cfg, 21128, 7);
    const bin = `${dir}/uer_model.bin`;
    await Deno.writeFile(bin, writeTorchBin(params, { archiveName: "uer_model", metadata: uerModuleMetadata(cfg) }));
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
    const size = (await Deno.stat(bin)).size;
    res.checkpoint_mb = size / 1e6;
    const child = async (to: string, out: string) => {
      const r = await timeCommand(denoBin(), [
        "run",
        "-A",
        `${ROOT}bench/convert_bench.ts`,
        "--child",
        to,
        bin,
        out,
      ]);
      return { wall: r.s, ...JSON.parse(r.out.trim().split("\n").pop()!) as { seconds: number; peak: number } };
    };
    const hf = await child("hf", `${dir}/hf`);
    res.to_hf_s = hf.wall;
    res.to_hf_in_process_s = hf.seconds;
    res.to_hf_mb_per_s = res.checkpoint_mb / hf.wall;
    res.to_hf_peak_rss_mb = hf.peak / 1e6;
    const zr = await child("zarr", `${dir}/ck`);
    res.to_zarr_s = zr.wall;
    res.to_zarr_in_process_s = zr.seconds;
    res.to_zarr_mb_per_s = res.checkpoint_mb / zr.wall;
    res.to_zarr_peak_rss_mb = zr.peak / 1e6;
    res.peak_rss_over_checkpoint = Math.max(hf.peak, zr.peak) / size;
    const py = await torchPython();
    if (py) {
      const script = await timeCommand("git", [
        "-C",
        MIRROR,
        "show",
        "HEAD:scripts/convert_albert_from_uer_to_huggingface.py",
      ])
        .catch(() => undefined);
      if (script) {
        await Deno.writeTextFile(`${dir}/convert_uer.py`, script.out);
        await Deno.mkdir(`${dir}/py`);
        const r = await timeCommand(py, [
          `${dir}/convert_uer.py`,
          "--input_model_path",
          bin,
          "--output_model_path",
          `${dir}/py/pytorch_model.bin`,
        ], dir);
        res.uer_py_s = r.s;
        res.speedup_vs_uer_py = r.s / hf.wall;
        const [a, b] = [
          await Deno.readFile(`${dir}/py/pytorch_model.bin`),
          await Deno.readFile(`${dir}/hf/pytorch_model.bin`),
        ];
        res.identical_to_uer_py = a.length === b.length && a.every((x, i) => x === b[i]) ? 1 : 0;
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return res;
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    const [, to, input, output] = Deno.args;
    const { convertModel } = await import("../convert/convert.ts");
    const t0 = performance.now();
    await convertModel({ to: to as "hf" | "zarr", inputModelPath: input, outputModelPath: output, hfFormat: "bin" });
    console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000, peak: peakRss() }));
  } else {
    const r = await convertBench();
    for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(28)} ${Number.isInteger(v) ? v : v.toFixed(3)}`);
  }
}
