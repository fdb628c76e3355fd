"""Fixed points of the autonomous map F(h) = φ(W_hh h + d) (SPEC §3.3 steps 2–4), batched over
the M models of an :class:`~rnnlab.analysis.system.ElmanSystem`.

Two searches, as in SPEC §3.3:

* :func:`iterate_map`: run F from given states (e.g. the final states of test sequences) for at
  most ``max_steps`` = 10⁴ steps, stopping each state once ‖F(h) − h‖ < ``tol`` = 10⁻⁸. This
  finds the attractors those states fall into, and only attractors (or non-hyperbolic points).
  Trained networks often settle on periodic orbits instead (period 2 to 10 is common in tanh
  networks trained on the latch task), which never meet that test: the roll-out also stops a
  state once F^p(h) returns within ``tol`` of h for some p ≤ 64, and reports the period.
* :func:`minimize_speed`: minimise q(h) = ½‖F(h) − h‖² (Sussillo & Barak 2013) by
  Levenberg–Marquardt steps on the residual r(h) = F(h) − h with the analytic Jacobian
  A = J(h) − I: δ = −(AᵀA + μI)⁻¹ Aᵀ r, μ adapted per state (÷3 on success, ×4 on failure). This
  also finds saddles and repellers, and slow points (local minima of q above zero).

:func:`find_fixed_points` combines them, polishes the iterated end points by a few such steps
(an iterate stopped at ‖F(h) − h‖ < 10⁻⁸ can still be ~10⁻⁸/(1 − |λ|) away from its fixed point
when the slowest eigenvalue λ is close to 1), merges points closer than ``dedup_tol`` and
classifies each distinct point by its spectrum (:mod:`rnnlab.analysis.stability`).

``dedup_tol`` = 10⁻⁴ by default: far above the polished points' error (≲ 10⁻¹⁰ for hyperbolic
points) and far below the distance between distinct attractors of a tanh network (order 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .orbits import canonical_orbit_points
from .stability import classify, spectra
from .system import ElmanSystem, require_system

#: :func:`iterate_map` packs its still-moving states every this many steps, and looks for
#: periodic orbits up to this period within each such chunk.
MAX_PERIOD = 64
#: Levenberg–Marquardt damping floor: keeps AᵀA + μI invertible where J has an eigenvalue 1.
_MIN_DAMPING = 1e-10


@dataclass
class Rollout:
    """End of :func:`iterate_map`.

    Attributes:
        states: [M, N, H] where each state stopped (or after ``max_steps``).
        period: [M, N] int64: 1 where ‖F(h) − h‖ < tol was reached (a fixed point), p ≥ 2 where
            ‖F^p(h) − h‖ < tol was (a periodic orbit, p ≤ ``max_period``; p may be a multiple of
            the minimal period), 0 where neither happened within ``max_steps``.
        steps: [M, N] the steps taken (``max_steps`` where the period is 0).
    """

    states: Tensor
    period: Tensor
    steps: Tensor


def _expand_drive(system: ElmanSystem, drive: Tensor, h: Tensor) -> Tensor:
    return system.broadcast_drive(h, drive).expand_as(h)


@torch.no_grad()
def iterate_map(system: ElmanSystem, h: Tensor, drive: Tensor, max_steps: int = 10_000, tol: float = 1e-8,
                max_period: int = MAX_PERIOD) -> Rollout:
    """Iterate F from the states ``h`` [M, N, H] under ``drive`` ([M, H] or [M, N, H]); each state
    stops at the first h with ‖F(h) − h‖ < ``tol`` (a fixed point; that h is returned) or, for
    2 ≤ p ≤ ``max_period`` (at most 64; 0 or 1 disables), with ‖F^p(h₀) − h₀‖ < ``tol`` for h₀ its
    state at the start of one of the 64-step chunks below (a periodic orbit).

    Every 64 steps the moving states of each model are packed to the front and models with none
    left are dropped, so the cost follows the slowest states, not max_steps × N."""
    require_system(system)
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if not 0 <= max_period <= MAX_PERIOD:
        raise ValueError(f"max_period must be in [0, {MAX_PERIOD}], got {max_period}")
    drive = _expand_drive(system, drive, h)
    h = h.clone()
    M, N, H = h.shape
    period = torch.zeros(M, N, dtype=torch.int64, device=h.device)
    steps = torch.full((M, N), max_steps, dtype=torch.int64, device=h.device)
    tol2 = tol * tol
    step = 0  # the number of applications of F behind the states being checked
    while step <= max_steps and not bool((period > 0).all()):
        moving = period == 0
        models = moving.any(1).nonzero()[:, 0]
        order = moving[models].to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, : int(moving.sum(1).max())]
        gather = order[..., None].expand(-1, -1, H)
        sub = system.select(models)
        hs, ds = h[models].gather(1, gather), drive[models].gather(1, gather)
        chunk_start, stopped_at = hs, hs
        live = moving[models].gather(1, order)  # False on padding (a model's stopped states)
        found = torch.zeros_like(order)  # the period found in this chunk
        done_at = torch.full_like(order, max_steps)
        for k in range(1, min(MAX_PERIOD, max_steps + 1 - step) + 1):
            # Stopped states keep being mapped with the others (masking them out would cost
            # more than it saves); their stopping state is kept in stopped_at.
            new = sub.map(hs, ds)
            stop = (new - hs).square_().sum(-1) < tol2
            if 2 <= k <= max_period:
                cycle = ~stop & ((new - chunk_start).square_().sum(-1) < tol2)
                stop |= cycle
            stop &= live
            if bool(stop.any()):
                found = torch.where(stop, torch.where(cycle, k, 1) if 2 <= k <= max_period else 1, found)
                done_at = torch.where(stop, step, done_at)
                stopped_at = torch.where(stop[..., None], hs, stopped_at)
                live &= ~stop
                if not bool(live.any()):
                    step += 1
                    break
            if step < max_steps:
                hs = new
            step += 1
        hs = torch.where(live[..., None], hs, stopped_at)
        h_m, p_m, s_m = h[models], period[models], steps[models]
        h[models] = h_m.scatter(1, gather, hs)
        settled = found > 0
        period[models] = p_m.scatter(1, order, torch.where(settled, found, p_m.gather(1, order)))
        steps[models] = s_m.scatter(1, order, torch.where(settled, done_at, s_m.gather(1, order)))
    return Rollout(h, period, steps)


@torch.no_grad()
def minimize_speed(system: ElmanSystem, h: Tensor, drive: Tensor, max_iter: int = 100, tol: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Minimise q(h) = ½‖F(h) − h‖² from the states ``h`` [M, S, H] by Levenberg–Marquardt
    (module docstring); a state stops once ‖F(h) − h‖ < ``tol`` or its damping exceeds 10¹²
    (no step decreases q: a local minimum, or a numerical floor).

    Returns:
        (states [M, S, H], residual ‖F(h) − h‖ [M, S]).
    """
    require_system(system)
    drive = _expand_drive(system, drive, h)
    H = h.shape[-1]
    eye = torch.eye(H, dtype=h.dtype, device=h.device)
    r = system.map(h, drive) - h
    q = 0.5 * r.square().sum(-1)
    mu = torch.full_like(q, 1e-3)
    for _ in range(max_iter):
        active = (q.sqrt() * 2**0.5 >= tol) & (mu < 1e12)
        if not bool(active.any()):
            break
        A = system.jacobian(h, drive) - eye
        At = A.transpose(-1, -2)
        step, info = torch.linalg.solve_ex(At @ A + mu[..., None, None] * eye, -(At @ r[..., None]))
        step = torch.where((info == 0)[..., None], step[..., 0], 0.0)
        h_try = h + step
        r_try = system.map(h_try, drive) - h_try
        q_try = 0.5 * r_try.square().sum(-1)
        accept = active & (q_try < q)
        h = torch.where(accept[..., None], h_try, h)
        r = torch.where(accept[..., None], r_try, r)
        q = torch.where(accept, q_try, q)
        mu = torch.where(accept, (mu / 3).clamp(min=_MIN_DAMPING), torch.where(active, mu * 4, mu))
    return h, r.norm(dim=-1)


@torch.no_grad()
def deduplicate(points: Tensor, valid: Tensor, tol: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Group points closer than ``tol`` (Euclidean) per model.

    Greedy and deterministic: the first ungrouped valid point (in index order) becomes a
    representative and takes every ungrouped point within ``tol`` of it; repeat.

    Args:
        points: [M, N, H]; valid: [M, N] bool (invalid points are ignored).
    Returns:
        labels [M, N] int64: each valid point's group (0 … P_m − 1, in order of the groups'
        representatives), −1 for invalid points; representatives [M, P] int64 indices into N
        (−1 padding, P = max_m P_m).
    """
    M, N, _ = points.shape
    labels = torch.full((M, N), -1, dtype=torch.int64, device=points.device)
    pending = valid.clone()
    count = torch.zeros(M, dtype=torch.int64, device=points.device)
    reps = []
    while bool(pending.any()):
        has = pending.any(1)
        first = pending.to(torch.int8).argmax(1)
        anchor = points.gather(1, first[:, None, None].expand(-1, 1, points.shape[2]))
        close = pending & ((points - anchor).norm(dim=-1) < tol)
        labels = torch.where(close, count[:, None], labels)
        reps.append(torch.where(has, first, -1))
        count += has.to(torch.int64)
        pending &= ~close
    reps = torch.stack(reps, 1) if reps else torch.zeros(M, 0, dtype=torch.int64, device=points.device)
    return labels, reps


@dataclass
class FixedPoints:
    """The distinct fixed points and periodic orbits found for each of M models (padded to P).

    A periodic orbit of period p is listed once, by one canonical point
    (:func:`rnnlab.analysis.orbits.canonical_orbit_points`); fixed points have period 1.

    Attributes:
        points: [M, P, H] (NaN padding); valid: [M, P] bool; period: [M, P] int64 (0 padding).
        residual: [M, P] ‖F^p(h*) − h*‖.
        eigenvalues: [M, P, H] complex eigenvalues of J* = diag(φ'(a*)) W_hh (for an orbit, of its
            monodromy matrix), by decreasing modulus.
        kind: [M, P] int64 codes of :data:`rnnlab.analysis.stability.KINDS` (−1 padding).
        labels: [M, N] the point (index into P) where each iterated start ended, −1 where its
            roll-out settled on neither a fixed point nor an orbit of period ≤ ``max_period``
            within ``max_steps``.
        phase: [M, N] for starts that ended on an orbit of period p, the k in [0, p) such that
            F^max_steps of the start is F^k of the orbit's canonical point (its phase at a time
            common to all starts); 0 for the others.
        ends: [M, N, H] the iterated starts' states where their roll-outs stopped.
        n_slow: [M] distinct slow points: where the minimisation of q ended (at a local minimum
            or out of iterations) with tol ≤ ‖F(h) − h‖ < ``slow_tol``.
    """

    points: Tensor
    valid: Tensor
    period: Tensor
    residual: Tensor
    eigenvalues: Tensor
    kind: Tensor
    labels: Tensor
    phase: Tensor
    ends: Tensor
    n_slow: Tensor


def _gather_points(t: Tensor, reps: Tensor) -> Tensor:
    """t [M, N, ...] at representatives reps [M, P] (−1 padding -> entry 0, masked later)."""
    idx = reps.clamp(min=0)
    return t.gather(1, idx.view(*idx.shape, *([1] * (t.dim() - 2))).expand(*idx.shape, *t.shape[2:]))


def _finite(h: Tensor) -> Tensor:
    return h.isfinite().all(-1)


@torch.no_grad()
def find_fixed_points(
    system: ElmanSystem,
    drive: Tensor,
    iterate_from: Tensor,
    minimize_from: Tensor | None = None,
    *,
    max_steps: int = 10_000,
    tol: float = 1e-8,
    max_period: int = MAX_PERIOD,
    max_iter: int = 100,
    polish_iter: int = 8,
    slow_tol: float = 1e-4,
    dedup_tol: float = 1e-4,
    margin: float = 1e-3,
    nonhyperbolic_tol: float = 1e-3,
) -> FixedPoints:
    """Fixed points (and periodic orbits) of F under ``drive`` [M, H].

    1. :func:`iterate_map` from ``iterate_from`` [M, N, H]; every settled end point is polished
       by ``polish_iter`` Levenberg–Marquardt steps, kept when they reach a residual < ``tol``
       within ``dedup_tol`` of it. An end point is a fixed point when its roll-out stopped at
       ‖F(h) − h‖ < tol or its polish was kept (a slow spiral into a fixed point can close
       within tol after p steps and look like an orbit), else an orbit, kept by its canonical
       point, minimal period and each start's phase on it.
    2. :func:`minimize_speed` from ``minimize_from`` [M, S, H] (optional): fixed points of any
       stability, and slow points (counted in ``n_slow``).
    3. Points of the two searches closer than ``dedup_tol`` are merged (:func:`deduplicate`);
       each distinct point gets its spectrum and kind (``margin``, ``nonhyperbolic_tol``:
       :func:`rnnlab.analysis.stability.classify`).
    """
    require_system(system)
    if not 0 < tol < slow_tol:
        raise ValueError(f"need 0 < tol < slow_tol, got tol={tol}, slow_tol={slow_tol}")
    if dedup_tol <= 0:
        raise ValueError(f"dedup_tol must be > 0, got {dedup_tol}")
    rollout = iterate_map(system, iterate_from, drive, max_steps, tol, max_period)
    polished, polished_res = minimize_speed(system, rollout.states, drive, max_iter=polish_iter, tol=0.0)
    settled = (rollout.period > 0) & _finite(rollout.states)
    polished_ok = (polished_res < tol) & ((polished - rollout.states).norm(dim=-1) < dedup_tol)
    fixed = settled & ((rollout.period == 1) | polished_ok)
    orbit = settled & ~fixed
    canonical, offset, minimal = canonical_orbit_points(system, rollout.states, torch.where(orbit, rollout.period, 0), drive, tol)
    phase = torch.where(orbit, (max_steps - rollout.steps - offset) % minimal.clamp(min=1), 0)
    candidates = torch.where(fixed[..., None], torch.where(polished_ok[..., None], polished, rollout.states), canonical)
    periods = torch.where(fixed, 1, torch.where(orbit, minimal, 0))
    n_slow = torch.zeros(system.num_models, dtype=torch.int64, device=candidates.device)
    if minimize_from is not None and minimize_from.shape[1] > 0:
        found, res = minimize_speed(system, minimize_from, drive, max_iter=max_iter, tol=tol)
        found, res = minimize_speed(system, found, drive, max_iter=polish_iter, tol=0.0)
        candidates = torch.cat([candidates, found], 1)
        periods = torch.cat([periods, torch.where((res < tol) & _finite(found), 1, 0)], 1)
        slow_labels, _ = deduplicate(found, (res >= tol) & (res < slow_tol), dedup_tol)
        n_slow = (slow_labels.amax(1) + 1).clamp(min=0)
    labels, reps = deduplicate(candidates, periods > 0, dedup_tol)
    valid = reps >= 0
    nan = torch.tensor(float("nan"), dtype=candidates.dtype, device=candidates.device)
    points = torch.where(valid[..., None], _gather_points(candidates, reps), nan)
    period = torch.where(valid, _gather_points(periods, reps), 0)
    image = points.nan_to_num()
    for k in range(int(period.max()) if period.numel() else 0):
        image = torch.where((k < period)[..., None], system.map(image, drive), image)
    residual = torch.where(valid, (image - points).norm(dim=-1), nan)
    eig = spectra(system, points, drive, period)
    kind = torch.where(valid, classify(eig, margin, nonhyperbolic_tol), -1)
    N = iterate_from.shape[1]
    return FixedPoints(points, valid, period, residual, eig, kind, labels[:, :N], phase, rollout.states, n_slow)
