"""An Elman population as a dynamical system (SPEC §3.3 step 1), batched over its M models.

Model m (the column convention of :mod:`rnnlab.nn.population`, PyTorch's):

    a_t = W_hh[m] h_{t−1} + W_ih[m] x_t + b[m],    h_t = φ(a_t),    h_0 = 0.

At a fixed input x the autonomous map is F(h) = φ(W_hh h + d) with the constant drive
d = W_ih x + b. Its Jacobian in this convention is

    J(h) = ∂F/∂h = diag(φ'(a)) W_hh,    J[i, j] = ∂F_i/∂h_j.

(SPEC §1 writes the row convention, where the same matrix appears transposed as W diag(φ'(a));
the eigenvalues and singular values, which is all the analysis uses, are the same.)

Shapes: a population of M models with H units and I inputs; states are batches [M, N, H] (N
states per model); a drive is [M, H] (one per model) or [M, N, H] (one per state).

The analysis runs in float64 by default: fixed points are resolved to ‖F(h) − h‖ < 1e-8, below
float32's resolution of states of order 1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..reference import ACTIVATIONS as NONLINEARITIES
from ..reference import activation as _phi
from ..reference import activation_grad_from_output


def _dphi(name: str, a: Tensor) -> Tensor:
    """φ'(a), through the reference's φ' written in terms of h = φ(a)."""
    return activation_grad_from_output(name, _phi(name, a))


def _not_elman_reason(params: Mapping[str, Tensor]) -> str | None:
    """Why ``params`` are not an Elman population's, in words, or None when they may be."""
    # The registry imports this module (the Elman record names ElmanSystem), so it is read here,
    # at call time.
    from ..cells import cell_of

    other = cell_of(params)
    if other is not None and other.system is not ElmanSystem:
        return f"they are the parameters of cell={other.name!r} ({other.title})"
    if "weight_hh" not in params:
        return f"weight_hh is missing (got {sorted(params)})"
    return None


@dataclass(frozen=True)
class ElmanSystem:
    """The recurrent part and read-out of M Elman RNNs, in the analysis dtype.

    Build it with :meth:`from_params`; every function of :mod:`rnnlab.analysis` also accepts the
    parameter dict directly (see :func:`as_system`).

    Attributes:
        weight_hh [M, H, H], weight_ih [M, H, I], bias [M, H], weight_out [M, O, H],
        bias_out [M, O]; nonlinearity φ (one of :data:`NONLINEARITIES`).
    """

    weight_hh: Tensor
    weight_ih: Tensor
    bias: Tensor
    weight_out: Tensor
    bias_out: Tensor
    nonlinearity: str

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor], nonlinearity: str = "tanh", cell: str = "elman",
                    dtype: torch.dtype = torch.float64) -> "ElmanSystem":
        """Check and convert a population's parameters (:func:`rnnlab.nn.population.param_shapes`
        with ``cell="elman"``: weight_ih [M, H, I], weight_hh [M, H, H], bias [M, H], weight_out
        [M, O, H], bias_out [M, O]); the tensors stay on their device."""
        from ..cells import get_cell, names  # at call time: see _not_elman_reason

        if get_cell(cell).system is not cls:
            analysed = " or ".join(repr(n) for n in names(lambda c: c.system is cls))
            raise ValueError(f"the fixed-point analysis is defined for cell={analysed} only, got cell={cell!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a dict of tensors (rnnlab.nn.population.param_shapes), got {type(params).__name__}")
        reason = _not_elman_reason(params)
        if reason is not None:
            raise ValueError(f"params must be an Elman population's (cell='elman'), but {reason}")
        stacked = sorted(set(params) - {"weight_ih", "weight_hh", "bias", "weight_out", "bias_out"})
        if stacked:
            raise ValueError(f"params must be a one-layer Elman population's; {stacked} are parameters of a stack "
                             "(num_layers > 1) or of another cell")
        missing = [n for n in ("weight_ih", "bias", "weight_out", "bias_out") if n not in params]
        if missing:
            raise ValueError(f"params is missing {missing}; an Elman population has weight_ih, weight_hh, bias, weight_out, bias_out")
        w_hh, w_ih, b, w_out, b_out = (params[n] for n in ("weight_hh", "weight_ih", "bias", "weight_out", "bias_out"))
        if w_hh.dim() != 3 or w_hh.shape[1] != w_hh.shape[2]:
            raise ValueError(f"params['weight_hh'] must have shape [M, H, H], got {list(w_hh.shape)}")
        M, H = w_hh.shape[:2]
        O = w_out.shape[1] if w_out.dim() == 3 else -1
        expected = {"weight_ih": (M, H, w_ih.shape[-1] if w_ih.dim() == 3 else -1), "bias": (M, H),
                    "weight_out": (M, O, H), "bias_out": (M, O)}
        for name, shape in expected.items():
            if tuple(params[name].shape) != shape or -1 in shape:
                want = {"weight_ih": f"[M={M}, H={H}, I]", "bias": f"[M={M}, H={H}]", "weight_out": f"[M={M}, O, H={H}]",
                        "bias_out": f"[M={M}, O]"}[name]
                raise ValueError(f"params[{name!r}] must have shape {want}, got {list(params[name].shape)}")
        conv = lambda t: t.detach().to(dtype)  # noqa: E731
        return cls(conv(w_hh), conv(w_ih), conv(b), conv(w_out), conv(b_out), nonlinearity)

    @property
    def num_models(self) -> int:
        return self.weight_hh.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.weight_hh.shape[1]

    @property
    def input_size(self) -> int:
        return self.weight_ih.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.weight_hh.dtype

    @property
    def device(self) -> torch.device:
        return self.weight_hh.device

    def select(self, idx: Tensor) -> "ElmanSystem":
        """The models ``idx`` (int64 indices) as a smaller system."""
        return ElmanSystem(*(t[idx] for t in (self.weight_hh, self.weight_ih, self.bias, self.weight_out, self.bias_out)),
                           self.nonlinearity)

    # ---- the map ------------------------------------------------------------------------------
    def constant_input(self, x: float | Tensor | None = None) -> Tensor:
        """[M, I] an input regime: x None or a float (that value on every input), [I] (shared by
        all models) or [M, I]."""
        M, I = self.num_models, self.input_size
        if x is None or isinstance(x, (int, float)):
            x = torch.full((I,), 0.0 if x is None else float(x), dtype=self.dtype, device=self.device)
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        if x.shape == (I,):
            x = x.expand(M, I)
        if x.shape != (M, I):
            raise ValueError(f"the input regime x must be a float, [I={I}] or [M={M}, I={I}], got {list(x.shape)}")
        return x

    def drive(self, x: float | Tensor | None = None) -> Tensor:
        """[M, H] the constant drive d = W_ih x + b of an input regime x (:meth:`constant_input`)."""
        return self.bias + torch.einsum("mhi,mi->mh", self.weight_ih, self.constant_input(x))

    def broadcast_drive(self, h: Tensor, drive: Tensor) -> Tensor:
        """``drive`` ([M, H] or [M, N, H]) in a shape that broadcasts against the states ``h``
        [M, N, H] (both checked)."""
        M, H = self.num_models, self.hidden_size
        if h.dim() != 3 or h.shape[0] != M or h.shape[2] != H:
            raise ValueError(f"states h must have shape [M={M}, N, H={H}], got {list(h.shape)}")
        if drive.shape == (M, H):
            return drive[:, None, :]
        if drive.shape != h.shape:
            raise ValueError(f"drive must have shape [M={M}, H={H}] or that of h {list(h.shape)}, got {list(drive.shape)}")
        return drive

    def preactivation(self, h: Tensor, drive: Tensor) -> Tensor:
        """[M, N, H] a = W_hh h + d."""
        return torch.baddbmm(self.broadcast_drive(h, drive), h, self.weight_hh.transpose(1, 2))

    def map(self, h: Tensor, drive: Tensor) -> Tensor:
        """[M, N, H] F(h) = φ(W_hh h + d)."""
        return _phi(self.nonlinearity, self.preactivation(h, drive))

    def jacobian(self, h: Tensor, drive: Tensor) -> Tensor:
        """[M, N, H, H] J(h) = diag(φ'(a)) W_hh, J[m, n, i, j] = ∂F_i/∂h_j at state h[m, n]."""
        return self.jacobian_at(self.preactivation(h, drive))

    def jacobian_at(self, a: Tensor) -> Tensor:
        """[M, N, H, H] diag(φ'(a)) W_hh from pre-activations a [M, N, H]."""
        return _dphi(self.nonlinearity, a)[..., :, None] * self.weight_hh[:, None]

    def dphi(self, a: Tensor) -> Tensor:
        """φ'(a), elementwise."""
        return _dphi(self.nonlinearity, a)

    # ---- driven trajectories ------------------------------------------------------------------
    def input_drives(self, x: Tensor) -> Tensor:
        """[M, T, B, H] the drives W_ih x_t + b of input sequences x [M, T, B, I] (or [T, B, I],
        shared by all models)."""
        M, I = self.num_models, self.input_size
        x = torch.as_tensor(x).to(self.dtype)
        if x.dim() == 3:
            x = x.expand(M, *x.shape)
        if x.dim() != 4 or x.shape[0] != M or x.shape[3] != I:
            raise ValueError(f"input sequences x must have shape [M={M}, T, B, I={I}] or [T, B, I={I}], got {list(x.shape)}")
        return torch.einsum("mtbi,mhi->mtbh", x, self.weight_ih) + self.bias[:, None, None, :]

    def steps(self, x: Tensor, h0: Tensor | None = None):
        """Iterate the driven recurrence over x [M, T, B, I] from h0 [M, B, H] (default 0):
        yields, for t = 1 … T, the pair (a_t, h_t), each [M, B, H]."""
        drives = self.input_drives(x)
        M, T, B, _ = drives.shape
        h = drives.new_zeros(M, B, self.hidden_size) if h0 is None else h0
        if h.shape != (M, B, self.hidden_size):
            raise ValueError(f"h0 must have shape [M={M}, B={B}, H={self.hidden_size}], got {list(h.shape)}")
        for t in range(T):
            a = self.preactivation(h, drives[:, t])
            h = _phi(self.nonlinearity, a)
            yield a, h

    def run(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """[M, T, B, H] the states h_1 … h_T driven by x [M, T, B, I] from h0 (default 0)."""
        return torch.stack([h for _, h in self.steps(x, h0)], 1)

    def readout(self, h: Tensor) -> Tensor:
        """[M, N, O] W_out h + b_out of states h [M, N, H]."""
        return torch.baddbmm(self.bias_out[:, None, :], h, self.weight_out.transpose(1, 2))


def require_system(system) -> ElmanSystem:
    """``system`` if it is an :class:`ElmanSystem`; the building blocks take one (built once,
    checked and in float64) where the entry points also take parameter dicts."""
    if not isinstance(system, ElmanSystem):
        raise TypeError(f"expected an ElmanSystem (ElmanSystem.from_params(params, nonlinearity)), got {type(system).__name__}")
    return system


def as_system(params: Mapping[str, Tensor] | ElmanSystem, nonlinearity: str | None = None) -> ElmanSystem:
    """``params`` as an :class:`ElmanSystem` in float64 (a system is returned as is).

    Args:
        params: a population's parameter dict or an :class:`ElmanSystem`.
        nonlinearity: φ of a parameter dict (None: tanh); for a system, None or its own.
    """
    if isinstance(params, ElmanSystem):
        if nonlinearity is not None and nonlinearity != params.nonlinearity:
            raise ValueError(f"nonlinearity={nonlinearity!r} contradicts the system's {params.nonlinearity!r}")
        return params
    return ElmanSystem.from_params(params, nonlinearity or "tanh")


def stack_params(params: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """One population's parameter dict from per-model weight dicts without the M dim (e.g. the
    ``RunResult.params`` of :func:`rnnlab.train.train_population` with ``keep_params=True``)."""
    if not params or any(p is None for p in params):
        raise ValueError("params must hold at least one model's weights, and none may be None (train with keep_params=True)")
    return {n: torch.stack([p[n] for p in params]) for n in params[0]}
