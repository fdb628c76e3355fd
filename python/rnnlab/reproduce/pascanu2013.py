"""Pascanu, Mikolov & Bengio (ICML 2013), Fig. 7 setting (SPEC §2.3–2.6): MSGD vs clipping vs
clipping + Ω on temporal order and adding, 5 seeds × 3 methods trained as one population of 15
per task with the population trainer (:func:`rnnlab.train.train_population`).

The full run is the one of docs/reproductions/pascanu2013.md: lengths 50–200 for both tasks
(30 minutes of wall time each) and temporal order at 20–50 (15 minutes). ``quick``: temporal
order at 20–50, 2 seeds, 200 updates, small validations.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

TITLE = "Pascanu et al. 2013: MSGD, clipping and the regularizer Ω on temporal order and adding (SPEC §2.6)"
DOC = "docs/reproductions/pascanu2013.md"

#: Pascanu's methods: name -> (clipping threshold τ, regularizer weight α) (SPEC §2.4–2.5).
METHODS = {"msgd": (None, 0.0), "msgd-c": (1.0, 0.0), "msgd-cr": (1.0, 4.0)}


@dataclass(frozen=True)
class Setting:
    """One population: a task at lengths [min_length, max_length) with a budget."""
    name: str
    task: str
    min_length: int
    max_length: int
    seeds: tuple[int, ...]
    max_updates: int
    val_every: int
    val_size: int
    time_limit_s: float | None


FULL = (
    Setting("torder", "torder", 50, 200, tuple(range(5)), 5_000_000, 2000, 10_000, 1800),
    Setting("add", "add", 50, 200, tuple(range(5)), 5_000_000, 2000, 10_000, 1800),
    Setting("torder_short", "torder", 20, 50, tuple(range(5)), 5_000_000, 1000, 10_000, 900),
)
QUICK = (Setting("torder_short", "torder", 20, 50, (0, 1), 200, 100, 500, None),)


def configs(setting: Setting) -> tuple[list, list[str]]:
    """The RunConfigs (SPEC §2.3: basic_tanh, 50 units, SGD lr 0.01, batch 20) and method labels."""
    from ..train import RunConfig

    runs = [(m, s) for m in METHODS for s in setting.seeds]
    cfgs = [RunConfig(task=setting.task, task_kwargs={"min_length": setting.min_length, "max_length": setting.max_length},
                      hidden=50, init="basic_tanh", lr=0.01, batch_size=20, clip=METHODS[m][0], alpha=METHODS[m][1],
                      max_updates=setting.max_updates, val_every=setting.val_every, val_size=setting.val_size,
                      val_chunk=min(1000, setting.val_size), seed=s)
            for m, s in runs]
    return cfgs, [m for m, _ in runs]


def train_setting(setting: Setting, out: str, log) -> dict:
    """Train one population; write its curves and gradient profiles; return its per-run rows."""
    from ..train import plots, train_population

    cfgs, labels = configs(setting)
    log(f"{setting.name}: {setting.task} at lengths [{setting.min_length}, {setting.max_length}), "
        f"{len(cfgs)} runs as one population")
    results = train_population(cfgs, "cpu", keep_params=False, time_limit_s=setting.time_limit_s)
    plots.plot_curves(results, labels, os.path.join(out, f"{setting.name}_curves.png"))
    plots.plot_grad_profiles(results, labels, os.path.join(out, f"{setting.name}_grad_profile.png"))
    return {"setting": setting.__dict__, "runs": [
        {"method": label, "seed": r.config.seed, "success": r.success, "updates": r.updates,
         "updates_to_success": r.updates_to_success, "final_error": r.final_error, "final_loss": r.final_loss,
         "grad_norm_mean": r.grad_norm_mean, "clip_fraction": r.clip_fraction, "rho_final": r.rho_final}
        for label, r in zip(labels, results)]}


def run(out: str, quick: bool = False, log=print) -> dict:
    from .report import Checkpoint, table, write_json

    settings = QUICK if quick else FULL
    checkpoint = Checkpoint(out, "quick" if quick else "full")
    parts = {s.name: checkpoint.get_or_run(s.name, lambda s=s: train_setting(s, out, log), log) for s in settings}
    rows = []
    for name, part in parts.items():
        for method in METHODS:
            runs = [r for r in part["runs"] if r["method"] == method]
            solved = sorted(r["updates_to_success"] for r in runs if r["success"])
            rows.append([name, method, f"{len(solved)}/{len(runs)}", ", ".join(map(str, solved)) or "-",
                         ", ".join(f"{100 * r['final_error']:.1f}" for r in runs), max(r["rho_final"] for r in runs)])
    log(table(["setting", "method", "success", "updates to success", "final error % per seed", "max rho"], rows))
    record = {"reproduction": "pascanu2013", "quick": quick, "settings": parts}
    write_json(os.path.join(out, "results.json"), record)
    return record
