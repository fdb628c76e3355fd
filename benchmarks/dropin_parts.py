"""The parts of one ``rnnlab.RNN`` / ``rnnlab.LSTM`` forward+backward pass, each timed alone,
against the whole pass and the FLOP count (docs/performance.md, "The drop-ins' parts").

The pass is ``rnnlab bench``'s drop-in job (python/rnnlab/bench/dropin.py): one layer from zero
states, ``zero_grad``, loss ``Σ hs ⊙ G``, backward to every parameter (not to x), float32, one
thread pinned to one CPU. The parts are the calls the pass makes, run directly on tensors of the
pass's shapes: the projection GEMM, the forward op, the backward op (its kernel, Ω and the ∂W_hh
GEMMs), the ∂W_ih GEMM, the bias gradient, the loss; "glue" is the pass minus their sum (Python,
autograd, dispatcher, allocation). Each figure is the median wall time of many calls (best of
five rounds), with its rate as a fraction of one-core sgemm (torch.mm, 1024², float32) measured in
the same run. Useful FLOPs: 2·T·B·G·H per GEMM-sized job (G = H or 4H).

    taskset -c 0 python benchmarks/dropin_parts.py                    # RNN and LSTM, the four sizes
    taskset -c 0 python benchmarks/dropin_parts.py --cells RNN --sizes 24,1,300,24
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import rnnlab
from rnnlab._ops import ops

SIZES = [(48, 24, 300, 48), (96, 8, 300, 96), (24, 1, 300, 24), (200, 40, 100, 200)]


def median_ms(fn, seconds: float = 0.15, rounds: int = 5) -> float:
    """Best over ``rounds`` of the median wall time (ms) of ``fn()`` over ≈ ``seconds``."""
    fn()
    t0 = time.perf_counter()
    fn()
    n = max(5, int(seconds / max(time.perf_counter() - t0, 1e-7)))
    best = float("inf")
    for _ in range(rounds):
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        best = min(best, statistics.median(samples))
    return best * 1e3


def sgemm_gflops() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    c = torch.empty(1024, 1024)
    return 2 * 1024**3 / median_ms(lambda: torch.mm(a, b, out=c)) / 1e6


def parts(cell: str, H: int, B: int, T: int, I: int) -> tuple[dict[str, tuple[float, int]], float, float]:
    """({part: (ms, useful flops)}, whole pass ms, nn's pass ms)."""
    torch.manual_seed(0)
    ref = getattr(nn, cell)(I, H)
    ours = getattr(rnnlab, cell)(I, H)
    ours.load_state_dict(ref.state_dict())
    x, g = torch.randn(T, B, I), torch.randn(T, B, H)

    def whole(model):
        def run():
            model.zero_grad(set_to_none=True)
            (model(x)[0] * g).sum().backward()
        return run

    G = 4 * H if cell == "LSTM" else H
    job = 2 * T * B * G * H  # one GEMM-sized job's flops at I = H
    w_ih, w_hh = ours.weight_ih_l0.detach(), ours.weight_hh_l0.detach().unsqueeze(0).contiguous()
    bias = (ours.bias_ih_l0 + ours.bias_hh_l0).detach().unsqueeze(0)
    x2 = x.view(T * B, I)
    xp = torch.mm(x2, w_ih.t()).view(1, T, B, G)
    h0 = torch.zeros(1, B, H)
    gg = g.unsqueeze(0)
    out: dict[str, tuple[float, int]] = {}
    out["projection x W_ihᵀ"] = (median_ms(lambda: torch.mm(x2, w_ih.t())), 2 * T * B * I * G)
    if cell == "RNN":
        hs = ops.elman_forward(xp, w_hh, h0, "tanh", bias)
        out["forward op"] = (median_ms(lambda: ops.elman_forward(xp, w_hh, h0, "tanh", bias)), job)
        out["backward op (+∂W_hh)"] = (median_ms(lambda: ops.elman_backward(gg, hs, h0, w_hh, "tanh", None)), 2 * job)
        grad_xp = ops.elman_backward(gg, hs, h0, w_hh, "tanh", None)[0]
    else:
        c0 = torch.zeros(1, B, H)
        hs, cs, gates = ops.lstm_forward(xp, w_hh, h0, c0, bias)
        out["forward op"] = (median_ms(lambda: ops.lstm_forward(xp, w_hh, h0, c0, bias)), job)
        out["backward op (+∂W_hh)"] = (
            median_ms(lambda: ops.lstm_backward(gg, None, hs, cs, gates, h0, c0, w_hh)), 2 * job)
        grad_xp = ops.lstm_backward(gg, None, hs, cs, gates, h0, c0, w_hh)[0]
    gx2 = grad_xp.view(T * B, G)
    out["∂W_ih GEMM"] = (median_ms(lambda: torch.mm(gx2.t(), x2)), 2 * T * B * I * G)
    ones = torch.ones(1, 1, T * B)
    out["bias gradient"] = (median_ms(lambda: torch.bmm(ones, grad_xp.view(1, T * B, G))), 2 * T * B * G)
    y = hs.squeeze(0)
    out["loss (y ⊙ G).sum()"] = (median_ms(lambda: (y * g).sum()), 0)
    return out, median_ms(whole(ours)), median_ms(whole(ref))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="RNN,LSTM")
    ap.add_argument("--sizes", nargs="*", help="H,B,T,I each (default: the four target sizes)")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes else SIZES
    torch.set_num_threads(1)
    os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[0]])
    sgemm = sgemm_gflops()
    print(f"rnnlab {rnnlab.__file__}; 1 thread, float32, median wall ms (best of 5 rounds); "
          f"one-core sgemm {sgemm:.1f} GFLOP/s; load average {os.getloadavg()[0]:.1f}")
    for cell in args.cells.split(","):
        for H, B, T, I in sizes:
            out, total, t_nn = parts(cell, H, B, T, I)
            print(f"{cell} H={H} B={B} T={T} I={I}: pass {total:.3f} ms (nn {t_nn:.3f}, {t_nn / total:.2f}x)")
            for name, (ms, flops) in out.items():
                rate = f"{flops / ms / 1e6:6.1f} GFLOP/s = {flops / ms / 1e6 / sgemm:.2f} sgemm" if flops else ""
                print(f"    {name:<24} {ms:7.3f} ms  {rate}")
            glue = total - sum(ms for ms, _ in out.values())
            flops = sum(f for _, f in out.values())
            print(f"    {'glue (the rest)':<24} {glue:7.3f} ms")
            print(f"    {'whole pass':<24} {total:7.3f} ms  {flops / total / 1e6:6.1f} GFLOP/s = "
                  f"{flops / total / 1e6 / sgemm:.2f} sgemm")


if __name__ == "__main__":
    main()
