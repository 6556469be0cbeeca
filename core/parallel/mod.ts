/**
 * Data-parallel pretraining over MPI (DESIGN.md §5), the uer-ts counterpart of UER-py's torch DDP
 * (`uer/trainer.py`): the communicator (`mpi.ts`, Open MPI through Deno's FFI), the single-machine
 * launcher (`launch.ts`, `--world_size N` without `mpirun`) and the DDP semantics
 * (`data_parallel.ts`: one flat gradient all-reduce per step, parameter broadcast, rank-summed reports).
 * Not browser compatible: MPI is loaded with `Deno.dlopen` and ranks are spawned with `Deno.Command`.
 * @module
 */
export * from "./mpi.ts";
export * from "./launch.ts";
export * from "./data_parallel.ts";
