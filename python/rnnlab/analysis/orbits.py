"""Periodic orbits of the autonomous map, as found by :func:`rnnlab.analysis.fixed_points.iterate_map`:
one canonical point per orbit (so that states reached at different phases of one orbit are
recognised as the same orbit), each state's offset from it, and the orbit's minimal period.

An orbit of period p is a fixed point of F^p; its stability is that of the monodromy matrix
J(h_{p−1}) ⋯ J(h_0) (:func:`rnnlab.analysis.stability.spectra` with periods).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .system import ElmanSystem, require_system


def _direction(H: int, like: Tensor) -> Tensor:
    """A fixed generic direction: orbit points are ranked by their projection on it."""
    return torch.linspace(1.0, 2.0, H, dtype=like.dtype, device=like.device)


@torch.no_grad()
def canonical_orbit_points(system: ElmanSystem, h: Tensor, period: Tensor, drive: Tensor, tol: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """For states h [M, N, H] on periodic orbits of (possibly non-minimal) period ``period``
    [M, N] (≥ 2; other entries are returned unchanged):

    Returns:
        canonical [M, N, H]: the orbit point F^k(h), 0 ≤ k < period, with the smallest projection
        on a fixed generic direction (equal, up to the convergence tolerance, for every state on
        one orbit); offset [M, N]: that k; minimal [M, N]: the least k ≥ 1 with
        ‖F^k(h) − h‖ < 10·``tol`` (the period).
    """
    require_system(system)
    on_orbit = period >= 2
    c = _direction(h.shape[-1], h)
    best, best_val = h.clone(), h @ c
    offset = torch.zeros_like(period)
    minimal = period.clone()
    found = ~on_orbit
    cur = h
    for k in range(1, int(period.max()) if bool(on_orbit.any()) else 1):
        cur = system.map(cur, drive)
        within = on_orbit & (k < period)
        val = cur @ c
        better = within & (val < best_val)
        best = torch.where(better[..., None], cur, best)
        best_val = torch.where(better, val, best_val)
        offset = torch.where(better, k, offset)
        first = within & ~found & ((cur - h).norm(dim=-1) < 10 * tol)
        minimal = torch.where(first, k, minimal)
        found |= first
    return best, offset, minimal
