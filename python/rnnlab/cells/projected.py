"""The template of the cells in PyTorch's layout (Elman, LSTM, GRU): an input projection, a
recurrence through ``weight_hh`` and a linear read-out, model m being

    xp_t = W_ih[m] x_t + b[m]            (one batched GEMM over all models and steps)
    h_t  = recurrence(xp_t, h_{t−1})     (one fused kernel call, ``gates`` row blocks of H)
    ŷ_t  = W_out[m] h_t + b_out[m]       (the last K steps only)

with h_0 = 0 and parameters weight_ih [M, G·H, I], weight_hh [M, G·H, H], bias [M, G·H], the
cell's extra recurrent parameters, weight_out [M, O, H], bias_out [M, O] (G = ``gates``).
:func:`projected_cell` fills a :class:`Cell`'s shapes, sizes, forward and torch-style
initialisation from those few facts.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .base import Cell, Params, Shapes

#: (params, xp [M, T, B, G·H], options, reg_weight, sink) -> hs [M, T, B, H].
Recurrence = Callable[..., Tensor]


def _shapes(gates: int, extra: Mapping[str, int]) -> Callable[[int, int, int, int, Mapping], Shapes]:
    def shapes(M: int, I: int, H: int, O: int, options: Mapping) -> Shapes:
        G = gates * H
        own = {name: (M, units * H) for name, units in extra.items()}
        return {"weight_ih": (M, G, I), "weight_hh": (M, G, H), "bias": (M, G), **own, "weight_out": (M, O, H),
                "bias_out": (M, O)}
    return shapes


def _sizes(params: Params) -> tuple[int, int, int, int]:
    (M, _, I), H, O = params["weight_ih"].shape, params["weight_hh"].shape[2], params["weight_out"].shape[1]
    return M, I, H, O


def _forward(recurrence: Recurrence) -> Callable[..., Tensor]:
    def forward(params: Params, x: Tensor, K: int, options: Mapping, reg_weight, sink) -> Tensor:
        (M, T, B, I), (_, G, _), H = x.shape, params["weight_ih"].shape, params["weight_hh"].shape[2]
        xp = torch.baddbmm(params["bias"][:, None, :], x.reshape(M, T * B, I), params["weight_ih"].transpose(1, 2))
        hs = recurrence(params, xp.view(M, T, B, G), options, reg_weight, sink)
        w_out = params["weight_out"]
        h_read = hs[:, T - K :].reshape(M, K * B, H)
        return torch.baddbmm(params["bias_out"][:, None, :], h_read, w_out.transpose(1, 2)).view(M, K, B, w_out.shape[1])
    return forward


def _torch_init(shapes: Callable[[int, int, int, int, Mapping], Shapes]) -> Callable[..., dict[str, Tensor]]:
    def init(M: int, I: int, H: int, O: int, options: Mapping, device, dtype) -> dict[str, Tensor]:
        """U(−1/√H, 1/√H) for every parameter, as nn.RNN / nn.LSTM / nn.GRU / nn.Linear(H, O)."""
        bound = 1 / math.sqrt(H)
        return {name: torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
                for name, shape in shapes(M, I, H, O, options).items()}
    return init


def projected_cell(*, name: str, title: str, gates: int, recurrence: Recurrence,
                   extra_params: Mapping[str, int] | None = None, **record) -> Cell:
    """A :class:`Cell` of the projected layout (module docstring).

    Args:
        gates: H-row blocks of weight_ih / weight_hh / bias (1 Elman, 4 LSTM, 3 GRU).
        recurrence: the fused call, (params, xp, options, reg_weight, sink) -> hs.
        extra_params: the cell's own recurrent parameters, name -> rows in units of H (the
            GRU's ``bias_hn``: 1), placed after ``bias``.
        record: the remaining :class:`Cell` fields (options, inits, state width, ...).
    """
    shapes = _shapes(gates, extra_params or {})
    return Cell(name=name, title=title, gates=gates, recurrent_weight="weight_hh", shapes=shapes, sizes=_sizes,
                forward=_forward(recurrence), torch_init=_torch_init(shapes), **record)
