"""Thread scaling of the fused training step: model-updates/s on 1 and 2 threads, same process.

    python benchmarks/bench_threads.py [--cells elman,lstm,gru] [--repeats 3] [--json out.json]

The fused step runs one parallel region per update over groups of models, with no reduction
across models (docs/sweeps.md), so on a quiet machine two threads should give close to 2× one
thread once a population has enough models per thread. Each case (temporal order, batch 20,
M = 256, SGD with clipping: the peers' jobs of :mod:`rnnlab.bench.update_peers`) runs its
pre-generated updates with ``torch.set_num_threads(1)`` and ``(2)`` in alternation, in wall time
(two threads' work is not one thread's CPU time), and keeps the best of ``--repeats`` rounds.
Wall time is what other processes' load inflates, so the script reports that load
(:class:`rnnlab.bench.harness.OtherLoad`) beside the table: run it with nothing else running.
"""
from __future__ import annotations

import argparse
import time

import torch

from rnnlab.bench.harness import OtherLoad, conclude
from rnnlab.bench.update_peers import CLIP, LR, Job, Problem
from rnnlab.train.fused_step import FusedStep
from rnnlab.train.optim import init_state

SHAPES = tuple((T, H) for T in (25, 100) for H in (8, 16, 32, 64))


def updates_per_second(problem: Problem, threads: int) -> float:
    """Model-updates/s of the fused step over the problem's batches on ``threads`` threads."""
    job = problem.job
    step = FusedStep(job.configs(), problem.task)
    hyper = {n: torch.full((job.M,), v) for n, v in (("lr", LR), ("lr_min", 0.0), ("momentum", 0.0),
                                                     ("beta1", 0.9), ("beta2", 0.999), ("clip", CLIP))}
    p = {n: v.clone() for n, v in problem.params.items()}
    state = init_state("sgd", p)
    torch.set_num_threads(threads)
    step(p, state, hyper, problem.batches[0], 0)  # warm: the threads' workspaces grow once
    start = time.perf_counter()
    for k, b in enumerate(problem.batches):
        step(p, state, hyper, b, k)
    return job.M * job.updates / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="elman,lstm,gru", help="comma-separated cells with a fused step")
    ap.add_argument("--models", type=int, default=256, help="population size M (default 256)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds; the best of each is kept")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    load = OtherLoad()
    results = []
    print("| cell | T | H | 1 thread upd/s | 2 threads upd/s | 2 ÷ 1 |")
    print("|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        for T, H in SHAPES:
            # enough updates for ≈ 0.2 s at one thread: the parallel region's wake-up is then noise
            updates = max(4, min(40, int(2e9 / (6 * T * 20 * H * H * args.models * (1 + 3 * (cell != "elman"))))))
            problem = Problem.make(Job(cell, T, H, args.models, updates, init="normal" if cell == "elman" else None))
            best = {1: 0.0, 2: 0.0}
            for _ in range(args.repeats):
                for threads in (1, 2):
                    best[threads] = max(best[threads], updates_per_second(problem, threads))
            results.append({"cell": cell, "T": T, "H": H, "M": args.models, "one": best[1], "two": best[2]})
            print(f"| {cell} | {T} | {H} | {best[1]:,.0f} | {best[2]:,.0f} | {best[2] / best[1]:.2f} |", flush=True)
    conclude(results, load, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
