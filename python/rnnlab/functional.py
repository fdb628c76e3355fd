"""Functional, population-first entry points to the fused kernels (DESIGN.md §2).

All ops take a leading model dimension M: M independent recurrences, each with its own weights,
run in one fused call. Inputs are projected outside the kernel (``x W_ihᵀ`` is one big GEMM); the
bias goes into that GEMM or, cheaper, to the op's ``bias`` argument, which the kernel adds as it
reads the projection.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import _ops, reference
from .reference import ACTIVATIONS

_FLOATS = (torch.float32, torch.float64)


def _check(name: str, t: Tensor, shape: tuple, dtype: torch.dtype, device: torch.device, *, like: str) -> None:
    """Type, dtype, device and shape of argument ``name``; ``like`` names the tensor that
    ``dtype`` and ``device`` come from, so the message says which one to match."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (like {like}), got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} must be on {device} (like {like}), got {t.device}")
    if tuple(t.shape) != shape:
        expected = "[" + ", ".join(str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {expected}, got {list(t.shape)}")


def _or_zeros(name: str, t: Tensor | None, shape: tuple, ref: Tensor, like: str) -> Tensor:
    """Optional argument ``name`` (an initial state or bias) checked against ``ref``'s dtype and
    device, or zeros of ``shape`` when None; contiguous either way."""
    if t is None:
        return ref.new_zeros(shape)
    _check(name, t, shape, ref.dtype, ref.device, like=like)
    return t.contiguous()


def _reg_weight(reg_weight, M: int, like: Tensor) -> Tensor | None:
    if reg_weight is None:
        return None
    if not isinstance(reg_weight, Tensor):
        if float(reg_weight) == 0.0:
            return None
        return torch.full((M,), float(reg_weight), dtype=like.dtype, device=like.device)
    if reg_weight.shape != (M,):
        raise ValueError(f"reg_weight must be a float or a tensor of shape [{M}] (one α per model), got {list(reg_weight.shape)}")
    return reg_weight.detach().to(dtype=like.dtype, device=like.device).contiguous()


@dataclass
class GradientSink:
    """Receives the per-step statistics of a fused backward pass (SPEC.md §8.1 B1–B4).

    Pass it to :func:`elman`; after ``loss.backward()`` its properties hold the statistics of
    that backward pass (they accumulate over several backward passes, like ``.grad``; call
    :meth:`zero_` in between).

    Attributes:
        step: [M, 2, T, B] leaf tensor whose gradient is (‖δ_t‖², ‖v_t‖²).
        reg: [M, 2] leaf tensor whose gradient is (Ω, N).
    """

    step: Tensor
    reg: Tensor

    @classmethod
    def like(cls, xp: Tensor) -> "GradientSink":
        """A sink for a recurrence whose (projected) input ``xp`` is [M, T, B, H].

        The sink is real: for a complex input (:func:`diag_recurrence`'s ``u``) it has the
        matching real dtype, since the statistics are squared norms.
        """
        M, T, B, _ = xp.shape
        kw = dict(dtype=xp.real.dtype, device=xp.device, requires_grad=True)
        return cls(torch.zeros(M, 2, T, B, **kw), torch.zeros(M, 2, **kw))

    def _grad(self, t: Tensor) -> Tensor:
        if t.grad is None:
            raise RuntimeError("no statistics yet: call loss.backward() through the op that received this sink")
        return t.grad

    def zero_(self) -> None:
        self.step.grad = None
        self.reg.grad = None

    @property
    def delta_sq(self) -> Tensor:
        """[M, T, B] ‖∂L/∂h_t‖² (B1)."""
        return self._grad(self.step)[:, 0]

    @property
    def v_sq(self) -> Tensor:
        """[M, T, B] ‖v_t‖², the recurrent part of ∂L/∂h_{t-1} (B2)."""
        return self._grad(self.step)[:, 1]

    @property
    def delta_norm(self) -> Tensor:
        """[M, T, B] ‖∂L/∂h_t‖."""
        return self.delta_sq.sqrt()

    @property
    def ratio(self) -> Tensor:
        """[M, T, B] ‖v_t‖² / ‖δ_t‖², the ratio inside Pascanu's Ω (NaN where δ_t = 0)."""
        return self.v_sq / self.delta_sq

    @property
    def omega(self) -> Tensor:
        """[M] the regularizer Ω (B4)."""
        return self._grad(self.reg)[:, 0]

    @property
    def n_valid(self) -> Tensor:
        """[M] N = Σ_t mean_b [‖δ_t‖² ≥ 1e-20], the valid-step count of Ω (B3)."""
        return self._grad(self.reg)[:, 1]


def _bias(bias: Tensor | None, xp: Tensor) -> Tensor | None:
    """The optional bias [M, G] of a recurrence whose projected input xp is [M, T, B, G], checked
    and contiguous."""
    if bias is None:
        return None
    M, _, _, G = xp.shape
    _check("bias", bias, (M, G), xp.dtype, xp.device, like="xp")
    return bias.contiguous()


def _check_projected(xp, w_hh, gates: tuple[str, ...] = (), state_size: int | None = None) -> tuple[int, int, int, int]:
    """Check the projected inputs xp [M, T, B, len(gates)·H] and w_hh [M, len(gates)·H, S] of a
    recurrence with the named gate blocks (none: Elman) and a state of S = state_size units (H
    when None); returns (M, T, B, H)."""
    k = len(gates) or 1
    if not isinstance(xp, Tensor):
        raise TypeError(f"xp must be a Tensor, got {type(xp).__name__}")
    if xp.dim() != 4 or xp.shape[-1] % k != 0:
        shape = f"[M, T, B, {k}H] (gates {', '.join(gates)})" if gates else "[M, T, B, H]"
        raise ValueError(f"xp must have shape {shape}, got {list(xp.shape)}")
    if xp.dtype not in _FLOATS:
        raise TypeError(f"xp must be float32 or float64, got {xp.dtype}")
    M, T, B, G = xp.shape
    _check("w_hh", w_hh, (M, G, state_size or G // k), xp.dtype, xp.device, like="xp")
    return M, T, B, G // k


def elman(
    xp: Tensor,
    w_hh: Tensor,
    h0: Tensor | None = None,
    *,
    nonlinearity: str = "tanh",
    reg_weight: float | Tensor | None = None,
    sink: GradientSink | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """M independent Elman recurrences ``h_t = φ(xp_t + bias + h_{t-1} w_hhᵀ)`` in one fused call.

    Args:
        xp: [M, T, B, H] projected inputs ``x W_ihᵀ + b_ih + b_hh`` (float32 or float64), or
            ``x W_ihᵀ`` with ``bias = b_ih + b_hh``.
        w_hh: [M, H, H] recurrent weights in PyTorch's layout (``weight_hh_l0`` of model m is
            ``w_hh[m]``).
        h0: [M, B, H] initial states, or None for zeros.
        nonlinearity: φ, one of ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"identity"``.
        reg_weight: α of Pascanu's vanishing-gradient regularizer (SPEC.md §2.5), a float or an
            [M] tensor (one α per model). When nonzero, the backward pass adds α·∂⁺Ω/∂W_hh to the
            gradient of ``w_hh``; the loss itself is unchanged.
        sink: optional :class:`GradientSink` that receives ‖δ_t‖², ‖v_t‖², Ω and N at backward.
        bias: optional [M, H] bias added at every step. The kernel adds it as it reads xp, so the
            GEMM that projects the inputs needs no bias pass over its [M, T, B, H] output (what
            ``rnnlab.RNN`` does with ``b_ih + b_hh``).
    Returns:
        hs: [M, T, B, H], the states h_1 … h_T.
    """
    M, T, B, H = _check_projected(xp, w_hh)
    if nonlinearity not in ACTIVATIONS:
        raise ValueError(f"nonlinearity must be one of {ACTIVATIONS}, got {nonlinearity!r}")
    h0 = _or_zeros("h0", h0, (M, B, H), xp, "xp")
    if sink is not None:
        _check("sink.step", sink.step, (M, 2, T, B), xp.dtype, xp.device, like="xp")
    return _ops.ElmanFunction.apply(
        xp.contiguous(),
        w_hh.contiguous(),
        h0,
        None if sink is None else sink.step,
        None if sink is None else sink.reg,
        _reg_weight(reg_weight, M, xp),
        nonlinearity,
        _bias(bias, xp),
    )


def lstm(
    xp: Tensor,
    w_hh: Tensor,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    *,
    w_hr: Tensor | None = None,
    sink: GradientSink | None = None,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """M independent LSTMs (PyTorch's cell, gate order i, f, g, o) in one fused call.

    ``z_t = xp_t + bias + h_{t-1} w_hhᵀ``; ``i, f, o = σ(z_i, z_f, z_o)``, ``g = tanh(z_g)``;
    ``c_t = f c_{t-1} + i g``; ``h_t = o tanh(c_t)``.

    Args:
        xp: [M, T, B, 4H] projected inputs ``x W_ihᵀ + b_ih + b_hh`` (float32 or float64), or
            ``x W_ihᵀ`` with ``bias = b_ih + b_hh``.
        w_hh: [M, 4H, H] recurrent weights in PyTorch's layout (``weight_hh_l0`` of model m is
            ``w_hh[m]``).
        h0, c0: [M, B, H] initial hidden and cell states, or None for zeros.
        sink: optional :class:`GradientSink` (``GradientSink.like(xp)``) that receives, at
            backward, ‖δ_t‖² and ‖v_t‖² of the hidden state (SPEC.md §8.1 B1–B2; v_t is the
            part of ∂L/∂h_{t-1} that came through w_hh, the cell path excluded) and Ω, N computed
            from them.
        w_hr: optional [M, P, H] projection weights (``weight_hr_l0`` of ``nn.LSTM(proj_size=P)``):
            ``h_t = (o ⊙ tanh(c_t)) w_hrᵀ`` has P units, so w_hh is [M, 4H, P] and h0 [M, B, P].
            No kernel covers it: it runs :func:`rnnlab.reference.lstm_forward` (a per-step loop
            that autograd differentiates), counted in ``rnnlab._ops.fallbacks[("lstm_forward",
            "proj_size")]``, without a sink.
        bias: optional [M, 4H] bias added at every step, by the kernel as it reads xp (see
            :func:`elman`).
    Returns:
        hs: [M, T, B, H] (with w_hr: [M, T, B, P]) the hidden states h_1 … h_T; cs: [M, T, B, H]
        the cell states.
    """
    if w_hr is not None:
        return _lstm_with_projection(xp, w_hh, h0, c0, w_hr, sink, bias)
    M, T, B, H = _check_projected(xp, w_hh, ("i", "f", "g", "o"))
    states = [_or_zeros(name, st, (M, B, H), xp, "xp") for name, st in (("h0", h0), ("c0", c0))]
    if sink is not None:
        _check("sink.step", sink.step, (M, 2, T, B), xp.dtype, xp.device, like="xp")
    hs, cs, _ = _ops.LstmFunction.apply(
        xp.contiguous(),
        w_hh.contiguous(),
        *states,
        None if sink is None else sink.step,
        None if sink is None else sink.reg,
        _bias(bias, xp),
    )
    return hs, cs


_lstm_reference = _ops.reference_path("lstm_forward", "proj_size", reference.lstm_forward)


def _lstm_with_projection(xp, w_hh, h0, c0, w_hr, sink, bias) -> tuple[Tensor, Tensor]:
    """:func:`lstm` with a projection w_hr [M, P, H]: checked, then run by the reference."""
    if sink is not None:
        raise NotImplementedError("rnnlab.lstm has no gradient sink with a projection (w_hr): it runs the reference")
    if not isinstance(w_hr, Tensor) or w_hr.dim() != 3:
        raise ValueError(f"w_hr must be a Tensor of shape [M, P, H], got {getattr(w_hr, 'shape', type(w_hr).__name__)}")
    P = w_hr.shape[1]
    M, T, B, H = _check_projected(xp, w_hh, ("i", "f", "g", "o"), state_size=P)
    _check("w_hr", w_hr, (M, P, H), xp.dtype, xp.device, like="xp")
    states = [_or_zeros(name, st, (M, B, n), xp, "xp") for name, st, n in (("h0", h0, P), ("c0", c0, H))]
    hs, cs, _ = _lstm_reference(xp, w_hh, *states, b=_bias(bias, xp), w_hr=w_hr)
    return hs, cs


def gru(
    xp: Tensor,
    w_hh: Tensor,
    b_hn: Tensor | None,
    h0: Tensor | None = None,
    *,
    sink: GradientSink | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """M independent GRUs (PyTorch's cell, gate order r, z, n) in one fused call.

    With ``x_t = xp_t + bias``: ``[a_r, a_z, a_n] = h_{t-1} w_hhᵀ``; ``r = σ(x_r + a_r)``,
    ``z = σ(x_z + a_z)``, ``n = tanh(x_n + r ⊙ (a_n + b_hn))``, ``h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}``.

    From ``nn.GRU``'s parameters: ``xp = x W_ihᵀ + b_ih + [b_hr, b_hz, 0]`` (the r and z hidden
    biases fold into xp; b_hn cannot, because r multiplies it), or ``xp = x W_ihᵀ`` with that
    bias as ``bias``, and ``b_hn = b_hh[2H:]``.

    CUDA tensors run the pure-PyTorch :func:`rnnlab.reference.gru_forward` /
    :func:`~rnnlab.reference.gru_backward` (there is no CUDA GRU kernel yet): same results,
    sinks included, at per-step-loop speed, counted in ``rnnlab._ops.fallbacks``.

    Args:
        xp: [M, T, B, 3H] projected inputs (float32 or float64), gate blocks r, z, n.
        w_hh: [M, 3H, H] recurrent weights in PyTorch's layout (``weight_hh_l0`` of model m is
            ``w_hh[m]``).
        b_hn: [M, H] the n-gate hidden bias (``bias_hh_l0[2H:]``), or None for zeros.
        h0: [M, B, H] initial states, or None for zeros.
        sink: optional :class:`GradientSink` (``GradientSink.like(xp)``) that receives, at
            backward, ‖δ_t‖² and ‖v_t‖² (SPEC.md §8.1 B1–B2) and Ω, N computed from them. v_t is
            the whole contribution of step t to ∂L/∂h_{t-1}, the ``z ⊙ δ_t`` skip path included,
            so ‖v_t‖/‖δ_t‖ is the per-step gain as for Elman. The regularizer's gradient is not
            available for the GRU.
        bias: optional [M, 3H] bias added at every step, by the kernel as it reads xp (see
            :func:`elman`).
    Returns:
        hs: [M, T, B, H], the states h_1 … h_T.
    """
    M, T, B, H = _check_projected(xp, w_hh, ("r", "z", "n"))
    b_hn = _or_zeros("b_hn", b_hn, (M, H), xp, "xp")
    h0 = _or_zeros("h0", h0, (M, B, H), xp, "xp")
    if sink is not None:
        _check("sink.step", sink.step, (M, 2, T, B), xp.dtype, xp.device, like="xp")
    hs, _ = _ops.GruFunction.apply(
        xp.contiguous(),
        w_hh.contiguous(),
        b_hn,
        h0,
        None if sink is None else sink.step,
        None if sink is None else sink.reg,
        _bias(bias, xp),
    )
    return hs


_DIAG_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def diag_recurrence(
    u: Tensor,
    lam: Tensor,
    h0: Tensor | None = None,
    *,
    sink: GradientSink | None = None,
    return_stats: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """M independent diagonal linear recurrences ``h_t = λ ⊙ h_{t-1} + u_t`` in one fused call.

    Real or complex; gradients reach ``u``, ``lam`` and ``h0`` (complex ones in PyTorch's
    convention). The kernel is bandwidth-bound: the input projection (``γ ⊙ (B x_t)`` in an LRU)
    is done outside, as for the other cells.

    Args:
        u: [M, T, B, N] inputs, float32/float64 or complex64/complex128.
        lam: [M, N] one λ per model and channel, same dtype as u (a real λ is promoted to u's
            complex dtype).
        h0: [M, B, N] initial states, or None for zeros.
        sink: optional :class:`GradientSink` with u's real dtype (``GradientSink.like(u)``) that
            receives ‖δ_t‖², ‖v_t‖² (SPEC §8.1 B1–B2; v_t = conj(λ) ⊙ δ_t) and Ω, N at backward.
        return_stats: also return the sensitivity accumulators of SPEC §8.2 F4, computed in the
            same pass: with s_t = ∂h_t/∂λ = λ ⊙ s_{t-1} + h_{t-1} (s_0 = 0),
            ``h_sq = mean_b |h_t|²`` and ``s_sq = mean_b |s_t|²``, each [M, T, N] real, not
            differentiable.
    Returns:
        hs [M, T, B, N], or (hs, h_sq, s_sq) when ``return_stats``.
    """
    if not isinstance(u, Tensor):
        raise TypeError(f"u must be a Tensor, got {type(u).__name__}")
    if u.dim() != 4:
        raise ValueError(f"u must have shape [M, T, B, N], got {list(u.shape)}")
    if u.dtype not in _DIAG_DTYPES:
        raise TypeError(f"u must be float32, float64, complex64 or complex128, got {u.dtype}")
    M, T, B, N = u.shape
    if isinstance(lam, Tensor) and u.is_complex() and lam.dtype == u.real.dtype:
        lam = lam.to(u.dtype)
    _check("lam", lam, (M, N), u.dtype, u.device, like="u")
    h0 = _or_zeros("h0", h0, (M, B, N), u, "u")
    if sink is not None:
        _check("sink.step", sink.step, (M, 2, T, B), u.real.dtype, u.device, like="u.real")
    hs, h_sq, s_sq = _ops.DiagFunction.apply(
        u.contiguous(),
        lam.contiguous(),
        h0,
        None if sink is None else sink.step,
        None if sink is None else sink.reg,
        bool(return_stats),
    )
    return (hs, h_sq, s_sq) if return_stats else hs
