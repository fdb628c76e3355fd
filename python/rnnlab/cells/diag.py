"""The diagonal cell: the LRU of :mod:`rnnlab.nn.lru`, h_t = λ ⊙ h_{t−1} + γ ⊙ (B x_t), read out
through its own ``Re(C h_t) + D x_t``. Its parameters (the stored λ and γ, B, C, D; names and
shapes by :func:`rnnlab.nn.lru.lru_param_shapes`) depend on the options ``parametrization`` and
``gamma``; nothing outside this record reads them.

Initialisation ``ring`` (the only one): |λ| uniform on the ring r_min ≤ |λ| ≤ r_max, phase
uniform in [−max_phase, max_phase] (init options, defaults :data:`RING_DEFAULTS`),
γ = sqrt(1 − |λ|²), B, C, D N(0, 1/fan_in); there is no W_hh, so no gain.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor

from ..nn.lru import GAMMAS, LRU, PARAMETRIZATIONS, lru_forward, lru_lam, lru_param_shapes, lru_ring_params
from . import draws
from .base import Cell, Params, Shapes

#: init options of the ring initialisation, with their defaults (those of :class:`rnnlab.LRU`).
RING_DEFAULTS = {"r_min": 0.0, "r_max": 1.0, "max_phase": 2 * math.pi}


def _check_ring(options: Mapping) -> None:
    if not 0 <= options["r_min"] < options["r_max"] <= 1:
        raise ValueError(f"the ring init's bounds need 0 <= r_min < r_max <= 1, got r_min={options['r_min']}, r_max={options['r_max']}")


def _ring(keys: Tensor, shapes: Shapes, options: Mapping) -> dict[str, Tensor]:
    """The ring initialisation (module docstring) from each model's keys."""
    N = shapes["C_re"][2]
    ring, phase = draws.uniform(keys, "ring", (N,)), draws.uniform(keys, "phase", (N,))
    out = lru_ring_params(ring, phase, options["parametrization"], options["gamma"], options["r_min"], options["r_max"],
                          options["max_phase"])
    for name, shape in shapes.items():
        if name[0] in "BCD":  # the B, C, D matrices, N(0, 1/fan_in)
            out[name] = draws.normal(keys, name, shape, 1 / math.sqrt(shape[-1]))
    return out


def _sizes(params: Params) -> tuple[int, int, int, int]:
    (M, O, I), N = params["D"].shape, params["C_re"].shape[2]
    return M, I, N, O


def _torch_init(M: int, I: int, H: int, O: int, options: Mapping, device, dtype) -> dict[str, Tensor]:
    """:class:`rnnlab.LRU`'s own initialisation (the ring with its default bounds)."""
    lru = LRU(I, H, O, num_models=M, device=device, dtype=dtype, **options)
    return {n: p.detach() for n, p in lru.named_parameters()}


DIAG = Cell(
    name="diag",
    title="diagonal (LRU)",
    options={"parametrization": "exp", "gamma": "learned"},
    choices={"parametrization": PARAMETRIZATIONS, "gamma": GAMMAS},
    init_options=RING_DEFAULTS,
    check_init_options=_check_ring,
    inits={"ring": _ring},
    default_init="ring",
    init_implies={},
    gates=0,
    recurrent_weight=None,
    # complex u and h, two reals each.
    state_width=4,
    omega=False,
    system=None,
    shapes=lambda M, I, H, O, o: lru_param_shapes(M, I, H, O, o["parametrization"], o["gamma"]),
    sizes=_sizes,
    forward=lambda params, x, K, o, reg_weight, sink: lru_forward(params, x, o["parametrization"], o["gamma"], sink=sink,
                                                                  readout_steps=K)[0],
    radius=lambda params, o: lru_lam(params, o["parametrization"]).detach().abs().amax(-1),
    torch_init=_torch_init,
    # the trainer's whole update is one op call (rnnlab.train.fused_step), every parametrization
    # and gamma option
    fused_step="diag_train_step",
)
