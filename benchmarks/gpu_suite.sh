#!/usr/bin/env bash
# The GPU half of rnnlab, on a fresh GPU machine: build with CUDA, test, sanitize, time against cuDNN.
#
#   bash benchmarks/gpu_suite.sh [all|build|test|sanitize|bench] [gpu_suite.py options, e.g. --quick]
#
#   build     pip install --no-build-isolation --no-deps -e . (CUDA extension: the GPU is visible,
#             so the build targets its architecture), then the kernels' register/spill report
#   test      tests/test_cuda.py: every op on both CUDA paths against the CPU kernels, the
#             reference, cuDNN (TF32 off), gradcheck, vmap(grad), determinism
#   sanitize  scripts/sanitize_cuda.sh: compute-sanitizer memcheck, racecheck, synccheck
#   bench     benchmarks/gpu_suite.py: the table (cuDNN vs rnnlab, ratio, µs/step, TFLOP/s or GB/s
#             and the fraction of the peaks measured in the same run); JSON to $OUT when set
#   all       the four in order (the default); each stage fits the 10-minute limit of one call,
#             so on a leased machine they can also run as separate commands while it stays warm.
# Installs nothing from the network (GPU machines have none): --no-deps, --no-build-isolation.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stage=${1:-all}
[ $# -gt 0 ] && shift

build() {
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -3
  "$PY" -c "import rnnlab; from rnnlab import _C; assert _C.with_cuda, 'rnnlab was built without CUDA'; print('rnnlab built with CUDA')"
  so=$(ls python/rnnlab/_C*.so | head -1)
  if command -v cuobjdump >/dev/null; then  # registers, stack and spills per kernel, for tuning notes
    cuobjdump --dump-resource-usage "$so" 2>/dev/null | grep -E "Function _ZN6rnnlab" \
      | sed -E 's/^[[:space:]]*Function ([^:]*):.*REG:([0-9]+) STACK:([0-9]+) SHARED:([0-9]+) LOCAL:([0-9]+).*/\1 REG=\2 STACK=\3 SHARED=\4 LOCAL=\5/' \
      | (c++filt 2>/dev/null || cat) | cut -c1-220 || true
  fi
}

test_cuda() { "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py; }
sanitize() { PYTHON="$PY" bash scripts/sanitize_cuda.sh; }
bench() {
  local json=()
  [ -n "${OUT:-}" ] && json=(--json "$OUT/gpu_suite.json")
  "$PY" benchmarks/gpu_suite.py "${json[@]}" "$@"
}

case "$stage" in
  build) build ;;
  test) test_cuda ;;
  sanitize) sanitize ;;
  bench) bench "$@" ;;
  all) build && test_cuda && sanitize && bench "$@" ;;
  *) echo "usage: bash benchmarks/gpu_suite.sh [all|build|test|sanitize|bench] [gpu_suite.py options]"; exit 2 ;;
esac
