"""Linear stability of fixed points (SPEC §3.3 step 4): the spectrum of J* = diag(φ'(a*)) W_hh
(for a periodic orbit, of its monodromy matrix) and a classification by the moduli of its
eigenvalues.

With ``tol`` the non-hyperbolic band (SPEC: 10⁻³) and ``margin`` the attractor margin:

================== ==========================================================================
kind               rule (checked in this order)
================== ==========================================================================
non_hyperbolic     some | |λ| − 1 | < tol: linearisation does not decide stability
attractor          max|λ| < 1 − margin: a hyperbolic attractor
marginal_attractor max|λ| < 1 (only possible when margin > tol): stable but slower than the margin
saddle             some |λ| < 1, some |λ| > 1
repeller           every |λ| > 1
================== ==========================================================================

With the default margin = tol = 10⁻³ the attractor rule is SPEC's and ``marginal_attractor``
never occurs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .system import ElmanSystem, require_system

KINDS = ("attractor", "marginal_attractor", "non_hyperbolic", "saddle", "repeller")
ATTRACTOR, MARGINAL_ATTRACTOR, NON_HYPERBOLIC, SADDLE, REPELLER = range(len(KINDS))


def spectra(system: ElmanSystem, points: Tensor, drive: Tensor, period: Tensor | None = None) -> Tensor:
    """[M, P, H] complex eigenvalues, sorted by decreasing modulus, of J* = J(h*) at fixed points
    ``points`` [M, P, H] (NaN rows stay NaN), or, where ``period`` [M, P] is p ≥ 2, of the
    monodromy matrix J(F^{p−1}(h*)) ⋯ J(h*) of the periodic orbit through h* (its Floquet
    multipliers). Eigenvalues are computed on the CPU (batched LAPACK)."""
    require_system(system)
    h = torch.nan_to_num(points)
    J = system.jacobian(h, drive)
    if period is not None:
        mono = J
        for k in range(1, int(period.max()) if period.numel() else 1):
            h = system.map(h, drive)
            mono = torch.where((k < period)[..., None, None], system.jacobian(h, drive) @ mono, mono)
        J = mono
    eig = torch.linalg.eigvals(J.cpu()).to(points.device)
    order = eig.abs().argsort(-1, descending=True)
    eig = eig.gather(-1, order)
    return torch.where(points.isnan().any(-1, keepdim=True), torch.full_like(eig, complex(float("nan"), float("nan"))), eig)


def classify(eigenvalues: Tensor, margin: float = 1e-3, tol: float = 1e-3) -> Tensor:
    """int64 codes into :data:`KINDS`, one per spectrum, from complex eigenvalues [..., H]."""
    if not 0 <= tol < 1 or not 0 <= margin < 1:
        raise ValueError(f"margin and tol must be in [0, 1), got margin={margin}, tol={tol}")
    r = eigenvalues.abs()
    top, low = r.amax(-1), r.amin(-1)
    kind = torch.full(r.shape[:-1], REPELLER, dtype=torch.int64, device=r.device)
    kind[low < 1] = SADDLE
    kind[top < 1] = MARGINAL_ATTRACTOR
    kind[top < 1 - margin] = ATTRACTOR
    kind[((r - 1).abs() < tol).any(-1)] = NON_HYPERBOLIC
    return kind
