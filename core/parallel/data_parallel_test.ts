/**
 * Unit tests of the data-parallel glue that need no MPI: gradient packing, checksums, report sums on
 * one rank, the `--gpu_ranks` device mapping, the `mpirun` command line and its failure report, and
 * the missing-library error. The multi-rank behaviour is tested under `mpirun` in tests/dist_test.ts.
 * @module
 */
import assert from "node:assert/strict";
import type { Tensor } from "../tensor.ts";
import {
  averageGradients,
  FlatBuffer,
  launchFailure,
  paramChecksum,
  rankDevice,
  reduceStats,
  startDistributed,
} from "./data_parallel.ts";
import { describeGpu, gpuSelection, numberedGpus, type VkDevice, vulkanInventory } from "./gpu_select.ts";
import { loadLibmpi, LocalComm, mpiEnv } from "./mpi.ts";
import { mpirunArgv, parseMpirunFailure } from "./launch.ts";

const t = (shape: number[], f: (i: number) => number): Tensor => ({
  dtype: "F32",
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)),
});

Deno.test("FlatBuffer.pack() lays gradients back to back and views() reads them back without copying", () => {
  const grads = new Map([["w", t([2, 3], (i) => i + 1)], ["b", t([3], (i) => -i)]]);
  const flat = new FlatBuffer(FlatBuffer.specsOf(grads));
  assert.deepEqual(flat.offsets, [0, 6]);
  assert.deepEqual([...flat.pack(grads)], [1, 2, 3, 4, 5, 6, -0, -1, -2]);
  const v = flat.views();
  assert.deepEqual(v.get("b")!.shape, [3]);
  flat.data[6] = 42;
  assert.equal((v.get("b")!.data as Float32Array)[0], 42);
});

Deno.test("FlatBuffer.pack() names a missing or wrongly sized gradient", () => {
  const flat = new FlatBuffer([{ name: "w", shape: [2, 2] }, { name: "b", shape: [2] }]);
  assert.throws(() => flat.pack(new Map([["w", t([2, 2], () => 0)]])), /"b" is missing/);
  assert.throws(
    () => flat.pack(new Map([["w", t([2, 2], () => 0)], ["b", t([3], () => 0)]])),
    /"b" has 3 values, expected 2/,
  );
});

Deno.test("averageGradients() on one rank returns the gradients unchanged", () => {
  const grads = new Map([["w", t([4], (i) => i / 3)]]);
  const flat = new FlatBuffer(FlatBuffer.specsOf(grads));
  const out = averageGradients(new LocalComm(), flat, grads);
  assert.deepEqual([...out.get("w")!.data as Float32Array], [...grads.get("w")!.data as Float32Array]);
  assert.deepEqual(reduceStats(new LocalComm(), { loss: 1.5 }), { loss: 1.5 });
});

Deno.test("paramChecksum() changes with any single bit and not with map order", () => {
  const a = new Map([["w", t([3], (i) => i)], ["b", t([1], () => 1)]]);
  const b = new Map([["b", t([1], () => 1)], ["w", t([3], (i) => i)]]);
  assert.equal(paramChecksum(a), paramChecksum(b));
  const bits = new Uint32Array((b.get("w")!.data as Float32Array).buffer);
  bits[2] ^= 1; // one ulp
  assert.notEqual(paramChecksum(a), paramChecksum(b));
});

Deno.test("mpiEnv() reads Open MPI's rank layout and is null outside mpirun", () => {
  assert.equal(mpiEnv({}), null);
  assert.deepEqual(
    mpiEnv({
      OMPI_COMM_WORLD_SIZE: "4",
      OMPI_COMM_WORLD_RANK: "3",
      OMPI_COMM_WORLD_LOCAL_RANK: "1",
      OMPI_COMM_WORLD_LOCAL_SIZE: "2",
    }),
    { size: 4, rank: 3, localRank: 1, localSize: 2 },
  );
  assert.throws(() => mpiEnv({ OMPI_COMM_WORLD_SIZE: "x" }), /size is "NaN"/);
});

Deno.test("loadLibmpi() names the apt packages when libmpi is missing", () => {
  assert.throws(
    () => loadLibmpi(["libmpi-does-not-exist.so.40"]),
    (e: Error) =>
      e instanceof Deno.errors.NotFound && /^Cannot load Open MPI "libmpi-does-not-exist.so.40": /.test(e.message) &&
      e.message.includes("apt-get install -y openmpi-bin libopenmpi-dev") && e.message.split("\n").length === 2,
  );
});

Deno.test("mpirunArgv() adds --allow-run-as-root only for root and keeps the rank command last", () => {
  const rank = ["/x/deno", "run", "-A", "/r/cli/main.ts", "pretrain", "--world_size", "2"];
  const root = mpirunArgv({ worldSize: 2, rankArgv: rank, isRoot: true });
  assert.deepEqual(root.slice(0, 2), ["mpirun", "--allow-run-as-root"]);
  assert.deepEqual(root.slice(-rank.length - 2), ["-np", "2", ...rank]);
  assert.ok(!mpirunArgv({ worldSize: 2, rankArgv: rank, isRoot: false }).includes("--allow-run-as-root"));
  assert.throws(() => mpirunArgv({ worldSize: 0, rankArgv: rank, isRoot: false }), /--world_size 0/);
});

Deno.test("parseMpirunFailure() finds the failed rank in both of mpirun's report styles", () => {
  const exitStyle = "the job to be terminated. The first process to do so was:\n\n  Process name: [[9955,1],1]\n" +
    "  Exit code:    1\n";
  assert.deepEqual(parseMpirunFailure(exitStyle), { failedRank: 1, how: "exit code 1" });
  const signalStyle = "mpirun noticed that process rank 3 with PID 1234 on node box exited on signal 9 (Killed).";
  assert.deepEqual(parseMpirunFailure(signalStyle), { failedRank: 3, how: "signal 9 (Killed)" });
  assert.deepEqual(parseMpirunFailure("nothing"), {});
  const err = launchFailure({ code: 137, failedRank: 3, how: "signal 9 (Killed)" }, 4)!;
  assert.match(err.message, /^Data-parallel job stopped: rank 3 of 4 ended with signal 9 \(Killed\)/);
  assert.equal(launchFailure({ code: 0 }, 4), null);
  assert.match(launchFailure({ code: 1, terminated: true }, 4)!.message, /^Data-parallel job stopped by SIGTERM/);
});

const cpuOnly = () => Promise.resolve({ available: true, fallback: true, description: "llvmpipe" });
const gpu = () => Promise.resolve({ available: true, fallback: false, description: "nvidia H100" });

Deno.test("rankDevice() refuses --gpu_ranks with --device webgpu/auto where no hardware GPU exists", async () => {
  for (const device of ["webgpu", "auto"] as const) {
    await assert.rejects(
      rankDevice({ device, gpuRanks: [0, 1], localRank: 0, localSize: 2 }, cpuOnly),
      (e: Error) =>
        e instanceof RangeError && e.message.startsWith("Cannot use --gpu_ranks 0 1: no hardware GPU here") &&
        e.message.includes("--device cpu"),
    );
  }
  const none = () => Promise.resolve({ available: false, fallback: false, description: "navigator.gpu is missing" });
  await assert.rejects(rankDevice({ device: "auto", gpuRanks: [0], localRank: 0, localSize: 1 }, none), /--gpu_ranks/);
});

Deno.test("rankDevice() runs ranks on CPU with --device cpu and maps gpu_ranks[local_rank] on a GPU", async () => {
  const cpu = await rankDevice({ device: "cpu", gpuRanks: [0, 1], localRank: 1, localSize: 2 }, cpuOnly);
  assert.equal(cpu.device, "cpu");
  assert.match(cpu.note!, /unused/);
  assert.deepEqual(await rankDevice({ device: "cpu", gpuRanks: [], localRank: 1, localSize: 2 }, cpuOnly), {
    device: "cpu",
  });
  const g = await rankDevice({ device: "auto", gpuRanks: [0, 0], localRank: 1, localSize: 2 }, gpu, () => undefined);
  assert.deepEqual(g, { device: "webgpu", gpu: 0, note: undefined });
  await assert.rejects(
    rankDevice({ device: "cpu", gpuRanks: [0], localRank: 0, localSize: 2 }, gpu),
    /one device index per rank/,
  );
});

Deno.test("startDistributed() under mpirun -np 2 refuses a different --world_size before touching MPI", async () => {
  const keys = ["OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"];
  const saved = keys.map((k) => Deno.env.get(k));
  Deno.env.set("OMPI_COMM_WORLD_SIZE", "2");
  Deno.env.set("OMPI_COMM_WORLD_RANK", "0");
  try {
    await assert.rejects(
      startDistributed({ worldSize: 4, gpuRanks: [], device: "cpu" }),
      /^RangeError: Cannot train with --world_size 4: mpirun started 2 ranks\n {2}hint: pass -np 4 to mpirun/,
    );
  } finally {
    keys.forEach((k, i) => saved[i] === undefined ? Deno.env.delete(k) : Deno.env.set(k, saved[i]!));
  }
});

const h100 = (bus: number, index: number): VkDevice => ({
  index,
  vendorId: 0x10de,
  deviceId: 0x2330,
  name: "NVIDIA H100 80GB HBM3",
  type: "discrete",
  pci: { domain: 0, bus, device: 0, fn: 0 },
});
const llvmpipe: VkDevice = { index: 0, vendorId: 0x10005, deviceId: 0, name: "llvmpipe", type: "cpu" };

Deno.test("rankDevice() gives each rank its own GPU through the device-select layer (PCI order, twins by bus)", async () => {
  // Enumeration order 0x3b, 0x1b: --gpu_ranks numbers by PCI bus, as nvidia-smi does.
  const two = () => ({ devices: [llvmpipe, h100(0x3b, 1), h100(0x1b, 2)], selectLayer: true });
  const r0 = await rankDevice({ device: "webgpu", gpuRanks: [0, 1], localRank: 0, localSize: 2 }, gpu, two);
  const r1 = await rankDevice({ device: "webgpu", gpuRanks: [0, 1], localRank: 1, localSize: 2 }, gpu, two);
  assert.deepEqual(r0.env, { MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: "1", DRI_PRIME: "pci-0000_1b_00_0" });
  assert.deepEqual(r1.env, { MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: "1", DRI_PRIME: "pci-0000_3b_00_0" });
  assert.equal(r1.gpuName, "1: NVIDIA H100 80GB HBM3 (10de:2330, pci 0000:3b:00.0)");
  // Distinct models: by vendor:device id.
  const mixed = () => ({ devices: [{ ...h100(0x1b, 0), deviceId: 0x2335 }, h100(0x3b, 1)], selectLayer: true });
  const m = await rankDevice({ device: "auto", gpuRanks: [1], localRank: 0, localSize: 1 }, gpu, mixed);
  assert.equal(m.env!.MESA_VK_DEVICE_SELECT, "10de:2330");
});

Deno.test("rankDevice() names the flag, the index and the machine's GPUs when a rank's GPU does not exist", async () => {
  const one = () => ({ devices: [llvmpipe, h100(0x1b, 1)], selectLayer: true });
  await assert.rejects(
    rankDevice({ device: "webgpu", gpuRanks: [0, 1], localRank: 0, localSize: 2 }, gpu, one),
    (e: Error) =>
      e instanceof RangeError &&
      e.message.startsWith(
        "Cannot use --gpu_ranks 0 1: GPU 1 does not exist, this machine has 1 GPU: 0: NVIDIA H100",
      ) &&
      /\n {2}hint: pass indexes below 1/.test(e.message),
  );
  // Several GPUs but no device-select layer: Deno's WebGPU cannot be pointed at one.
  const noLayer = () => ({ devices: [h100(0x1b, 0), h100(0x3b, 1)], selectLayer: false });
  await assert.rejects(
    rankDevice({ device: "webgpu", gpuRanks: [0, 1], localRank: 1, localSize: 2 }, gpu, noLayer),
    /VK_LAYER_MESA_device_select is not installed\)\n {2}hint: install Debian.s mesa-vulkan-drivers/,
  );
});

Deno.test("vulkanInventory() lists this machine's Vulkan devices through the loader; a software device is no GPU", () => {
  const inv = vulkanInventory();
  if (!inv) {
    console.log("no Vulkan loader here: nothing to list");
    return;
  }
  for (const d of inv.devices) {
    assert.ok(d.name.length > 0 && Number.isInteger(d.vendorId));
    assert.ok(["other", "integrated", "discrete", "virtual", "cpu"].includes(d.type));
  }
  const soft = inv.devices.filter((d) => d.type === "cpu");
  if (soft.some((d) => d.name.startsWith("llvmpipe"))) {
    assert.deepEqual(numberedGpus(soft), []);
    assert.throws(
      () => gpuSelection({ ...inv, devices: soft }, 0, "--gpu_ranks 0"),
      /GPU 0 does not exist.*only software/,
    );
  }
  console.log(`${inv.devices.map(describeGpu).join("; ")}; device-select layer: ${inv.selectLayer}`);
});
