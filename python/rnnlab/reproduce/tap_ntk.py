"""The tap-NTK of a linear RNN (SPEC §5.2, Emami et al. 2021 as derived there), for scalar input
and output (n_x = 1), batched over M students.

NTK parametrisation: h_t = Ŵ h_{t−1} + F̂ x_t, ŷ_t = Ĉ h_t + D x_t with Ŵ = W/√n, F̂ = F,
Ĉ = C/√n, W_ij ~ N(0, σ_W²), F ~ N(0, σ_F²), C ~ N(0, σ_C²), D ~ N(0, 1). The output is the
convolution ŷ_t = Σ_j L_j x_{t−j} with taps L_0 = D + Ĉ F̂, L_j = Ĉ Ŵ^j F̂, so a loss on
sequences is a function of the taps alone; with the Toeplitz design's second moments
Σ_x[j, k] = mean_{s,t} x_{s,t−j} x_{s,t−k} and a convolution teacher L*, the mean-squared loss
is ½ (L − L*)ᵀ Σ_x (L − L*) exactly (no noise).

Shapes: params W [M, n, n], F [M, n, 1], C [M, 1, n], D [M, 1, 1] (float64); taps [M, J];
Θ [M, J, J].
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..functional import elman


def init_students(n: int, sigma_w: Tensor, seeds: list[int], sigma_c: float = 1.0, sigma_f: float = 1.0) -> dict[str, Tensor]:
    """M = len(seeds) students of width n, model m with σ_W = sigma_w[m] ([M]), from its own seed."""
    params = {name: [] for name in "WFCD"}
    for s, sw in zip(seeds, sigma_w.tolist()):
        g = torch.Generator().manual_seed(s)
        params["W"].append(sw * torch.randn(n, n, dtype=torch.float64, generator=g))
        params["F"].append(sigma_f * torch.randn(n, 1, dtype=torch.float64, generator=g))
        params["C"].append(sigma_c * torch.randn(1, n, dtype=torch.float64, generator=g))
        params["D"].append(torch.randn(1, 1, dtype=torch.float64, generator=g))
    return {name: torch.stack(v) for name, v in params.items()}


def impulse_states(w_hat: Tensor, v: Tensor, J: int) -> Tensor:
    """[M, J, n] the states v, Ŵv, …, Ŵ^{J−1}v of the linear recurrence h_t = Ŵ h_{t−1} + xp_t
    driven by a unit impulse, run as one fused :func:`rnnlab.elman` call (identity activation).
    w_hat: [M, n, n]; v: [M, n]."""
    M, n = v.shape
    xp = torch.cat([v.view(M, 1, 1, n), v.new_zeros(M, J - 1, 1, n)], 1)
    return elman(xp, w_hat, nonlinearity="identity")[:, :, 0]


def taps(params: dict[str, Tensor], J: int) -> Tensor:
    """[M, J] impulse response L_0 … L_{J−1}: the students' outputs to x_0 = 1 (differentiable)."""
    n = params["W"].shape[-1]
    r = impulse_states(params["W"] / math.sqrt(n), params["F"][..., 0], J)  # r_m = Ŵ^m F̂
    L = (r @ params["C"].transpose(1, 2))[..., 0] / math.sqrt(n)
    return L + torch.nn.functional.pad(params["D"].view(-1, 1), (0, J - 1))


def tap_ntk(params: dict[str, Tensor], J: int) -> Tensor:
    """[M, J, J] the exact finite-width tap-NTK Θ[j, k] = ⟨∇_θ L_j, ∇_θ L_k⟩ (SPEC §5.2):

    Θ = G^r/n + G^l + [j = k = 0] + (1/n) Σ_{m<j} Σ_{m'<k} G^l[m, m'] G^r[j−1−m, k−1−m'],

    with G^r the Gram matrix of the impulse states r_m = Ŵ^m F̂ and G^l that of the co-states
    l_m = Ĉ Ŵ^m (a second fused run, on Ŵᵀ). The double sum is a 2-D convolution of G^l and
    G^r, done by FFT."""
    W, n = params["W"], params["W"].shape[-1]
    w_hat = W / math.sqrt(n)
    r = impulse_states(w_hat, params["F"][..., 0], J)
    l = impulse_states(w_hat.transpose(1, 2).contiguous(), params["C"][:, 0] / math.sqrt(n), J)
    g_r, g_l = r @ r.transpose(1, 2), l @ l.transpose(1, 2)
    size = (2 * J, 2 * J)
    conv = torch.fft.irfft2(torch.fft.rfft2(g_l, s=size) * torch.fft.rfft2(g_r, s=size), s=size)[:, : J - 1, : J - 1]
    theta = g_r / n + g_l
    theta[:, 0, 0] += 1
    theta[:, 1:, 1:] += conv / n
    return theta


def tap_ntk_autograd(params: dict[str, Tensor], J: int) -> Tensor:
    """[M, J, J] Θ from the Jacobian of :func:`taps` by autograd (J backward passes): the check of
    :func:`tap_ntk`. Small sizes only."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    L = taps(leaves, J)
    rows = []
    for j in range(J):
        grads = torch.autograd.grad(L[:, j].sum(), list(leaves.values()), retain_graph=True)
        rows.append(torch.cat([g.reshape(len(g), -1) for g in grads], 1))
    jac = torch.stack(rows, 1)  # [M, J, P]
    return jac @ jac.transpose(1, 2)


def wide_limit(J: int, sigma_w: Tensor, sigma_c: float = 1.0, sigma_f: float = 1.0) -> Tensor:
    """[M, J] diag(β) of Θ as n → ∞ (SPEC §5.2): β_0 = 1 + σ_C² + σ_F²,
    β_j = σ_W^{2(j−1)} [σ_W² (σ_C² + σ_F²) + j σ_C² σ_F²] for j ≥ 1; sigma_w: [M]."""
    j = torch.arange(1, J, dtype=torch.float64)
    s2 = sigma_w.to(torch.float64).view(-1, 1) ** 2
    beta = s2 ** (j - 1) * (s2 * (sigma_c**2 + sigma_f**2) + j * sigma_c**2 * sigma_f**2)
    return torch.cat([torch.full_like(s2, 1 + sigma_c**2 + sigma_f**2), beta], 1)


def teacher_taps(kind: str, value: float, J: int) -> Tensor:
    """[J] teacher taps (SPEC §5.3): ``exp`` ρ^j, or ``spike`` a unit tap at lag d = value."""
    j = torch.arange(J, dtype=torch.float64)
    if kind == "exp":
        return value**j
    if kind == "spike":
        return (j == int(value)).to(torch.float64)
    raise ValueError(f"teacher kind must be 'exp' or 'spike', got {kind!r}")


def toeplitz_moments(N: int, T: int, seed: int) -> Tensor:
    """[T, T] Σ_x of N i.i.d. N(0, 1) input sequences of T steps, loss on every step: the
    design row of step t is (x_t, x_{t−1}, …, x_0, 0, …), so Σ_x[j, k] = mean_{s,t} x_{s,t−j} x_{s,t−k}."""
    x = torch.randn(N, T, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    design = torch.stack([torch.nn.functional.pad(x[:, : T - j], (j, 0)) for j in range(T)], -1)  # [N, T, J]
    flat = design.reshape(N * T, T)
    return flat.T @ flat / (N * T)


def predict_taps(L0: Tensor, target: Tensor, kernel: Tensor, sigma_x: Tensor, lr: Tensor, steps: int) -> Tensor:
    """[M, J] taps after ``steps`` linearised GD steps L ← L − η Θ Σ_x (L − L*) (SPEC §5.3 step 4).
    L0, target: [M, J]; kernel: Θ [M, J, J] (a diag(β) as a matrix for the wide limit);
    sigma_x: [J, J]; lr: [M]."""
    L = L0.clone()
    step = lr.view(-1, 1, 1) * kernel @ sigma_x
    for _ in range(steps):
        L = L - (step @ (L - target).unsqueeze(-1))[..., 0]
    return L
