"""Where a drop-in's forward+backward time goes, against torch.nn's module (docs/performance.md,
"The drop-ins' glue").

For each cell (RNN, LSTM, GRU) and size (H, B, T, I) it builds ``torch.nn.<Cell>`` and
``rnnlab.<Cell>`` with the same weights and times ``y, h = m(x); y.sum().backward()`` (float32,
one layer, one thread pinned to one CPU), best of several rounds. The time is the process's CPU
time (``time.process_time``), not wall time: on a shared machine the scheduler takes the core away
for whole slices, which wall time counts and CPU time does not (caches shared with other processes
still slow both). Minor page faults per pass are counted too (each first touch of a freshly
mapped 4 KiB page; glibc returns large freed blocks to the kernel, so a fresh large tensor may
fault every pass). With ``--profile`` it lists the ATen ops of rnnlab's pass per iteration
(calls and self time).

    python benchmarks/profile_dropin.py                     # the four sizes, all three cells
    python benchmarks/profile_dropin.py --cells RNN --sizes 48,24,300,48 --profile
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import torch
from torch import nn

import rnnlab

#: (H, B, T, I): the drop-in targets' sizes.
SIZES = [(48, 24, 300, 48), (96, 8, 300, 96), (24, 1, 300, 24), (200, 40, 100, 200)]


def pass_time(m: nn.Module, x: torch.Tensor, reps: int, rounds: int) -> tuple[float, float]:
    """(best over ``rounds`` of the mean CPU time in ms of ``reps`` forward+backward passes,
    minor page faults per pass)."""
    def step():
        y, _ = m(x)
        y.sum().backward()

    for _ in range(3):
        step()
    best = float("inf")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(reps):
            step()
        best = min(best, (time.process_time() - t0) / reps)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (rounds * reps)
    return best * 1e3, faults


def profile(m: nn.Module, x: torch.Tensor, iters: int) -> None:
    """Prints the ATen ops of ``iters`` passes, calls and self time per iteration."""
    def step():
        y, _ = m(x)
        y.sum().backward()

    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            step()
    rows = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    rows.sort(key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows) / iters / 1e3
    print(f"    profiled {total:.3f} ms per iteration (self times):")
    for e in rows[:18]:
        print(f"    {e.key:<44} {e.count / iters:5.1f} calls  {e.self_cpu_time_total / iters / 1e3:7.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="RNN,LSTM,GRU")
    ap.add_argument("--sizes", nargs="*", help="H,B,T,I each (default: the four target sizes)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="also list rnnlab's ops per iteration")
    ap.add_argument("--nn", action="store_true", help="with --profile, list nn's ops too")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes else SIZES

    torch.set_num_threads(1)
    os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[0]])
    load = os.getloadavg()[0]
    print(f"1 thread, float32, CPU time, best of {args.rounds} rounds; load average {load:.1f}")
    for cell in args.cells.split(","):
        for H, B, T, I in sizes:
            torch.manual_seed(0)
            ref = getattr(nn, cell)(I, H)
            ours = getattr(rnnlab, cell)(I, H)
            ours.load_state_dict(ref.state_dict())
            x = torch.randn(T, B, I)
            # about 0.3 s per round whatever the size
            reps = max(3, int(0.3e3 / max(pass_time(ours, x, 1, 1)[0], 1e-3)))
            (t_nn, f_nn), (t_ours, f_ours) = pass_time(ref, x, reps, args.rounds), pass_time(ours, x, reps, args.rounds)
            print(f"{cell:4} H={H:3} B={B:2} T={T:3} I={I:3}: nn {t_nn:8.3f} ms ({f_nn:4.0f} faults)  "
                  f"rnnlab {t_ours:8.3f} ms ({f_ours:4.0f} faults)  {t_nn / t_ours:5.2f}x")
            if args.profile:
                profile(ours, x, reps)
                if args.nn:
                    print("    nn:")
                    profile(ref, x, reps)


if __name__ == "__main__":
    main()
