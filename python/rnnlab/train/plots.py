"""PNG plots of training runs (matplotlib is optional: :func:`available` says whether it is
installed; the plotting functions raise ImportError naming the package otherwise).

* :func:`plot_curves`: validation loss and error rate against updates, one line per run;
* :func:`plot_grad_profiles`: log ‖∂L/∂h_t‖ against t at several points of training, one panel
  per run — the picture of vanishing / exploding gradients (SPEC §8.1 B1).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..plotting import available, pyplot
from .config import RunResult

__all__ = ["available", "plot_curves", "plot_grad_profiles"]


def plot_curves(results: Sequence[RunResult], labels: Sequence[str], path: str, threshold: float = 0.01) -> None:
    """Validation loss (log scale) and error rate against updates, one line per run; a dotted
    line marks the success ``threshold``."""
    plt = pyplot()
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    groups = sorted(set(labels))
    colors = {g: plt.cm.tab10(i % 10) for i, g in enumerate(groups)}
    for r, label in zip(results, labels):
        hist = r.history
        ax_loss.plot(hist["update"], hist["val_loss"], color=colors[label], alpha=0.8, lw=1)
        ax_err.plot(hist["update"], [100 * e for e in hist["val_error"]], color=colors[label], alpha=0.8, lw=1)
    for g in groups:
        ax_err.plot([], [], color=colors[g], label=g)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="update", ylabel="validation loss")
    ax_err.set(xlabel="update", ylabel="validation error (%)", ylim=(-2, 102))
    ax_err.axhline(100 * threshold, color="k", ls=":", lw=0.8)
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grad_profiles(results: Sequence[RunResult], labels: Sequence[str], path: str, snapshots: int = 5) -> None:
    """log10 ‖∂L/∂h_t‖ against t at up to ``snapshots`` points of training, one panel per run."""
    plt = pyplot()
    n = len(results)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, r, label in zip(axes.flat, results, labels):
        prof = r.grad_profiles
        picks = sorted({round(i * (len(prof) - 1) / max(snapshots - 1, 1)) for i in range(snapshots)}) if prof else []
        for j, i in enumerate(picks):
            p = prof[i]
            ys = [math.log10(v) if v > 0 else float("nan") for v in p["delta_norm"]]
            ax.plot(range(1, p["length"] + 1), ys, color=plt.cm.viridis(j / max(len(picks) - 1, 1)), lw=1,
                    label=f"update {p['update']}")
        ax.set_title(f"{label} seed {r.config.seed}", fontsize=8)
        ax.set_xlabel("t", fontsize=8)
        ax.tick_params(labelsize=7)
        if picks:
            ax.legend(fontsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel("log10 ‖∂L/∂h_t‖", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
