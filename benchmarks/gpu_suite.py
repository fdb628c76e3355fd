"""rnnlab's CUDA kernels against cuDNN and torch.func on one GPU: one table, each row with its speed target.

    python benchmarks/gpu_suite.py [--quick] [--only elman,lstm,population,diag] [--json PATH]

Rows, float32 with TF32 off everywhere (cuDNN and cuBLAS compute in full fp32):

* Elman (tanh) and LSTM, forward and forward+backward, ``nn.RNN`` / ``nn.LSTM`` (cuDNN) against
  the drop-in ``rnnlab.RNN`` / ``rnnlab.LSTM`` with the same weights, at the CPU table's configs
  (H, B, T) = (32, 32, 256), (64, 1, 1000), (128, 32, 200), (256, 64, 200), (512, 128, 100) and at
  H ∈ {64, 128, 256, 512, 1024} × B ∈ {1, 16, 64, 256}, T = 512; input size I = H. The job is the
  CPU benchmark's (rnnlab/bench/workload.py): from zero state, loss Σ output ⊙ G with a fixed
  random G, backward to every parameter (not to x).
* Population: M ∈ {256, 4096} Elman models, H ∈ {32, 64, 128}, B = 32, T = 200, I = 2, forward
  and backward: ``torch.func.vmap(torch.func.grad(loss))`` over the stacked weights of a
  pure-PyTorch Elman model (nn.RNN has no vmap rule, pytorch#105982) against the same vmap over
  ``rnnlab.elman``, which rnnlab's vmap rule turns into one fused call.
* Diagonal recurrence h_t = λ ⊙ h_{t-1} + u_t, forward+backward through autograd, against a
  PyTorch loop over the steps; measured in GB/s of the bytes the kernels must move (forward
  reads u and writes h; backward reads ∂L/∂h and h and writes ∂L/∂u).

Columns: peer and rnnlab median ms of one call (CUDA events, after warm-up), ratio = peer /
rnnlab (> 1: rnnlab faster), µs per step of rnnlab, rnnlab's achieved TFLOP/s of useful
recurrent work (Elman 2·B·H² per step forward, ×3 with backward; LSTM 4× that) or GB/s, its
fraction of the peak measured in this run (an 8192³ fp32 matmul with TF32 off; a 2 GiB device
copy, bytes read + written), which CUDA path rnnlab took, and the row's CUDA speed target
(docs/cuda.md): forward and forward+backward ≥ 1× cuDNN, ≥ 2× forward+backward and < 0.5 µs per
forward step at H ≤ 128, B ≤ 64; the population of 4096 models at H = 64 ≥ 20 TFLOP/s; the diagonal
recurrence ≥ 70 % of the device-copy bandwidth at large M·B·N.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

import rnnlab
from rnnlab import _C

DEV = torch.device("cuda")


# ---------------------------------------------------------------------------------------------
# timing and peaks
# ---------------------------------------------------------------------------------------------
def cuda_ms(fn: Callable[[], object], warmup: int = 3, budget_ms: float = 400.0, max_reps: int = 50) -> float | None:
    """Median of CUDA-event times of ``fn()`` (ms), after ``warmup`` untimed calls; None when the
    case does not fit in GPU memory."""
    try:
        return _cuda_ms(fn, warmup, budget_ms, max_reps)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def _cuda_ms(fn: Callable[[], object], warmup: int, budget_ms: float, max_reps: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times: list[float] = []
    while len(times) < 3 or (sum(times) < budget_ms and len(times) < max_reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measured_peaks(quick: bool) -> dict:
    """fp32 matmul TFLOP/s (TF32 off) and device-copy GB/s (read + written), measured here."""
    n = 4096 if quick else 8192
    a, b = torch.randn(n, n, device=DEV), torch.randn(n, n, device=DEV)
    c = torch.empty(n, n, device=DEV)
    ms = cuda_ms(lambda: torch.mm(a, b, out=c))
    x = torch.randn(2**28 if not quick else 2**26, device=DEV)  # 1 GiB (256 MiB quick) of float32
    y = torch.empty_like(x)
    copy_ms = cuda_ms(lambda: y.copy_(x))
    return {"fp32_tflops": 2 * n**3 / ms / 1e9, "copy_gbs": 2 * x.numel() * 4 / copy_ms / 1e6}


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    cell: str
    config: str
    mode: str
    peer_name: str
    peer_ms: float | None
    ms: float | None
    steps: int
    work: float  # flops, or bytes for the diagonal rows
    unit: str  # "TFLOP/s" or "GB/s"
    path: str
    target: str = ""
    extra: dict = field(default_factory=dict)


def _job(model: nn.Module, x: Tensor, g: Tensor, backward: bool) -> Callable[[], object]:
    params = list(model.parameters())
    if not backward:
        def fwd():
            with torch.no_grad():
                return model(x)[0]
        return fwd

    def fwd_bwd():
        for p in params:
            p.grad = None
        (model(x)[0] * g).sum().backward()
    return fwd_bwd


@dataclass(frozen=True)
class DropIn:
    """A drop-in module against its torch.nn peer: ``gates`` H-row blocks of W_hh (for the flop
    count) and the largest H of rnnlab's on-chip CUDA path in float32 and in float64
    (csrc/kernels/cuda/{elman,lstm}.cuh thresholds)."""

    peer: type
    ours: type
    gates: int
    on_chip_h: int
    on_chip_h_float64: int


DROPINS = {"elman": DropIn(nn.RNN, rnnlab.RNN, 1, 128, 64), "lstm": DropIn(nn.LSTM, rnnlab.LSTM, 4, 64, 32)}


def single_rows(cell: str, configs, quick: bool) -> list[Row]:
    dropin = DROPINS[cell]
    rows = []
    for H, B, T in configs:
        T = min(T, 128) if quick else T
        torch.manual_seed(0)
        peer = dropin.peer(H, H).to(DEV)
        ours = dropin.ours(H, H).to(DEV)
        ours.load_state_dict(peer.state_dict())
        x, g = torch.randn(T, B, H, device=DEV), torch.randn(T, B, H, device=DEV)
        for mode, backward in (("forward", False), ("forward+backward", True)):
            peer_ms = cuda_ms(_job(peer, x, g, backward))
            ms = cuda_ms(_job(ours, x, g, backward))
            flops = (6 if backward else 2) * dropin.gates * T * B * H * H
            rows.append(Row(cell, f"H={H} B={B} T={T}", mode, "cuDNN", peer_ms, ms, T, flops, "TFLOP/s",
                            path_of(cell, H), target_single(mode, H, B)))
    return rows


def target_single(mode: str, H: int, B: int) -> str:
    small = H <= 128 and B <= 64
    if mode == "forward":
        return "≥1× and <0.5 µs/step" if small else "≥1×"
    return "≥2×" if small else "≥1×"


def path_of(cell: str, H: int, dtype=torch.float32) -> str:
    """Which CUDA path rnnlab takes (:attr:`DropIn.on_chip_h`)."""
    dropin = DROPINS[cell]
    limit = dropin.on_chip_h if dtype == torch.float32 else dropin.on_chip_h_float64
    return "on chip" if H <= limit else "per step"


def _torch_elman(w_ih: Tensor, w_hh: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """One Elman model in plain PyTorch ops: x [T, B, I] -> hs [T, B, H]."""
    xp = x @ w_ih.T + b
    h = xp.new_zeros(xp.shape[1], w_hh.shape[0])
    out = []
    for t in range(xp.shape[0]):
        h = torch.tanh(xp[t] + h @ w_hh.T)
        out.append(h)
    return torch.stack(out)


def _rnnlab_elman(w_ih: Tensor, w_hh: Tensor, b: Tensor, x: Tensor) -> Tensor:
    xp = x @ w_ih.T + b
    return rnnlab.elman(xp[None], w_hh[None])[0]


POPULATIONS = [(M, H) for M in (256, 4096) for H in (32, 64, 128)]


def population_rows(quick: bool, sizes=POPULATIONS, B: int = 32) -> list[Row]:
    rows = []
    for M, H in sizes:
        T, I = (50 if quick else 200), 2
        k = H**-0.5
        gen = torch.Generator(device=DEV).manual_seed(0)
        uni = lambda *s: (torch.rand(*s, device=DEV, generator=gen) * 2 - 1) * k  # noqa: E731
        w_ih, w_hh, b = uni(M, H, I), uni(M, H, H), uni(M, H)
        # G shared by the models: a [M, T, B, H] tensor is 13 GiB at M = 4096, H = 128.
        x, g = torch.randn(T, B, I, device=DEV, generator=gen), torch.randn(T, B, H, device=DEV, generator=gen)

        def ensemble(f):
            def loss(w_ih1, w_hh1, b1):
                return (f(w_ih1, w_hh1, b1, x) * g).sum()
            grad = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2)))
            return lambda: grad(w_ih, w_hh, b)

        ms = cuda_ms(ensemble(_rnnlab_elman))
        torch.cuda.empty_cache()
        peer_ms = cuda_ms(ensemble(_torch_elman), warmup=1, max_reps=10)
        torch.cuda.empty_cache()
        target = "≥20 TFLOP/s" if (M, H) == (4096, 64) else ""
        rows.append(Row("elman population", f"M={M} H={H} B={B} T={T}", "forward+backward", "torch.func vmap",
                        peer_ms, ms, T, 6 * M * T * B * H * H, "TFLOP/s", path_of("elman", H), target))
    return rows


# (M, B, N, T, dtype): the large ones are the bandwidth target's "large M·B·N"
DIAG = [(1, 64, 64, 1000, torch.float32), (64, 32, 128, 200, torch.float32), (1, 256, 4096, 256, torch.float32),
        (1, 256, 2048, 256, torch.complex64), (256, 32, 256, 200, torch.float32)]


def diag_rows(quick: bool, configs=DIAG) -> list[Row]:
    rows = []
    for M, B, N, T, dtype in configs:
        T = min(T, 64) if quick else T
        u = torch.randn(M, T, B, N, device=DEV, dtype=dtype, requires_grad=True)
        lam = (torch.rand(M, N, device=DEV) * 0.3 + 0.65).to(dtype).requires_grad_()
        g = torch.randn(M, T, B, N, device=DEV, dtype=dtype)

        def backward(hs: Tensor) -> None:  # L = Re Σ conj(G) ⊙ hs, a real loss for complex hs too
            u.grad = lam.grad = None
            (hs * g.conj()).real.sum().backward()

        def fused():
            backward(rnnlab.diag_recurrence(u, lam))

        def loop():
            h, out = u.new_zeros(M, B, N), []
            for t in range(T):
                h = lam[:, None] * h + u[:, t]
                out.append(h)
            backward(torch.stack(out, 1))

        elem = u.element_size()
        moved = 5 * M * T * B * N * elem  # forward 2 passes over the sequence, backward 3
        big = M * B * N >= 256 * 2048
        peer_ms = cuda_ms(loop, warmup=1, max_reps=5)
        rows.append(Row("diag", f"M={M} B={B} N={N} T={T} {str(dtype).removeprefix('torch.')}", "forward+backward",
                        "torch loop", peer_ms, cuda_ms(fused), T, moved, "GB/s", "fused", "≥70% of copy" if big else ""))
    return rows


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def rate(row: Row) -> float:
    return row.work / row.ms / (1e9 if row.unit == "TFLOP/s" else 1e6)


def verdict(row: Row, peaks: dict) -> str:
    if not row.target:
        return ""
    if row.ms is None:
        return f"{row.target} ✗ (out of memory)"
    ok = True
    ratio = row.peer_ms / row.ms if row.peer_ms else None
    if "≥1×" in row.target:
        ok &= ratio is not None and ratio >= 1
    if "≥2×" in row.target:
        ok &= ratio is not None and ratio >= 2
    if "µs/step" in row.target:
        ok &= 1000 * row.ms / row.steps < 0.5
    if "TFLOP/s" in row.target:
        ok &= rate(row) >= 20
    if "copy" in row.target:
        ok &= rate(row) >= 0.7 * peaks["copy_gbs"]
    return f"{row.target} {'✓' if ok else '✗'}"


def table(rows: list[Row], peaks: dict) -> str:
    head = ["cell", "config", "mode", "peer", "peer ms", "rnnlab ms", "ratio", "µs/step", "rate", "% peak", "path", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        peak = peaks["fp32_tflops"] if r.unit == "TFLOP/s" else peaks["copy_gbs"]
        if r.ms is None:  # rnnlab itself did not fit
            lines.append(f"| {r.cell} | {r.config} | {r.mode} | {r.peer_name} | "
                         f"{f'{r.peer_ms:.3f}' if r.peer_ms else '—'} | out of memory | — | — | — | — | {r.path} | {verdict(r, peaks)} |")
            continue
        cells = [
            r.cell, r.config, r.mode, r.peer_name,
            f"{r.peer_ms:.3f}" if r.peer_ms else "—", f"{r.ms:.3f}",
            f"{r.peer_ms / r.ms:.2f}" if r.peer_ms else "—", f"{1000 * r.ms / r.steps:.2f}",
            f"{rate(r):.2f} {r.unit}", f"{100 * rate(r) / peak:.0f}%", r.path, verdict(r, peaks),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CPU_TABLE = [(32, 32, 256), (64, 1, 1000), (128, 32, 200), (256, 64, 200), (512, 128, 100)]
GRID = [(H, B, 512) for H in (64, 128, 256, 512, 1024) for B in (1, 16, 64, 256)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter sequences and smaller peaks probes (a smoke run)")
    ap.add_argument("--only", default="elman,lstm,population,diag", help="comma-separated subset of the sections")
    ap.add_argument("--json", help="also write the rows and the machine description here")
    args = ap.parse_args(argv)
    if not (torch.cuda.is_available() and getattr(_C, "with_cuda", False)):
        print("gpu_suite: needs a CUDA device and rnnlab built with CUDA", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    only = set(args.only.split(","))
    props = torch.cuda.get_device_properties(DEV)
    machine = {"gpu": props.name, "sms": props.multi_processor_count, "memory_gib": props.total_memory / 2**30,
               "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    peaks = measured_peaks(args.quick)
    configs = CPU_TABLE + [c for c in GRID if c not in CPU_TABLE]
    if args.quick:
        configs = CPU_TABLE + [(H, B, 512) for H in (64, 256, 1024) for B in (1, 64)]
    rows: list[Row] = []
    for section, make in (("elman", lambda: single_rows("elman", configs, args.quick)),
                          ("lstm", lambda: single_rows("lstm", configs, args.quick)),
                          ("population", lambda: population_rows(args.quick)),
                          ("diag", lambda: diag_rows(args.quick))):
        if section in only:
            print(f"gpu_suite: measuring {section} …", file=sys.stderr, flush=True)
            rows += make()
            torch.cuda.empty_cache()
    print(f"\n{machine['gpu']} ({machine['sms']} SMs), torch {machine['torch']}, CUDA {machine['cuda']}, "
          f"cuDNN {machine['cudnn']}; measured peaks: fp32 matmul (TF32 off) {peaks['fp32_tflops']:.1f} TFLOP/s, "
          f"device copy {peaks['copy_gbs']:.0f} GB/s{' (--quick)' if args.quick else ''}\n")
    print(table(rows, peaks))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "peaks": peaks, "rows": [asdict(r) for r in rows]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
