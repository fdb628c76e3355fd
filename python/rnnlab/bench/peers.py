"""rnnlab against its peers in one run, at one pinned core and at two: the population trainer's
update of every cell with a fused training step (update_peers.py) and the drop-in modules'
forward+backward (dropin.py), as Markdown tables naming the CPU, the BLAS and the threads.

The complete tables, both parts at both thread counts (≈ 4 min on the 2-core VM with the Elman
step alone: ≈ 1 min of training updates, ≈ 2.5 min of drop-ins, sgemm and start-up; ≈ 8-10 min
once the LSTM and GRU steps exist; estimated from single cases timed on the loaded VM)::

    rnnlab bench --peers all > peers.md

``--peers training`` (also ``python benchmarks/bench_sweep.py --peers``) or ``--peers dropin``
for one table; ``--quick`` for a smoke run at tiny sizes (seconds, numbers meaningless).

* Training update: H ∈ {8, 16, 32, 64}, T ∈ {25, 100}, temporal order, M = 32 models, batch 20,
  SGD with per-model clipping at 1, cross-entropy at the last step, float32, batches generated
  before the clock. rnnlab's fused step against the nn loop (:data:`NN_MODELS` of the models,
  one after the other), the torch.func ensemble (eager; ``--compile`` for torch.compile) and
  ``jax.jit(jax.vmap(sgd_step))``: model-updates/s, and rnnlab's useful GFLOP/s (:meth:`Job.flops`)
  as a fraction of the one-core sgemm rate (``torch.mm``, 1024² float32) measured in the same run.
* Drop-in: rnnlab.RNN/LSTM/GRU against torch.nn and JAX's jit(grad(lax.scan)) at
  :data:`dropin.SIZES`, median ms of one forward+backward pass.

Each thread count runs in a subprocess confined to that many CPUs (harness.confined) before any
peer starts: JAX sizes its thread pool from the CPU affinity once, when it starts, and ignores
every thread flag, so one process cannot measure it at two thread counts. Within a process the
peers are measured in alternating rounds (:data:`ROUNDS`) and each keeps its best, so that a
burst of load from other processes hurts every peer alike.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..cells import get_cell
from . import dropin, update_peers
from .harness import FULL, QUICK, Budget, OtherLoad, confined, machine_info, measure, sgemm_gflops
from .peer_cells import PEER_CELLS, peer_cell
from .report import table

WHAT = ("training", "dropin", "all")
ROUNDS = 3
#: models the nn loop trains (one after the other, so its rate does not depend on M)
NN_MODELS = 4
#: updates per timed run at each length: ≥ 10 ms for the fastest peer (rnnlab at H = 8), a few
#: seconds for the slowest (torch.func, JAX at H = 64 with a gated cell)
UPDATES = {25: 10, 100: 5}
#: one drop-in timing inside a round: the median of a few calls
DROPIN_BUDGET = Budget(warmup=1, min_repeats=3, max_repeats=20, seconds=0.3)


def fused_cells() -> tuple[str, ...]:
    """The cells with torch.nn peers whose record names a fused training step."""
    return tuple(name for name in PEER_CELLS if get_cell(name).fused_step is not None)


def training_jobs(cells: tuple[str, ...], quick: bool) -> list[update_peers.Job]:
    if quick:
        return [update_peers.Job(c, T, H, M=4, updates=2) for c in cells for T, H in ((5, 8), (7, 12))]
    return [update_peers.Job(c, T, H, M=32, updates=UPDATES[T])
            for c in cells for T in (25, 100) for H in (8, 16, 32, 64)]


def blas_info() -> dict:
    """The BLAS behind torch.mm (MKL with its version where torch has it) and behind numpy."""
    if torch.backends.mkl.is_available():
        line = next((ln for ln in torch.__config__.show().splitlines() if "Math Kernel Library" in ln), "")
        # "... Math Kernel Library Version 2024.2-Product Build 20240605 for ..."
        version = line.split("Version", 1)[1].split()[0].split("-")[0] if "Version" in line else "?"
        torch_blas = f"MKL {version}"
    else:
        torch_blas = next((part.split("=", 1)[1] for part in torch.__config__.show().replace(",", " ").split()
                           if part.startswith("BLAS_INFO=")), "unknown")
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        numpy_blas = f"{blas['name']} {blas.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        numpy_blas = "unknown"
    return {"torch": torch_blas, "numpy": numpy_blas}


def numpy_sgemm_gflops(n: int = 1024, budget: Budget = FULL) -> float:
    """GFLOP/s of numpy's float32 matmul of two n×n matrices (its own BLAS, sized to the
    process's threads by OPENBLAS_NUM_THREADS, see :func:`run`)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    return 2 * n**3 / measure(lambda: np.matmul(a, b, out=c), budget).median / 1e9


def _best_of_rounds(calls: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each call returns seconds; the calls alternate, ``rounds`` times; the least of each."""
    best = {k: math.inf for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            best[k] = min(best[k], call())
    return best


def measure_training(job: update_peers.Job, spec: dict) -> dict:
    """Seconds per model-update of rnnlab and every peer on ``job``, best of the rounds."""
    problem = update_peers.Problem.make(job)
    ours, run = update_peers.rnnlab_step(problem)
    runs = {ours: (run, job.M), "nn loop": (update_peers.nn_loop(problem, spec["nn_models"]), spec["nn_models"]),
            "torch.func": (update_peers.torch_func(problem, spec["compile"]), job.M)}
    if spec["use_jax"]:
        runs["jax"] = (update_peers.jax_vmap(problem), job.M)
    calls = {k: (lambda run=run, models=models: run()[0] / (models * job.updates)) for k, (run, models) in runs.items()}
    return {"cell": job.cell, "T": job.T, "H": job.H, "M": job.M, "updates": job.updates,
            "nn_models": spec["nn_models"], "flops": job.flops(problem.task.n_in, problem.task.n_out), "rnnlab": ours,
            "seconds": _best_of_rounds(calls, spec["rounds"])}


def measure_dropin(cell: str, size: dropin.Size, spec: dict) -> dict:
    """Median seconds of one forward+backward pass of each drop-in peer, best of the rounds."""
    case = dropin.Case.make(peer_cell(cell), size)
    budget = QUICK if spec["quick"] else DROPIN_BUDGET
    calls = {k: (lambda fn=build(case): measure(fn, budget).median) for k, build in dropin.BUILDERS.items()
             if spec["use_jax"] or k != "jax"}
    return {"cell": cell, "size": size.label, "flops": size.flops(case.cell.gates),
            "seconds": _best_of_rounds(calls, spec["rounds"])}


def _child(spec: dict) -> None:
    """One thread count: everything measured in this process, confined to spec['threads'] CPUs."""
    def progress(line: str) -> None:
        print(f"  [{spec['threads']} thread(s)] {line} ...", file=sys.stderr, flush=True)

    with confined(spec["threads"]):
        load = OtherLoad()
        budget = QUICK if spec["quick"] else FULL
        out = {"threads": spec["threads"], "cpus": sorted(os.sched_getaffinity(0)), "machine": machine_info(),
               "blas": blas_info(), "torch_func": "torch.compile" if spec["compile"] else "eager",
               "training": [], "dropin": []}
        sgemm = [{"torch": sgemm_gflops(budget=budget), "numpy": numpy_sgemm_gflops(budget=budget)}]
        if spec["what"] in ("training", "all"):
            for job in training_jobs(tuple(spec["training_cells"]), spec["quick"]):
                progress(f"training {job.label}")
                out["training"].append(measure_training(job, spec))
        if spec["what"] in ("dropin", "all"):
            for cell in spec["dropin_cells"]:
                for size in dropin.QUICK_SIZES if spec["quick"] else dropin.SIZES:
                    progress(f"drop-in {cell} {size.label}")
                    out["dropin"].append(measure_dropin(cell, size, spec))
        sgemm.append({"torch": sgemm_gflops(budget=budget), "numpy": numpy_sgemm_gflops(budget=budget)})
        # the better of the two: a measurement slowed by other load says nothing about the core
        out["sgemm_gflops"] = {lib: max(s[lib] for s in sgemm) for lib in sgemm[0]}
        out["other_load"], out["loadavg"] = load.share(), os.getloadavg()
    Path(spec["out"]).write_text(json.dumps(out))


def run(what: str = "all", *, threads: list[int] | None = None, cells: list[str] | None = None, quick: bool = False,
        rounds: int | None = None, use_jax: bool = True, compile: bool = False, nn_models: int | None = None,
        json_path: str | None = None) -> str:
    """Measures ``what`` (training, dropin or all) at each thread count (default 1 and 2, as
    many as the process may use) in a subprocess each and returns the Markdown report.

    Args:
        cells: the cells to compare (default: those with a fused step for the training update,
            all of :data:`PEER_CELLS` for the drop-ins); a cell without a fused step is trained
            on rnnlab's autograd path.
        rounds: alternating rounds, the best kept (default :data:`ROUNDS`, 1 with ``quick``).
        compile: the torch.func peer through torch.compile (minutes of compilation per case).
    """
    if what not in WHAT:
        raise ValueError(f"what must be one of {WHAT}, got {what!r}")
    for cell in cells or ():
        peer_cell(cell)
    available = len(os.sched_getaffinity(0))
    threads = threads or [n for n in (1, 2) if n <= available]
    if any(not 1 <= n <= available for n in threads):
        raise ValueError(f"thread counts must be in [1, {available}] (the CPUs this process may use), got {threads}")
    spec = {"what": what, "quick": quick, "rounds": rounds or (1 if quick else ROUNDS), "compile": compile,
            "use_jax": use_jax and importlib.util.find_spec("jax") is not None,
            "nn_models": nn_models or (2 if quick else NN_MODELS),
            "training_cells": list(cells or fused_cells()), "dropin_cells": list(cells or PEER_CELLS)}
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this very rnnlab
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in threads:
            out = os.path.join(tmp, f"{n}.json")
            env = {**os.environ, "OPENBLAS_NUM_THREADS": str(n),
                   "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
            subprocess.run([sys.executable, "-m", "rnnlab.bench.peers", "--child",
                            json.dumps({**spec, "threads": n, "out": out})], env=env, check=True)
            results.append(json.loads(Path(out).read_text()))
    if json_path:
        Path(json_path).write_text(json.dumps({"spec": spec, "results": results}, indent=1))
    return render(spec, results)


# ---- the report -------------------------------------------------------------------------------
def _rate(seconds: float | None) -> str:
    return "–" if seconds is None else f"{1 / seconds:,.0f}"


def _ratio(ours: float, peer: float | None) -> str:
    return "–" if peer is None else f"{peer / ours:.2f}"


def header(spec: dict, results: list[dict]) -> str:
    first = results[0]
    m, blas = first["machine"], first["blas"]
    one_core = next((r for r in results if r["threads"] == 1), None)
    lines = [f"CPU: {m['cpu']}; rnnlab kernels {m['rnnlab_isa']}; torch {m['torch']} (BLAS: {blas['torch']}); "
             f"numpy {np.__version__} (BLAS: {blas['numpy']}); "
             + (f"jax {m['jax']} (XLA's own CPU kernels)" if spec["use_jax"] and m.get("jax") else "JAX not measured")]
    for r in results:
        s = r["sgemm_gflops"]
        load = "?" if r["other_load"] is None else f"{100 * r['other_load']:.0f} %"
        lines.append(f"{r['threads']} thread(s), pinned to CPU(s) {r['cpus']}: sgemm (1024² float32) "
                     f"torch.mm ({blas['torch']}) {s['torch']:.1f} GFLOP/s, numpy ({blas['numpy']}) {s['numpy']:.1f} "
                     f"GFLOP/s; other processes used {load} of the cores; load average {r['loadavg'][0]:.1f}")
    if one_core is None:
        lines.append("(no one-thread run: the fractions of one-core sgemm are missing)")
    return "\n\n".join(lines)


def training_table(spec: dict, result: dict, one_core_sgemm: float | None) -> str:
    peers = ["nn loop", "torch.func"] + (["jax"] if spec["use_jax"] else [])
    names = {"nn loop": "nn loop", "torch.func": "torch.func", "jax": "JAX"}
    headers = ["cell", "T", "H", "rnnlab upd/s", "rnnlab GFLOP/s", "÷ 1-core sgemm"]
    for p in peers:
        headers += [f"{names[p]} upd/s", f"rnnlab/{names[p]}"]
    rows = []
    for row in result["training"]:
        s = row["seconds"]
        ours = s[row["rnnlab"]]
        gflops = row["flops"] / ours / 1e9
        cells = [row["cell"] + ("" if row["rnnlab"] == "rnnlab fused" else " (autograd)"), str(row["T"]), str(row["H"]),
                 _rate(ours), f"{gflops:.2f}", "–" if one_core_sgemm is None else f"{gflops / one_core_sgemm:.3f}"]
        for p in peers:
            cells += [_rate(s.get(p)), _ratio(ours, s.get(p))]
        rows.append(cells)
    return table(headers, rows, markdown=True)


def dropin_table(spec: dict, result: dict, one_core_sgemm: float | None) -> str:
    peers = ["torch.nn"] + (["jax"] if spec["use_jax"] else [])
    headers = ["cell", "size", "rnnlab ms", "rnnlab GFLOP/s", "÷ 1-core sgemm"]
    for p in peers:
        headers += [f"{p} ms", f"rnnlab/{p}"]
    rows = []
    for row in result["dropin"]:
        s = row["seconds"]
        gflops = row["flops"] / s["rnnlab"] / 1e9
        cells = [PEER_CELLS[row["cell"]].module, row["size"], f"{1e3 * s['rnnlab']:.2f}", f"{gflops:.1f}",
                 "–" if one_core_sgemm is None else f"{gflops / one_core_sgemm:.3f}"]
        for p in peers:
            cells += [f"{1e3 * s[p]:.2f}", _ratio(s["rnnlab"], s[p])]
        rows.append(cells)
    return table(headers, rows, markdown=True)


def render(spec: dict, results: list[dict]) -> str:
    one_core = next((r["sgemm_gflops"]["torch"] for r in results if r["threads"] == 1), None)
    parts = [header(spec, results)]
    for r in results:
        if r["training"]:
            first = r["training"][0]
            per_T = {row["T"]: row["updates"] for row in r["training"]}
            updates = ", ".join(f"{per_T[T]} at T = {T}" for T in sorted(per_T))
            parts += [f"### Training update, {r['threads']} thread(s)",
                      f"Temporal order, M = {first['M']} models ({first['nn_models']} for the nn loop), batch 20, SGD "
                      f"lr {update_peers.LR} with per-model clipping at {update_peers.CLIP}, cross-entropy at the last "
                      f"step, float32, batches generated before the clock; updates per round: {updates}; best of "
                      f"{spec['rounds']} alternating rounds. torch.func: {r['torch_func']}. A cell marked (autograd) "
                      f"has no fused step: rnnlab's figure is its trainer's autograd path.",
                      training_table(spec, r, one_core)]
        if r["dropin"]:
            parts += [f"### Drop-in forward+backward, {r['threads']} thread(s)",
                      f"median of one pass, best of {spec['rounds']} alternating rounds; loss Σ hs ⊙ G, float32.",
                      dropin_table(spec, r, one_core)]
    parts.append("rnnlab/peer: rnnlab's model-updates/s over the peer's, or the peer's time over rnnlab's "
                 "(> 1: rnnlab is faster). GFLOP/s: useful flops (6·T·B·G·H² + 4·T·B·G·H·I + 6·B·H·O per "
                 "model-update; 6·T·B·G·H² + 4·T·B·G·H·I per drop-in pass; G gate blocks) over rnnlab's time; ÷ 1-core sgemm: over torch.mm's rate on one "
                 "pinned core in the same run.")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("what", nargs="?", choices=WHAT, default="all")
    ap.add_argument("--threads", type=int, nargs="+", help="thread counts (default: 1 and 2)")
    ap.add_argument("--cells", nargs="+", choices=tuple(PEER_CELLS))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round (a smoke run)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--compile", action="store_true", help="the torch.func peer through torch.compile")
    ap.add_argument("--json", help="also write the raw results (seconds) here")
    args = ap.parse_args(argv)
    if args.child is not None:
        _child(json.loads(args.child))
        return 0
    print(run(args.what, threads=args.threads, cells=args.cells, quick=args.quick, rounds=args.rounds,
              use_jax=not args.no_jax, compile=args.compile, json_path=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
