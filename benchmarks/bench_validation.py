"""What validation costs inside a Johnston-style population, with the cells' evaluate ops and
without (population_forward in blocks of models, the path before them).

    python benchmarks/bench_validation.py [--models 198] [--updates 300] [--json out.json]

A population of the 101,376-run study (examples/sweeps/johnston100k.toml: latching, 3 bits,
noise 0.2, T = 50, batch 20, Adam, 9 learning rates, validation on 1,000 fresh sequences every 100
updates) trains ``--updates`` updates with ``train_population`` on one thread, once per validation
path, for each of the study's four models; reported: model-updates/s of the whole call and the
share of its time spent in validation. Run it pinned to one core on a quiet machine
(``taskset -c 0``); the script reports the other processes' load beside the table.
"""
from __future__ import annotations

import argparse
import time

import torch

from rnnlab.bench.harness import OtherLoad, conclude
from rnnlab.train import trainer
from rnnlab.train.config import RunConfig

MODELS = (("rnn-h8", "elman", 8), ("rnn-h32", "elman", 32), ("lstm-h8", "lstm", 8), ("gru-h8", "gru", 8))


def configs(cell: str, hidden: int, M: int, updates: int) -> list[RunConfig]:
    lrs = torch.logspace(-3, 0, 9).tolist()
    return [RunConfig(task="latch", task_kwargs={"n_info": 3, "noise": 0.2, "min_length": 50, "max_length": 50},
                      cell=cell, hidden=hidden, init="normal", optimizer="adam", lr=lrs[s % 9], clip=None,
                      batch_size=20, max_updates=updates, val_every=100, val_size=1000, stop_at_success=False, seed=s)
            for s in range(M)]


def timed_run(runs: list[RunConfig], evaluate_op: bool) -> tuple[float, float]:
    """(seconds of train_population, seconds of it inside validate) with or without the evaluate op."""
    spent = [0.0]
    forward = trainer.validation_outputs if evaluate_op else trainer._blocked_forward
    real_validate = trainer.validate

    def validate(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real_validate(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    saved = trainer.validation_outputs
    trainer.validation_outputs, trainer.validate = forward, validate
    try:
        start = time.perf_counter()
        trainer.train_population(runs, keep_params=False)
        return time.perf_counter() - start, spent[0]
    finally:
        trainer.validation_outputs, trainer.validate = saved, real_validate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=198, help="population size (default 198: 9 lrs × 22 seeds)")
    ap.add_argument("--updates", type=int, default=300, help="updates per run (default 300: 3 validations)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = OtherLoad()
    results = []
    print("| model | validation | model-updates/s | validation share | evaluate op ÷ blocks |")
    print("|---|---|---|---|---|")
    for name, cell, hidden in MODELS:
        runs = configs(cell, hidden, args.models, args.updates)
        row = {}
        for evaluate_op in (False, True):
            seconds, in_validation = timed_run(runs, evaluate_op)
            row[evaluate_op] = (args.models * args.updates / seconds, in_validation / seconds)
        for evaluate_op, label in ((False, "population_forward in blocks"), (True, "evaluate op")):
            rate, share = row[evaluate_op]
            ratio = f"{row[True][0] / row[False][0]:.2f}" if evaluate_op else ""
            print(f"| {name} | {label} | {rate:,.0f} | {share:.0%} | {ratio} |", flush=True)
        results.append({"model": name, "blocks": row[False], "evaluate": row[True]})
    conclude(results, load, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
