/**
 * A small rank-side program for the distributed tests and the bench, run under `mpirun`:
 * `check` verifies all-reduce (float32/float64), mean, broadcast, the layout check and parameter
 * checksums across ranks and prints one JSON line per rank; `time <floats> <iters>` times the in-place
 * float32 all-reduce and prints rank 0's milliseconds as JSON; `die` lets the last rank SIGKILL itself
 * while the others keep all-reducing (the fault test: `mpirun` must end the job, not hang);
 * `train <json>` runs data-parallel training steps of the real trainer on synthetic batches (batch k
 * of the job goes to rank k mod N; a one-rank run with `acc` N accumulates the same batches in the same
 * order) and prints per-step job statistics, timings and the final parameter checksum; rank 0 writes
 * the final parameters as raw float32 to `out` for comparison between runs. `train` runs on the CPU
 * (onnxruntime-node) by default, or on WebGPU with `"device": "webgpu"` (ranks on one machine then share
 * its GPU; gradients are downloaded to the host for the MPI all-reduce).
 * Not browser compatible: a process entry point using MPI through `Deno.dlopen`.
 * @module
 */
import { openComm } from "./mpi.ts";
import {
  allgatherJson,
  checkSameLayout,
  DataParallelTrainer,
  FlatBuffer,
  gradientAverager,
  paramChecksum,
  reduceStats,
  syncParams,
} from "./data_parallel.ts";
import type { Tensor } from "../tensor.ts";
import type { AlbertConfig } from "../config.ts";

/** Settings of the `train` probe. */
export interface TrainProbe {
  /** Model config (UER keys) with vocab_size. */
  config: AlbertConfig;
  /** Rows per micro-batch on each rank. */
  batch: number;
  seq: number;
  /** Optimizer steps. */
  steps: number;
  /** `--accumulation_steps`. */
  acc: number;
  lr: number;
  seed: number;
  /** Raw float32 file for rank 0's final parameters (names sorted). */
  out?: string;
  /** CPU threads per rank. */
  threads?: number;
  /** Trainer device (default "cpu"). */
  device?: "cpu" | "webgpu";
  /** Time the wait for the slowest rank apart from the all-reduce (a barrier before it). */
  separateWait?: boolean;
  /** Run the split (gradient, average, update) step even on one rank, to time it against the fused one. */
  split?: boolean;
}

/** Synthetic UER batch number `k` (deterministic): A/B segments, some padding, ~15 % masked. */
export function syntheticBatch(k: number, rows: number, seq: number, vocab: number) {
  let a = (k * 2654435761 + 12345) >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const src = new Int32Array(rows * seq), seg = new Int32Array(rows * seq), tgtMlm = new Int32Array(rows * seq);
  const tgtSop = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const len = seq - Math.floor(rnd() * (seq / 4));
    const aLen = 1 + Math.floor(rnd() * (len - 2));
    tgtSop[r] = rnd() < 0.5 ? 1 : 0;
    for (let t = 0; t < len; t++) {
      const i = r * seq + t;
      src[i] = t === 0 ? 2 : 5 + Math.floor(rnd() * (vocab - 5));
      seg[i] = t < aLen ? 1 : 2;
      if (t > 0 && rnd() < 0.15) {
        tgtMlm[i] = src[i];
        src[i] = 4;
      }
    }
  }
  return { src, seg, tgtMlm, tgtSop, batchSize: rows, seqLength: seq };
}

async function trainProbe(comm: ReturnType<typeof openComm>, p: TrainProbe): Promise<void> {
  const { Trainer, initParams } = await import("../train/trainer.ts");
  const { paramShapes, pretrainTask, pretrainStats } = await import("../train/pretrain_task.ts");
  const params = initParams(paramShapes(p.config), p.seed + comm.rank); // deliberately different per rank
  syncParams(comm, params); // ... until rank 0's are broadcast, as DDP does
  const inner = await Trainer.create({
    task: pretrainTask(p.config),
    params,
    device: p.device ?? "cpu",
    threads: p.threads ?? 1,
    spinning: comm.size === 1, // as cli/pretrain.ts: ranks sharing a machine must not spin
    accumulationSteps: p.acc,
    log: () => {},
    averageGradients: comm.size > 1 || p.split
      ? gradientAverager(comm, paramShapes(p.config), { separateWait: p.separateWait })
      : undefined,
  });
  // With separateWait, a barrier also after the rank's step: the job statistics' all-reduce would
  // otherwise block until the slower rank finishes its update half, and count that as all-reduce time.
  const timed = {
    step: async (b: ReturnType<typeof syntheticBatch>, lr: number) => {
      await inner.step(b, lr);
      if (p.separateWait) comm.barrier();
    },
    takeStats: () => inner.takeStats(),
  };
  const trainer = new DataParallelTrainer(timed, comm);
  const V = p.config.vocab_size!;
  const steps: {
    loss: number;
    lossMlm: number;
    correctMlm: number;
    denominator: number;
    ms: number;
    allreduceMs: number;
    waitMs: number;
  }[] = [];
  const mpi = comm as { allreduceMs?: number; barrierMs?: number };
  for (let step = 0; step < p.steps; step++) {
    const t0 = performance.now();
    const ar0 = mpi.allreduceMs ?? 0, w0 = mpi.barrierMs ?? 0;
    let loss = 0, lossMlm = 0, correctMlm = 0, denominator = 0;
    for (let micro = 0; micro < p.acc; micro++) {
      const k = (step * p.acc + micro) * comm.size + comm.rank;
      await trainer.step(syntheticBatch(k, p.batch, p.seq, V), 1e-3);
      const s = pretrainStats((await trainer.takeStats()).sums);
      loss += s.loss;
      lossMlm += s.lossMlm;
      correctMlm += s.correctMlm;
      denominator += s.denominator;
    }
    steps.push({
      loss: loss / p.acc,
      lossMlm: lossMlm / p.acc,
      correctMlm,
      denominator,
      ms: performance.now() - t0,
      allreduceMs: (mpi.allreduceMs ?? 0) - ar0,
      waitMs: (mpi.barrierMs ?? 0) - w0,
    });
  }
  const final = await inner.params();
  if (p.out && comm.rank === 0) {
    const names = [...final.keys()].sort();
    const n = names.reduce((a, k) => a + final.get(k)!.data.length, 0);
    const all = new Float32Array(n);
    let off = 0;
    for (const k of names) {
      all.set(final.get(k)!.data as Float32Array, off);
      off += final.get(k)!.data.length;
    }
    await Deno.writeFile(p.out, new Uint8Array(all.buffer));
  }
  console.log(JSON.stringify({
    rank: comm.rank,
    size: comm.size,
    device: inner.deviceName,
    checksum: paramChecksum(final),
    steps,
    allreduceMs: mpi.allreduceMs ?? 0,
  }));
  await inner.dispose();
}

/** Runs one probe mode on this rank. */
export async function rankProbe(mode: string, args: string[]): Promise<void> {
  const comm = openComm();
  const { rank, size } = comm;
  if (mode === "check") {
    // Rank r contributes (r + 1) * (i + 1): the sum is (i + 1) * size * (size + 1) / 2, exact in float32.
    const n = 1 << 20;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = ((rank + 1) * (i % 1000 + 1)) / 8;
    comm.allreduceSum(a);
    let sumErr = 0;
    for (let i = 0; i < n; i++) sumErr = Math.max(sumErr, Math.abs(a[i] - ((i % 1000 + 1) * size * (size + 1)) / 16));
    const m = new Float32Array([rank, 2 * rank + 1]);
    comm.allreduceMean(m);
    const d = new Float64Array([rank === 0 ? 1e-300 : 0, rank]);
    comm.allreduceSum(d);
    // Parameters start different on each rank; syncParams makes them rank 0's.
    const params = new Map<string, Tensor>([
      ["w", { dtype: "F32", shape: [3, 2], data: Float32Array.from({ length: 6 }, (_, i) => i * 10 + rank) }],
      ["b", { dtype: "F32", shape: [2], data: new Float32Array([rank, -rank]) }],
    ]);
    const before = paramChecksum(params);
    syncParams(comm, params);
    const stats = reduceStats(comm, { loss: rank + 0.5, denominator: 10 });
    let layoutError = "";
    try {
      checkSameLayout(comm, new FlatBuffer([{ name: rank === 0 ? "x" : "y", shape: [2] }]), "gradients");
    } catch (e) {
      layoutError = (e as Error).message.split("\n")[0];
    }
    const gathered = allgatherJson(comm, { rank, text: "é".repeat(rank + 1) });
    comm.barrier();
    console.log(JSON.stringify({
      gathered,
      rank,
      size,
      localRank: comm.localRank,
      sumErr,
      mean: [...m],
      f64: [...d],
      before,
      after: paramChecksum(params),
      w: [...params.get("w")!.data as Float32Array],
      stats,
      layoutError,
    }));
  } else if (mode === "time") {
    const n = Number(args[0] ?? 12_000_000);
    const iters = Number(args[1] ?? 5);
    const buf = new Float32Array(n).fill(1);
    comm.allreduceSum(buf); // warm-up: first call maps shared memory
    const ms: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      comm.allreduceSum(buf);
      ms.push(performance.now() - t0);
    }
    if (rank === 0) console.log(JSON.stringify({ size, floats: n, ms }));
  } else if (mode === "die") {
    const buf = new Float32Array(1 << 16);
    for (let step = 0;; step++) {
      comm.allreduceSum(buf);
      if (step === 3 && rank === size - 1) {
        console.log(JSON.stringify({ rank, dying: Deno.pid }));
        Deno.kill(Deno.pid, "SIGKILL");
      }
    }
  } else if (mode === "train") {
    await trainProbe(comm, JSON.parse(args[0]) as TrainProbe);
  } else {
    throw new TypeError(`Unknown probe mode "${mode}": expected check, time, die or train`);
  }
  comm.finalize();
}

if (import.meta.main) await rankProbe(Deno.args[0] ?? "check", Deno.args.slice(1));
