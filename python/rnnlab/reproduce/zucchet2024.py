"""Zucchet & Orvieto (NeurIPS 2024), "Recurrent neural networks: vanishing and exploding gradients
are not the end of the story" (SPEC §4): the 1-D curse of memory (Figs. 1–2, SPEC §4.1;
:mod:`rnnlab.reproduce.curse_of_memory`) and the linear teacher–student task, dense linear RNN vs
LRU over ν0 (Fig. 3A) and the ablation chain at ν0 = 0.99 (Fig. 3B), SPEC §4.2–4.3
(:mod:`rnnlab.reproduce.linear_students`).

The paper trains 10,000 Adam steps × 10 seeds × batch 128 per point; the full run here trains
``Scale.steps`` steps × ``Scale.seeds`` seeds × batch ``Scale.batch`` (T = 300 as in the paper),
every (learning rate, seed) pair of one point as one population.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import torch

from . import curse_of_memory as com
from .linear_students import Student, best_lr, faster_block_layout, train_students
from ..plotting import pyplot
from .report import Checkpoint, save_figure, table, write_json

TITLE = "Zucchet & Orvieto 2024: the curse of memory, and linear RNN vs LRU on linear teachers (SPEC §4)"
DOC = "docs/reproductions/zucchet2024.md"

NU0S = (0.32, 0.68, 0.84, 0.92, 0.96, 0.98, 0.99)
RHOS = (0.0, 0.9, 0.99)
LAMBDA_STARS = tuple(1 - d for d in (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64))  # SPEC §4.1 grid
RNN = Student("RNN", "rnn")
LRU = Student("LRU (exp + γ)", "lru", parametrization="exp", gamma="learned")
#: Fig. 3B: RNN → block-diagonal (2×2 heads) → more neurons → complex diagonal → +γ → LRU.
CHAIN = (
    RNN,
    Student("block-diag 32×(2×2)", "rnn", hidden=64, heads=32),
    Student("block-diag 64×(2×2), n=128", "rnn", hidden=128, heads=64),
    Student("complex diag", "lru", parametrization="plain", gamma="none"),
    Student("complex diag + γ", "lru", parametrization="plain", gamma="learned"),
    LRU,
)
#: learning-rate grids (SPEC §4.2): Fig. 3A per kind, and Fig. 3B's for the chain's new members.
LRS_3A = {"rnn": (3.2e-3, 1e-3, 3.2e-4, 1e-4, 3.2e-5), "lru": (0.32, 0.1, 0.032, 0.01, 0.0032)}
LRS_3B = {"rnn": (1e-2, 3.2e-3, 1e-3, 3.2e-4), "lru": (0.1, 0.032, 0.01, 0.0032, 0.001)}


@dataclass(frozen=True)
class Scale:
    """What is run: the λ grid of Fig. 1 (1 − 10^linspace(lam_lo, 0, n_lams), λ = 0 left out)
    and its Monte-Carlo budget, and the teacher–student training budget."""
    lam_lo: float
    n_lams: int
    samples: int
    min_batch: int
    nu0s: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int
    batch: int
    length: int
    lr_slice: slice | None = None  # quick: a part of each learning-rate grid

    def lrs(self, grid: tuple[float, ...]) -> list[float]:
        return list(grid if self.lr_slice is None else grid[self.lr_slice])


FULL = Scale(lam_lo=-4, n_lams=50, samples=100_000, min_batch=64, nu0s=NU0S, seeds=(0, 1), steps=600, batch=32, length=300)
QUICK = Scale(lam_lo=-3, n_lams=13, samples=10_000, min_batch=16, nu0s=(0.68, 0.99), seeds=(0,), steps=30, batch=8,
              length=300, lr_slice=slice(1, 3))


def memory_part(scale: Scale) -> dict:
    """Closed forms and simulation of Fig. 1 over λ and ρ."""
    lams = 1 - torch.logspace(scale.lam_lo, 0, scale.n_lams, dtype=torch.float64)[:-1]
    rhos = torch.tensor(RHOS, dtype=torch.float64)
    sim = com.simulate(lams, rhos, samples=scale.samples, min_batch=scale.min_batch)
    exact = com.closed_forms(lams.view(1, -1), rhos.view(-1, 1))
    return {"lams": lams.tolist(), "rhos": list(RHOS), "simulated": {k: v.tolist() for k, v in sim.items()},
            "closed_form": {k: v.tolist() for k, v in exact.items()}}


def landscape_part() -> dict:
    """Fig. 2: the closed-form 1-D loss L(λ) without and with normalisation for each λ*, and a
    Monte-Carlo check of the unnormalised one at λ* = 0.96."""
    lams = 1 - torch.logspace(-3, 0, 200, dtype=torch.float64)[:-1]
    curves = {f"{ls:.2f}": {"plain": com.teacher_student_loss(lams, torch.tensor(ls)).tolist(),
                            "normalized": com.teacher_student_loss(lams, torch.tensor(ls), normalized=True).tolist()}
              for ls in LAMBDA_STARS}
    probe = torch.tensor([0.5, 0.8, 0.9, 0.95, 0.97, 0.99], dtype=torch.float64)
    return {"lams": lams.tolist(), "curves": curves, "check_lams": probe.tolist(),
            "check_simulated": com.simulate_teacher_student_loss(probe, 0.96).tolist(),
            "check_closed_form": com.teacher_student_loss(probe, torch.tensor(0.96, dtype=torch.float64)).tolist()}


def students_part(student: Student, nu0: float, grid: tuple[float, ...], scale: Scale, log, layout: str = "dense") -> dict:
    result = train_students(student, nu0, scale.lrs(grid), list(scale.seeds), steps=scale.steps, batch=scale.batch,
                            length=scale.length, layout=layout)
    summary = best_lr(result)
    log(f"  {student.label:<28} ν0={nu0:<5} best lr {summary['best_lr']:<7g} loss {summary['loss']:.4g} "
        f"({len(result['lr'])} models, {result['seconds']:.0f} s)")
    return {**result, **summary}


def run(out: str, quick: bool = False, log=print) -> dict:
    scale = QUICK if quick else FULL
    checkpoint = Checkpoint(out, f"{'quick' if quick else 'full'}:{asdict(scale)}")
    log("Fig. 1: E[h²] and E[(∂_λ h)²], closed form vs fused-kernel simulation (F4 accumulators)")
    memory = checkpoint.get_or_run("memory", lambda: memory_part(scale), log)
    landscape = checkpoint.get_or_run("landscape", landscape_part, log)
    log(memory_table(memory))
    log(f"Fig. 2 check (λ* = 0.96): simulated/closed-form loss "
        + ", ".join(f"{s / c:.3f}" for s, c in zip(landscape["check_simulated"], landscape["check_closed_form"])))

    log(f"Fig. 3A: {scale.steps} Adam steps, {len(scale.seeds)} seed(s), batch {scale.batch}, T = {scale.length}")
    fig3a = {f"{s.kind}@{nu0}": checkpoint.get_or_run(f"3A {s.label} {nu0}", lambda s=s, nu0=nu0: students_part(
        s, nu0, LRS_3A[s.kind], scale, log), log) for nu0 in scale.nu0s for s in (RNN, LRU)}
    log(table(["ν0", "RNN loss", "RNN lr", "LRU loss", "LRU lr"],
              [[nu0, fig3a[f"rnn@{nu0}"]["loss"], fig3a[f"rnn@{nu0}"]["best_lr"], fig3a[f"lru@{nu0}"]["loss"],
                fig3a[f"lru@{nu0}"]["best_lr"]] for nu0 in scale.nu0s]))

    nu0 = max(scale.nu0s)
    models = len(scale.seeds) * len(scale.lrs(LRS_3B["rnn"]))
    layouts = {s.label: checkpoint.get_or_run(f"layout {s.label}", lambda s=s: dict(zip(
        ("faster", "seconds"), faster_block_layout(s, models, scale.length, scale.batch))), log)
        for s in CHAIN if s.heads > 1}
    for label, choice in layouts.items():
        log(f"  {label}: forward+backward of {models} models " + ", ".join(
            f"{k} {v * 1e3:.0f} ms" for k, v in choice["seconds"].items()) + f" -> {choice['faster']}")
    log(f"Fig. 3B: the ablation chain at ν0 = {nu0}")
    chain = []
    for s in CHAIN:
        if s in (RNN, LRU):  # the chain's ends are Fig. 3A's points at this ν0
            chain.append({"label": s.label, **fig3a[f"{s.kind}@{nu0}"]})
            continue
        layout = layouts[s.label]["faster"] if s.label in layouts else "dense"
        chain.append({"label": s.label, "layout": layout, **checkpoint.get_or_run(
            f"3B {s.label}", lambda s=s, layout=layout: students_part(s, nu0, LRS_3B[s.kind], scale, log, layout), log)})
    log(table(["model", "loss (best lr)", "best lr", "loss per seed"],
              [[c["label"], c["loss"], c["best_lr"], ", ".join(f"{v:.3g}" for v in c["loss_per_seed"])] for c in chain]))

    plot_memory(memory, os.path.join(out, "fig1_memory.png"))
    plot_landscape(landscape, os.path.join(out, "fig2_landscape.png"))
    plot_fig3a(fig3a, scale.nu0s, os.path.join(out, "fig3a.png"))
    plot_fig3b(chain, nu0, os.path.join(out, "fig3b.png"))
    record = {"reproduction": "zucchet2024", "quick": quick, "scale": {k: str(v) for k, v in asdict(scale).items()},
              "memory": memory, "landscape": landscape, "block_layouts": layouts,
              "fig3a": {k: {f: v[f] for f in ("lr", "seed", "final_loss", "best_lr", "loss", "loss_per_seed", "seconds")}
                        for k, v in fig3a.items()},
              "fig3b": [{f: c.get(f) for f in ("label", "layout", "lr", "final_loss", "best_lr", "loss", "loss_per_seed",
                                                "seconds")} for c in chain]}
    write_json(os.path.join(out, "results.json"), record)
    return record


def memory_table(memory: dict) -> str:
    """Per ρ and quantity: the spread of simulated/closed-form, and the range of the closed form."""
    rows = []
    for key, name in (("h2", "E[h²]"), ("s2", "E[(∂λ h)²]"), ("h2_normalized", "E[h²], γ"),
                      ("s2_exp_normalized", "E[(∂ω h)²], γ + exp")):
        for i, rho in enumerate(memory["rhos"]):
            ratio = [s / c for s, c in zip(memory["simulated"][key][i], memory["closed_form"][key][i])]
            exact = memory["closed_form"][key][i]
            rows.append([name, rho, sorted(ratio)[len(ratio) // 2], min(ratio), max(ratio), min(exact), max(exact)])
    return table(["quantity", "ρ", "sim/closed median", "min", "max", "closed form min", "max"], rows)


def plot_memory(memory: dict, path: str) -> None:
    plt = pyplot()
    gap = [1 - lam for lam in memory["lams"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = ((("h2", "E[h²]"),), (("s2", "E[(∂λ h)²]"),),
              (("h2_normalized", "E[h²] with γ"), ("s2_exp_normalized", "E[(∂ω h)²] with γ, exp")))
    for ax, panel in zip(axes, panels):
        for style, (key, name) in zip(("-", "--"), panel):
            for i, rho in enumerate(memory["rhos"]):
                label = f"{name}, ρ={rho:g}"
                ax.plot(gap, memory["closed_form"][key][i], style, color=f"C{i}", lw=1, label=label)
                ax.plot(gap, memory["simulated"][key][i], "o" if style == "-" else "x", color=f"C{i}", ms=2.5)
        ax.set(xscale="log", yscale="log", xlabel="1 − λ")
        ax.legend(fontsize=6)
    axes[0].set_title("hidden state (lines: closed form, dots: simulation)", fontsize=8)
    axes[1].set_title("sensitivity to λ explodes as (1−λ)^-3", fontsize=8)
    axes[2].set_title("input normalisation + exp parametrisation: O(1)", fontsize=8)
    save_figure(fig, path)


def plot_landscape(landscape: dict, path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (ls, curve) in enumerate(landscape["curves"].items()):
        axes[0].plot(landscape["lams"], curve["plain"], color=plt.cm.viridis(i / 7), lw=1, label=f"λ*={ls}")
        axes[1].plot(landscape["lams"], curve["normalized"], color=plt.cm.viridis(i / 7), lw=1)
    axes[0].plot(landscape["check_lams"], landscape["check_simulated"], "kx", ms=4, label="simulated, λ*=0.96")
    axes[0].set(yscale="log", xlabel="λ", ylabel="L(λ)", title="no normalisation")
    axes[1].set(xlabel="λ", title="with γ(λ) = sqrt(1 − λ²)")
    axes[0].legend(fontsize=6)
    save_figure(fig, path)


def plot_fig3a(fig3a: dict, nu0s, path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, (kind, name) in enumerate((("rnn", "linear RNN"), ("lru", "LRU"))):
        pts = [fig3a[f"{kind}@{nu0}"] for nu0 in nu0s]
        ax.plot(nu0s, [p["loss"] for p in pts], "o-", color=f"C{i}", label=f"{name} (best lr, mean over seeds)")
        for nu0, p in zip(nu0s, pts):
            ax.plot([nu0] * len(p["loss_per_seed"]), p["loss_per_seed"], ".", color=f"C{i}", alpha=0.5)
    ax.set(yscale="log", xlabel="ν0 (teacher's smallest |eigenvalue|)", ylabel="final loss")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_fig3b(chain: list[dict], nu0: float, path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    losses = [c["loss"] for c in chain]
    ax.bar(range(len(chain)), [v if not math.isnan(v) else 0 for v in losses], color="C0")
    for i, c in enumerate(chain):
        ax.plot([i] * len(c["loss_per_seed"]), c["loss_per_seed"], "k.", ms=4)
    ax.set_xticks(range(len(chain)), [c["label"] for c in chain], rotation=20, ha="right", fontsize=7)
    ax.set(yscale="log", ylabel=f"final loss at ν0 = {nu0}")
    save_figure(fig, path)
