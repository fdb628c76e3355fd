"""``rnnlab.LRU``: a linear recurrent unit on the fused diagonal-recurrence kernel (SPEC.md §4.1–4.2)."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..functional import GradientSink, diag_recurrence

PARAMETRIZATIONS = ("exp", "polar", "plain", "real")
GAMMAS = ("learned", "none", "fixed")

#: the stored parameters of λ under each parametrization.
LAM_PARAMS = {"exp": ("nu_log", "theta_log"), "polar": ("nu", "theta"), "plain": ("lam_re", "lam_im"), "real": ("nu_log",)}


def check_lru_variant(parametrization: str, gamma: str) -> None:
    """Raise ValueError unless ``parametrization`` and ``gamma`` name an LRU variant."""
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    if gamma not in GAMMAS:
        raise ValueError(f"gamma must be one of {GAMMAS}, got {gamma!r}")


def lru_param_shapes(M: int, I: int, N: int, O: int, parametrization: str = "exp", gamma: str = "learned") -> dict[str, tuple]:
    """Name -> shape of every parameter of M LRUs (see :class:`LRU` for their meaning)."""
    check_lru_variant(parametrization, gamma)
    shapes = {name: (M, N) for name in LAM_PARAMS[parametrization]}
    if gamma == "learned":
        shapes["gamma_log"] = (M, N)
    parts = ("re",) if parametrization == "real" else ("re", "im")
    shapes.update({f"B_{part}": (M, N, I) for part in parts})
    shapes.update({f"C_{part}": (M, O, N) for part in parts})
    shapes["D"] = (M, O, I)
    return shapes


def ring_bounds(parametrization: str, r_min: float, r_max: float) -> tuple[float, float]:
    """The ring r_min ≤ |λ| ≤ r_max actually sampled: for ``"exp"``, log(−log ν) is infinite at
    ν = 0 and ν = 1, so the ring is kept strictly inside."""
    if parametrization == "exp" and (r_min == 0 or r_max == 1):
        return max(r_min, 1e-4), min(r_max, 1 - 1e-6)
    return r_min, r_max


def lru_ring_params(u_ring: Tensor, u_phase: Tensor, parametrization: str, gamma: str, r_min: float, r_max: float,
                    max_phase: float) -> dict[str, Tensor]:
    """The stored λ (and learned γ = sqrt(1 − |λ|²)) parameters of the ring initialization, from
    two [M, N] tensors of U[0, 1) draws: |λ| = sqrt(u_ring·(r_max² − r_min²) + r_min²), phase
    (2·u_phase − 1)·max_phase mod 2π (unused for ``"real"``)."""
    r_min, r_max = ring_bounds(parametrization, r_min, r_max)
    nu = (u_ring * (r_max**2 - r_min**2) + r_min**2).sqrt()
    theta = torch.remainder((2 * u_phase - 1) * max_phase, 2 * math.pi)
    out = {}
    if parametrization in ("exp", "real"):
        out["nu_log"] = (-nu.log()).log()
    if parametrization == "exp":
        out["theta_log"] = theta.log()
    elif parametrization == "polar":
        out["nu"], out["theta"] = nu, theta
    elif parametrization == "plain":
        out["lam_re"], out["lam_im"] = nu * theta.cos(), nu * theta.sin()
    if gamma == "learned":
        out["gamma_log"] = 0.5 * (1 - nu**2).log()
    return out


def lru_lam(params: Mapping[str, Tensor], parametrization: str) -> Tensor:
    """[M, N] λ from its stored parameters (complex, or real for ``"real"``)."""
    if parametrization == "exp":
        return torch.exp(torch.complex(-params["nu_log"].exp(), params["theta_log"].exp()))
    if parametrization == "polar":
        return torch.polar(params["nu"], params["theta"])
    if parametrization == "plain":
        return torch.complex(params["lam_re"], params["lam_im"])
    return torch.exp(-params["nu_log"].exp())


def lru_forward(params: Mapping[str, Tensor], x: Tensor, parametrization: str = "exp", gamma: str = "learned",
                h0: Tensor | None = None, *, sink: GradientSink | None = None, return_stats: bool = False,
                readout_steps: int | None = None):
    """M LRUs on x [M or 1, T, B, I] from a parameter dict (names and shapes of :func:`lru_param_shapes`).

    Returns (y [M, K, B, O], hs [M, T, B, N], stats): y at the last K = ``readout_steps`` steps
    (default: all T); stats is (h_sq, s_sq) with ``return_stats`` (see
    :func:`rnnlab.diag_recurrence`), else (). ``sink`` receives the per-step ‖δ_t‖², ‖v_t‖² of
    the recurrence at backward.
    """
    complex_ = parametrization != "real"
    lam = lru_lam(params, parametrization)
    g = params["gamma_log"].exp() if gamma == "learned" else (1 - lam.abs().square() + 1e-6).sqrt() if gamma == "fixed" else None
    (M, N), (_, T, B, I), O = lam.shape, x.shape, params["D"].shape[1]
    # B x_t as one batched GEMM; complex B as interleaved (re, im) rows, so the product's last
    # axis is already the [N, 2] layout of a complex tensor.
    if complex_:
        w_in = torch.stack([params["B_re"], params["B_im"]], 2).reshape(M, 2 * N, I)
        if g is not None:
            w_in = w_in * g.repeat_interleave(2, -1).unsqueeze(-1)
    else:
        w_in = params["B_re"] if g is None else params["B_re"] * g.unsqueeze(-1)
    flat = x.reshape(x.shape[0], T * B, I)  # x's model axis may be 1: one input shared by all models
    u = torch.matmul(flat, w_in.transpose(1, 2)).view(M, T, B, -1)
    if complex_:
        u = torch.view_as_complex(u.view(M, T, B, N, 2))
    out = diag_recurrence(u, lam, h0, sink=sink, return_stats=return_stats)
    hs = out[0] if return_stats else out
    # Re(C h) = C_re h_re − C_im h_im: one GEMM against the interleaved real view of h, over the
    # read-out steps only.
    K = T if readout_steps is None else readout_steps
    h_read, x_read = hs[:, T - K :], x[:, T - K :].reshape(x.shape[0], K * B, I)
    if complex_:
        w_out = torch.stack([params["C_re"], -params["C_im"]], -1).reshape(M, O, 2 * N)
        h_flat = torch.view_as_real(h_read).reshape(M, K * B, 2 * N)
    else:
        w_out, h_flat = params["C_re"], h_read.reshape(M, K * B, N)
    y = torch.matmul(h_flat, w_out.transpose(1, 2)) + torch.matmul(x_read, params["D"].transpose(1, 2))
    return y.view(M, K, B, O), hs, (tuple(out[1:]) if return_stats else ())


class LRU(nn.Module):
    r"""Linear recurrent unit: ``h_t = λ ⊙ h_{t−1} + γ ⊙ (B x_t)``, ``y_t = Re(C h_t) + D x_t``.

    λ, γ are per channel, B, C complex (real for ``parametrization="real"``), D real; M
    independent models (``num_models``) run in one fused call of :func:`rnnlab.diag_recurrence`.

    Parametrizations of λ (SPEC §4.1–4.2, Zucchet & Orvieto's code):

    * ``"exp"``: stored (ω_ν, ω_θ) = (log(−log ν), log θ), λ = exp(−exp(ω_ν) + i·exp(ω_θ));
    * ``"polar"``: stored (ν, θ), λ = ν·e^{iθ};
    * ``"plain"``: stored (Re λ, Im λ);
    * ``"real"``: a real λ = exp(−exp(ω_ν)) ∈ (0, 1), stored ω_ν; B and C are real.

    γ (input normalization): ``"learned"`` (stored as log γ, initialized to sqrt(1 − |λ|²)),
    ``"none"`` (γ = 1), or ``"fixed"``: sqrt(1 − |λ|² + 1e-6) recomputed from λ at every call
    (not a parameter; gradients flow through it into λ, as the authors' ``L2`` option).

    Initialization: λ uniform on the ring ``r_min ≤ |λ| ≤ r_max`` (ν = sqrt(U·(r_max² − r_min²)
    + r_min²)) with phase θ uniform in [−max_phase, max_phase], taken mod 2π; B_re, B_im, C_re,
    C_im, D each N(0, 1)/sqrt(fan_in).

    Shapes (M = num_models, N = hidden_size, I = input_size, O = output_size):
        x: [T, B, I] (the same input for every model) or [M, T, B, I]; batch_first swaps T and B.
        h0: [M, B, N] (complex unless "real") or None for zeros.
        returns y [M, T, B, O] and h_n [M, B, N]; without the M axis when x has none and
        num_models == 1. With ``return_stats=True`` also (h_sq, s_sq) [M, T, N] (same rule for
        the M axis): mean over the batch of |h_t|² and |∂h_t/∂λ|² (SPEC §8.2 F4), computed in the
        same kernel pass; chain factors to the stored parameters are in SPEC §8.2.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        num_models: int = 1,
        parametrization: str = "exp",
        gamma: str = "learned",
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 2 * math.pi,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_lru_variant(parametrization, gamma)
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_models", num_models)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        output_size = input_size if output_size is None else output_size
        if not isinstance(output_size, int) or output_size <= 0:
            raise ValueError(f"output_size must be a positive int, got {output_size!r}")
        if not 0 <= r_min < r_max <= 1:
            raise ValueError(f"need 0 ≤ r_min < r_max ≤ 1, got r_min={r_min}, r_max={r_max}")
        r_min, r_max = ring_bounds(parametrization, r_min, r_max)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.num_models, self.parametrization, self.gamma = num_models, parametrization, gamma
        self.r_min, self.r_max, self.max_phase, self.batch_first = r_min, r_max, max_phase, batch_first

        factory = {"device": device, "dtype": dtype}
        for name, shape in lru_param_shapes(num_models, input_size, hidden_size, output_size, parametrization, gamma).items():
            setattr(self, name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    @property
    def is_complex(self) -> bool:
        return self.parametrization != "real"

    def reset_parameters(self) -> None:
        """Ring initialization of λ, γ = sqrt(1 − |λ|²), and N(0, 1)/sqrt(fan_in) matrices."""
        with torch.no_grad():
            ring = torch.rand(self.num_models, self.hidden_size, dtype=self.D.dtype, device=self.D.device)
            phase = torch.rand_like(ring)
            for name, value in lru_ring_params(ring, phase, self.parametrization, self.gamma, self.r_min, self.r_max,
                                               self.max_phase).items():
                getattr(self, name).copy_(value)
            for name, p in self.named_parameters():
                if name[0] in "BCD":
                    nn.init.normal_(p, 0.0, 1.0 / math.sqrt(p.shape[-1]))

    def lam(self) -> Tensor:
        """[M, N] the current λ (complex, or real for ``parametrization="real"``)."""
        return lru_lam(dict(self.named_parameters()), self.parametrization)

    def forward(self, x: Tensor, h0: Tensor | None = None, *, return_stats: bool = False):
        """See the class docstring for shapes."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        if x.dim() not in (3, 4) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must have shape [T, B, {self.input_size}] or [M, T, B, {self.input_size}] "
                f"(batch_first: B before T), got {list(x.shape)}"
            )
        if x.dim() == 4 and x.shape[0] != self.num_models:
            raise ValueError(f"x has {x.shape[0]} models on its first axis, the LRU has num_models = {self.num_models}")
        if x.shape[-2 if self.batch_first else -3] == 0:
            raise ValueError("x must have at least one time step")
        if x.dtype != self.D.dtype:
            raise TypeError(f"x must have dtype {self.D.dtype} (like the parameters), got {x.dtype}")
        squeeze = x.dim() == 3 and self.num_models == 1
        xm = x if x.dim() == 4 else x.unsqueeze(0)
        if self.batch_first:
            xm = xm.transpose(1, 2)
        y, hs, stats = lru_forward(dict(self.named_parameters()), xm, self.parametrization, self.gamma, h0,
                                   return_stats=return_stats)
        h_n = hs[:, -1]
        if self.batch_first:
            y = y.transpose(1, 2)
        if squeeze:
            y, h_n, stats = y[0], h_n[0], tuple(s[0] for s in stats)
        return (y, h_n, stats) if return_stats else (y, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, {self.output_size}"
        if self.num_models != 1:
            s += f", num_models={self.num_models}"
        return s + (f", parametrization={self.parametrization!r}, gamma={self.gamma!r}, r_min={self.r_min}, "
                    f"r_max={self.r_max}, max_phase={self.max_phase:.4g}")
