#!/usr/bin/env bash
# Packs what bench/gpu.sh needs on a bare GPU machine into .gpu/ (ignored by git), from this checkout:
#   .gpu/debs/*.deb           the Vulkan loader and glvnd libraries (Debian amd64 packages, apt-get download)
#   .gpu/deno.xz              the Deno binary of node_modules (npm ci), xz-compressed
#   .gpu/node_modules.tar.xz  the npm packages the bench and the GPU tests load (onnxruntime-node: linux x64 only)
#   .gpu/reference.tar.xz     the albert-tiny reference files the GPU tests read (from ../shared/reference)
# The folder travels with the working tree to the GPU machine (about 55 MiB; the limit is 64 MiB).
# Run from anywhere: `bash bench/gpu_pack.sh` (needs apt-get, xz, tar; about 5 minutes, mostly xz).
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.gpu
mkdir -p "$PACK/debs"

# 1. Vulkan loader + glvnd (what Deno's WebGPU needs beside NVIDIA's driver), as amd64 packages.
if ! ls "$PACK"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d)
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  apt-get "${o[@]}" update -qq
  (cd "$PACK/debs" && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  rm -rf "$lists"
fi

# 2. Deno.
deno_bin=node_modules/@deno/linux-x64-glibc/deno
[ -x "$deno_bin" ] || { echo "error: $deno_bin is missing" >&2; echo "  hint: run npm ci --ignore-scripts first" >&2; exit 1; }
if [ ! -s "$PACK/deno.xz" ] || [ "$deno_bin" -nt "$PACK/deno.xz" ]; then
  xz -T0 -6 -c "$deno_bin" > "$PACK/deno.xz.part" && mv "$PACK/deno.xz.part" "$PACK/deno.xz"
fi

# 3. npm packages: everything but the big ones the GPU run never loads (onnxruntime-web, transformers.js,
#    sharp/img, jieba, deno itself) and onnxruntime-node's binaries for other platforms.
if [ ! -s "$PACK/node_modules.tar.xz" ] || [ package-lock.json -nt "$PACK/node_modules.tar.xz" ]; then
  tar -cf - \
    --exclude='node_modules/@deno' --exclude='node_modules/deno' --exclude='node_modules/onnxruntime-web' --exclude='node_modules/@huggingface' \
    --exclude='node_modules/sharp' --exclude='node_modules/@img' --exclude='node_modules/@node-rs' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' \
    node_modules | xz -T0 -6 > "$PACK/node_modules.tar.xz.part"
  mv "$PACK/node_modules.tar.xz.part" "$PACK/node_modules.tar.xz"
fi

# 4. Reference data of the GPU tests (the WebGPU train_trace replay, forward arrays, the tiny config).
ref=../shared/reference
if [ -d "$ref/albert-tiny" ]; then
  tar -C "$ref/.." -cf - reference/albert-tiny/uer_model.bin reference/albert-tiny/uer_config.json \
    reference/albert-tiny/train_trace/trace.json\
    reference/albert-tiny/forward_trained.safetensors | xz -T0 -6 > "$PACK/reference.tar.xz"
else
  echo "warning: $ref is missing: the GPU run skips its correctness tests" >&2
fi

du -sh "$PACK" "$PACK"/*
total=$(( $(du -sk "$PACK" | cut -f1) + $(git ls-files -z | xargs -0 du -sk 2>/dev/null | awk '{s+=$1} END {print s}') ))
echo "travels: about $((total / 1024)) MiB with the tracked files (limit 64 MiB)"
