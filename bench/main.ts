/**
 * `deno task bench`: runs every speed comparison in `bench/` (or those named on the command line:
 * `deno task bench tokenizer convert`) and prints their figures. Each bench prints ratios against a
 * baseline measured in the same run; none passes or fails on time.
 * @module
 */

type Bench = () => Promise<unknown>;

const BENCHES: Record<string, () => Promise<Bench>> = {
  tokenizer: async () => (await import("./tokenizer_bench.ts")).tokenizerBench,
  preprocess: async () => (await import("./preprocess_bench.ts")).preprocessBench,
  convert: async () => (await import("./convert_bench.ts")).convertBench,
  pretrain: async () => (await import("./pretrain_bench.ts")).pretrainBench,
  finetune: async () => (await import("./finetune_bench.ts")).finetuneBench,
  memory: async () => (await import("./train_memory_bench.ts")).trainMemoryBench,
  scale: async () => (await import("./scale_projection.ts")).scaleProjection,
  dist: async () => (await import("./dist_bench.ts")).distBench,
  infer: async () => (await import("./infer_bench.ts")).inferBench,
  "infer-throughput": async () => (await import("./infer_throughput_bench.ts")).inferThroughputBench,
  "infer-q8-accuracy": async () => (await import("./infer_q8_accuracy_bench.ts")).inferQ8AccuracyBench,
  dataset: async () => (await import("./dataset_codec_bench.ts")).datasetCodecBench,
  webgpu_step: async () => (await import("./webgpu_step_bench.ts")).webgpuStepBench,
  cpu_step: async () => (await import("./cpu_step_profile.ts")).cpuStepProfile,
  loader: async () => (await import("./loader_bench.ts")).loaderBench,
};

if (import.meta.main) {
  const names = Deno.args.length > 0 ? Deno.args : Object.keys(BENCHES);
  const results: Record<string, unknown> = {};
  for (const name of names) {
    const load = BENCHES[name];
    if (!load) {
      console.error(`error: unknown bench '${name}'; choose from ${Object.keys(BENCHES).join(", ")}`);
      Deno.exit(2);
    }
    console.log(`\n== bench ${name}`);
    results[name] = await (await load())();
  }
  console.log(`\n${JSON.stringify(results)}`);
}
