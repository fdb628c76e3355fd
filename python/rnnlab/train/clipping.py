"""Gradient-norm clipping, one global norm per model (SPEC §2.4, Pascanu et al. Alg. 1).

For model m with gradient g_m (all its parameters together, after α·∂⁺Ω/∂W_hh has been added
to its W_hh gradient by the fused kernel):

* if ‖g_m‖ is NaN, ±Inf or > 1e10: gW_hh ← 0.02·W_hh and every other gradient ← 0, so the
  update decays W_hh by (1 − 0.02·lr) (the code's safeguard, applied with or without clipping);
* else if ‖g_m‖ > τ_m (strict, as in the code): g_m ← τ_m·g_m/‖g_m‖;
* the logged value is the pre-clipping norm.

Gradients are dicts of [M, ...] tensors keyed like the parameters (``weight_hh`` is W_hh, or the
key named by ``weight_hh_name``). Cells without a W_hh (the diagonal recurrence) pass
``weight_hh=None``: the safeguard then zeroes every gradient (the update is skipped) instead of
decaying W_hh.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

#: SPEC §2.4: norms above this (or non-finite) trigger the safeguard.
NORM_LIMIT = 1e10
#: SPEC §2.4: the safeguard's replacement gradient of W_hh is this factor times W_hh.
DECAY_FACTOR = 0.02


@dataclass
class ClipStats:
    """Per-model outcome of one clipping step: ``norm`` [M] (pre-clipping, NaN/Inf kept),
    ``clipped`` [M] bool (rescaled to τ), ``fallback`` [M] bool (safeguard fired)."""

    norm: Tensor
    clipped: Tensor
    fallback: Tensor


def global_norm(grads: Mapping[str, Tensor]) -> Tensor:
    """[M] L2 norm of each model's gradient over all its parameters (SPEC §2.4)."""
    total = None
    for g in grads.values():
        sq = g.pow(2).flatten(1).sum(1)
        total = sq if total is None else total + sq
    return total.sqrt()


@torch.no_grad()
def clip_gradients_(
    grads: dict[str, Tensor],
    weight_hh: Tensor | None,
    threshold: Tensor | None,
    safeguard: bool = True,
    weight_hh_name: str | None = "weight_hh",
) -> ClipStats:
    """Clip ``grads`` in place, per model (SPEC §2.4).

    Args:
        grads: parameter name -> [M, ...] gradient; must contain ``weight_hh_name`` when
            ``weight_hh`` is given.
        weight_hh: [M, G, H] current W_hh (for the safeguard's 0.02·W_hh), or None (see above).
        threshold: [M] τ per model (``inf`` disables clipping for that model), or None for none.
        safeguard: apply the NaN/Inf/>1e10 fallback.
        weight_hh_name: the key of W_hh's gradient in ``grads`` (``Cell.recurrent_weight``).
    Returns:
        :class:`ClipStats`.
    """
    if weight_hh is not None and weight_hh_name not in grads:
        raise KeyError(f"grads must contain {weight_hh_name!r} when weight_hh is given")
    norm = global_norm(grads)
    bad = ~torch.isfinite(norm) | (norm > NORM_LIMIT) if safeguard else torch.zeros_like(norm, dtype=torch.bool)
    if threshold is None:
        clipped = torch.zeros_like(bad)
    else:
        if threshold.shape != norm.shape:
            raise ValueError(f"threshold must have shape [{norm.shape[0]}] (one τ per model), got {list(threshold.shape)}")
        clipped = (norm > threshold) & ~bad
        scale = torch.where(clipped, threshold / norm, torch.ones_like(norm))
    for name, g in grads.items():
        shape = (-1,) + (1,) * (g.dim() - 1)
        if threshold is not None:
            g.mul_(scale.view(shape))
        replacement = DECAY_FACTOR * weight_hh if name == weight_hh_name and weight_hh is not None else torch.zeros_like(g)
        # where() rather than arithmetic masking: a NaN gradient times 0 stays NaN.
        g.copy_(torch.where(bad.view(shape), replacement, g))
    return ClipStats(norm, clipped, bad)
