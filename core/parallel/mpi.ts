/**
 * MPI for data-parallel pretraining, through Deno's FFI: Open MPI's `libmpi.so.40` is loaded with
 * `Deno.dlopen` and a handful of calls are bound (init, rank/size, in-place all-reduce, broadcast,
 * barrier, abort, finalize). It stands in for what UER-py gets from `torch.distributed` + DDP
 * (`uer/trainer.py` `worker`, `uer/initialize.py` `init_env`): one process per rank, gradients summed
 * across ranks between the gradient half and the update half of the training graph (DESIGN.md §5).
 * `openComm()` returns an MPI communicator when the process was started by `mpirun` (the
 * `OMPI_COMM_WORLD_SIZE` environment variable is set) and a one-rank local communicator otherwise,
 * so the training loop needs no special case for single-process runs.
 * Only Open MPI's ABI is supported: its handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`) are the
 * addresses of exported statics (`ompi_mpi_comm_world`, …) and `MPI_IN_PLACE` is `(void*)1`.
 * Not browser compatible: uses `Deno.dlopen` and `Deno.env` (worker/process glue under `core/`).
 * @module
 */

/** The communicator the training loop talks to: MPI's world, or a single local rank. */
export interface Comm {
  /** This process's rank in `0..size-1`. */
  readonly rank: number;
  /** Number of ranks in the job. */
  readonly size: number;
  /** Rank among the ranks on this node (for `--gpu_ranks`). */
  readonly localRank: number;
  /** Number of ranks on this node. */
  readonly localSize: number;
  /** True when ranks talk through MPI (false for the one-rank local communicator). */
  readonly isMpi: boolean;
  /** Sums `buf` element-wise over all ranks, in place; every rank gets the sum. */
  allreduceSum(buf: Float32Array | Float64Array): void;
  /** Averages `buf` over all ranks in place (sum, then scale by 1/size, as DDP does). */
  allreduceMean(buf: Float32Array): void;
  /** Copies `buf` of rank `root` into `buf` of every other rank. */
  broadcast(buf: Float32Array | Float64Array | Int32Array | Uint8Array, root?: number): void;
  /** Waits until every rank reaches this call. */
  barrier(): void;
  /** Ends the whole job at once (all ranks) with `code`. */
  abort(code: number): never;
  /** Shuts MPI down; no communication after this. Safe to call twice. */
  finalize(): void;
}

/** Ranks as `mpirun` announces them to each process, or null outside `mpirun`. */
export interface MpiEnv {
  rank: number;
  size: number;
  localRank: number;
  localSize: number;
}

/**
 * Reads the rank layout Open MPI's launcher puts in each process's environment
 * (`OMPI_COMM_WORLD_SIZE`, `…_RANK`, `…_LOCAL_RANK`, `…_LOCAL_SIZE`); null when not under `mpirun`.
 *
 * @example
 * ```ts
 * const env = mpiEnv(Deno.env.toObject());
 * if (env) console.log(`rank ${env.rank} of ${env.size}`);
 * ```
 */
export function mpiEnv(env: Record<string, string | undefined>): MpiEnv | null {
  const size = env.OMPI_COMM_WORLD_SIZE;
  if (size === undefined || size === "") return null;
  const int = (v: string | undefined, dflt: number) => (v === undefined || v === "" ? dflt : Number(v));
  const out = {
    size: int(size, 1),
    rank: int(env.OMPI_COMM_WORLD_RANK, 0),
    localRank: int(env.OMPI_COMM_WORLD_LOCAL_RANK, 0),
    localSize: int(env.OMPI_COMM_WORLD_LOCAL_SIZE, 1),
  };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`Cannot read the MPI rank layout: ${k} is "${String(v)}" in the mpirun environment`);
    }
  }
  return out;
}

/** True when this process was started by Open MPI's `mpirun`. */
export function underMpirun(): boolean {
  return mpiEnv(Deno.env.toObject()) !== null;
}

/** The one-rank communicator of a plain (non-MPI) run: every collective is a no-op. */
export class LocalComm implements Comm {
  readonly rank = 0;
  readonly size = 1;
  readonly localRank = 0;
  readonly localSize = 1;
  readonly isMpi = false;
  allreduceSum(_buf: Float32Array | Float64Array): void {}
  allreduceMean(_buf: Float32Array): void {}
  broadcast(_buf: Float32Array | Float64Array | Int32Array | Uint8Array, _root = 0): void {}
  barrier(): void {}
  abort(code: number): never {
    Deno.exit(code);
  }
  finalize(): void {}
}

/** Library names tried in order; Debian's `libopenmpi3` ships `libmpi.so.40` (Open MPI 4.x). */
export const LIBMPI_NAMES = ["libmpi.so.40", "libmpi.so"];

/** The apt packages that provide `mpirun` and `libmpi.so.40`. */
export const MPI_PACKAGES = "openmpi-bin libopenmpi-dev";

const SYMBOLS = {
  MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  MPI_Initialized: { parameters: ["buffer"], result: "i32" },
  MPI_Finalized: { parameters: ["buffer"], result: "i32" },
  MPI_Comm_rank: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Comm_size: { parameters: ["pointer", "buffer"], result: "i32" },
  // sendbuf is MPI_IN_PLACE ((void*)1), recvbuf the JS buffer
  MPI_Allreduce: {
    parameters: ["pointer", "buffer", "i32", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  MPI_Bcast: { parameters: ["buffer", "i32", "pointer", "i32", "pointer"], result: "i32" },
  MPI_Barrier: { parameters: ["pointer"], result: "i32" },
  MPI_Abort: { parameters: ["pointer", "i32"], result: "i32" },
  MPI_Finalize: { parameters: [], result: "i32" },
  ompi_mpi_comm_world: { type: "pointer" },
  ompi_mpi_float: { type: "pointer" },
  ompi_mpi_double: { type: "pointer" },
  ompi_mpi_int: { type: "pointer" },
  ompi_mpi_byte: { type: "pointer" },
  ompi_mpi_op_sum: { type: "pointer" },
} as const;

type MpiLib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** MPI_THREAD_SERIALIZED: one thread at a time calls MPI (the JS thread). */
const MPI_THREAD_SERIALIZED = 2;
/** Largest element count one MPI call takes (`int count`); bigger buffers go in chunks. */
const MAX_COUNT = 1 << 28;

/**
 * Asks Open MPI's `tuned` collectives for the segmented ring all-reduce with 1 MB segments unless the
 * user chose an algorithm. Measured on the 2-core dev box (2 ranks, 13.4M floats = 53 MB, shared
 * memory, Open MPI 4.1.4): Open MPI's default choice took 200–400 ms per call; the plain ring (4)
 * 12–16 ms alone but 50–700 ms inside training steps, because it mallocs a scratch buffer of half the
 * message (27 MB) in every call, which glibc serves from fresh pages whenever the heap was trimmed or
 * remapped in between (the training step's own allocations do that; page faults cost ~60 µs each
 * here). The segmented ring (5) needs only segment-sized scratch: 13 ms alone and 14–33 ms per step.
 * MCA parameters are read from the environment at `MPI_Init`, so setting them in-process before
 * init is enough. The sum of two ranks is the same in any order; for more ranks only the float
 * rounding order changes (every rank still gets the same values).
 */
function preferRingAllreduce(): void {
  if (Deno.env.get("OMPI_MCA_coll_tuned_allreduce_algorithm") !== undefined) return;
  Deno.env.set("OMPI_MCA_coll_tuned_use_dynamic_rules", "1");
  Deno.env.set("OMPI_MCA_coll_tuned_allreduce_algorithm", "5");
  Deno.env.set("OMPI_MCA_coll_tuned_allreduce_algorithm_segmentsize", String(1 << 20));
}

/**
 * Loads Open MPI's library with `Deno.dlopen`. A missing library is a one-line error naming the apt
 * packages to install.
 */
export function loadLibmpi(paths: string[] = LIBMPI_NAMES): MpiLib {
  let last = "";
  for (const p of paths) {
    try {
      return Deno.dlopen(p, SYMBOLS);
    } catch (e) {
      last = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    }
  }
  throw new Deno.errors.NotFound(
    `Cannot load Open MPI "${paths[0]}": ${last}\n  hint: install it with \`apt-get install -y ${MPI_PACKAGES}\``,
  );
}

/** MPI's world communicator over Open MPI, bound through Deno's FFI. */
export class MpiComm implements Comm {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  readonly isMpi = true;
  /** Milliseconds spent inside all-reduce calls since creation (for reports and the bench). */
  allreduceMs = 0;
  /** Milliseconds spent inside barriers since creation (waiting for slower ranks). */
  barrierMs = 0;
  #lib: MpiLib;
  #world: Deno.PointerValue;
  #finalized = false;

  constructor(env: MpiEnv, libPaths?: string[]) {
    preferRingAllreduce();
    this.#lib = loadLibmpi(libPaths);
    const s = this.#lib.symbols;
    this.#world = s.ompi_mpi_comm_world;
    const flag = new Int32Array(1);
    this.#check(s.MPI_Initialized(flag), "MPI_Initialized");
    if (flag[0] === 0) {
      const provided = new Int32Array(1);
      this.#check(s.MPI_Init_thread(null, null, MPI_THREAD_SERIALIZED, provided), "MPI_Init_thread");
    }
    const out = new Int32Array(1);
    this.#check(s.MPI_Comm_rank(this.#world, out), "MPI_Comm_rank");
    this.rank = out[0];
    this.#check(s.MPI_Comm_size(this.#world, out), "MPI_Comm_size");
    this.size = out[0];
    this.localRank = env.localRank;
    this.localSize = env.localSize;
  }

  #check(rc: number, what: string): void {
    // Open MPI's default handler (MPI_ERRORS_ARE_FATAL) aborts before returning; this catches the rest.
    if (rc !== 0) throw new Error(`MPI call ${what} failed on rank ${this.rank ?? "?"} with error code ${rc}`);
  }

  #live(what: string): void {
    if (this.#finalized) throw new Error(`Cannot call ${what}: MPI was finalized on this rank`);
  }

  allreduceSum(buf: Float32Array | Float64Array): void {
    this.#live("allreduceSum");
    const s = this.#lib.symbols;
    const type = buf instanceof Float32Array ? s.ompi_mpi_float : s.ompi_mpi_double;
    const inPlace = Deno.UnsafePointer.create(1n);
    const t0 = performance.now();
    for (let off = 0; off < buf.length; off += MAX_COUNT) {
      const part = buf.subarray(off, Math.min(buf.length, off + MAX_COUNT));
      this.#check(
        s.MPI_Allreduce(inPlace, part, part.length, type, s.ompi_mpi_op_sum, this.#world),
        "MPI_Allreduce",
      );
    }
    this.allreduceMs += performance.now() - t0;
  }

  allreduceMean(buf: Float32Array): void {
    this.allreduceSum(buf);
    const scale = 1 / this.size;
    for (let i = 0; i < buf.length; i++) buf[i] *= scale;
  }

  broadcast(buf: Float32Array | Float64Array | Int32Array | Uint8Array, root = 0): void {
    this.#live("broadcast");
    const s = this.#lib.symbols;
    // Bytes are enough: every rank runs the same build, so the element layout matches.
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let off = 0; off < bytes.length; off += MAX_COUNT) {
      const part = bytes.subarray(off, Math.min(bytes.length, off + MAX_COUNT));
      this.#check(s.MPI_Bcast(part, part.length, s.ompi_mpi_byte, root, this.#world), "MPI_Bcast");
    }
  }

  barrier(): void {
    this.#live("barrier");
    const t0 = performance.now();
    this.#check(this.#lib.symbols.MPI_Barrier(this.#world), "MPI_Barrier");
    this.barrierMs += performance.now() - t0;
  }

  abort(code: number): never {
    this.#lib.symbols.MPI_Abort(this.#world, code);
    Deno.exit(code);
  }

  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    const flag = new Int32Array(1);
    this.#lib.symbols.MPI_Finalized(flag);
    if (flag[0] === 0) this.#check(this.#lib.symbols.MPI_Finalize(), "MPI_Finalize");
  }
}

/**
 * Opens the job's communicator: MPI's world under `mpirun`, a one-rank `LocalComm` otherwise.
 *
 * @example
 * ```ts
 * const comm = openComm();
 * const grads = new Float32Array(1024);
 * comm.allreduceMean(grads); // averaged over all ranks
 * comm.finalize();
 * ```
 */
export function openComm(opts: { libPaths?: string[] } = {}): Comm {
  const env = mpiEnv(Deno.env.toObject());
  return env === null ? new LocalComm() : new MpiComm(env, opts.libPaths);
}
