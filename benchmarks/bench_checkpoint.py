"""Checkpoint cost: the time of one save of a realistic population against the checkpoint
interval, as a fraction of the training time (the target: < 2 % at the default interval).

    python benchmarks/bench_checkpoint.py [--length 200] [--validations 500] [--threads 1]

The population is one of examples/sweeps/pascanu2013_long.toml (20 tanh RNNs, H = 50, temporal
order at the given length). It trains a few updates with a zero time limit to get a real
checkpoint; the runs' histories and gradient profiles are then grown to ``--validations``
entries (a run at its 10^6-update budget, validated every 2,000 updates, has 500), because the
pickled histories are what grows over a run. Reported: the training time per update (no
validation), the median save time early in the run and with full histories, the file size and
the cost at the default interval. Results are printed, not asserted.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rnnlab.sweep import SweepSpec
from rnnlab.train import checkpoint as ckpt
from rnnlab.train import train_population

SPEC = Path(__file__).resolve().parents[1] / "examples" / "sweeps" / "pascanu2013_long.toml"


def _median_save_s(checkpointing: ckpt.Checkpointing, state: dict, summary: dict, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ckpt.save(checkpointing, state, summary)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _grow_histories(state: dict, validations: int) -> None:
    """Repeat each run's history and profiles up to ``validations`` entries."""
    for result in state["results"]:
        result["history"] = {k: (v * validations)[:validations] for k, v in result["history"].items()}
        result["grad_profiles"] = (result["grad_profiles"] * validations)[:validations]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=200, choices=(50, 100, 150, 200))
    parser.add_argument("--validations", type=int, default=500)
    parser.add_argument("--updates", type=int, default=20, help="updates timed for the training pace")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    runs = [r for r in SweepSpec.from_file(SPEC).expand() if r.config.task_kwargs["max_length"] == args.length]
    timed = [dataclasses.replace(r.config, max_updates=args.updates, val_every=args.updates, val_size=20, val_chunk=20)
             for r in runs]
    start = time.perf_counter()
    train_population(timed)
    per_update_s = (time.perf_counter() - start) / args.updates

    with tempfile.TemporaryDirectory() as tmp:
        checkpointing = ckpt.Checkpointing(Path(tmp) / "population.pt")
        try:  # a zero time limit: one update, then a checkpoint of the real state
            train_population([r.config for r in runs], time_limit_s=1e-9, checkpoint=checkpointing)
        except ckpt.TrainingPaused:
            pass
        state, summary = ckpt.load(checkpointing.path, "cpu"), ckpt.read_summary(checkpointing.path)
        state["results"] = [{**r, "history": {k: [0.5] for k in r["history"]},
                             "grad_profiles": [{"update": 2000, "length": args.length, "delta_norm": [1e-3] * args.length}]}
                            for r in state["results"]]
        early_s = _median_save_s(checkpointing, state, summary)
        _grow_histories(state, args.validations)
        full_s = _median_save_s(checkpointing, state, summary)
        size = checkpointing.path.stat().st_size

    print(f"population: {len(runs)} models, H = 50, temporal order T = {args.length}, {args.threads} thread(s)")
    print(f"training: {per_update_s * 1e3:.0f} ms per update")
    print(f"save, one validation of history: {early_s * 1e3:.1f} ms")
    print(f"save, {args.validations} validations of history: {full_s * 1e3:.1f} ms, file {size / 1e6:.2f} MB")
    print(f"cost at the default interval ({ckpt.DEFAULT_EVERY_S:.0f} s): {100 * full_s / ckpt.DEFAULT_EVERY_S:.3f} % "
          f"of the training time (one save every {ckpt.DEFAULT_EVERY_S / per_update_s:,.0f} updates)")


if __name__ == "__main__":
    main()
