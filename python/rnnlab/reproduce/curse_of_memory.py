"""The 1-D "curse of memory" of Zucchet & Orvieto (SPEC §4.1): closed forms of the stationary
E[h²] and E[(∂_λ h)²] of ``h_t = λ h_{t−1} + γ x_t`` under AR(1) inputs, their simulation with the
fused diagonal recurrence and its F4 sensitivity accumulators (SPEC §8.2), and the closed-form
loss landscape of the 1-D teacher–student problem.

Arrays are float64 tensors; ``lam`` and ``rho`` broadcast against each other.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..functional import diag_recurrence


def normalizer(lam: Tensor) -> Tensor:
    """γ(λ) = sqrt(1 − |λ|²), the LRU's input normalisation (SPEC §4.1)."""
    return (1 - lam.abs().square()).sqrt()


def hidden_second_moment(lam: Tensor, rho: Tensor) -> Tensor:
    """E[h²] = (1 + ρλ)/((1 − ρλ)(1 − λ²)) for unit-variance inputs with E[x_t x_t'] = ρ^|t−t'|."""
    return (1 + rho * lam) / ((1 - rho * lam) * (1 - lam**2))


def sensitivity_second_moment(lam: Tensor, rho: Tensor) -> Tensor:
    """E[(∂_λ h)²] = [(1 + λ²)(1 − λ²ρ²) + 2(1 − λ²)λρ] / [(1 − λ²)³ (1 − λρ)²] (SPEC §4.1)."""
    num = (1 + lam**2) * (1 - lam**2 * rho**2) + 2 * (1 - lam**2) * lam * rho
    return num / ((1 - lam**2) ** 3 * (1 - lam * rho) ** 2)


def exp_chain_factor(lam: Tensor) -> Tensor:
    """(dλ/dω)² for the exponential parametrisation λ = exp(−exp(ω)): dλ/dω = λ ln λ (SPEC §4.1)."""
    return (lam * lam.log()).square()


def closed_forms(lam: Tensor, rho: Tensor) -> dict[str, Tensor]:
    """The four curves of Fig. 1: E[h²], E[(∂_λ h)²] without normalisation, and with γ(λ)
    (γ held constant in λ, as the LRU's learned γ) and ω of the exponential parametrisation:
    E[(γh)²] and E[(∂_ω h)²] = γ²·(λ ln λ)²·E[(∂_λ h)²], which stays O(1) as λ → 1."""
    g2 = normalizer(lam).square()
    h2, s2 = hidden_second_moment(lam, rho), sensitivity_second_moment(lam, rho)
    return {"h2": h2, "s2": s2, "h2_normalized": g2 * h2, "s2_exp_normalized": g2 * exp_chain_factor(lam) * s2}


def ar1_inputs(rho: Tensor, T: int, B: int, generator: torch.Generator) -> Tensor:
    """[R, T, B, 1] stationary AR(1) inputs, unit variance, E[x_t x_t'] = ρ^|t−t'|, one model per ρ:
    themselves a diagonal recurrence x_t = ρ x_{t−1} + sqrt(1 − ρ²) ε_t from x_0 ~ N(0, 1)."""
    R = len(rho)
    eps = torch.randn(R, T, B, 1, dtype=torch.float64, generator=generator) * (1 - rho**2).sqrt().view(R, 1, 1, 1)
    x0 = torch.randn(R, B, 1, dtype=torch.float64, generator=generator)
    return diag_recurrence(eps, rho.view(R, 1), x0)


def simulate(lams: Tensor, rhos: Tensor, *, burn_in: float = 8.0, window: float = 4.0, samples: int = 100_000,
             min_batch: int = 64, seed: int = 0) -> dict[str, Tensor]:
    """Monte-Carlo estimates of :func:`closed_forms` from the fused recurrence's F4 accumulators.

    For each λ, h_t = λ h_{t−1} + γ x_t (γ = 1 and γ = γ(λ)) runs from h_0 = 0 for
    T = (burn_in + window)·τ steps, τ = 1/(1 − max(λ, ρ_max)) the longest memory of the system
    and its inputs, and the accumulators ``mean_b h_t²``, ``mean_b (∂_λ h_t)²`` are averaged over
    the last window·τ steps, when both are stationary (the transient of ∂_λ h decays like t·λ^t).
    The batch is ``samples``/(window·τ) sequences (at least ``min_batch``), i.e. about
    ``samples``/τ² independent draws of h², at least window·``min_batch`` where τ is long; it runs
    in chunks of at most 4M elements. One model per ρ, one channel.

    Args:
        lams: [L] λ in (0, 1). rhos: [R] input correlations in [0, 1).
    Returns:
        the keys of :func:`closed_forms`, each [R, L].
    """
    g = torch.Generator().manual_seed(seed)
    R, rho_max = len(rhos), float(rhos.max())
    out = {k: torch.zeros(R, len(lams), dtype=torch.float64) for k in ("h2", "s2", "h2_normalized", "s2_exp_normalized")}
    for i, lam in enumerate(lams.tolist()):
        horizon = 1 / (1 - max(lam, rho_max))
        skip, keep = math.ceil(burn_in * horizon), math.ceil(window * horizon)
        batch = max(min_batch, math.ceil(samples / keep))
        chunk = max(1, min(batch, 4_000_000 // (R * (skip + keep))))
        lam_m = torch.full((R, 1), lam, dtype=torch.float64)
        gamma, chain = math.sqrt(1 - lam**2), (lam * math.log(lam)) ** 2
        for start in range(0, batch, chunk):
            B = min(chunk, batch - start)
            x = ar1_inputs(rhos, skip + keep, B, g)
            # γ is a constant in λ, so the normalised moments are the plain ones times γ²; the
            # kernel still runs on γx, so that the figure shows the simulated normalised system.
            for key_h, key_s, inputs, scale in (("h2", "s2", x, 1.0), ("h2_normalized", "s2_exp_normalized", gamma * x, chain)):
                _, h_sq, s_sq = diag_recurrence(inputs, lam_m, return_stats=True)
                out[key_h][:, i] += h_sq[:, skip:, 0].mean(1) * (B / batch)
                out[key_s][:, i] += s_sq[:, skip:, 0].mean(1) * (scale * B / batch)
    return out


def teacher_student_loss(lam: Tensor, lam_star: Tensor, mu: float = 0.0, sigma: float = 1.0,
                         normalized: bool = False) -> Tensor:
    """The infinite-horizon loss L(λ) = ½E[(h − h*)²] of a 1-D student λ against a teacher λ*
    with i.i.d. inputs of mean μ and variance σ² (SPEC §4.1); λ, λ* complex or real.
    ``normalized``: both systems use γ(λ) = sqrt(1 − |λ|²) and μ = 0, σ = 1:
    L = ½[2 − 2 Re(γ(λ)γ(λ*)/(1 − λ conj(λ*)))]."""
    lam, lam_star = torch.as_tensor(lam), torch.as_tensor(lam_star)
    cross = 1 / (1 - lam * lam_star.conj())
    if normalized:
        return 0.5 * (2 - 2 * (normalizer(lam) * normalizer(lam_star) * cross).real)
    mean_part = mu**2 * (1 / (1 - lam) - 1 / (1 - lam_star)).abs().square()
    var_part = sigma**2 * (1 / (1 - lam.abs().square()) + 1 / (1 - lam_star.abs().square()) - 2 * cross.real)
    return 0.5 * (mean_part + var_part)


def simulate_teacher_student_loss(lam: Tensor, lam_star: float, *, T: int = 2000, B: int = 2000, burn_in: int = 1000,
                                  seed: int = 0) -> Tensor:
    """Monte-Carlo ½E[(h − h*)²] for real students lam [L] against λ* (μ = 0, σ = 1), student and
    teacher driven by the same i.i.d. N(0, 1) inputs through one fused call (teacher = channel 0)."""
    g = torch.Generator().manual_seed(seed)
    lams = torch.cat([torch.tensor([lam_star], dtype=torch.float64), lam.to(torch.float64)]).view(1, -1)
    x = torch.randn(1, T, B, 1, dtype=torch.float64, generator=g).expand(1, T, B, lams.shape[1]).contiguous()
    hs = diag_recurrence(x, lams)[0, burn_in:]
    return 0.5 * (hs[..., 1:] - hs[..., :1]).square().mean((0, 1))
