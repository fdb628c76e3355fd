"""Noiseless memorization (SPEC §2.2 ``mem``, ``memorization.py``): recall a pattern of
``n_pos`` symbols after a blank stretch, on a trigger."""
from __future__ import annotations

import torch

from . import rng
from .base import Batch, Task, one_hot

#: SPEC §2.2 [INF]: the paper's "5 bits" and "over 20 bits" variants as (n_values, n_pos).
VARIANTS = {"mem5": (2, 5), "mem20": (5, 10)}


class Memorization(Task):
    """Noiseless memorization, output at every step.

    T = length + 2·n_pos. Steps 0 … n_pos−1 show the pattern (one-hot on channels 0 … n_values−1),
    later steps the blank channel (−2), except step T − n_pos, which shows only the trigger (−1).
    Targets: class n_values (blank) up to step T − n_pos − 1, then the pattern in order, the
    first symbol at the trigger step itself. Loss: cross-entropy averaged over the T·B rows;
    a sequence is wrong if any step's argmax is wrong.

    The pattern symbols are drawn independently and uniformly, which is the distribution of the
    base-n_values digits of the single uniform integer that ``memorization.py`` draws.
    """

    def __init__(self, min_length: int = 50, max_length: int = 200, n_values: int = 5, n_pos: int = 10):
        super().__init__(min_length, max_length)
        if n_values < 1 or n_pos < 1:
            raise ValueError(f"n_values and n_pos must be >= 1, got {n_values}, {n_pos}")
        self.n_values, self.n_pos = n_values, n_pos
        self.n_in = n_values + 2
        self.n_out = n_values + 1
        self.name = next((k for k, v in VARIANTS.items() if v == (n_values, n_pos)), "mem")

    def sequence_length(self, length: int, u: float) -> int:
        return length + 2 * self.n_pos

    def readout_steps(self, length: int) -> int:
        return length

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        M, T, B, n = keys.shape[0], length, batch_size, self.n_pos
        pattern = rng.randint(rng.derive(keys, "pattern"), self.n_values, (n, B))
        x = torch.zeros(M, T, B, self.n_in, dtype=dtype, device=keys.device)
        x[:, :n, :, : self.n_values] = one_hot(pattern, self.n_values, dtype)
        x[:, n:, :, -2] = 1
        x[:, T - n, :, -2] = 0
        x[:, T - n, :, -1] = 1
        target = torch.full((M, T, B), self.n_values, dtype=torch.int64, device=keys.device)
        target[:, T - n :] = pattern
        return Batch(x, target)

    def describe(self) -> dict:
        return {**super().describe(), "n_values": self.n_values, "n_pos": self.n_pos}
