"""Initialisations of the projected cells (:mod:`rnnlab.cells.projected`: Elman, LSTM, GRU),
SPEC §2.1 and §3.3, each drawn from the models' own keys (:mod:`rnnlab.cells.draws`):

=============== ==================== ============================== ====================
init            W_ih                 W_hh                           W_out
=============== ==================== ============================== ====================
``sigmoid``     N(0, .01²)           N(0, .01²)                     N(0, .01²)
``basic_tanh``  N(0, .1²)            N(0, .1²)                      N(0, .1²)
``smart_tanh``  N(0, .01²)           sparse, ρ = .95 (below)        N(0, .01²)
``orthogonal``  N(0, 1/I)            orthogonal, per gate block     N(0, 1/H)
``normal``      N(0, 1/I)            N(0, 1/H)                      N(0, 1/H)
=============== ==================== ============================== ====================

Biases are 0. ``smart_tanh`` (one block, Elman): draw N(0, .01²), keep 15 random entries per row
(the paper's "15 non-zero incoming connections"; PyTorch's row i holds unit i's incoming
weights) and rescale to spectral radius 0.95. ``orthogonal`` draws one Haar-orthogonal [H, H]
matrix per gate block (SPEC §6.2's per-gate recurrent init for the GRU; its Xavier-uniform input
weights are N(0, 1/I) here). The per-model gain g multiplies W_hh after all of that
(:func:`rnnlab.train.init.init_population`), so ``normal`` with gain g is N(0, g²/H) and
``orthogonal`` is g·Q (SPEC §3.3's init factor).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from . import draws
from .base import InitFn, Shapes

#: SPEC §2.1: each W_hh row of ``smart_tanh`` keeps this many non-zero entries.
SMART_TANH_FAN_IN = 15
SMART_TANH_RADIUS = 0.95
_WEIGHTS = ("weight_ih", "weight_hh", "weight_out")


def gaussian(std: float) -> InitFn:
    """Every weight matrix N(0, std²): Pascanu's ``sigmoid`` (.01) and ``basic_tanh`` (.1)."""
    def init(keys: Tensor, shapes: Shapes, options: Mapping) -> dict[str, Tensor]:
        return {n: draws.normal(keys, n, shapes[n], std) for n in _WEIGHTS}
    return init


def smart_tanh(keys: Tensor, shapes: Shapes, options: Mapping) -> dict[str, Tensor]:
    """N(0, .01²) weights, W_hh sparse with spectral radius .95 (module docstring)."""
    out = gaussian(0.01)(keys, shapes, options)
    w, H = out["weight_hh"], shapes["weight_hh"][2]
    if H > SMART_TANH_FAN_IN:
        keep = draws.uniform(keys, "smart_tanh_mask", (H, H)).topk(SMART_TANH_FAN_IN, dim=2).indices
        w = torch.zeros_like(w).scatter_(2, keep, w.gather(2, keep))
    out["weight_hh"] = w * (SMART_TANH_RADIUS / draws.spectral_radius(w))[:, None, None]
    return out


def _scaled(keys: Tensor, shapes: Shapes, weight_hh: Tensor) -> dict[str, Tensor]:
    """W_ih ~ N(0, 1/I), W_out ~ N(0, 1/H) around a given W_hh."""
    I, H = shapes["weight_ih"][2], shapes["weight_hh"][2]
    return {"weight_ih": draws.normal(keys, "weight_ih", shapes["weight_ih"], 1 / math.sqrt(I)), "weight_hh": weight_hh,
            "weight_out": draws.normal(keys, "weight_out", shapes["weight_out"], 1 / math.sqrt(H))}


def orthogonal(keys: Tensor, shapes: Shapes, options: Mapping) -> dict[str, Tensor]:
    """One orthogonal [H, H] block per gate, scaled Gaussian W_ih and W_out."""
    _, rows, H = shapes["weight_hh"]
    return _scaled(keys, shapes, draws.orthogonal(keys, H, rows // H))


def normal(keys: Tensor, shapes: Shapes, options: Mapping) -> dict[str, Tensor]:
    """W_hh ~ N(0, 1/H), scaled Gaussian W_ih and W_out."""
    H = shapes["weight_hh"][2]
    return _scaled(keys, shapes, draws.normal(keys, "weight_hh", shapes["weight_hh"], 1 / math.sqrt(H)))


#: the initialisations of the gated cells (LSTM, GRU), by name; "orthogonal" is their default.
GATED = {"orthogonal": orthogonal, "basic_tanh": gaussian(0.1), "normal": normal}
