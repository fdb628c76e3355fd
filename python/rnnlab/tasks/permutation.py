"""Random permutation problem (SPEC §2.2 ``perm``, ``permutation.py``)."""
from __future__ import annotations

import torch

from . import rng
from .base import Batch, Task, one_hot

_SYMBOLS = 100


class RandomPermutation(Task):
    """Random permutation: T = length symbols, one-hot over 100; symbol 0 is v ∈ {0, 1}, the
    rest are symbols 2–99; the target is v (symbol ``length`` of the ``length+1`` drawn), as a
    100-way softmax read from h_T. Effectively a 2-way decision: chance error 50 %.
    """

    name = "perm"
    n_in = _SYMBOLS
    n_out = _SYMBOLS

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        symbols = 2 + rng.randint(rng.derive(keys, "symbols"), _SYMBOLS - 2, (length, batch_size))
        value = rng.randint(rng.derive(keys, "value"), 2, (batch_size,))
        symbols[:, 0] = value
        return Batch(one_hot(symbols, _SYMBOLS, dtype), value[:, None])
