"""A fused training step in its two layouts, the measurements behind the op's choice.

    python benchmarks/bench_layouts.py [--cell elman|gru|lstm] [--hidden 8 16] [--steps 25]
                                       [--task torder] [--quick] [--dtype float64] [--repeats 3]
                                       [--json out.json]

The row layout vectorizes each model over H; the lanes layout puts one model in each vector lane
(docs/sweeps.md, "Two layouts"). Both are forced in turn with ``RNNLAB_TRAIN_LAYOUT`` at
H ∈ {8, 16, 32, 64, 96}, T ∈ {25, 100} (or those of ``--hidden``, ``--steps``), M = 96, on
temporal order (I = 6, O = 4) and latching (I = 1, O = 2) (or ``--task``), SGD with clipping at
1, on pre-generated batches; another ISA with ``RNNLAB_ISA=avx2``. Reported: model-updates per
second, useful GFLOP/s (:meth:`rnnlab.bench.update_peers.Job.flops`) and their fraction of
one-core sgemm (torch.mm 512³ float32) measured in the same run. Everything is
timed in the thread's CPU time (``time.thread_time``, one thread), which other processes' load
does not inflate as it does wall time on a shared machine; the best of ``--repeats`` interleaved
rounds is kept.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from rnnlab.bench.harness import OtherLoad, machine_info
from rnnlab.bench.update_peers import CLIP, LR, Job, Problem
from rnnlab.tasks.base import Batch
from rnnlab.train.fused_step import FusedStep
from rnnlab.train.optim import init_state

TASKS, STEPS, HIDDEN = ("torder", "latch"), (25, 100), (8, 16, 32, 64, 96)


def cases(cell: str, tasks=TASKS, steps=STEPS, hidden=HIDDEN, quick: bool = False) -> tuple[Job, ...]:
    if quick:
        return Job(cell, 25, 8, 32, 2, init="normal"), Job(cell, 25, 32, 32, 2, task="latch", init="normal")
    return tuple(Job(cell, T, H, 96, 3, task=task, init="normal") for task in tasks for T in steps for H in hidden)


def sgemm_cpu_gflops(n: int = 512, repeats: int = 20) -> float:
    """One thread's sgemm rate in its CPU time: the best of ``repeats`` torch.mm n×n float32."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(5):
            torch.mm(a, b, out=c)
        best = min(best, (time.thread_time() - start) / 5)
    return 2 * n**3 / best / 1e9


def fused_step_seconds(problem: Problem, dtype: torch.dtype):
    """() -> CPU seconds per model-update of the fused step over the problem's batches in ``dtype``."""
    job = problem.job
    batches = [Batch(b.x.to(dtype), b.target) for b in problem.batches]
    step = FusedStep(job.configs(), problem.task)
    hyper = {n: torch.full((job.M,), v, dtype=dtype) for n, v in (("lr", LR), ("lr_min", 0.0), ("momentum", 0.0),
                                                                   ("beta1", 0.9), ("beta2", 0.999), ("clip", CLIP))}

    def run() -> float:
        p = {n: v.to(dtype).clone() for n, v in problem.params.items()}
        state = init_state("sgd", p)
        start = time.thread_time()
        for k, b in enumerate(batches):
            step(p, state, hyper, b, k)
        return (time.thread_time() - start) / (job.M * job.updates)

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=["elman", "gru", "lstm"], default="elman")
    ap.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--steps", nargs="+", type=int, default=list(STEPS), help="sequence lengths T")
    ap.add_argument("--hidden", nargs="+", type=int, default=list(HIDDEN), help="hidden sizes H")
    ap.add_argument("--quick", action="store_true", help="two small cases (a smoke run)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the best is kept")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = OtherLoad()
    gemm = sgemm_cpu_gflops()
    results = []
    for job in cases(args.cell, args.task, args.steps, args.hidden, args.quick):
        problem = Problem.make(job)
        flops = job.flops(problem.task.n_in, problem.task.n_out)
        run = fused_step_seconds(problem, getattr(torch, args.dtype))
        best = {"rows": float("inf"), "lanes": float("inf")}
        try:
            for _ in range(args.repeats):
                for layout in best:
                    os.environ["RNNLAB_TRAIN_LAYOUT"] = layout
                    best[layout] = min(best[layout], run())
        finally:
            os.environ.pop("RNNLAB_TRAIN_LAYOUT", None)
        row = {"case": f"{job.label} I={problem.task.n_in}", **{f"{k} updates/s": 1 / v for k, v in best.items()},
               **{f"{k} GFLOP/s": flops / v / 1e9 for k, v in best.items()}}
        row.update({f"{k} ÷ sgemm": row[f"{k} GFLOP/s"] / gemm for k in best})
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {**machine_info(), "other_load": load.share(), "loadavg": os.getloadavg(), "sgemm GFLOP/s": gemm,
            "mkl": torch.backends.mkl.is_available(), "dtype": args.dtype}
    print(f"\nmachine: {info}")
    print("| case | rows updates/s | lanes updates/s | rows GFLOP/s | lanes GFLOP/s | rows ÷ sgemm | lanes ÷ sgemm "
          "| lanes ÷ rows |\n|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['rows updates/s']:,.0f} | {r['lanes updates/s']:,.0f} | {r['rows GFLOP/s']:.1f} | "
              f"{r['lanes GFLOP/s']:.1f} | {r['rows ÷ sgemm']:.3f} | {r['lanes ÷ sgemm']:.3f} | "
              f"{r['lanes GFLOP/s'] / r['rows GFLOP/s']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
