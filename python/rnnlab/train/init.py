"""Per-model initialisations (SPEC §2.1 and §3.3), drawn from each model's own random stream.

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

Every draw is a function of the model's key only (:mod:`rnnlab.tasks.rng`), so a model starts
from the same weights alone or inside any population.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..nn.population import PARAM_NAMES, param_shapes
from ..tasks import rng

INITS = ("sigmoid", "basic_tanh", "smart_tanh", "orthogonal", "normal")
#: SPEC §2.1: each W_hh row of ``smart_tanh`` keeps this many non-zero entries.
SMART_TANH_FAN_IN = 15
SMART_TANH_RADIUS = 0.95


def default_nonlinearity(init: str) -> str:
    """The activation an initialisation is meant for: logistic for ``sigmoid``, else tanh."""
    return "sigmoid" if init == "sigmoid" else "tanh"


def spectral_radius(w: Tensor) -> Tensor:
    """[M] max |eigenvalue| of each [M, H, H] matrix (computed in float64 on the CPU)."""
    return torch.linalg.eigvals(w.detach().to("cpu", torch.float64)).abs().amax(-1).to(w.device, w.dtype)


def _normal(keys: Tensor, name: str, shape: Sequence[int], std: float) -> Tensor:
    return std * rng.normal(rng.derive(keys, "init", name), shape[1:], torch.float64)


def _orthogonal(keys: Tensor, H: int) -> Tensor:
    q, r = torch.linalg.qr(_normal(keys, "weight_hh", (0, H, H), 1.0))
    # Sign fix so that Q is Haar-distributed (the QR of a Gaussian matrix fixes diag(R) > 0 only up to sign).
    return q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)


def _smart_tanh_hh(keys: Tensor, H: int) -> Tensor:
    w = _normal(keys, "weight_hh", (0, H, H), 0.01)
    if H > SMART_TANH_FAN_IN:
        scores = rng.uniform(rng.derive(keys, "init", "smart_tanh_mask"), (H, H))
        keep = scores.topk(SMART_TANH_FAN_IN, dim=2).indices
        w = torch.zeros_like(w).scatter_(2, keep, w.gather(2, keep))
    return w * (SMART_TANH_RADIUS / spectral_radius(w))[:, None, None]


def _init_group(keys: Tensor, init: str, I: int, H: int, O: int) -> dict[str, Tensor]:
    """float64 parameters of models that all use ``init`` (gain not applied yet)."""
    M = keys.shape[0]
    shapes = param_shapes(M, I, H, O)
    if init in ("sigmoid", "basic_tanh", "smart_tanh"):
        std = 0.1 if init == "basic_tanh" else 0.01
        out = {n: _normal(keys, n, shapes[n], std) for n in ("weight_ih", "weight_hh", "weight_out")}
        if init == "smart_tanh":
            out["weight_hh"] = _smart_tanh_hh(keys, H)
    elif init in ("orthogonal", "normal"):
        out = {
            "weight_ih": _normal(keys, "weight_ih", shapes["weight_ih"], 1 / math.sqrt(I)),
            "weight_hh": _orthogonal(keys, H) if init == "orthogonal" else _normal(keys, "weight_hh", shapes["weight_hh"], 1 / math.sqrt(H)),
            "weight_out": _normal(keys, "weight_out", shapes["weight_out"], 1 / math.sqrt(H)),
        }
    else:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    out["bias"] = keys.new_zeros(shapes["bias"], dtype=torch.float64)
    out["bias_out"] = keys.new_zeros(shapes["bias_out"], dtype=torch.float64)
    return out


def init_population(
    keys: Tensor,
    inits: str | Sequence[str],
    input_size: int,
    hidden_size: int,
    output_size: int,
    gains: float | Sequence[float] = 1.0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """Parameters of M models, each initialised from its own key.

    Args:
        keys: [M, 2] int64 model keys (:func:`rnnlab.tasks.rng.seed_keys`), on the target device.
        inits: one init name for all models, or one per model (see the module docstring).
        gains: g per model (or one for all), multiplying W_hh.
    Returns:
        dict of weight_ih [M, H, I], weight_hh [M, H, H], bias [M, H], weight_out [M, O, H],
        bias_out [M, O] in ``dtype`` on ``keys.device``.
    """
    M = keys.shape[0]
    inits = [inits] * M if isinstance(inits, str) else list(inits)
    gains = [float(gains)] * M if isinstance(gains, (int, float)) else [float(g) for g in gains]
    if len(inits) != M or len(gains) != M:
        raise ValueError(f"inits and gains must have one entry per model (M={M}), got {len(inits)} and {len(gains)}")
    params = {n: keys.new_zeros(s, dtype=torch.float64) for n, s in param_shapes(M, input_size, hidden_size, output_size).items()}
    for init in sorted(set(inits)):
        idx = torch.tensor([m for m in range(M) if inits[m] == init], dtype=torch.int64, device=keys.device)
        for n, v in _init_group(keys[idx], init, input_size, hidden_size, output_size).items():
            params[n][idx] = v
    params["weight_hh"] *= torch.tensor(gains, dtype=torch.float64, device=keys.device)[:, None, None]
    return {n: params[n].to(dtype).contiguous() for n in PARAM_NAMES}
