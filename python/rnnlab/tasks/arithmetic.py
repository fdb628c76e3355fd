"""Pascanu et al.'s adding and multiplication problems (SPEC §2.2, ``addition.py``,
``multiplication.py``): two marked values in a stream of uniform noise, combined at the end."""
from __future__ import annotations

import torch
from torch import Tensor

from . import rng
from .base import Batch, Task, positions

#: SPEC §2.2: a sequence is wrong when its squared error exceeds 0.04 (absolute error > 0.2).
SQUARED_ERROR_BOUND = 0.04


class Addition(Task):
    """Adding problem (SPEC §2.2 ``add``): ``nin = 2``, ``nout = 1``, read out at h_T.

    T = length + randint(int(0.1·length)) (the length jitter of ``addition.py``). Channel 0 is a
    marker (1 at p0 ∈ [0, int(.1 T)) and p1 ∈ int(.1 T) + [0, int(.4 T))), channel 1 holds
    U[0, 1) values; the target is the mean of the two marked values. Loss: mean_b (y − ŷ_T)²;
    a sequence is wrong if (y − ŷ_T)² > 0.04.
    """

    name = "add"
    n_in = 2
    n_out = 1
    classification = False

    def sequence_length(self, length: int, u: float) -> int:
        return length + int(u * int(0.1 * length))

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        return (a + b) / 2

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        M, T, B = keys.shape[0], length, batch_size
        p0 = positions(rng.derive(keys, "p0"), 0, int(0.1 * T), B)
        p1 = positions(rng.derive(keys, "p1"), int(0.1 * T), int(0.4 * T), B)
        values = rng.uniform(rng.derive(keys, "values"), (T, B), dtype)
        marker = torch.zeros(M, T, B, dtype=dtype, device=keys.device)
        marker.scatter_(1, p0[:, None], 1.0).scatter_(1, p1[:, None], 1.0)
        a = values.gather(1, p0[:, None])[:, 0]
        b = values.gather(1, p1[:, None])[:, 0]
        target = self.combine(a, b)[:, None, :, None]  # [M, K=1, B, O=1]
        return Batch(torch.stack([marker, values], -1), target)

    def sequence_errors(self, y: Tensor, batch: Batch) -> Tensor:
        return (y - batch.target)[:, 0, :, 0].pow(2) > SQUARED_ERROR_BOUND


class Multiplication(Addition):
    """Multiplication problem (SPEC §2.2 ``mul``): as :class:`Addition`, target v[p0]·v[p1]."""

    name = "mul"

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b
