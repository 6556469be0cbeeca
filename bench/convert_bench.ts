/**
 * Conversion speed and memory: an ALBERT-sized UER `.bin` (random weights made here; base: vocab
 * 21128, emb 128, hidden 768, ff 3072, 12 heads, shared layer, 53.5 MB; `--size large`: hidden 1024,
 * ff 4096, 16 heads, 77.6 MB) converted to an HF folder and to a zarr checkpoint exactly as a user
 * does it, `deno run -A cli/main.ts convert --to hf|zarr …` (a fresh child process per run, so
 * start-up counts), against UER-py's `scripts/convert_albert_from_uer_to_huggingface.py` on the same
 * file when python3 with torch is present and `UER_DIR` names a UER-py checkout (the script runs from
 * there; without it the bench says so in one line and has no UER-py column). The box is shared, so the runs are interleaved (ours, UER-py, ours,
 * UER-py, …) and both the best and the median of each are printed.
 *
 * Memory: each child reports its peak RSS (`VmHWM`) and its RSS just before the conversion starts
 * (runtime and CLI loaded, file not yet read: ~55 MB). The goal "memory no more than twice the
 * checkpoint size" is judged on the absolute peak (`*_peak_over_checkpoint`, the strict reading);
 * the increment (peak − before) is printed too. UER-py's peak (`ru_maxrss`) is printed beside them.
 * Prints seconds, MB/s, RSS and ratios; never passes or fails on time.
 * @module
 */
import { ALBERT_BASE, type AlbertConfig } from "../core/config.ts";
import { randomUerParams } from "../convert/random_model.ts";
import { torchBinParts } from "../convert/torch_bin.ts";
import { writeParts } from "../convert/files.ts";
import { uerModuleMetadata } from "../convert/names.ts";
import { torchPython } from "./_torch_albert.ts";
import { dropScratch, outputOf, scratchDir } from "./_scratch.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The two model-card sizes (ALBERT-base / -large, Chinese vocab). */
export const BENCH_CONFIGS: Record<string, AlbertConfig> = {
  base: { ...ALBERT_BASE, max_seq_length: 512 },
  large: { ...ALBERT_BASE, max_seq_length: 512, hidden_size: 1024, feedforward_size: 4096, heads_num: 16 },
};

/** `VmHWM` (peak) and `VmRSS` (now) of this process in bytes; current RSS where /proc is missing. */
function rss(): { peak: number; now: number } {
  try {
    const s = Deno.readTextFileSync("/proc/self/status");
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)![1]) * 1024;
    return { peak: kb("VmHWM"), now: kb("VmRSS") };
  } catch { /* not Linux */ }
  const now = Deno.memoryUsage().rss;
  return { peak: now, now };
}

async function timeCommand(cmd: string, args: string[], cwd?: string): Promise<{ s: number; out: string }> {
  const t0 = performance.now();
  const r = await outputOf(cmd, { args, cwd, stdout: "piped", stderr: "piped" });
  const s = (performance.now() - t0) / 1000;
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr).slice(-500)}`);
  return { s, out };
}

/** Runs the UER-py script in-process under `runpy` and prints its peak RSS (bytes) last. */
const PY_WRAPPER = `import resource, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
`;

const best = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Options of `convertBench`. */
export interface ConvertBenchOptions {
  /** Runs of each command (interleaved); default 3. */
  runs?: number;
  /** "base" (default) or "large". */
  size?: string;
  /** Print each figure as it is known (default true). */
  print?: boolean;
}

/** Runs the benchmark and returns its figures (seconds, MB/s, MB, ratios). */
export async function convertBench(opts: ConvertBenchOptions = {}): Promise<Record<string, number>> {
  const runs = Math.max(1, opts.runs ?? 3);
  const size = opts.size ?? "base";
  const cfg = BENCH_CONFIGS[size];
  if (!cfg) throw new RangeError(`Cannot run the convert bench: unknown size "${size}" (base, large)`);
  const say = (k: string, v: number) => {
    if (opts.print !== false) console.log(`${k.padEnd(34)} ${Number.isInteger(v) ? v : v.toFixed(3)}`);
  };
  const dir = await scratchDir("convert_bench_");
  const res: Record<string, number> = {};
  const put = (k: string, v: number) => {
    res[k] = v;
    say(k, v);
  };
  try {
    const bin = `${dir}/uer_model.bin`;
    {
      const params = randomUerParams(cfg, 21128, 7);
      await writeParts(
        bin,
        torchBinParts(params, { archiveName: "uer_model", metadata: uerModuleMetadata(cfg) }).parts,
      );
    }
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
    const bytes = (await Deno.stat(bin)).size;
    const mb = bytes / 1e6;
    put("checkpoint_mb", mb);
    const deno = Deno.execPath();
    const ours = async (to: string, out: string) => {
      await Deno.remove(out, { recursive: true }).catch(() => {});
      const r = await timeCommand(deno, ["run", "-A", `${ROOT}bench/convert_bench.ts`, "--child", to, bin, out]);
      const c = JSON.parse(r.out.trim().split("\n").pop()!) as { seconds: number; peak: number; before: number };
      return { wall: r.s, ...c };
    };
    const py = await torchPython();
    const uerDir = Deno.env.get("UER_DIR");
    let script: string | undefined;
    if (!uerDir) {
      console.log("UER_DIR is not set: no UER-py column (set it to a UER-py checkout to time its converter)");
    } else if (!py) {
      console.log("no python with torch (UER_TS_PYTHON, /usr/bin/python3, python3): no UER-py column");
    } else {
      script = `${uerDir}/scripts/convert_albert_from_uer_to_huggingface.py`;
      if (!(await Deno.stat(script).catch(() => null))?.isFile) {
        throw new Error(
          `Cannot run UER-py's converter "${script}": no such file\n  hint: set UER_DIR to a UER-py checkout`,
        );
      }
      await Deno.writeTextFile(`${dir}/run_py.py`, PY_WRAPPER);
      await Deno.mkdir(`${dir}/py`);
    }
    const hf: Awaited<ReturnType<typeof ours>>[] = [];
    const zr: Awaited<ReturnType<typeof ours>>[] = [];
    const pys: { wall: number; peak: number }[] = [];
    for (let i = 0; i < runs; i++) {
      hf.push(await ours("hf", `${dir}/hf`));
      if (py && script) {
        const r = await timeCommand(py, [
          `${dir}/run_py.py`,
          script,
          "--input_model_path",
          bin,
          "--output_model_path",
          `${dir}/py/pytorch_model.bin`,
        ], dir);
        pys.push({ wall: r.s, peak: Number(r.out.trim().split("\n").pop()) });
      }
      zr.push(await ours("zarr", `${dir}/ck`));
    }
    const report = (name: string, xs: Awaited<ReturnType<typeof ours>>[]) => {
      const walls = xs.map((x) => x.wall);
      put(`${name}_s_best`, best(walls));
      put(`${name}_s_median`, median(walls));
      put(`${name}_in_process_s_best`, best(xs.map((x) => x.seconds)));
      put(`${name}_mb_per_s_best`, mb / best(walls));
      const peak = Math.max(...xs.map((x) => x.peak));
      const inc = Math.max(...xs.map((x) => x.peak - x.before));
      put(`${name}_peak_rss_mb`, peak / 1e6);
      put(`${name}_rss_before_mb`, median(xs.map((x) => x.before)) / 1e6);
      put(`${name}_rss_increment_mb`, inc / 1e6);
      put(`${name}_increment_over_checkpoint`, inc / bytes);
      put(`${name}_peak_over_checkpoint`, peak / bytes);
    };
    report("to_hf", hf);
    report("to_zarr", zr);
    if (pys.length) {
      const walls = pys.map((x) => x.wall);
      put("uer_py_s_best", best(walls));
      put("uer_py_s_median", median(walls));
      put("uer_py_peak_rss_mb", Math.max(...pys.map((x) => x.peak)) / 1e6);
      put("speedup_vs_uer_py_best", best(walls) / best(hf.map((x) => x.wall)));
      put("speedup_vs_uer_py_median", median(walls) / median(hf.map((x) => x.wall)));
      const [a, b] = [
        await Deno.readFile(`${dir}/py/pytorch_model.bin`),
        await Deno.readFile(`${dir}/hf/pytorch_model.bin`),
      ];
      put("identical_to_uer_py", a.length === b.length && a.every((x, i) => x === b[i]) ? 1 : 0);
    }
    const zarrBytes = [...Deno.readDirSync(`${dir}/ck`)].length > 0 ? await duBytes(`${dir}/ck`) : 0;
    put("zarr_mb_on_disk", zarrBytes / 1e6);
  } finally {
    await dropScratch(dir);
  }
  return res;
}

async function duBytes(path: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    n += e.isDirectory ? await duBytes(p) : (await Deno.stat(p)).size;
  }
  return n;
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    // One conversion as a user runs it: the CLI entry point, in this fresh process.
    const [, to, input, output] = Deno.args;
    const { main } = await import("../cli/main.ts");
    const before = rss().now;
    const t0 = performance.now();
    const code = await main(["convert", "--to", to, "--input_model_path", input, "--output_model_path", output]);
    const seconds = (performance.now() - t0) / 1000;
    if (code !== 0) Deno.exit(code);
    console.log(JSON.stringify({ seconds, peak: rss().peak, before }));
  } else {
    const arg = (k: string) => {
      const i = Deno.args.indexOf(k);
      return i >= 0 ? Deno.args[i + 1] : undefined;
    };
    await convertBench({ runs: Number(arg("--runs") ?? 3), size: arg("--size") ?? "base" });
  }
}
