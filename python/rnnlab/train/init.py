"""Per-model initialisations (SPEC §2.1 and §3.3), drawn from each model's own random stream.

Elman (``cell="elman"``):

=============== ============ ==================== ============================== ====================
init            activation   W_ih                 W_hh                           W_out
=============== ============ ==================== ============================== ====================
``sigmoid``     logistic     N(0, .01²)           N(0, .01²)                     N(0, .01²)
``basic_tanh``  tanh         N(0, .1²)            N(0, .1²)                      N(0, .1²)
``smart_tanh``  tanh         N(0, .01²)           sparse, ρ = .95 (below)        N(0, .01²)
``orthogonal``  tanh         N(0, 1/I)            orthogonal                     N(0, 1/H)
``normal``      tanh         N(0, 1/I)            N(0, 1/H)                      N(0, 1/H)
=============== ============ ==================== ============================== ====================

Biases are 0 (SPEC §2.1). ``smart_tanh``: draw N(0, .01²), keep 15 random entries per row (the
paper's "15 non-zero incoming connections"; PyTorch's row i holds unit i's incoming weights) and
rescale to spectral radius 0.95. The per-model ``gain`` g multiplies W_hh after all of that, so
``normal`` with gain g is N(0, g²/H) and ``orthogonal`` is g·Q (SPEC §3.3's init factor); the
Pascanu inits take g = 1.

LSTM (``cell="lstm"``): ``basic_tanh``, ``orthogonal`` and ``normal`` as above, applied to each
of the four [H, H] gate blocks of W_hh (i, f, g, o; orthogonal: four independent Q), W_ih
[4H, I] and W_out as in the table, biases 0, gain on W_hh.

GRU (``cell="gru"``): the same three, per [H, H] gate block of W_hh (r, z, n), biases 0
(bias_hn included), gain on W_hh; ``orthogonal`` (the default) is the per-gate orthogonal
recurrent init of SPEC §6.2's GRU row, with N(0, 1/I) input weights where that row has
Xavier-uniform ones.

Diagonal (``cell="diag"``, the LRU of :mod:`rnnlab.nn.lru`): ``ring`` only: |λ| uniform on the
ring r_min ≤ |λ| ≤ r_max, phase uniform in [−max_phase, max_phase] (``cell_kwargs``, defaults
of :data:`RING_DEFAULTS`), γ = sqrt(1 − |λ|²), B, C, D N(0, 1/fan_in); gain must be 1.

Every draw is a function of the model's key only (:mod:`rnnlab.tasks.rng`), so a model starts
from the same weights alone or inside any population.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..nn.lru import lru_ring_params
from ..nn.population import CELL_OPTIONS, param_shapes, recurrent_radius
from ..tasks import rng

#: the initialisations each cell accepts (the first is its default).
CELL_INITS = {"elman": ("basic_tanh", "sigmoid", "smart_tanh", "orthogonal", "normal"),
              "lstm": ("orthogonal", "basic_tanh", "normal"),
              "gru": ("orthogonal", "basic_tanh", "normal"),
              "diag": ("ring",)}
INITS = ("sigmoid", "basic_tanh", "smart_tanh", "orthogonal", "normal", "ring")
#: init-time options of the diagonal cell (``RunConfig.cell_kwargs``), with their defaults.
RING_DEFAULTS = {"r_min": 0.0, "r_max": 1.0, "max_phase": 2 * math.pi}
#: SPEC §2.1: each W_hh row of ``smart_tanh`` keeps this many non-zero entries.
SMART_TANH_FAN_IN = 15
SMART_TANH_RADIUS = 0.95


def check_init(cell: str, init: str) -> None:
    """Raise ValueError unless ``cell`` accepts ``init``."""
    if cell not in CELL_INITS:
        raise ValueError(f"cell must be one of {tuple(CELL_INITS)}, got {cell!r}")
    if init not in CELL_INITS[cell]:
        raise ValueError(f"init {init!r} is not defined for cell={cell!r}; allowed: {CELL_INITS[cell]}")


def default_nonlinearity(init: str) -> str:
    """The activation an initialisation is meant for: logistic for ``sigmoid``, else tanh."""
    return "sigmoid" if init == "sigmoid" else "tanh"


def spectral_radius(w: Tensor) -> Tensor:
    """[M] max |eigenvalue| of each [M, H, H] matrix (computed in float64 on the CPU)."""
    return recurrent_radius({"weight_hh": w}, "elman")


def _normal(keys: Tensor, name: str, shape: Sequence[int], std: float) -> Tensor:
    return std * rng.normal(rng.derive(keys, "init", name), shape[1:], torch.float64)


def _orthogonal(keys: Tensor, H: int, blocks: int = 1) -> Tensor:
    """[M, blocks·H, H]: ``blocks`` independent Haar-orthogonal [H, H] matrices stacked by rows."""
    M = keys.shape[0]
    q, r = torch.linalg.qr(_normal(keys, "weight_hh", (0, blocks, H, H), 1.0))
    # Sign fix so that Q is Haar-distributed (the QR of a Gaussian matrix fixes diag(R) > 0 only up to sign).
    return (q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)).reshape(M, blocks * H, H)


def _smart_tanh_hh(keys: Tensor, H: int) -> Tensor:
    w = _normal(keys, "weight_hh", (0, H, H), 0.01)
    if H > SMART_TANH_FAN_IN:
        scores = rng.uniform(rng.derive(keys, "init", "smart_tanh_mask"), (H, H))
        keep = scores.topk(SMART_TANH_FAN_IN, dim=2).indices
        w = torch.zeros_like(w).scatter_(2, keep, w.gather(2, keep))
    return w * (SMART_TANH_RADIUS / spectral_radius(w))[:, None, None]


def _init_group(keys: Tensor, cell: str, init: str, I: int, H: int, O: int, options: dict) -> dict[str, Tensor]:
    """float64 parameters of models of ``cell`` that all use ``init`` (gain not applied yet)."""
    shapes = param_shapes(keys.shape[0], I, H, O, cell, **{k: v for k, v in options.items() if k in CELL_OPTIONS[cell]})
    if cell == "diag":
        return _ring(keys, shapes, options)
    blocks = {"elman": 1, "lstm": 4, "gru": 3}[cell]
    if init in ("sigmoid", "basic_tanh", "smart_tanh"):
        std = 0.1 if init == "basic_tanh" else 0.01
        out = {n: _normal(keys, n, shapes[n], std) for n in ("weight_ih", "weight_hh", "weight_out")}
        if init == "smart_tanh":
            out["weight_hh"] = _smart_tanh_hh(keys, H)
    else:  # orthogonal, normal
        out = {
            "weight_ih": _normal(keys, "weight_ih", shapes["weight_ih"], 1 / math.sqrt(I)),
            "weight_hh": _orthogonal(keys, H, blocks) if init == "orthogonal" else _normal(keys, "weight_hh", shapes["weight_hh"], 1 / math.sqrt(H)),
            "weight_out": _normal(keys, "weight_out", shapes["weight_out"], 1 / math.sqrt(H)),
        }
    for name in shapes.keys() - out.keys():  # the biases
        out[name] = keys.new_zeros(shapes[name], dtype=torch.float64)
    return out


def _ring(keys: Tensor, shapes: dict, options: dict) -> dict[str, Tensor]:
    """The LRU's ring initialisation (module docstring) from each model's stream."""
    o = {**RING_DEFAULTS, **options}
    N = shapes["C_re"][2]
    ring = rng.uniform(rng.derive(keys, "init", "ring"), (N,), torch.float64)
    phase = rng.uniform(rng.derive(keys, "init", "phase"), (N,), torch.float64)
    out = lru_ring_params(ring, phase, o["parametrization"], o["gamma"], o["r_min"], o["r_max"], o["max_phase"])
    for name, shape in shapes.items():
        if name[0] in "BCD":
            out[name] = _normal(keys, name, shape, 1 / math.sqrt(shape[-1]))
    return out


def init_population(
    keys: Tensor,
    inits: str | Sequence[str],
    input_size: int,
    hidden_size: int,
    output_size: int,
    gains: float | Sequence[float] = 1.0,
    dtype: torch.dtype = torch.float32,
    cell: str = "elman",
    cell_kwargs: dict | None = None,
) -> dict[str, Tensor]:
    """Parameters of M models of ``cell``, each initialised from its own key.

    Args:
        keys: [M, 2] int64 model keys (:func:`rnnlab.tasks.rng.seed_keys`), on the target device.
        inits: one init name for all models, or one per model (see the module docstring).
        gains: g per model (or one for all), multiplying W_hh.
        cell: ``"elman"``, ``"lstm"``, ``"gru"`` or ``"diag"``.
        cell_kwargs: the diagonal cell's ``parametrization``, ``gamma``, ``r_min``, ``r_max``,
            ``max_phase``.
    Returns:
        the parameters (:func:`rnnlab.nn.population.param_shapes`) in ``dtype`` on ``keys.device``.
    """
    M = keys.shape[0]
    inits = [inits] * M if isinstance(inits, str) else list(inits)
    gains = [float(gains)] * M if isinstance(gains, (int, float)) else [float(g) for g in gains]
    if len(inits) != M or len(gains) != M:
        raise ValueError(f"inits and gains must have one entry per model (M={M}), got {len(inits)} and {len(gains)}")
    for init in set(inits):
        check_init(cell, init)
    options = dict(cell_kwargs or {})
    forward_options = {k: v for k, v in options.items() if k in CELL_OPTIONS[cell]}
    if cell == "diag":
        options = {**CELL_OPTIONS["diag"], **options}
        if any(g != 1.0 for g in gains):
            raise ValueError(f"the diagonal cell's ring init takes no gain (init_gain must be 1), got {sorted(set(gains))}")
    shapes = param_shapes(M, input_size, hidden_size, output_size, cell, **forward_options)
    params = {n: keys.new_zeros(s, dtype=torch.float64) for n, s in shapes.items()}
    for init in sorted(set(inits)):
        idx = torch.tensor([m for m in range(M) if inits[m] == init], dtype=torch.int64, device=keys.device)
        for n, v in _init_group(keys[idx], cell, init, input_size, hidden_size, output_size, options).items():
            params[n][idx] = v
    if cell != "diag":
        params["weight_hh"] *= torch.tensor(gains, dtype=torch.float64, device=keys.device)[:, None, None]
    return {n: params[n].to(dtype).contiguous() for n in shapes}
