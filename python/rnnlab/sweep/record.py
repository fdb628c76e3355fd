"""From a finished run to its stored row: outcome, gradient statistics and the VEG flags of SPEC §3.3.

VEG detection (SPEC §3.3, a project operationalisation [INF]): for last-step-loss tasks
δ_k = δ_T J_T ⋯ J_{k+1}, so R_1 = ‖δ_1‖/‖δ_T‖ is the norm of the whole Jacobian product along the
error direction. At each check of a run:

* vanishing if R_1 < ε_v (default 1e-6);
* exploding if R_1 > ε_e (default 1e6), or the gradient norm jumped to more than ``jump`` (10)
  times the running median of the earlier ones;

and a run "has VEG" if a flag fires on more than ``p`` (10 %) of its checks, or the clipping
safeguard ever fired (a NaN/Inf/>1e10 gradient norm is an explosion).

What the trainer exposes decides the sampling: :class:`rnnlab.train.RunResult` keeps, per
validation (every ``val_every`` updates), the profile sqrt(mean_b ‖δ_t‖²) of the last training
update before it and the mean pre-clipping norm of the interval. So R_1 here is a ratio of
batch-RMS norms (SPEC's per-sample median would need every update's [T, B] sink, which the
trainer does not hand out) and the checks are the validations, not every update.
"""
from __future__ import annotations

import math
import socket
import statistics
import time
from dataclasses import dataclass

from ..train import RunResult
from .spec import Run

#: profiles longer than this are stored at this many evenly spaced steps (first and last kept).
PROFILE_POINTS = 64


@dataclass(frozen=True)
class VegRule:
    """Thresholds of the VEG flags (SPEC §3.3 defaults)."""

    eps_vanish: float = 1e-6
    eps_explode: float = 1e6
    jump: float = 10.0
    fraction: float = 0.1

    def to_dict(self) -> dict:
        return {"eps_vanish": self.eps_vanish, "eps_explode": self.eps_explode, "jump": self.jump, "fraction": self.fraction}


def log10_ratio_profile(delta_norm: list[float]) -> list[float]:
    """log10(‖δ_t‖/‖δ_T‖) for t = 1..T.

    ‖δ_t‖ = 0 with ‖δ_T‖ > 0 gives −inf: the gradient vanished below float range (or was flushed
    as a denormal), the strongest vanishing there is. NaN where ‖δ_T‖ is 0 or a norm is not finite.
    """
    last = delta_norm[-1]

    def ratio(v: float) -> float:
        if not (last > 0 and math.isfinite(v) and math.isfinite(last)):
            return math.nan
        return math.log10(v / last) if v > 0 else -math.inf

    return [ratio(v) for v in delta_norm]


def downsample(values: list[float], points: int = PROFILE_POINTS) -> list[float]:
    """``points`` evenly spaced entries of ``values`` (all of them if there are fewer)."""
    n = len(values)
    if n <= points:
        return list(values)
    return [values[round(i * (n - 1) / (points - 1))] for i in range(points)]


def veg_flags(result: RunResult, rule: VegRule = VegRule()) -> dict:
    """The VEG summary of one run (see the module docstring); see :func:`veg_from_series`."""
    r1 = [log10_ratio_profile(p["delta_norm"])[0] for p in result.grad_profiles]
    return veg_from_series(r1, result.history.get("grad_norm", []), result.fallbacks, rule)


def veg_from_series(r1: list[float], norms: list[float], fallbacks: int, rule: VegRule = VegRule()) -> dict:
    """VEG flags from a run's per-check log10 R_1 and interval gradient norms (both stored in its
    row as ``log10_r1`` and ``history["grad_norm"]``, so other thresholds can be applied later).

    Returns:
        dict with ``veg_checks`` (checks seen), ``vanishing_frac``, ``exploding_frac`` (fraction of
        checks flagged), ``veg_vanishing``, ``veg_exploding``, ``veg`` (bools), ``log10_r1_min``,
        ``log10_r1_median``, ``log10_r1_max`` over the checks (−inf: ‖δ_1‖ was 0), and
        ``log10_r1`` (the series).
    """
    vanish = explode = 0
    for c, lr1 in enumerate(r1):
        v = lr1 < math.log10(rule.eps_vanish)
        e = lr1 > math.log10(rule.eps_explode)
        earlier = [n for n in norms[:c] if math.isfinite(n)]
        if c < len(norms) and earlier and math.isfinite(norms[c]):
            e = e or norms[c] > rule.jump * statistics.median(earlier)
        vanish += bool(v)
        explode += bool(e)
    n = len(r1)
    known = sorted(x for x in r1 if not math.isnan(x))
    v_frac = vanish / n if n else math.nan
    e_frac = explode / n if n else math.nan
    veg_v = bool(n) and v_frac > rule.fraction
    veg_e = (bool(n) and e_frac > rule.fraction) or fallbacks > 0
    return {
        "veg_checks": n, "vanishing_frac": v_frac, "exploding_frac": e_frac,
        "veg_vanishing": veg_v, "veg_exploding": veg_e, "veg": veg_v or veg_e,
        "log10_r1_min": known[0] if known else math.nan,
        "log10_r1_median": statistics.median(known) if known else math.nan,
        "log10_r1_max": known[-1] if known else math.nan,
        "log10_r1": list(r1),
    }


def make_row(run: Run, result: RunResult, *, population_id: str, population_size: int, backend: str,
             device: str, rule: VegRule = VegRule()) -> dict:
    """The store row of a finished run (column names of :data:`rnnlab.sweep.store.COLUMNS`)."""
    c = run.config
    kw = c.task_kwargs
    profiles = result.grad_profiles
    row = {
        "run_id": run.run_id, "config": run.to_dict(), "labels": dict(run.labels),
        "task": c.task, "length": kw.get("max_length"), "min_length": kw.get("min_length"),
        "cell": run.cell, "hidden": c.hidden, "nonlinearity": c.nonlinearity, "init": c.init,
        "init_gain": c.init_gain, "optimizer": c.optimizer, "lr": c.lr, "clip": c.clip, "alpha": c.alpha,
        "seed": c.seed, "batch_size": c.batch_size, "max_updates": c.max_updates,
        "success": bool(result.success), "updates": result.updates, "updates_to_success": result.updates_to_success,
        "final_loss": result.final_loss, "final_error": result.final_error, "best_error": result.best_error,
        "train_loss": result.train_loss, "grad_norm_mean": result.grad_norm_mean, "grad_norm_max": result.grad_norm_max,
        "clip_fraction": result.clip_fraction, "fallbacks": result.fallbacks, "rho_final": result.rho_final,
        "wall_time_s": result.wall_time_s,
        "population_id": population_id, "population_size": population_size, "backend": backend, "device": device,
        "host": socket.gethostname(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "history": result.history,
        "profile_first": downsample(log10_ratio_profile(profiles[0]["delta_norm"])) if profiles else None,
        "profile_last": downsample(log10_ratio_profile(profiles[-1]["delta_norm"])) if profiles else None,
    }
    row.update(veg_flags(result, rule))
    return row
