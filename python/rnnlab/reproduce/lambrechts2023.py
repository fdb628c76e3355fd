"""Lambrechts, De Geeter, Vecoven, Ernst & Drion (Neural Networks 2023), "Warming up recurrent
neural networks to maximise reachable multistability" (SPEC §6): two-layer GRUs and LSTMs (the Elman
cell runs the same code; the full run leaves it out for time) on copy-first-input and denoising, three arms per cell and length:

* ``none``: the cell's initialisation (SPEC §6.2: orthogonal recurrent, Gaussian input weights);
* ``warmup``: 100 Adam steps at lr 1e-2 on the layers' (VAA* − 0.95)² first (SPEC §6.1);
* ``double``: each layer two half-width cells, the first warmed up (the partial warm-up).

``none`` and ``warmup`` models of one (task, T, cell) train as one population (warm-up is a
per-model flag); ``double`` has its own layout, so its own population. Reported: test MSE on fresh
sequences, the VAA (SPEC §6.1) at initialisation and at every validation, and VAA* over warm-up.

The paper trains 50 epochs of 60,000 samples (≈ 94,000 Adam steps at batch 32), hidden 256; the
full run here trains ``Scale.updates`` steps at batch 32, hidden ``Scale.hidden`` (what the shared
2-core CPU allows, docs/reproductions/lambrechts2023.md).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import torch

from ..analysis import vaa
from ..tasks import rng
from ..train import RunConfig, train_population
from ..train.init import init_population
from ..plotting import pyplot
from .report import Checkpoint, save_figure, table, write_json

TITLE = "Lambrechts et al. 2023: warming up RNNs to maximise reachable multistability (SPEC §6)"
DOC = "docs/reproductions/lambrechts2023.md"
ARMS = ("none", "warmup", "double")


@dataclass(frozen=True)
class Scale:
    """What is run: (task, T) points, cells, seeds and the training and VAA budgets."""
    points: tuple[tuple[str, int], ...]
    cells: tuple[str, ...]
    seeds: tuple[int, ...]
    hidden: int
    updates: int
    val_every: int
    val_size: int
    warmup_steps: int
    vaa_steps: int
    vaa_estimates: int


FULL = Scale(points=(("copy", 100), ("copy", 300), ("copy", 600), ("denoise", 100), ("denoise", 200), ("denoise", 400)),
             cells=("gru", "lstm"), seeds=(0, 1), hidden=16, updates=1500, val_every=300, val_size=1000,
             warmup_steps=100, vaa_steps=10_000, vaa_estimates=1)
QUICK = Scale(points=(("copy", 20), ("denoise", 20)), cells=("gru", "lstm"), seeds=(0,), hidden=8, updates=4, val_every=2,
              val_size=64, warmup_steps=3, vaa_steps=100, vaa_estimates=1)


def _configs(task: str, T: int, cell: str, double: bool, scale: Scale) -> tuple[list[RunConfig], list[str]]:
    arms = ("double",) if double else ("none", "warmup")
    configs = [RunConfig(task=task, task_kwargs={"min_length": T, "max_length": T}, cell=cell,
                         cell_kwargs={"num_layers": 2, "double": double}, hidden=scale.hidden, optimizer="adam", lr=1e-3,
                         batch_size=32, clip=None, max_updates=scale.updates, val_every=scale.val_every,
                         val_size=scale.val_size, val_chunk=min(scale.val_size, 500), stop_at_success=False,
                         warmup=arm != "none", warmup_steps=scale.warmup_steps, seed=seed)
               for arm in arms for seed in scale.seeds]
    return configs, [arm for arm in arms for _ in scale.seeds]


def population_part(task: str, T: int, cell: str, double: bool, scale: Scale, log) -> dict:
    """Train one population; its VAA at initialisation and at every validation."""
    configs, arms = _configs(task, T, cell, double, scale)
    c = configs[0]
    the_task, options = c.make_task(), c.forward_options()
    measure = lambda params: vaa(params, the_task, cell=cell, n_estimates=scale.vaa_estimates,  # noqa: E731
                                 steps=scale.vaa_steps, dtype=torch.float32, **options).tolist()
    init = init_population(rng.seed_keys([x.seed for x in configs]), c.init, the_task.n_in, c.hidden, the_task.n_out,
                           dtype=torch.float32, cell=cell, cell_kwargs=c.cell_kwargs)
    trajectory = {"update": [0], "vaa": [measure(init)]}

    def at_validation(info: dict) -> None:
        if "params" in info:
            trajectory["update"].append(info["update"])
            trajectory["vaa"].append(measure(info["params"]))

    start = time.perf_counter()
    results = train_population(configs, callback=at_validation)
    seconds = time.perf_counter() - start
    part = {"arm": arms, "seed": [x.seed for x in configs], "mse": [r.final_loss for r in results],
            "mse_history": [r.history["val_loss"] for r in results], "vaa_update": trajectory["update"],
            "vaa": [list(v) for v in zip(*trajectory["vaa"])],
            "warmup_vaa_star": [r.history.get("warmup_vaa_star", []) for r in results], "seconds": seconds}
    for arm in dict.fromkeys(arms):
        sel = [i for i, a in enumerate(arms) if a == arm]
        log(f"  {task:<7} T={T:<4} {cell:<5} {arm:<7} MSE {_mean(part['mse'], sel):.4g}  VAA init "
            f"{_mean([v[0] for v in part['vaa']], sel):.3g} -> end {_mean([v[-1] for v in part['vaa']], sel):.3g} ({seconds:.0f} s)")
    return part


def _mean(values, sel) -> float:
    vals = [values[i] for i in sel if not math.isnan(values[i])]
    return sum(vals) / len(vals) if vals else math.nan


def summary(parts: dict, scale: Scale) -> list[list]:
    """Rows: task, T, cell, arm, mean test MSE, mean VAA at init, after warm-up's training, at the end."""
    rows = []
    for task, T in scale.points:
        for cell in scale.cells:
            for arm in ARMS:
                part = parts[_key(task, T, cell, arm == "double")]
                sel = [i for i, a in enumerate(part["arm"]) if a == arm]
                wstar = [part["warmup_vaa_star"][i][-1] for i in sel if part["warmup_vaa_star"][i]]
                rows.append([task, T, cell, arm, _mean(part["mse"], sel), _mean([v[0] for v in part["vaa"]], sel),
                             sum(wstar) / len(wstar) if wstar else math.nan, _mean([v[-1] for v in part["vaa"]], sel)])
    return rows


def _key(task: str, T: int, cell: str, double: bool) -> str:
    return f"{task} T={T} {cell}{' double' if double else ''}"


def run(out: str, quick: bool = False, log=print) -> dict:
    scale = QUICK if quick else FULL
    checkpoint = Checkpoint(out, f"{'quick' if quick else 'full'}:{asdict(scale)}")
    log(f"{len(scale.points)} (task, T) x {len(scale.cells)} cells x {len(ARMS)} arms x {len(scale.seeds)} seeds; two layers, "
        f"hidden {scale.hidden}, Adam 1e-3, batch 32, {scale.updates} updates; VAA K = {scale.vaa_steps}")
    parts = {}
    for task, T in scale.points:
        for cell in scale.cells:
            for double in (False, True):
                key = _key(task, T, cell, double)
                parts[key] = checkpoint.get_or_run(key, lambda t=task, T=T, c=cell, d=double: population_part(
                    t, T, c, d, scale, log), log)
    rows = summary(parts, scale)
    log(table(["task", "T", "cell", "arm", "test MSE", "VAA init", "VAA* end of warm-up", "VAA end"], rows))
    plot_mse(rows, scale, os.path.join(out, "mse_by_arm.png"))
    plot_vaa(parts, scale, os.path.join(out, "vaa_over_training.png"))
    record = {"reproduction": "lambrechts2023", "quick": quick, "scale": {k: str(v) for k, v in asdict(scale).items()},
              "summary": [dict(zip(("task", "T", "cell", "arm", "mse", "vaa_init", "vaa_star_warmup", "vaa_end"), r)) for r in rows],
              "parts": parts}
    write_json(os.path.join(out, "results.json"), record)
    return record


def plot_mse(rows: list[list], scale: Scale, path: str) -> None:
    plt = pyplot()
    tasks = list(dict.fromkeys(task for task, _ in scale.points))
    fig, axes = plt.subplots(len(scale.cells), len(tasks), figsize=(4.2 * len(tasks), 2.8 * len(scale.cells)), squeeze=False)
    for i, cell in enumerate(scale.cells):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            for k, arm in enumerate(ARMS):
                pts = [(r[1], r[4]) for r in rows if r[0] == task and r[2] == cell and r[3] == arm]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{k}", label=arm)
            ax.set(title=f"{cell}, {task}", xlabel="T", ylabel="test MSE")
            ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_vaa(parts: dict, scale: Scale, path: str) -> None:
    plt = pyplot()
    task, T = max((p for p in scale.points if p[0] == "copy"), key=lambda p: p[1])  # the longest copy task
    fig, axes = plt.subplots(1, len(scale.cells), figsize=(4.2 * len(scale.cells), 3.0), squeeze=False)
    for ax, cell in zip(axes[0], scale.cells):
        for double in (False, True):
            part = parts[_key(task, T, cell, double)]
            for arm, curve in zip(part["arm"], part["vaa"]):
                ax.plot(part["vaa_update"], curve, "o-", color=f"C{ARMS.index(arm)}", ms=3, alpha=0.7,
                        label=arm)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set(title=f"{cell}, {task} T={T}", xlabel="update", ylabel="VAA", ylim=(0, 1.05))
    save_figure(fig, path)
