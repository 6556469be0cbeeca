#!/usr/bin/env bash
# Every GPU measurement of issue #14 in one run (≤ 8 minutes), on a bare GPU machine with the working
# tree and .gpu/ (made by bench/gpu_pack.sh) copied over. From the repository root:
#   bash bench/gpu.sh [--json FILE] [--profile]    (other flags go to bench/gpu_bench.ts)
# It installs the Vulkan loader from .gpu/debs when the machine has none, unpacks Deno and the npm
# packages, checks the executor on the GPU against the references (the WebGPU tests: UER-py's training
# trace, the forward arrays, onnxruntime-node on the same graphs, the step counts), then runs
# bench/gpu_bench.ts (uer-ts WebGPU vs PyTorch CUDA on the same GPU; prints a table and the goals).
# With --smoke it runs tiny shapes (to check the script where there is no GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
left() { echo $((470 - ($(date +%s) - start))); }
PACK=.gpu
[ -d "$PACK" ] || { echo "error: $PACK/ is missing" >&2; echo "  hint: run bash bench/gpu_pack.sh on the machine you copy from" >&2; exit 1; }
smoke=0
for a in "$@"; do [ "$a" = "--smoke" ] && smoke=1; done

# Vulkan loader and glvnd (the device machines' driver ships without them).
if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  for f in "$PACK"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1 &&
  [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi

# Deno and the npm packages.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
xz -dc "$PACK/deno.xz" > "$bin/deno" && chmod +x "$bin/deno"
DENO="$bin/deno"
[ -d node_modules/commander ] || tar -xJf "$PACK/node_modules.tar.xz"
if [ ! -d ../shared/reference/albert-tiny ] && [ -f "$PACK/reference.tar.xz" ]; then
  mkdir -p ../shared && tar -xJf "$PACK/reference.tar.xz" -C ../shared
fi
"$DENO" --version | head -1
command -v nvidia-smi >/dev/null && nvidia-smi -L
python=python3
[ -x /usr/bin/python3 ] && ! python3 -c 'import torch' 2>/dev/null && python=/usr/bin/python3

# Correctness on this GPU first (a kernel that is wrong here, not on llvmpipe, shows up before the figures).
if [ "$smoke" = 0 ] && [ -d ../shared/reference/albert-tiny ]; then
  echo "== executor tests on this GPU"
  timeout 150 "$DENO" test -A --no-check core/webgpu/ tests/train_trace_test.ts --filter "WebGPU|executor|GraphSession|optimizer step|dispatches" 2>&1 |
    grep -E "^(ok|FAILED)|\.\.\. |worst|dispatches|error" | grep -v XDG_RUNTIME_DIR
fi

echo "== bench ($(left) s left)"
timeout $(($(left) - 5)) "$DENO" run -A --no-check bench/gpu_bench.ts --python "$python" --budget-s $(($(left) - 20)) "$@" 2>&1 |
  grep -v XDG_RUNTIME_DIR
echo "gpu.sh took $(($(date +%s) - start)) s"
