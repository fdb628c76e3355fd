"""Sweep throughput: model-updates per second of rnnlab's population trainer against the ways a
PyTorch or JAX user trains the same runs, against the sweep speed targets (≥ 50× a loop over
nn.RNN, ≥ 5× jax.vmap; docs/sweeps.md). Results are reported, not asserted.

    python benchmarks/bench_sweep.py [--quick] [--threads 1] [--json out.json]
    python benchmarks/bench_sweep.py --fused [--quick] [--cells elman diag ...] [--json out.json]
    python benchmarks/bench_sweep.py --peers [--quick] [--cells elman ...] [--compile] [--json out.json]

For each case (task, length T, hidden size H, population M), all peers train the same models
(one-layer Elman RNN, linear read-out, cross-entropy at the last step, SGD with per-model global
gradient-norm clipping at τ = 1, batch 20) for a fixed number of updates, no early stopping:

* ``rnnlab sweep``: :func:`rnnlab.train.train_population` on M models at once, exactly as the
  sweep engine calls it (data generated per model on the fly; one validation at the end on 20
  sequences, included in the time);
* ``rnnlab step``: the same update loop built from the trainer's pieces
  (:func:`rnnlab.nn.population.population_forward`, per-model clipping, the vectorized SGD) on
  pre-generated data, no validation: how fast the fused kernels make one training step, apart from
  the trainer's per-update data generation and bookkeeping;
* ``nn.RNN loop``: the runs one by one, each a standard PyTorch loop — ``nn.RNN`` + ``nn.Linear``,
  ``torch.optim.SGD``, ``clip_grad_norm_`` — measured on a subset of ``--subset`` models; its
  batches are generated before the clock starts (a favour to the peer);
* ``jax.vmap``: one ``jax.jit(jax.vmap(train_step))`` over the M models (``lax.scan`` RNN,
  per-model clipping inside the step), data pre-generated as for nn.RNN; when JAX is installed.

(The peers are those of :mod:`rnnlab.bench.update_peers`, where each is checked to compute
rnnlab's update.)

With ``--fused``, the fused training step (:mod:`rnnlab.train.fused_step`, one op call per
update) against ``rnnlab step`` (the trainer's autograd path: ≈ 25 ATen calls per update), and
``train_population`` with the fused step (its default for these runs) against the same trainer
forced onto its autograd path (data generation and the final validation included), at
H ∈ {8, 16, 32, 64} and T ∈ {25, 100} (temporal order, M = 32, SGD with clipping at τ = 1 as above,
float32, pre-generated batches), for each cell of ``--cells`` (default: elman): model-updates/s
and useful GFLOP/s (:meth:`rnnlab.bench.update_peers.Job.flops`), also as a fraction of one-core
sgemm (torch.mm, MKL where torch has it) measured in the same run.

With ``--peers``, the table of :mod:`rnnlab.bench.peers` (``rnnlab bench --peers training``): the
fused step of every cell that has one against the nn loop, the torch.func ensemble and JAX at the
same H and T, at one pinned core and at two, each thread count in a subprocess of its own.

The peers are measured interleaved, ``--repeats`` times, and the best time of each is kept, so
that a burst of load from other processes hurts every peer alike; the share of the cores that
other processes used meanwhile is printed with the results.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

import torch

from rnnlab.bench import peers, update_peers
from rnnlab.cells import get_cell
from rnnlab.bench.harness import FULL, OtherLoad, confined, machine_info, sgemm_gflops
from rnnlab.bench.update_peers import Job, Problem
from rnnlab.train import train_population

# Enough updates that the population's fixed costs (per-seed init, the final validation and
# spectral radii) weigh as little as in a real sweep of thousands of updates.
CASES = (Job("elman", 25, 8, 256, 200, task="latch", init="normal"), Job("elman", 50, 32, 256, 60, init="normal"),
         Job("elman", 100, 50, 128, 30, init="normal"))
QUICK = (Job("elman", 25, 8, 128, 10, task="latch", init="normal"), Job("elman", 50, 32, 64, 5, init="normal"))


def fused_cases(cell: str, quick: bool) -> tuple[Job, ...]:
    """The --fused cases of ``cell``: its ``normal`` init where it has one (the Elman figures of
    docs/sweeps.md), else its default."""
    init = "normal" if "normal" in get_cell(cell).inits else None
    if quick:
        return Job(cell, 25, 8, 8, 3, init=init), Job(cell, 100, 64, 4, 2, init=init)
    return tuple(Job(cell, T, H, 32, 10, init=init) for T in (25, 100) for H in (8, 16, 32, 64))


def per_model_update(run: update_peers.Run, models: int, updates: int):
    """() -> seconds per model-update of an update_peers run."""
    return lambda: run()[0] / (models * updates)


def time_rnnlab(job: Job) -> float:
    """Seconds per model-update of train_population on the M models."""
    configs = job.configs()
    start = time.perf_counter()
    train_population(configs, "cpu", keep_params=False)
    return (time.perf_counter() - start) / (job.M * job.updates)


def time_trainer(job: Job, fused: bool) -> float:
    """time_rnnlab with the trainer's fused step, or forced onto its autograd path."""
    from rnnlab.train import trainer

    saved = trainer.unsupported
    if not fused:
        trainer.unsupported = lambda *args: "the autograd path, for the benchmark"
    try:
        return time_rnnlab(job)
    finally:
        trainer.unsupported = saved


def _run_fused(args) -> int:
    load = OtherLoad()
    gemm = sgemm_gflops(512, FULL)
    results = []
    for job in [job for cell in args.cells or ["elman"] for job in fused_cases(cell, args.quick)]:
        problem = Problem.make(job)
        flops = job.flops(problem.task.n_in, problem.task.n_out)
        runs = {"rnnlab step": per_model_update(update_peers.rnnlab_autograd(problem), job.M, job.updates),
                "fused step": per_model_update(update_peers.rnnlab_fused(problem), job.M, job.updates),
                "trainer autograd": lambda: time_trainer(job, False), "trainer fused": lambda: time_trainer(job, True)}
        best = {k: float("inf") for k in runs}
        for _ in range(args.repeats):
            for k, run in runs.items():
                best[k] = min(best[k], run())
        row = {"case": job.label, **{f"{k} model-updates/s": 1 / v for k, v in best.items()},
               **{f"{k} GFLOP/s": flops / v / 1e9 for k, v in best.items()}}
        row["fused ÷ step"] = best["rnnlab step"] / best["fused step"]
        row["trainer fused ÷ autograd"] = best["trainer autograd"] / best["trainer fused"]
        row["fused ÷ sgemm"] = row["fused step GFLOP/s"] / gemm
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {**machine_info(), "threads": args.threads, "other_load": load.share(), "loadavg": os.getloadavg(),
            "sgemm GFLOP/s": gemm, "mkl": torch.backends.mkl.is_available()}
    print(f"\nmachine: {info}")
    header = ["case", "step upd/s", "fused upd/s", "fused ÷ step", "step GFLOP/s", "fused GFLOP/s", "fused ÷ sgemm",
              "trainer autograd upd/s", "trainer fused upd/s", "trainer fused ÷ autograd"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        print(f"| {r['case']} | {r['rnnlab step model-updates/s']:,.0f} | {r['fused step model-updates/s']:,.0f} | "
              f"{r['fused ÷ step']:.2f} | {r['rnnlab step GFLOP/s']:.2f} | {r['fused step GFLOP/s']:.2f} | "
              f"{r['fused ÷ sgemm']:.3f} | {r['trainer autograd model-updates/s']:,.0f} | "
              f"{r['trainer fused model-updates/s']:,.0f} | {r['trainer fused ÷ autograd']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller cases (a smoke run)")
    ap.add_argument("--threads", type=int,
                    help="CPUs for torch and JAX (default 1, with --peers 1 and 2; see harness.confined)")
    ap.add_argument("--subset", type=int, default=4, help="models the nn.RNN loop trains (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the best is kept")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--json", help="write the results here")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--fused", action="store_true", help="the fused training step against the autograd step")
    mode.add_argument("--peers", action="store_true",
                      help="every fused cell against the nn loop, torch.func and JAX at 1 and 2 threads "
                           "(rnnlab.bench.peers)")
    ap.add_argument("--cells", nargs="+",
                    help="with --peers: these cells (default: those with a fused step); with --fused: these cells "
                         "(default: elman)")
    ap.add_argument("--compile", action="store_true", help="with --peers: the torch.func peer through torch.compile")
    args = ap.parse_args(argv)
    if args.peers:
        # each thread count in a subprocess of its own (JAX's pool is sized once per process)
        print(peers.run("training", threads=None if args.threads is None else [args.threads],
                        cells=args.cells, quick=args.quick, rounds=args.repeats, use_jax=not args.no_jax,
                        compile=args.compile, nn_models=args.subset, json_path=args.json))
        return 0
    args.threads = args.threads or 1
    with confined(args.threads):  # before JAX starts its thread pools
        return _run_fused(args) if args.fused else _run(args)


def _run(args) -> int:
    use_jax = importlib.util.find_spec("jax") is not None and not args.no_jax
    load = OtherLoad()
    results = []
    for job in QUICK if args.quick else CASES:
        problem = Problem.make(job)
        runs = {"rnnlab sweep": lambda: time_rnnlab(job),
                "rnnlab step": per_model_update(update_peers.rnnlab_autograd(problem), job.M, job.updates),
                "nn.RNN loop": per_model_update(update_peers.nn_loop(problem, args.subset), args.subset, job.updates)}
        if use_jax:
            runs["jax.vmap"] = per_model_update(update_peers.jax_vmap(problem), job.M, job.updates)
        best = {k: float("inf") for k in ("rnnlab sweep", "rnnlab step", "nn.RNN loop", "jax.vmap")}
        for _ in range(args.repeats):
            for k, run in runs.items():
                best[k] = min(best[k], run())
        row = {"case": job.label, "updates": job.updates,
               **{f"{k} model-updates/s": 1 / v for k, v in best.items() if v < float("inf")}}
        row["speedup vs nn.RNN loop"] = best["nn.RNN loop"] / best["rnnlab sweep"]
        row["step speedup vs nn.RNN loop"] = best["nn.RNN loop"] / best["rnnlab step"]
        if use_jax:
            row["speedup vs jax.vmap"] = best["jax.vmap"] / best["rnnlab sweep"]
            row["step speedup vs jax.vmap"] = best["jax.vmap"] / best["rnnlab step"]
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {**machine_info(), "threads": args.threads, "other_load": load.share(), "torch": torch.__version__}
    print(f"\nmachine: {info}")
    columns = ("rnnlab sweep", "rnnlab step", "nn.RNN loop", "jax.vmap")
    header = ["case (model-updates/s)", *columns, "sweep ÷ nn.RNN", "sweep ÷ jax", "step ÷ nn.RNN", "step ÷ jax"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    nan = float("nan")
    for r in results:
        cells = [r["case"], *(f"{r.get(k + ' model-updates/s', nan):,.0f}" for k in columns),
                 *(f"{r.get(k, nan):.2f}" for k in ("speedup vs nn.RNN loop", "speedup vs jax.vmap",
                                                    "step speedup vs nn.RNN loop", "step speedup vs jax.vmap"))]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
