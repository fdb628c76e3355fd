#!/usr/bin/env bash
# Compile-checks the CUDA sources on a machine without a GPU (DESIGN §3):
#  1. every torch-free .cu under csrc/kernels/cuda with `nvcc -c` for sm_90 and sm_80 (the
#     architectures setup.py builds when no GPU is visible), with setup.py's nvcc flags;
#  2. the ATen glue under csrc/torch/cuda with `g++ -fsyntax-only` against the installed torch's
#     headers and the CUDA runtime headers, when torch is importable. The CPU wheel ships the c10
#     CUDA headers but not the generated cuda_cmake_macros.h, so a one-line stand-in is written to
#     the temp dir. (The glue is built for real only on a GPU machine: bash benchmarks/gpu_suite.sh.)
# Exits non-zero on the first failure; skips with a message when nvcc is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC=${NVCC:-$(command -v nvcc || true)}
if [ -z "$NVCC" ]; then
  echo "nvcc_check: nvcc not found, skipping the CUDA compile check"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c++17 -O3 --use_fast_math -I csrc)

for f in csrc/kernels/cuda/*.cu; do
  [ -e "$f" ] || continue
  echo "nvcc_check: sm_90 + sm_80 $f"
  "$NVCC" -c -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_80,code=sm_80 --threads 2 "${flags[@]}" \
    "$f" -o "$tmp/$(basename "$f").o"
done

if torch_include=$(python -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'include'))" 2>/dev/null); then
  # nvcc may be a wrapper script: ask it where its headers are.
  cuda_include=$("$NVCC" -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -1)
  mkdir -p "$tmp/stub/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$tmp/stub/c10/cuda/impl/cuda_cmake_macros.h"
  for f in csrc/torch/cuda/*.cpp; do
    [ -e "$f" ] || continue
    echo "nvcc_check: syntax $f"
    "${CXX:-g++}" -std=c++20 -fsyntax-only -Wall -DRNNLAB_WITH_CUDA -I csrc -I "$torch_include" \
      -I "$torch_include/torch/csrc/api/include" -I "$cuda_include" -idirafter "$tmp/stub" "$f"
  done
else
  echo "nvcc_check: torch not importable, skipping the glue syntax check"
fi
echo "nvcc_check: OK"
