"""The template of the cells in PyTorch's layout (Elman, LSTM, GRU): stacked layers of an input
projection and a recurrence through ``weight_hh``, and a linear read-out. Model m, layer l:

    xp_t = W_ih[m] x_t + b[m]            (one batched GEMM over all models and steps)
    h_t  = recurrence(xp_t, h_{t−1})     (one fused kernel call per layer, ``gates`` row blocks)
    ŷ_t  = W_out[m] h_t + b_out[m]       (the top layer's last K steps only)

with h_0 = 0; layer l > 0 is driven by layer l − 1's h (so its I is H).

Layout options (every projected cell has them): ``num_layers`` L (1 … :data:`MAX_LAYERS`) and
``double``: each layer is two parallel cells of H/2 units that receive the same input, their
states concatenated (Lambrechts et al.'s partial warm-up, SPEC §6.1). The two halves of all M
models run as one fused call over 2M recurrences.

Parameters, layer 0 under the plain names and layer l > 0 with the suffix ``_l{l}``
(:func:`layer_name`): weight_ih [M, G·H, I], weight_hh [M, G·H, H], bias [M, G·H], the cell's
extra recurrent parameters (the GRU's bias_hn [M, H]); with ``double`` each carries the cell
index after M (weight_hh [M, 2, G·H/2, H/2], model m's cell j is [m, j]); then weight_out
[M, O, H], bias_out [M, O]. One plain layer is exactly the single-layer layout, bit for bit
(names, shapes, order and initial draws).

:func:`projected_cell` fills a :class:`Cell`'s shapes, sizes, layer, forward, initialisations
and torch-style initialisation from those few facts.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ..functional import GradientSink
from ..tasks import rng
from .base import Cell, InitFn, Params, Shapes

#: (params of one layer under the plain names, xp [M', T, B, G·h], state (tuple of [M', B, h]) or
#: None, options, reg_weight, sink) -> one [M', T, B, h] sequence per state name.
Recurrence = Callable[..., tuple[Tensor, ...]]
MAX_LAYERS = 8
#: the layout options every projected cell takes, with their defaults and choices.
LAYOUT_OPTIONS = {"num_layers": 1, "double": False}
LAYOUT_CHOICES = {"num_layers": tuple(range(1, MAX_LAYERS + 1)), "double": (False, True)}


def layer_name(name: str, layer: int) -> str:
    """The name of parameter ``name`` of layer ``layer`` (``weight_hh``, ``weight_hh_l1``, …)."""
    return name if layer == 0 else f"{name}_l{layer}"


def _split(H: int, options: Mapping) -> tuple[int, int]:
    """(cells per layer, units per cell)."""
    if not options["double"]:
        return 1, H
    if H % 2:
        raise ValueError(f"hidden_size must be even with double=True (two cells of H/2 units per layer), got {H}")
    return 2, H // 2


class _Layout:
    """The parameter layout of one projected cell (module docstring)."""

    def __init__(self, gates: int, extra: Mapping[str, int]):
        self.gates, self.extra = gates, dict(extra)
        self.layer_params = ("weight_ih", "weight_hh", "bias", *self.extra)

    def cell_shapes(self, M: int, I: int, H: int, O: int) -> Shapes:
        """One plain layer of cells of H units (what an initialisation draws)."""
        G = self.gates * H
        own = {name: (M, units * H) for name, units in self.extra.items()}
        return {"weight_ih": (M, G, I), "weight_hh": (M, G, H), "bias": (M, G), **own, "weight_out": (M, O, H),
                "bias_out": (M, O)}

    def shapes(self, M: int, I: int, H: int, O: int, options: Mapping) -> Shapes:
        cells, h = _split(H, options)
        lead = (M, 2) if options["double"] else (M,)
        out = {}
        for depth in range(options["num_layers"]):
            one = self.cell_shapes(M, I if depth == 0 else H, h, O)
            out.update({layer_name(n, depth): lead + one[n][1:] for n in self.layer_params})
        return {**out, "weight_out": (M, O, H), "bias_out": (M, O)}


def _sizes(params: Params) -> tuple[int, int, int, int]:
    (M, O, H), I = params["weight_out"].shape, params["weight_ih"].shape[-1]
    return M, I, H, O


def _fold(t: Tensor) -> Tensor:
    """[M, ..., 2, h] -> [2M, ..., h]: a double layer's halves as separate recurrences (cell j of
    model m at 2m + j)."""
    return t.movedim(-2, 1).flatten(0, 1)


def _unfold(t: Tensor) -> Tensor:
    """[2M, ..., h] -> [M, ..., 2h], the inverse of :func:`_fold`."""
    return t.unflatten(0, (-1, 2)).movedim(1, -2).flatten(-2)


def _layer(layout: _Layout, recurrence: Recurrence):
    def layer(params: Params, depth: int, x: Tensor, state, options: Mapping, reg_weight=None, sink=None):
        M, T, B, I = x.shape
        p = {n: params[layer_name(n, depth)] for n in layout.layer_params}
        w_ih, bias = p.pop("weight_ih"), p.pop("bias")
        # Both cells of a double layer project their shared input in one GEMM ([M, 2·G·h] rows).
        xp = torch.baddbmm(bias.reshape(M, 1, -1), x.reshape(M, T * B, I), w_ih.reshape(M, -1, I).transpose(1, 2))
        xp = xp.view(M, T, B, -1)
        if not options["double"]:
            return recurrence(p, xp, state, options, reg_weight, sink)
        # The halves run as 2M recurrences: model m's cell j is entry 2m + j of every operand; the
        # sink and α are repeated per half so that the gradients reaching them sum both halves.
        xp = _fold(xp.unflatten(-1, (2, -1)))
        p = {n: v.flatten(0, 1) for n, v in p.items()}
        state = None if state is None else tuple(_fold(s.unflatten(-1, (2, -1))) for s in state)
        if sink is not None:
            sink = GradientSink(sink.step.repeat_interleave(2, 0), sink.reg.repeat_interleave(2, 0))
        if isinstance(reg_weight, Tensor) and reg_weight.dim() == 1:
            reg_weight = reg_weight.repeat_interleave(2, 0)
        return tuple(_unfold(s) for s in recurrence(p, xp, state, options, reg_weight, sink))
    return layer


def _forward(layer) -> Callable[..., Tensor]:
    def forward(params: Params, x: Tensor, K: int, options: Mapping, reg_weight, sink) -> Tensor:
        # α and the sink act on the first layer: its ‖δ_t‖ carries the whole stack's gradient.
        x = layer(params, 0, x, None, options, reg_weight, sink)[0]
        for depth in range(1, options["num_layers"]):
            x = layer(params, depth, x, None, options)[0]
        M, T, B, H = x.shape
        w_out = params["weight_out"]
        h_read = x[:, T - K :].reshape(M, K * B, H)
        return torch.baddbmm(params["bias_out"][:, None, :], h_read, w_out.transpose(1, 2)).view(M, K, B, w_out.shape[1])
    return forward


def _layered_init(layout: _Layout, init: InitFn) -> InitFn:
    """``init`` (which draws one plain layer) applied to every cell of the stack: the read-out and
    a plain stack's layer 0 from the model's key, so that one plain layer is drawn exactly as
    before; every other cell (layer l, cell j) from its own key ``derive(key, "layer", l, j)``."""
    def layered(keys: Tensor, shapes: Shapes, options: Mapping) -> dict[str, Tensor]:
        (M, O, H), I = shapes["weight_out"], shapes["weight_ih"][-1]
        cells, h = _split(H, options)
        first = init(keys, layout.cell_shapes(M, I, H, O), options)
        out = {n: v for n, v in first.items() if n not in layout.layer_params}  # the read-out
        for depth in range(options["num_layers"]):
            drawn = [first if (depth, cells) == (0, 1) else
                     init(rng.derive(keys, "layer", depth, j), layout.cell_shapes(M, I if depth == 0 else H, h, O), options)
                     for j in range(cells)]
            for n in drawn[0]:
                if n in layout.layer_params:
                    out[layer_name(n, depth)] = torch.stack([d[n] for d in drawn], 1) if options["double"] else drawn[0][n]
        return out
    return layered


def _layered_radius(layout: _Layout, radius: Callable[[Params, Mapping], Tensor]) -> Callable[[Params, Mapping], Tensor]:
    """The largest of ``radius`` (defined on one plain layer's ``weight_hh`` [M, G·H, H]) over
    the stack's layers and cells."""
    def stacked(params: Params, options: Mapping) -> Tensor:
        M = params["weight_hh"].shape[0]
        per_layer = []
        for depth in range(options["num_layers"]):
            w = params[layer_name("weight_hh", depth)]
            per_layer.append(radius({"weight_hh": w.flatten(0, 1) if options["double"] else w}, options).view(M, -1).amax(1))
        return torch.stack(per_layer, 1).amax(1)
    return stacked


def _torch_init(layout: _Layout) -> Callable[..., dict[str, Tensor]]:
    def init(M: int, I: int, H: int, O: int, options: Mapping, device, dtype) -> dict[str, Tensor]:
        """U(−1/√H, 1/√H) for every parameter, as nn.RNN / nn.LSTM / nn.GRU / nn.Linear(H, O)."""
        bound = 1 / math.sqrt(H)
        return {name: torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
                for name, shape in layout.shapes(M, I, H, O, options).items()}
    return init


def projected_cell(*, name: str, title: str, gates: int, recurrence: Recurrence,
                   extra_params: Mapping[str, int] | None = None, options: Mapping[str, object],
                   choices: Mapping[str, tuple], inits: Mapping[str, InitFn],
                   radius: Callable[[Params, Mapping], Tensor] | None, **record) -> Cell:
    """A :class:`Cell` of the projected layout (module docstring).

    Args:
        gates: H-row blocks of weight_ih / weight_hh / bias (1 Elman, 4 LSTM, 3 GRU).
        recurrence: the fused call of one layer (:data:`Recurrence`).
        extra_params: the cell's own recurrent parameters, name -> rows in units of H (the
            GRU's ``bias_hn``: 1), placed after ``bias``.
        options, choices: the cell's own forward options; the layout options are added.
        inits: initialisations of one plain layer; they are applied to every cell of a stack.
        radius: ρ of one plain layer's ``weight_hh``, or None; a stack reports its largest.
        record: the remaining :class:`Cell` fields (inits' default, state width, ...).
    """
    layout = _Layout(gates, extra_params or {})
    return Cell(name=name, title=title, gates=gates, recurrent_weight="weight_hh", shapes=layout.shapes, sizes=_sizes,
                options={**options, **LAYOUT_OPTIONS}, choices={**choices, **LAYOUT_CHOICES},
                inits={n: _layered_init(layout, f) for n, f in inits.items()},
                radius=None if radius is None else _layered_radius(layout, radius),
                layer=_layer(layout, recurrence), forward=_forward(_layer(layout, recurrence)),
                torch_init=_torch_init(layout), **record)
