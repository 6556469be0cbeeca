/**
 * Preprocess speed against UER-py: `CLUECorpusSmall_sampled.txt` (1.9 MB), `--seq_length 128
 * --dup_factor 5`, static masking. UER-py's `preprocess.py --processes_num 1` takes about 14.5 s on
 * this machine class for the same 20,515 instances; figures are printed, never judged pass/fail on time
 * (the instance count is checked). Runnable: `deno run -A bench/preprocess_bench.ts`.
 * @module
 */
import { type PreprocessConfig, preprocessCorpus } from "../core/data/preprocess.ts";
import { refPath } from "../tests/reference.ts";
import process from "node:process";

/** UER-py's time for the same run (seconds, measured on this machine class). */
export const UER_PY_SECONDS = 14.5;
const EXPECTED_INSTANCES = 20515;

function config(datasetPath: string, processesNum: number): PreprocessConfig {
  return {
    corpusPath: refPath("corpora/CLUECorpusSmall_sampled.txt"),
    datasetPath,
    vocabPath: refPath("vocab/google_zh_vocab.txt"),
    doLowerCase: true,
    processesNum,
    dataProcessor: "albert",
    docsBufferSize: 100000,
    seqLength: 128,
    dupFactor: 5,
    shortSeqProb: 0.1,
    seed: 7,
    dynamicMasking: false,
    wholeWordMasking: false,
    spanMasking: false,
    spanGeoProb: 0.2,
    spanMaxLength: 10,
    overwrite: true,
    encodingErrors: "strict",
  };
}

/** Runs preprocess with 1 and 2 processes (first run of each = cold, then the best of two). */
export async function preprocessBench(): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: "preprocess_bench" });
  const out: Record<string, number> = {};
  try {
    for (const p of [1, 2]) {
      const times: number[] = [];
      const cpu: number[] = [];
      for (let run = 0; run < 3; run++) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const s = await preprocessCorpus(config(`${dir}/p${p}`, p));
        times.push((performance.now() - t0) / 1000);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1e6);
        if (p === 1 && s.count !== EXPECTED_INSTANCES) {
          throw new Error(`preprocess bench: ${s.count} instances, UER-py makes ${EXPECTED_INSTANCES}`);
        }
        out[`instances_p${p}`] = s.count;
      }
      out[`seconds_p${p}_cold`] = times[0];
      out[`seconds_p${p}`] = Math.min(times[1], times[2]);
      // Process CPU time (all threads): what the run costs when other jobs share the cores.
      out[`cpu_seconds_p${p}`] = Math.min(cpu[1], cpu[2]);
      out[`speedup_vs_uer_p${p}`] = UER_PY_SECONDS / out[`seconds_p${p}`];
    }
    out.scaling_p2_vs_p1 = out.seconds_p1 / out.seconds_p2;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return out;
}

if (import.meta.main) {
  const r = await preprocessBench();
  console.log(`preprocess CLUECorpusSmall_sampled seq128 dup5: ${r.instances_p1} instances`);
  for (const p of [1, 2]) {
    console.log(
      `  --processes_num ${p}: ${r[`seconds_p${p}`].toFixed(3)} s (cold ${r[`seconds_p${p}_cold`].toFixed(3)} s), ` +
        `${r[`speedup_vs_uer_p${p}`].toFixed(1)}x UER-py's ${UER_PY_SECONDS} s; CPU ${
          r[`cpu_seconds_p${p}`].toFixed(3)
        } s`,
    );
  }
  console.log(`  scaling 1 -> 2 processes: ${r.scaling_p2_vs_p1.toFixed(2)}x`);
}
