/**
 * `--gpu_ranks` on WebGPU: which GPU a rank's `navigator.gpu` gives it. Deno's WebGPU (wgpu-core)
 * honours no device index: `requestAdapter` takes only a power preference and `DENO_WEBGPU_BACKEND`
 * (read in Deno's `ext/webgpu/lib.rs`), and wgpu-core picks the first adapter of the preferred type. On
 * Linux the choice is made one level down, in the Vulkan loader, by Mesa's implicit device-select layer
 * (`VK_LAYER_MESA_device_select`, in Debian's `mesa-vulkan-drivers`; it also fronts NVIDIA's driver):
 * at every `vkEnumeratePhysicalDevices` it reads `MESA_VK_DEVICE_SELECT=<vendor>:<device>` (hex ids) or
 * `DRI_PRIME=pci-<domain>_<bus>_<dev>_<func>` (for identical GPUs), puts that device first, and with
 * `MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE=1` exposes only it. So a rank sets those variables in its
 * own environment before it asks for an adapter.
 *
 * GPU index i (UER-py's CUDA ordinal in `gpu_ranks`) is the i-th hardware Vulkan device in PCI bus
 * order (what `nvidia-smi` and `CUDA_DEVICE_ORDER=PCI_BUS_ID` number), listed here through the Vulkan
 * loader itself (`libvulkan.so.1` via FFI: vkEnumeratePhysicalDevices, vkGetPhysicalDeviceProperties2
 * with the PCI-bus chain). Not browser compatible (FFI, environment).
 * @module
 */

/** A Vulkan physical device. */
export interface VkDevice {
  /** Position in the loader's enumeration. */
  index: number;
  vendorId: number;
  deviceId: number;
  name: string;
  type: "other" | "integrated" | "discrete" | "virtual" | "cpu";
  /** PCI location, when the driver reports VK_EXT_pci_bus_info. */
  pci?: { domain: number; bus: number; device: number; fn: number };
}

/** What the loader offers: the devices and whether the device-select layer is installed. */
export interface VkInventory {
  devices: VkDevice[];
  selectLayer: boolean;
}

const TYPES: VkDevice["type"][] = ["other", "integrated", "discrete", "virtual", "cpu"];
const SELECT_LAYER = "VK_LAYER_MESA_device_select";

/** Lists the Vulkan devices through the loader, or returns undefined when no Vulkan loader can be opened. */
export function vulkanInventory(): VkInventory | undefined {
  let lib;
  try {
    lib = Deno.dlopen(
      "libvulkan.so.1",
      {
        vkCreateInstance: { parameters: ["buffer", "pointer", "buffer"], result: "i32" },
        vkDestroyInstance: { parameters: ["pointer", "pointer"], result: "void" },
        vkEnumeratePhysicalDevices: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
        vkGetPhysicalDeviceProperties2: { parameters: ["pointer", "buffer"], result: "void" },
        vkEnumerateInstanceLayerProperties: { parameters: ["buffer", "buffer"], result: "i32" },
      } as const,
    );
  } catch {
    return undefined;
  }
  try {
    const s = lib.symbols;
    const n = new Uint32Array(1);
    s.vkEnumerateInstanceLayerProperties(n, null);
    const layers = new Uint8Array(520 * n[0]); // VkLayerProperties: name[256], 2 × u32, description[256]
    s.vkEnumerateInstanceLayerProperties(n, layers);
    let selectLayer = false;
    for (let i = 0; i < n[0]; i++) if (cString(layers, i * 520, 256) === SELECT_LAYER) selectLayer = true;
    // The device-select layer must not reorder or hide what we list: ask the loader without it.
    const saved = Deno.env.get("NODEVICE_SELECT");
    Deno.env.set("NODEVICE_SELECT", "1");
    try {
      // VkApplicationInfo (apiVersion 1.1, for the properties2 query) and VkInstanceCreateInfo.
      const app = new Uint8Array(48);
      new DataView(app.buffer).setUint32(44, (1 << 22) | (1 << 12), true);
      const info = new Uint8Array(64);
      const dv = new DataView(info.buffer);
      dv.setUint32(0, 1, true); // VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
      dv.setBigUint64(24, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(app))), true);
      const out = new BigUint64Array(1);
      if (s.vkCreateInstance(info, null, new Uint8Array(out.buffer)) !== 0) return { devices: [], selectLayer };
      const instance = Deno.UnsafePointer.create(out[0]);
      try {
        const count = new Uint32Array(1);
        s.vkEnumeratePhysicalDevices(instance, count, null);
        const handles = new BigUint64Array(count[0]);
        s.vkEnumeratePhysicalDevices(instance, count, new Uint8Array(handles.buffer));
        const devices: VkDevice[] = [];
        handles.forEach((h, index) => {
          // VkPhysicalDeviceProperties2 { sType, pNext, properties[824] } → VkPhysicalDevicePCIBusInfoPropertiesEXT.
          const pci = new Uint8Array(32);
          const pv = new DataView(pci.buffer);
          pv.setUint32(0, 1000212000, true);
          for (let o = 16; o < 32; o += 4) pv.setUint32(o, 0xffffffff, true);
          const props = new Uint8Array(16 + 824 + 8);
          const v = new DataView(props.buffer);
          v.setUint32(0, 1000059001, true);
          v.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(pci))), true);
          s.vkGetPhysicalDeviceProperties2(Deno.UnsafePointer.create(h), props);
          const p = 16;
          const dev: VkDevice = {
            index,
            vendorId: v.getUint32(p + 8, true),
            deviceId: v.getUint32(p + 12, true),
            type: TYPES[v.getUint32(p + 16, true)] ?? "other",
            name: cString(props, p + 20, 256),
          };
          if (pv.getUint32(16, true) !== 0xffffffff) {
            dev.pci = {
              domain: pv.getUint32(16, true),
              bus: pv.getUint32(20, true),
              device: pv.getUint32(24, true),
              fn: pv.getUint32(28, true),
            };
          }
          devices.push(dev);
        });
        return { devices, selectLayer };
      } finally {
        s.vkDestroyInstance(instance, null);
      }
    } finally {
      if (saved === undefined) Deno.env.delete("NODEVICE_SELECT");
      else Deno.env.set("NODEVICE_SELECT", saved);
    }
  } finally {
    lib.close();
  }
}

function cString(b: Uint8Array, at: number, max: number): string {
  let end = at;
  while (end < at + max && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(at, end));
}

/** The hardware GPUs in the order `--gpu_ranks` numbers them (PCI bus order; enumeration order without bus info). */
export function numberedGpus(devices: readonly VkDevice[]): VkDevice[] {
  const key = (d: VkDevice) =>
    d.pci ? ((d.pci.domain * 256 + d.pci.bus) * 32 + d.pci.device) * 8 + d.pci.fn : 2 ** 40 + d.index;
  return devices.filter((d) => d.type !== "cpu").sort((a, b) => key(a) - key(b));
}

const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");

/** A device as a user recognises it: `0: NVIDIA H100 80GB HBM3 (10de:2330, pci 0000:1b:00.0)`. */
export function describeGpu(d: VkDevice, i: number): string {
  const pci = d.pci ? `, pci ${hex(d.pci.domain, 4)}:${hex(d.pci.bus, 2)}:${hex(d.pci.device, 2)}.${d.pci.fn}` : "";
  return `${i}: ${d.name} (${hex(d.vendorId, 4)}:${hex(d.deviceId, 4)}${pci})`;
}

/**
 * The environment that makes the device-select layer give this process GPU `gpu` (see the module
 * doc), or an error naming the flag when the machine has no such GPU or cannot tell it apart.
 *
 * @example
 * ```ts
 * const { env, device } = gpuSelection(vulkanInventory()!, 1, "--gpu_ranks 0 1");
 * for (const [k, v] of Object.entries(env)) Deno.env.set(k, v); // before navigator.gpu.requestAdapter()
 * ```
 */
export function gpuSelection(
  inv: VkInventory,
  gpu: number,
  flag: string,
): { env: Record<string, string>; device: VkDevice } {
  const gpus = numberedGpus(inv.devices);
  if (gpu >= gpus.length) {
    const have = gpus.length ? `: ${gpus.map(describeGpu).join("; ")}` : " (only software devices)";
    throw new RangeError(
      `Cannot use ${flag}: GPU ${gpu} does not exist, this machine has ${gpus.length} GPU${
        gpus.length === 1 ? "" : "s"
      }${have}` +
        `\n  hint: pass indexes below ${gpus.length} (one per rank, as CUDA numbers the GPUs)`,
    );
  }
  const d = gpus[gpu];
  if (gpus.length > 1 && !inv.selectLayer) {
    throw new RangeError(
      `Cannot use ${flag}: Deno's WebGPU takes the first GPU unless Mesa's device-select Vulkan layer chooses (${SELECT_LAYER} is not installed)` +
        `\n  hint: install Debian's mesa-vulkan-drivers (it provides the layer), or run one rank per machine`,
    );
  }
  const twins = gpus.filter((x) => x.vendorId === d.vendorId && x.deviceId === d.deviceId).length;
  const env: Record<string, string> = { MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: "1" };
  if (twins > 1) {
    if (!d.pci) {
      throw new RangeError(
        `Cannot use ${flag}: ${twins} identical GPUs (${d.name}) and the driver reports no PCI bus to tell them apart` +
          `\n  hint: run one rank per GPU with a driver that has VK_EXT_pci_bus_info`,
      );
    }
    env.DRI_PRIME = `pci-${hex(d.pci.domain, 4)}_${hex(d.pci.bus, 2)}_${hex(d.pci.device, 2)}_${d.pci.fn}`;
  } else {
    env.MESA_VK_DEVICE_SELECT = `${hex(d.vendorId, 4)}:${hex(d.deviceId, 4)}`;
  }
  return { env, device: d };
}
