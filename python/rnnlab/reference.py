"""Pure-PyTorch implementation of every rnnlab op: the executable specification.

Every fused kernel is tested against these functions. They use the same population-first shapes
as the kernels (DESIGN.md §2) and the notation of SPEC.md §1:

    a_t = xp_t + h_{t-1} w_hhᵀ          (w_hh is PyTorch's [H_out, H_in] weight_hh)
    h_t = φ(a_t)
    δ_t = ∂L/∂h_t                        (total gradient on the state)
    u_t = δ_t ⊙ φ'(a_t)                  (gradient on the pre-activation = grad of xp_t)
    v_t = u_t w_hh                       (part of δ_{t-1} that came through the recurrence)

Shapes: M models, T steps, B batch rows, H hidden units.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _C

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")

#: SPEC §2.5: steps whose ‖δ_t‖² is below this bound (1e-20) are masked out of Ω. The kernels
#: compile it in (csrc/kernels/common.h kOmegaBound); the extension hands the same number here.
OMEGA_BOUND: float = _C.omega_bound


def activation(name: str, a: Tensor) -> Tensor:
    """φ(a) for one of :data:`ACTIVATIONS`."""
    if name == "tanh":
        return torch.tanh(a)
    if name == "relu":
        return torch.relu(a)
    if name == "sigmoid":
        return torch.sigmoid(a)
    if name == "identity":
        return a
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def activation_grad_from_output(name: str, h: Tensor) -> Tensor:
    """φ'(a) written in terms of h = φ(a), which is what the backward pass keeps."""
    if name == "tanh":
        return 1 - h * h
    if name == "relu":
        return (h > 0).to(h.dtype)
    if name == "sigmoid":
        return h * (1 - h)
    if name == "identity":
        return torch.ones_like(h)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def _with_bias(xp: Tensor, b: Tensor | None) -> Tensor:
    """xp [M, T, B, G] with the bias b [M, G] (or None) added at every step."""
    return xp if b is None else xp + b[:, None, None, :]


def elman_forward(xp: Tensor, w_hh: Tensor, h0: Tensor, activation_name: str, b: Tensor | None = None) -> Tensor:
    """Elman recurrence h_t = φ(xp_t + b + h_{t-1} w_hhᵀ).

    Args:
        xp: [M, T, B, H] projected inputs (x W_ihᵀ + b_ih + b_hh, or x W_ihᵀ with b = b_ih + b_hh).
        w_hh: [M, H, H] recurrent weights, PyTorch layout (row = output unit).
        h0: [M, B, H] initial state.
        b: optional [M, H] bias added at every step.
    Returns:
        hs: [M, T, B, H], the states h_1 … h_T.
    """
    xp = _with_bias(xp, b)
    h = h0
    out = []
    for t in range(xp.shape[1]):
        h = activation(activation_name, xp[:, t] + torch.bmm(h, w_hh.transpose(1, 2)))
        out.append(h)
    if not out:
        return xp.new_empty(xp.shape)
    return torch.stack(out, 1)


def omega_from_norms(delta_sq: Tensor, v_sq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pascanu's regularizer Ω from the per-step squared norms (SPEC §2.5, §8.1 B3–B4).

    Args:
        delta_sq: [M, T, B] ‖δ_t‖².
        v_sq: [M, T, B] ‖v_t‖².
    Returns:
        omega [M], n_valid [M] (= Σ_t mean_b m_t), and kappa [M, T, B] = m (r − 1) / c, the
        per-row weight of v_tᵀ u_t in ∂⁺Ω/∂W_hh before the final 4α/(B·N) scaling.
    """
    mask = delta_sq >= OMEGA_BOUND
    safe_c = torch.where(mask, delta_sq, torch.ones_like(delta_sq))
    r = torch.where(mask, v_sq / safe_c, torch.ones_like(v_sq))
    n_valid = mask.to(delta_sq.dtype).mean(2).sum(1)
    total = ((r - 1) ** 2).mean(2).sum(1)
    omega = torch.where(n_valid > 0, total / n_valid.clamp_min(1e-300), torch.zeros_like(total))
    kappa = torch.where(mask, (r - 1) / safe_c, torch.zeros_like(r))
    return omega, n_valid, kappa


def elman_backward(
    grad_hs: Tensor,
    hs: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    activation_name: str,
    reg_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """BPTT through :func:`elman_forward`, with the per-step statistics of SPEC §8.1.

    Args:
        grad_hs: [M, T, B, H] ∂⁺L/∂h_t, the loss gradient arriving at each state directly.
        hs, h0, w_hh: as produced / consumed by :func:`elman_forward`.
        reg_weight: optional [M] regularizer weights α; when given, α·∂⁺Ω/∂W_hh (SPEC §2.5,
            with δ and h held constant) is added to grad_w_hh.
    Returns:
        grad_xp [M, T, B, H] (= u_t), grad_w_hh [M, H, H], grad_h0 [M, B, H],
        delta_sq [M, T, B] (‖δ_t‖², B1), v_sq [M, T, B] (‖v_t‖², B2),
        omega [M] (Ω, B4), n_valid [M] (N = Σ_t mean_b m_t, B3).
    """
    M, T, B, H = hs.shape
    dphi = activation_grad_from_output(activation_name, hs)
    carry = torch.zeros_like(h0)
    us, vs, delta_sq, v_sq = [], [], [], []
    for t in reversed(range(T)):
        delta = grad_hs[:, t] + carry
        u = delta * dphi[:, t]
        v = torch.bmm(u, w_hh)
        us.append(u)
        vs.append(v)
        delta_sq.append((delta * delta).sum(-1))
        v_sq.append((v * v).sum(-1))
        carry = v
    if T == 0:
        empty = hs.new_zeros(M, 0, B)
        zero = hs.new_zeros(M)
        return hs.new_zeros(hs.shape), torch.zeros_like(w_hh), torch.zeros_like(h0), empty, empty, zero, zero
    grad_xp = torch.stack(us[::-1], 1)
    v_all = torch.stack(vs[::-1], 1)
    delta_sq = torch.stack(delta_sq[::-1], 1)
    v_sq = torch.stack(v_sq[::-1], 1)
    h_prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], 1)
    grad_w = torch.einsum("mtbi,mtbj->mij", grad_xp, h_prev)
    omega, n_valid, kappa = omega_from_norms(delta_sq, v_sq)
    if reg_weight is not None:
        scale = 4 * reg_weight.to(hs.dtype) / (B * n_valid.clamp_min(1e-300))
        scale = torch.where(n_valid > 0, scale, torch.zeros_like(scale))
        grad_w = grad_w + scale[:, None, None] * torch.einsum("mtb,mtbi,mtbj->mij", kappa, grad_xp, v_all)
    return grad_xp, grad_w, v_all[:, 0], delta_sq, v_sq, omega, n_valid


def omega_autograd(delta: Tensor, hs: Tensor, w_hh: Tensor, activation_name: str) -> Tensor:
    """Ω written directly from its definition (SPEC §2.5), differentiable in w_hh only.

    Independent of :func:`elman_backward`: tests compare the closed-form gradient against
    ``torch.autograd.grad`` of this function with δ and h held constant.

    Args:
        delta: [M, T, B, H] δ_t (held constant).
        hs: [M, T, B, H] h_t (held constant; gives φ'(a_t)).
        w_hh: [M, H, H].
    Returns:
        omega: [M].
    """
    u = delta * activation_grad_from_output(activation_name, hs)
    v = torch.einsum("mtbi,mij->mtbj", u, w_hh)
    c = (delta * delta).sum(-1)
    a = (v * v).sum(-1)
    mask = c >= OMEGA_BOUND
    r = torch.where(mask, a / torch.where(mask, c, torch.ones_like(c)), torch.ones_like(a))
    return ((r - 1) ** 2).mean(2).sum(1) / mask.to(c.dtype).mean(2).sum(1)


def _plus(a: Tensor, b: Tensor | None) -> Tensor:
    """a + b, or a itself when b is None (an absent gradient), without an extra pass."""
    return a if b is None else a + b


# ---------------------------------------------------------------------------------------------
# LSTM (PyTorch's cell, gate order i, f, g, o; kernel notes in csrc/kernels/cpu/lstm.h)
# ---------------------------------------------------------------------------------------------
def lstm_forward(
    xp: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor, b: Tensor | None = None, w_hr: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM recurrence z_t = xp_t + b + h_{t-1} w_hhᵀ, c_t = f c_{t-1} + i g, h_t = o tanh(c_t).

    With ``w_hr`` (nn.LSTM's ``proj_size > 0``) the state is projected, h_t = (o tanh(c_t)) w_hrᵀ,
    and P = proj_size replaces H as the size of h; the fused kernels do not cover this case and
    ``rnnlab.LSTM`` runs it through this function.

    Args:
        xp: [M, T, B, 4H] projected inputs (x W_ihᵀ + b_ih + b_hh, or x W_ihᵀ with b = b_ih + b_hh),
            gate blocks i, f, g, o.
        w_hh: [M, 4H, H] (or [M, 4H, P]) recurrent weights, PyTorch layout (weight_hh_l0).
        h0: [M, B, H] (or [M, B, P]), c0: [M, B, H] initial states.
        b: optional [M, 4H] bias added at every step.
        w_hr: optional [M, P, H] projection weights (weight_hr_l0).
    Returns:
        hs [M, T, B, H] (or [M, T, B, P]), cs [M, T, B, H], gates [M, T, B, 4H] (activated i, f, g, o).
    """
    xp = _with_bias(xp, b)
    M, T, B, G = xp.shape
    H = G // 4
    h, c = h0, c0
    hs, cs, gates = [], [], []
    for t in range(T):
        zi, zf, zg, zo = (xp[:, t] + torch.bmm(h, w_hh.transpose(1, 2))).chunk(4, -1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = f * c + i * g
        h = o * torch.tanh(c)
        if w_hr is not None:
            h = torch.bmm(h, w_hr.transpose(1, 2))
        hs.append(h)
        cs.append(c)
        gates.append(torch.cat([i, f, g, o], -1))
    if T == 0:
        return xp.new_empty(M, 0, B, h0.shape[-1]), xp.new_empty(M, 0, B, H), xp.new_empty(M, 0, B, G)
    return torch.stack(hs, 1), torch.stack(cs, 1), torch.stack(gates, 1)


def lstm_backward(
    grad_hs: Tensor,
    grad_cs: Tensor | None,
    hs: Tensor,
    cs: Tensor,
    gates: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    grad_gates: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """BPTT through :func:`lstm_forward`, with the per-step statistics of SPEC §8.1.

    δ_t = ∂L/∂h_t is the total gradient on the hidden state and v_t = ∂z_t · w_hh the part of
    δ_{t-1} that came through w_hh (the cell-state path is not part of it).

    Args:
        grad_hs: [M, T, B, H] ∂⁺L/∂h_t; grad_cs: [M, T, B, H] ∂⁺L/∂c_t, or None for zero.
        hs, cs, gates, h0, c0, w_hh: as produced / consumed by :func:`lstm_forward`.
        grad_gates: [M, T, B, 4H] ∂⁺L/∂gates, a gradient arriving at the saved gate activations
            themselves, or None for zero. Only a higher-order derivative makes one (the backward
            pass reads the gates), and the kernels have no such input.
    Returns:
        grad_xp [M, T, B, 4H] (= ∂L/∂z_t), grad_w_hh [M, 4H, H], grad_h0 [M, B, H],
        grad_c0 [M, B, H], delta_sq [M, T, B] (‖δ_t‖², B1), v_sq [M, T, B] (‖v_t‖², B2).
    """
    M, T, B, H = hs.shape
    v = torch.zeros_like(h0)
    dc = torch.zeros_like(c0)
    dzs, delta_sq, v_sq = [], [], []
    for t in reversed(range(T)):
        i, f, g, o = gates[:, t].chunk(4, -1)
        c_prev = c0 if t == 0 else cs[:, t - 1]
        delta = grad_hs[:, t] + v
        tc = torch.tanh(cs[:, t])
        e = dc + delta * o * (1 - tc * tc)
        if grad_cs is not None:
            e = e + grad_cs[:, t]
        gi, gf, gg, go = (None,) * 4 if grad_gates is None else grad_gates[:, t].chunk(4, -1)
        dz = torch.cat(
            [
                _plus(e * g, gi) * i * (1 - i),
                _plus(e * c_prev, gf) * f * (1 - f),
                _plus(e * i, gg) * (1 - g * g),
                _plus(delta * tc, go) * o * (1 - o),
            ],
            -1,
        )
        dc = e * f
        v = torch.bmm(dz, w_hh)
        dzs.append(dz)
        delta_sq.append((delta * delta).sum(-1))
        v_sq.append((v * v).sum(-1))
    if T == 0:
        empty = hs.new_zeros(M, 0, B)
        return gates.new_zeros(gates.shape), torch.zeros_like(w_hh), torch.zeros_like(h0), torch.zeros_like(c0), empty, empty
    grad_xp = torch.stack(dzs[::-1], 1)
    h_prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], 1)
    grad_w = torch.einsum("mtbi,mtbj->mij", grad_xp, h_prev)
    return grad_xp, grad_w, v, dc, torch.stack(delta_sq[::-1], 1), torch.stack(v_sq[::-1], 1)


# ---------------------------------------------------------------------------------------------
# GRU (PyTorch's cell, gate order r, z, n; kernel notes in csrc/kernels/cpu/gru.h)
# ---------------------------------------------------------------------------------------------
def gru_forward(xp: Tensor, w_hh: Tensor, b_hn: Tensor, h0: Tensor, b: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """GRU recurrence with the r and z hidden biases folded into xp (or into b).

    With x_t = xp_t + b: ``[a_r, a_z, a_n] = h_{t-1} w_hhᵀ``; ``r = σ(x_r + a_r)``,
    ``z = σ(x_z + a_z)``, ``hn = a_n + b_hn``, ``n = tanh(x_n + r ⊙ hn)``,
    ``h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}``.

    Args:
        xp: [M, T, B, 3H] projected inputs ``x W_ihᵀ + b_ih + [b_hr, b_hz, 0]`` (or ``x W_ihᵀ``
            with b = ``b_ih + [b_hr, b_hz, 0]``), gate blocks r, z, n.
        w_hh: [M, 3H, H] recurrent weights, PyTorch layout (weight_hh_l0).
        b_hn: [M, H] the n-gate hidden bias (it cannot be folded into xp: r multiplies it).
        h0: [M, B, H] initial state.
        b: optional [M, 3H] bias added at every step.
    Returns:
        hs [M, T, B, H] (h_1 … h_T), gates [M, T, B, 4H] (r, z, n, hn: what backward needs).
    """
    xp = _with_bias(xp, b)
    M, T, B, G = xp.shape
    H = G // 3
    h = h0
    hs, gates = [], []
    for t in range(T):
        a_r, a_z, a_n = torch.bmm(h, w_hh.transpose(1, 2)).chunk(3, -1)
        x_r, x_z, x_n = xp[:, t].chunk(3, -1)
        r, z = torch.sigmoid(x_r + a_r), torch.sigmoid(x_z + a_z)
        hn = a_n + b_hn.unsqueeze(1)
        n = torch.tanh(x_n + r * hn)
        h = n + z * (h - n)
        hs.append(h)
        gates.append(torch.cat([r, z, n, hn], -1))
    if T == 0:
        return xp.new_empty(M, 0, B, H), xp.new_empty(M, 0, B, 4 * H)
    return torch.stack(hs, 1), torch.stack(gates, 1)


def gru_backward(
    grad_hs: Tensor, hs: Tensor, gates: Tensor, h0: Tensor, w_hh: Tensor, grad_gates: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """BPTT through :func:`gru_forward`, with the per-step statistics of SPEC §8.1.

    With δ_t = ∂L/∂h_t the total gradient on the state:
    ``∂n = δ (1 − z) (1 − n²)``, ``∂r = ∂n ⊙ hn ⊙ r (1 − r)``, ``∂z = δ (h_{t-1} − n) z (1 − z)``
    (grad_xp_t = [∂r, ∂z, ∂n]); the recurrent pre-activations get g_t = [∂r, ∂z, ∂n ⊙ r], and
    ``v_t = g_t w_hh + δ_t ⊙ z`` is the whole contribution of step t to δ_{t-1}, the skip path
    included (the GRU has one state, so ‖v_t‖/‖δ_t‖ is the per-step gain, as for Elman).

    Args:
        grad_hs: [M, T, B, H] ∂⁺L/∂h_t. hs, gates, h0, w_hh: as for :func:`gru_forward`.
        grad_gates: [M, T, B, 4H] ∂⁺L/∂(r, z, n, hn), a gradient arriving at the saved gates
            themselves, or None for zero (as for :func:`lstm_backward`: only a higher-order
            derivative makes one).
    Returns:
        grad_xp [M, T, B, 3H], grad_w_hh [M, 3H, H], grad_b_hn [M, H], grad_h0 [M, B, H],
        delta_sq [M, T, B] (‖δ_t‖², B1), v_sq [M, T, B] (‖v_t‖², B2).
    """
    M, T, B, H = hs.shape
    v = torch.zeros_like(h0)
    dxs, drecs, delta_sq, v_sq = [], [], [], []
    for t in reversed(range(T)):
        r, z, n, hn = gates[:, t].chunk(4, -1)
        h_prev = h0 if t == 0 else hs[:, t - 1]
        delta = grad_hs[:, t] + v
        gr, gz, gn, ghn = (None,) * 4 if grad_gates is None else grad_gates[:, t].chunk(4, -1)
        dn = _plus(delta * (1 - z), gn) * (1 - n * n)
        dr = _plus(dn * hn, gr) * r * (1 - r)
        dz = _plus(delta * (h_prev - n), gz) * z * (1 - z)
        drec = torch.cat([dr, dz, _plus(dn * r, ghn)], -1)
        v = torch.bmm(drec, w_hh) + delta * z
        dxs.append(torch.cat([dr, dz, dn], -1))
        drecs.append(drec)
        delta_sq.append((delta * delta).sum(-1))
        v_sq.append((v * v).sum(-1))
    if T == 0:
        empty = hs.new_zeros(M, 0, B)
        return hs.new_zeros(M, 0, B, 3 * H), torch.zeros_like(w_hh), hs.new_zeros(M, H), torch.zeros_like(h0), empty, empty
    drec = torch.stack(drecs[::-1], 1)
    h_prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], 1)
    grad_w = torch.einsum("mtbi,mtbj->mij", drec, h_prev)
    grad_b_hn = drec[..., 2 * H :].sum((1, 2))
    return torch.stack(dxs[::-1], 1), grad_w, grad_b_hn, v, torch.stack(delta_sq[::-1], 1), torch.stack(v_sq[::-1], 1)


# ---------------------------------------------------------------------------------------------
# Diagonal linear recurrence h_t = λ ⊙ h_{t-1} + u_t (real or complex; csrc/kernels/cpu/diag.h)
# ---------------------------------------------------------------------------------------------
def diag_forward(u: Tensor, lam: Tensor, h0: Tensor, stats: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Diagonal linear recurrence, with the sensitivity accumulators of SPEC §8.2 F4.

    s_t = λ ⊙ s_{t-1} + h_{t-1} (s_0 = 0) is ∂h_t/∂λ, elementwise (complex λ allowed).

    Args:
        u: [M, T, B, N] inputs (float32/64 or complex64/128).
        lam: [M, N] per model and channel, same dtype as u.
        h0: [M, B, N] initial state.
        stats: whether to return the F4 statistics.
    Returns:
        hs [M, T, B, N]; h_sq, s_sq [M, T, N] (real): mean over the batch of |h_t|² and |s_t|²,
        or [M, 0, N] when ``stats`` is False.
    """
    M, T, B, N = u.shape
    lam_b = lam.unsqueeze(1)
    h, s = h0, torch.zeros_like(h0)
    hs, h_sq, s_sq = [], [], []
    for t in range(T):
        h_prev, h = h, lam_b * h + u[:, t]
        s = lam_b * s + h_prev
        hs.append(h)
        h_sq.append(h.abs().square().mean(1))
        s_sq.append(s.abs().square().mean(1))
    real = u.real.dtype
    empty = u.new_empty(M, 0, N, dtype=real)
    if T == 0:
        return u.new_empty(u.shape), empty, empty
    if not stats:
        return torch.stack(hs, 1), empty, empty
    return torch.stack(hs, 1), torch.stack(h_sq, 1), torch.stack(s_sq, 1)


def diag_backward(
    grad_hs: Tensor, hs: Tensor, h0: Tensor, lam: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """BPTT through :func:`diag_forward`, with the per-step statistics of SPEC §8.1.

    Complex gradients follow PyTorch's convention (conjugate Wirtinger derivative of a real
    loss): δ_t = grad_hs_t + v_{t+1} with v_t = conj(λ) ⊙ δ_t, grad_λ = Σ_{t,b} conj(h_{t-1}) ⊙ δ_t.

    Args:
        grad_hs: [M, T, B, N] ∂⁺L/∂h_t. hs, h0, lam: as for :func:`diag_forward`.
    Returns:
        grad_u [M, T, B, N] (= δ_t), grad_lam [M, N], grad_h0 [M, B, N], delta_sq [M, T, B]
        (‖δ_t‖², B1), v_sq [M, T, B] (‖v_t‖², B2), the norms real.
    """
    M, T, B, N = hs.shape
    lam_c = lam.conj().unsqueeze(1)
    v = torch.zeros_like(h0)
    grad_lam = torch.zeros_like(lam)
    deltas, delta_sq, v_sq = [], [], []
    for t in reversed(range(T)):
        delta = grad_hs[:, t] + v
        v = lam_c * delta
        h_prev = h0 if t == 0 else hs[:, t - 1]
        grad_lam = grad_lam + (h_prev.conj() * delta).sum(1)
        deltas.append(delta)
        delta_sq.append(delta.abs().square().sum(-1))
        v_sq.append(v.abs().square().sum(-1))
    if T == 0:
        empty = hs.new_zeros(M, 0, B, dtype=hs.real.dtype)
        return hs.new_zeros(hs.shape), grad_lam, torch.zeros_like(h0), empty, empty
    return torch.stack(deltas[::-1], 1), grad_lam, v, torch.stack(delta_sq[::-1], 1), torch.stack(v_sq[::-1], 1)
