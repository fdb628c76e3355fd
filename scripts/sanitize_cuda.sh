#!/usr/bin/env bash
# compute-sanitizer memcheck, racecheck and synccheck over a tiny call of every rnnlab CUDA kernel:
# Elman, LSTM and diagonal recurrence, forward and backward, float32 and float64, on the on-chip
# path and on the per-step path (RNNLAB_CUDA_PATH=steps), with partial batch tiles. Each call is
# also checked against the CPU kernels, so a wrong answer under the sanitizer fails too.
# Needs a GPU and rnnlab built with CUDA (bash benchmarks/gpu_suite.sh does both). Exits non-zero
# on the first reported error.
set -euo pipefail
cd "$(dirname "$0")/.."

SAN=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 || true)}
PY=${PYTHON:-python3}
if [ -z "$SAN" ]; then echo "sanitize_cuda: compute-sanitizer not found"; exit 2; fi
if ! "$PY" -c "import torch, rnnlab; assert torch.cuda.is_available() and rnnlab._C.with_cuda" 2>/dev/null; then
  echo "sanitize_cuda: needs a CUDA device and rnnlab built with CUDA"; exit 2
fi

workload=$(mktemp --suffix=.py)
trap 'rm -f "$workload"' EXIT
cat > "$workload" <<'PY'
import os
import torch
import rnnlab  # noqa: F401  (registers the ops)

ops, dev = torch.ops.rnnlab, torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False


def same(name, a, b):
    a, b = a.cpu(), b.cpu()
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    err = ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
    assert err < (1e-10 if a.dtype == torch.float64 else 1e-4), f"{name}: relative error {err:.2e}"


def run(path):
    os.environ["RNNLAB_CUDA_PATH"] = path
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        r = lambda *s, k=1.0: torch.randn(*s, dtype=dtype, generator=g) * k  # noqa: E731
        for M, T, B, H in ((2, 5, 3, 40), (1, 3, 9, 20)):
            xp, w, h0, gh = r(M, T, B, H), r(M, H, H, k=H**-0.5), r(M, B, H), r(M, T, B, H)
            reg = torch.rand(M, dtype=dtype, generator=g)
            hs = ops.elman_forward(xp.to(dev), w.to(dev), h0.to(dev), "tanh")
            same("elman hs", hs, ops.elman_forward(xp, w, h0, "tanh"))
            got = ops.elman_backward(gh.to(dev), hs, h0.to(dev), w.to(dev), "tanh", reg.to(dev))
            for i, (a, b) in enumerate(zip(got, ops.elman_backward(gh, hs.cpu(), h0, w, "tanh", reg))):
                same(f"elman backward output {i}", a, b)
        for M, T, B, H in ((2, 4, 3, 20), (1, 3, 9, 7)):
            xp, w, h0, c0 = r(M, T, B, 4 * H), r(M, 4 * H, H, k=H**-0.5), r(M, B, H), r(M, B, H)
            gh, gc = r(M, T, B, H), r(M, T, B, H)
            fwd = ops.lstm_forward(xp.to(dev), w.to(dev), h0.to(dev), c0.to(dev))
            cpu = ops.lstm_forward(xp, w, h0, c0)
            for a, b in zip(fwd, cpu):
                same("lstm forward", a, b)
            got = ops.lstm_backward(gh.to(dev), gc.to(dev), *fwd, h0.to(dev), c0.to(dev), w.to(dev))
            for a, b in zip(got, ops.lstm_backward(gh, gc, *cpu, h0, c0, w)):
                same("lstm backward", a, b)
        for cdtype in (dtype, torch.complex64 if dtype == torch.float32 else torch.complex128):
            u, lam, h0 = (torch.randn(*s, dtype=cdtype, generator=g) * 0.5 for s in ((2, 5, 6, 50), (2, 50), (2, 6, 50)))
            fwd = ops.diag_forward(u.to(dev), lam.to(dev), h0.to(dev), True)
            for a, b in zip(fwd, ops.diag_forward(u, lam, h0, True)):
                same("diag forward", a, b)
            got = ops.diag_backward(u.to(dev), fwd[0], h0.to(dev), lam.to(dev))
            for a, b in zip(got, ops.diag_backward(u, fwd[0].cpu(), h0, lam)):
                same("diag backward", a, b)


run("auto")
run("steps")
torch.cuda.synchronize()
print("workload OK")
PY

# Exact allocations instead of the caching allocator's pools, so that out-of-bounds accesses land
# outside any allocation and memcheck sees them.
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
for tool in memcheck racecheck synccheck; do
  echo "sanitize_cuda: $tool"
  "$SAN" --tool "$tool" --error-exitcode 1 "$PY" "$workload"
done
echo "sanitize_cuda: OK"
