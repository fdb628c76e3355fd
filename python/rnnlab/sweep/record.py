"""From a finished run to its stored row: outcome, gradient statistics and the VEG flags of SPEC §3.3.

VEG detection (SPEC §3.3, a project operationalisation [INF]; thresholds :class:`VegRule`):
the trainer flags every update (:mod:`rnnlab.train.veg`: per-sample R_1 = ‖δ_1‖/‖δ_T‖ from the
fused kernel's sink, vanishing if median_b R_1 < ε_v, exploding if max_b R_1 > ε_e or the
gradient norm jumped above ``jump`` times its running median) and counts the flagged updates. A
run "has VEG" if a flag fires on more than ``fraction`` (10 %) of its updates, or the clipping
safeguard ever fired (a NaN/Inf/>1e10 gradient norm is an explosion).

For recomputing flags later with other ε (``rnnlab sweep report --veg-rule``), each row also
keeps a per-check series: at every validation, log10 R_1 of the batch-RMS profile
sqrt(mean_b ‖δ_t‖²) of the last update before it (``log10_r1``) and the interval's mean gradient
norm. Flags recomputed from it are sampled at the checks, not at every update.
"""
from __future__ import annotations

import math
import socket
import statistics
import time
from dataclasses import dataclass

from ..train import RunResult
from ..train.veg import VegRule
from .spec import Run
from .store import PARAMS_KEY

#: profiles longer than this are stored at this many evenly spaced steps (first and last kept).
PROFILE_POINTS = 64


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
    """The VEG summary of one run (see the module docstring): the per-check series and its
    statistics (:func:`veg_from_series`), then the flags from the trainer's per-update counts
    (``rule`` must be the one the trainer counted with)."""
    r1 = [log10_ratio_profile(p["delta_norm"])[0] for p in result.grad_profiles]
    out = veg_from_series(r1, result.history.get("grad_norm", []), result.fallbacks, rule)
    out.update(veg_from_counts(result.veg_steps, result.vanishing_steps, result.exploding_steps, result.fallbacks, rule))
    return out


def veg_from_counts(steps: int, vanishing: int, exploding: int, fallbacks: int, rule: VegRule = VegRule()) -> dict:
    """VEG flags from per-update counts: ``veg_steps``, ``vanishing_steps``, ``exploding_steps``,
    the fractions ``vanishing_frac``, ``exploding_frac`` and the bools ``veg_vanishing``,
    ``veg_exploding``, ``veg``."""
    v_frac = vanishing / steps if steps else math.nan
    e_frac = exploding / steps if steps else math.nan
    veg_v = bool(steps) and v_frac > rule.fraction
    veg_e = (bool(steps) and e_frac > rule.fraction) or fallbacks > 0
    return {"veg_steps": steps, "vanishing_steps": vanishing, "exploding_steps": exploding,
            "vanishing_frac": v_frac, "exploding_frac": e_frac,
            "veg_vanishing": veg_v, "veg_exploding": veg_e, "veg": veg_v or veg_e}


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
    """The store row of a finished run (column names of :data:`rnnlab.sweep.schema.COLUMNS`), plus
    the run's trained weights under :data:`rnnlab.sweep.store.PARAMS_KEY` when the result kept them."""
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
    if result.params is not None:
        row[PARAMS_KEY] = result.params
    return row
