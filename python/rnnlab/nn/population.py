"""A population of M independent Elman RNNs with linear read-outs, run by one fused kernel call.

Model m (SPEC §1, in PyTorch's column layout):

    h_t = φ(W_ih[m] x_t + b[m] + W_hh[m] h_{t-1}),   h_0 = 0
    ŷ_t = W_out[m] h_t + b_out[m]

One hidden bias per model (Pascanu's ``b_hh``; nn.RNN's b_ih + b_hh would be redundant), so the
parameters are exactly the five of SPEC §2.4: W_hh, W_ih, W_out, b, b_out.

Shapes: x [M, T, B, I]; weight_ih [M, H, I]; weight_hh [M, H, H]; bias [M, H];
weight_out [M, O, H]; bias_out [M, O]; outputs y [M, K, B, O] at the last K steps.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..functional import GradientSink, elman

#: parameter names, in the order used for global norms and run records.
PARAM_NAMES = ("weight_ih", "weight_hh", "bias", "weight_out", "bias_out")


def param_shapes(M: int, input_size: int, hidden_size: int, output_size: int) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a population of M models."""
    H = hidden_size
    return {
        "weight_ih": (M, H, input_size),
        "weight_hh": (M, H, H),
        "bias": (M, H),
        "weight_out": (M, output_size, H),
        "bias_out": (M, output_size),
    }


def make_sink(M: int, T: int, B: int, dtype: torch.dtype, device: torch.device | str) -> GradientSink:
    """A :class:`rnnlab.GradientSink` for a population forward pass over [M, T, B] sequences."""
    kw = dict(dtype=dtype, device=device, requires_grad=True)
    return GradientSink(torch.zeros(M, 2, T, B, **kw), torch.zeros(M, 2, **kw))


def population_forward(
    params: Mapping[str, Tensor],
    x: Tensor,
    *,
    nonlinearity: str = "tanh",
    readout_steps: int = 1,
    reg_weight: float | Tensor | None = None,
    sink: GradientSink | None = None,
) -> Tensor:
    """Outputs of M Elman RNNs at their last ``readout_steps`` steps, in one fused call.

    The input projection of all models and steps is one batched GEMM (``baddbmm``); the
    recurrence is :func:`rnnlab.elman` with ``reg_weight`` (α of SPEC §2.5, float or [M]) and
    the optional ``sink`` (per-step ‖δ_t‖², ‖v_t‖², Ω after backward).

    Args:
        params: the five parameters (see the module docstring), each with leading dim M.
        x: [M, T, B, I] inputs.
        readout_steps: K, the number of last steps read out (1 ≤ K ≤ T).
    Returns:
        y: [M, K, B, O].
    """
    missing = [n for n in PARAM_NAMES if n not in params]
    if missing:
        raise KeyError(f"params is missing {missing}; expected {list(PARAM_NAMES)}")
    w_ih, w_out = params["weight_ih"], params["weight_out"]
    M, H, I = w_ih.shape
    if x.dim() != 4 or x.shape[0] != M or x.shape[3] != I:
        raise ValueError(f"x must have shape [M={M}, T, B, I={I}], got {list(x.shape)}")
    _, T, B, _ = x.shape
    if not 1 <= readout_steps <= T:
        raise ValueError(f"readout_steps must be in [1, T={T}], got {readout_steps}")
    xp = torch.baddbmm(params["bias"][:, None, :], x.reshape(M, T * B, I), w_ih.transpose(1, 2))
    hs = elman(xp.view(M, T, B, H), params["weight_hh"], nonlinearity=nonlinearity, reg_weight=reg_weight, sink=sink)
    K, O = readout_steps, w_out.shape[1]
    h_read = hs[:, T - K :].reshape(M, K * B, H)
    return torch.baddbmm(params["bias_out"][:, None, :], h_read, w_out.transpose(1, 2)).view(M, K, B, O)


class PopulationElman(nn.Module):
    """M independent Elman RNNs (one layer, linear read-out) trained as one module.

    Parameters are initialised like ``nn.RNN`` / ``nn.Linear`` (U(−1/√H, 1/√H)) from torch's
    global generator; for the per-seed initialisations of SPEC §2.1 use
    :func:`rnnlab.train.init.init_population` and :meth:`from_params`.

    Args:
        num_models: M.
        input_size, hidden_size, output_size: I, H, O.
        nonlinearity: φ, one of ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"identity"``.
    """

    def __init__(self, num_models: int, input_size: int, hidden_size: int, output_size: int,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        super().__init__()
        for name, v in (("num_models", num_models), ("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.nonlinearity = nonlinearity
        bound = 1 / math.sqrt(hidden_size)
        for name, shape in param_shapes(num_models, input_size, hidden_size, output_size).items():
            w = torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
            self.register_parameter(name, nn.Parameter(w))

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor], nonlinearity: str = "tanh") -> "PopulationElman":
        """A population holding copies of ``params`` (shapes as in the module docstring)."""
        M, H, I = params["weight_ih"].shape
        O = params["weight_out"].shape[1]
        model = cls(M, I, H, O, nonlinearity, device=params["weight_ih"].device, dtype=params["weight_ih"].dtype)
        model.load_params(params)
        return model

    @property
    def num_models(self) -> int:
        return self.weight_hh.shape[0]

    def params(self) -> dict[str, Tensor]:
        """The five parameters by name."""
        return {n: getattr(self, n) for n in PARAM_NAMES}

    @torch.no_grad()
    def load_params(self, params: Mapping[str, Tensor]) -> None:
        """Copy ``params`` into this population (shapes must match exactly)."""
        for n in PARAM_NAMES:
            p = getattr(self, n)
            if tuple(params[n].shape) != tuple(p.shape):
                raise ValueError(f"params[{n!r}] must have shape {list(p.shape)}, got {list(params[n].shape)}")
            p.copy_(params[n])

    def select(self, idx: Tensor | list[int]) -> "PopulationElman":
        """A new population made of the models ``idx`` (copies): compaction of a population,
        e.g. to drop models that have finished training."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=self.weight_hh.device)
        return PopulationElman.from_params({n: p.detach()[idx] for n, p in self.params().items()}, self.nonlinearity)

    def forward(self, x: Tensor, readout_steps: int = 1, reg_weight: float | Tensor | None = None,
                sink: GradientSink | None = None) -> Tensor:
        """x [M, T, B, I] -> y [M, K, B, O]; see :func:`population_forward`."""
        return population_forward(self.params(), x, nonlinearity=self.nonlinearity, readout_steps=readout_steps,
                                  reg_weight=reg_weight, sink=sink)

    def extra_repr(self) -> str:
        M, H, I = self.weight_ih.shape
        return f"num_models={M}, input_size={I}, hidden_size={H}, output_size={self.weight_out.shape[1]}, nonlinearity={self.nonlinearity!r}"
