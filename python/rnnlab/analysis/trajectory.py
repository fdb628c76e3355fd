"""Stability along driven trajectories: the step Jacobians J_t = diag(φ'(a_t)) W_hh of real input
sequences (SPEC §3.3 step 5; Bengio et al.'s "reduced attracting set" needs σ_max(J_t) < 1) and
the largest Lyapunov exponent by forward tangent probes (SPEC §8.2, F3).

Inputs are sequences x [M, T, B, I] (or [T, B, I] for all models), run from h0 [M, B, H]
(default 0); x = 0 from the end states of a roll-out gives the autonomous dynamics' exponent.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .system import ElmanSystem, require_system


@torch.no_grad()
def max_singular_values(system: ElmanSystem, x: Tensor, h0: Tensor | None = None) -> Tensor:
    """[M, T, B] σ_max(J_t) at each step of each sequence, as the square root of the largest
    eigenvalue of J_tᵀ J_t = W_hhᵀ diag(φ'(a_t)²) W_hh (a symmetric eigenproblem, cheaper than
    an SVD)."""
    require_system(system)
    out = []
    w = system.weight_hh[:, None]  # [M, 1, H, H]
    for a, _ in system.steps(x, h0):
        dw = system.dphi(a)[..., :, None] * w  # [M, B, H, H] = J_t
        out.append(torch.linalg.eigvalsh(dw.transpose(-1, -2) @ dw)[..., -1].clamp(min=0).sqrt())
    return torch.stack(out, 1)


@torch.no_grad()
def lyapunov_exponents(system: ElmanSystem, x: Tensor, n_probes: int = 4, seed: int = 0, h0: Tensor | None = None) -> Tensor:
    """[M, B] finite-time largest Lyapunov exponent of each driven trajectory (SPEC §8.2, F3).

    ``n_probes`` random unit tangent vectors z (the same for every model and sequence, drawn
    from ``seed``) are carried by z_t = J_t z_{t−1} and renormalised every step;
    λ = (1/T) Σ_t log‖J_t z_{t−1}‖, averaged over the probes. Over a finite T each probe's
    estimate still carries its initial alignment, so short sequences give rough estimates; for a
    linear map h ↦ A h it tends to log ρ(A) as T grows.
    """
    require_system(system)
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    gen = torch.Generator().manual_seed(seed)
    H = system.hidden_size
    z0 = torch.randn(n_probes, H, generator=gen, dtype=torch.float64).to(system.device, system.dtype)
    z = None
    log_sum = None
    w_t = system.weight_hh.transpose(1, 2)
    T = 0
    for a, _ in system.steps(x, h0):
        M, B, _ = a.shape
        if z is None:
            z = (z0 / z0.norm(dim=-1, keepdim=True)).expand(M, B, n_probes, H).reshape(M, B * n_probes, H)
            log_sum = torch.zeros(M, B * n_probes, dtype=a.dtype, device=a.device)
        z = torch.bmm(z, w_t) * system.dphi(a).repeat_interleave(n_probes, 1)
        norm = z.norm(dim=-1)
        log_sum += norm.log()
        z = z / norm.clamp(min=torch.finfo(a.dtype).tiny)[..., None]  # a collapsed probe (φ' = 0) stays 0: λ = −inf
        T += 1
    if T == 0:
        raise ValueError("x must have at least one step")
    return (log_sum / T).view(M, B, n_probes).mean(-1)
