"""Schedules of the learning rate and of the regularizer weight α, per model ([M] tensors)."""
from __future__ import annotations

import math

from torch import Tensor


def cosine_lr(lr: Tensor, lr_min: Tensor, update: int, total: int) -> Tensor:
    """Cosine decay without warm-up from ``lr`` at update 0 to ``lr_min`` at ``total`` (the
    schedule of SPEC §4.2): lr_min + (lr − lr_min)·½(1 + cos(π·min(update, total)/total))."""
    c = 0.5 * (1 + math.cos(math.pi * min(update, total) / max(total, 1)))
    return lr_min + (lr - lr_min) * c


def decayed_alpha(alpha: Tensor, decay: Tensor, update: int) -> Tensor:
    """The 1/t schedule of α (SPEC §2.5 mentions one for the natural tasks; its exact form is not
    in the available text, so this is a project choice): α_t = α / (1 + t/t₀) with t₀ = ``decay``
    updates per model; t₀ = inf keeps α constant."""
    return alpha / (1 + update / decay)
