"""Emami et al. (ICML 2021), "Implicit bias of linear RNNs", by the protocol of SPEC §5.3: linear
RNNs of width n trained by full-batch GD on convolution teachers, their impulse responses against
the tap-NTK predictions (SPEC §5.2; :mod:`rnnlab.reproduce.tap_ntk`).

For every width, all (σ_W, teacher) students train as one population (one fused
:func:`rnnlab.elman` call per step computes every student's taps; the loss is the exact
½(L − L*)ᵀΣ_x(L − L*) of the Toeplitz design, so each step is exact full-batch GD on the
sequences). Each student's learning rate is η = 1/λ_max(Θ(0) Σ_x), half the stability limit.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import torch

from . import tap_ntk
from ..plotting import pyplot
from .report import Checkpoint, save_figure, table, write_json

TITLE = "Emami et al. 2021: a linear RNN trained by GD is a convolution with per-lag learning rates η β_j (SPEC §5)"
DOC = "docs/reproductions/emami2021.md"


@dataclass(frozen=True)
class Protocol:
    widths: tuple[int, ...]
    sigma_ws: tuple[float, ...]
    teachers: tuple[tuple[str, float], ...]
    T: int  # sequence length = number of taps J
    n_train: int  # sequences in the full batch
    steps: int  # GD steps τ
    ntk_check_width: int = 16  # the autograd check of Θ runs at this width, J = 10


FULL = Protocol(widths=(256, 1024), sigma_ws=(0.5, 0.8, 0.9, 0.95, 1.0),
                teachers=(("exp", 0.9), ("exp", 0.99), ("spike", 20)), T=100, n_train=500, steps=100)
QUICK = Protocol(widths=(64, 256), sigma_ws=(0.5, 0.9), teachers=(("exp", 0.9), ("spike", 5)), T=30, n_train=50, steps=60)


def teacher_name(kind: str, value: float) -> str:
    return f"exp ρ={value:g}" if kind == "exp" else f"spike d={int(value)}"


def check_ntk(protocol: Protocol) -> dict:
    """max |Θ_formula − Θ_autograd| / max |Θ| over the σ_W grid, a small width and J = 10."""
    sw = torch.tensor(protocol.sigma_ws, dtype=torch.float64)
    params = tap_ntk.init_students(protocol.ntk_check_width, sw, list(range(len(sw))))
    formula, autograd = tap_ntk.tap_ntk(params, 10), tap_ntk.tap_ntk_autograd(params, 10)
    return {"width": protocol.ntk_check_width, "J": 10, "max_rel_error": float((formula - autograd).abs().max() / autograd.abs().max())}


def train_width(protocol: Protocol, n: int, sigma_x: torch.Tensor, log) -> dict:
    """Train every (σ_W, teacher) student of width n as one population; compare with predictions."""
    J = protocol.T
    runs = [(sw, t) for sw in protocol.sigma_ws for t in protocol.teachers]
    sigma_w = torch.tensor([sw for sw, _ in runs], dtype=torch.float64)
    # one init per σ_W, shared by its teachers, so teachers differ only in the target
    seeds = [protocol.sigma_ws.index(sw) for sw, _ in runs]
    target = torch.stack([tap_ntk.teacher_taps(kind, value, J) for _, (kind, value) in runs])
    params = tap_ntk.init_students(n, sigma_w, seeds)
    start = time.perf_counter()
    with torch.no_grad():
        L0, theta0 = tap_ntk.taps(params, J), tap_ntk.tap_ntk(params, J)
    lr = 1 / torch.linalg.eigvals(theta0 @ sigma_x).real.amax(-1)
    for step in range(protocol.steps):
        leaves = {k: v.requires_grad_() for k, v in params.items()}
        err = tap_ntk.taps(leaves, J) - target
        loss = 0.5 * torch.einsum("mj,jk,mk->m", err, sigma_x, err)
        grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
        params = {k: (v - lr.view(-1, 1, 1) * g).detach() for (k, v), g in zip(leaves.items(), grads)}
    with torch.no_grad():
        L = tap_ntk.taps(params, J)
    seconds = time.perf_counter() - start
    beta = tap_ntk.wide_limit(J, sigma_w)
    pred_exact = tap_ntk.predict_taps(L0, target, theta0, sigma_x, lr, protocol.steps)
    pred_beta = tap_ntk.predict_taps(L0, target, torch.diag_embed(beta), sigma_x, lr, protocol.steps)
    scale = target.abs().amax(-1)
    theory_fraction = 1 - torch.exp(-lr.view(-1, 1) * protocol.steps * beta * sigma_x.diagonal())
    log(f"  n = {n}: {len(runs)} students, {protocol.steps} GD steps in {seconds:.0f} s")
    return {
        "n": n, "seconds": seconds,
        "runs": [{"sigma_w": sw, "teacher": teacher_name(*t), "lr": float(lr[m]),
                  "final_loss": float(0.5 * (L[m] - target[m]) @ sigma_x @ (L[m] - target[m])),
                  "error_exact_ntk": float((L[m] - pred_exact[m]).abs().max() / scale[m]),
                  "error_wide_limit": float((L[m] - pred_beta[m]).abs().max() / scale[m]),
                  "taps_init": L0[m].tolist(), "taps_trained": L[m].tolist(), "taps_pred_exact": pred_exact[m].tolist(),
                  "taps_pred_wide": pred_beta[m].tolist(), "target": target[m].tolist(),
                  "theory_fraction": theory_fraction[m].tolist()}
                 for m, (sw, t) in enumerate(runs)],
    }


def summarize(n: int, sigma_w: float, runs: list[dict]) -> dict:
    """Median and worst prediction errors over a (width, σ_W) cell's teachers; NaN (diverged) as inf."""
    exact = sorted(math.inf if math.isnan(r["error_exact_ntk"]) else r["error_exact_ntk"] for r in runs)
    wide = sorted(math.inf if math.isnan(r["error_wide_limit"]) else r["error_wide_limit"] for r in runs)
    return {"n": n, "sigma_w": sigma_w, "median_exact": exact[len(exact) // 2], "max_exact": exact[-1],
            "median_wide": wide[len(wide) // 2], "max_wide": wide[-1],
            "diverged": sum(math.isnan(r["final_loss"]) for r in runs)}


def learned_fraction(run: dict, min_gap: float = 0.1) -> tuple[list[int], list[float]]:
    """Lags j and (L_j(τ) − L_j(0))/(L*_j − L_j(0)) where the gap |L*_j − L_j(0)| is at least
    ``min_gap``·max_j of it (elsewhere the ratio is noise over a near-zero gap)."""
    gaps = [t - i for t, i in zip(run["target"], run["taps_init"])]
    big = min_gap * max(abs(g) for g in gaps)
    lags = [j for j, g in enumerate(gaps) if abs(g) >= big]
    return lags, [(run["taps_trained"][j] - run["taps_init"][j]) / gaps[j] for j in lags]


def plot_taps(part: dict, teachers: list[str], sigma_ws: list[float], path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(sigma_ws), len(teachers), figsize=(2.6 * len(teachers), 2.0 * len(sigma_ws)), squeeze=False)
    for row, sw in enumerate(sigma_ws):
        for col, name in enumerate(teachers):
            run = next(r for r in part["runs"] if r["sigma_w"] == sw and r["teacher"] == name)
            ax = axes[row][col]
            ax.plot(run["target"], color="0.7", lw=3, label="teacher L*")
            ax.plot(run["taps_trained"], color="C0", lw=1.2, label="trained RNN")
            ax.plot(run["taps_pred_exact"], "--", color="C3", lw=1, label="NTK prediction (exact Θ)")
            ax.plot(run["taps_pred_wide"], ":", color="k", lw=1, label="wide limit diag(β)")
            ax.set_title(f"σ_W={sw:g}, {name}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"impulse responses after GD, n = {part['n']}", fontsize=9)
    save_figure(fig, path)


def plot_fractions(part: dict, teachers: list[str], path: str) -> None:
    """Measured learned fraction per lag (dots) against 1 − exp(−η τ β_j λ_x) (lines), a panel per teacher."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(teachers), figsize=(5.5 * len(teachers), 3.6), squeeze=False)
    for ax, teacher in zip(axes[0], teachers):
        for i, run_ in enumerate(r for r in part["runs"] if r["teacher"] == teacher):
            lags, frac = learned_fraction(run_)
            ax.plot(lags, frac, "o", ms=2.5, color=f"C{i}", label=f"σ_W={run_['sigma_w']:g}")
            ax.plot(run_["theory_fraction"], "-", color=f"C{i}", lw=1)
        ax.set(xlabel="lag j", ylabel="(L_j(τ)−L_j(0)) / (L*_j−L_j(0))", ylim=(-0.2, 1.2),
               title=f"{teacher}, n={part['n']}: dots trained, lines 1−exp(−ητβ_jλ_x)")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_error_vs_width(rows: list[dict], path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, sw in enumerate(sorted({r["sigma_w"] for r in rows})):
        pts = sorted((r["n"], r["median_exact"], r["median_wide"]) for r in rows if r["sigma_w"] == sw)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=f"σ_W={sw:g} exact Θ(0)")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], "s:", color=f"C{i}", label=f"σ_W={sw:g} diag(β)")
    ax.axhline(0.1, color="k", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="width n", ylabel="median max_j|L−L_pred|/max|L*|")
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)


def run(out: str, quick: bool = False, log=print) -> dict:
    protocol = QUICK if quick else FULL
    checkpoint = Checkpoint(out, f"{'quick' if quick else 'full'}:{asdict(protocol)}")
    ntk_check = checkpoint.get_or_run("ntk_check", lambda: check_ntk(protocol), log)
    log(f"tap-NTK formula vs autograd Jacobian (n = {ntk_check['width']}, J = 10): max relative difference {ntk_check['max_rel_error']:.1e}")
    sigma_x = tap_ntk.toeplitz_moments(protocol.n_train, protocol.T, seed=12345)
    parts = [checkpoint.get_or_run(f"n={n}", lambda n=n: train_width(protocol, n, sigma_x, log), log) for n in protocol.widths]

    rows = [summarize(part["n"], sw, [r for r in part["runs"] if r["sigma_w"] == sw])
            for part in parts for sw in protocol.sigma_ws]
    log("max_j |L_j(τ) − L_j^pred(τ)| / max_j |L*_j| (median and worst over teachers; a diverged run counts as inf):")
    log(table(["n", "σ_W", "exact Θ(0): median", "worst", "diag(β): median", "worst", "diverged"],
              [[r["n"], r["sigma_w"], r["median_exact"], r["max_exact"], r["median_wide"], r["max_wide"], r["diverged"]]
               for r in rows]))
    widest = parts[-1]
    frac_rows = []
    for run_ in widest["runs"]:
        if math.isnan(run_["final_loss"]):
            frac_rows.append([run_["sigma_w"], run_["teacher"], 0, "diverged", "-", math.nan])
            continue
        lags, frac = learned_fraction(run_)
        gaps = [abs(a - run_["theory_fraction"][j]) for j, a in zip(lags, frac)]
        frac_rows.append([run_["sigma_w"], run_["teacher"], len(lags), sorted(gaps)[len(gaps) // 2], max(gaps), run_["final_loss"]])
    log(f"learned fraction per lag at n = {widest['n']} against 1 − exp(−η τ β_j λ_x), over lags with a gap ≥ 10 % of the largest:")
    log(table(["σ_W", "teacher", "lags", "median |measured − theory|", "max", "final loss"], frac_rows))

    teachers = [teacher_name(*t) for t in protocol.teachers]
    shown = [sw for sw in protocol.sigma_ws if sw in (0.5, 0.9, 1.0)] or list(protocol.sigma_ws)
    plot_taps(widest, teachers, shown, os.path.join(out, "taps.png"))
    plot_fractions(widest, [teacher_name(*t) for t in protocol.teachers if t[0] == "exp"],
                   os.path.join(out, "learned_fraction.png"))
    plot_error_vs_width(rows, os.path.join(out, "error_vs_width.png"))
    record = {"reproduction": "emami2021", "quick": quick, "protocol": asdict(protocol), "ntk_check": ntk_check,
              "summary": rows, "widths": parts}
    write_json(os.path.join(out, "results.json"), record)
    return record
