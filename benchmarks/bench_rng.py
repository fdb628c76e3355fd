"""Drawing the tasks' Gaussian noise: `rng.normal` (rnnlab::random_normal) against whole-array passes.

    python benchmarks/bench_rng.py [--threads 1]

`rng.normal` is Box–Muller in float64 through torch's own log1p, cos and sqrt (bit for bit
`rng.normal_torch`). `passes` is the same arithmetic as torch passes over the whole [M, n]
float64 draw (how the op computed it before it worked block by block inside one parallel
region); both give the same bits, which this script checks. `passes` draws its two uniforms
with two calls and two extra passes (negation, 2π) where the old op filled both arguments in one
pass, so the `uniforms` column (those two calls alone) bounds how much of the difference that is. Shapes: a latching
task's training batch and one validation chunk of the Johnston-style study (M models, T steps,
B sequences), and a small population's batch. Wall time per draw, best of --repeat.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch

from rnnlab.tasks import rng

SHAPES = [  # (what, M, T, B)
    ("training batch, small population", 32, 50, 20),
    ("training batch", 226, 100, 20),
    ("validation chunk", 226, 100, 1000),
]


def passes(keys: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    r = rng.uniform(rng.derive(keys, "normal-radius"), shape, torch.float64).neg_()
    c = rng.uniform(rng.derive(keys, "normal-angle"), shape, torch.float64).mul_(2.0 * math.pi)
    return r.log1p_().mul_(-2.0).sqrt_().mul_(c.cos_()).to(dtype)


def best_time(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    if args.threads == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(args.threads)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{cpu}; torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s); float32 draws, ns per draw (best of {args.repeat})\n")
    print("| draw | M × T × B | rng.normal ns | whole-array passes ns | passes ÷ normal | uniforms ns |")
    print("|---|---|---|---|---|---|")
    for what, M, T, B in SHAPES:
        keys = rng.seed_keys(range(M))
        shape = (T, B)
        assert torch.equal(rng.normal(keys, shape), passes(keys, shape, torch.float32))
        n = M * T * B
        t_op = best_time(lambda: rng.normal(keys, shape), args.repeat) / n * 1e9
        t_passes = best_time(lambda: passes(keys, shape, torch.float32), args.repeat) / n * 1e9
        rk, ak = rng.derive(keys, "normal-radius"), rng.derive(keys, "normal-angle")
        t_uni = best_time(lambda: (rng.uniform(rk, shape, torch.float64), rng.uniform(ak, shape, torch.float64)),
                          args.repeat) / n * 1e9
        print(f"| {what} | {M} × {T} × {B} | {t_op:.2f} | {t_passes:.2f} | {t_passes / t_op:.2f} | {t_uni:.2f} |")


if __name__ == "__main__":
    main()
