"""Bengio-1994-style latching and parity tasks (SPEC §3.3, [INF]: defined from memory of
Bengio, Simard & Frasconi 1994, a project design choice to revisit with the paper text).

Both carry their information in the first few inputs, then show Gaussian noise N(0, s²) for
the rest of the T steps, and ask for a 2-class decision at step T. Inputs are 1-D.
"""
from __future__ import annotations

import torch

from . import rng
from .base import Batch, Task


class _NoisyPrefixTask(Task):
    n_in = 1
    n_out = 2

    def __init__(self, min_length: int = 50, max_length: int = 50, n_info: int = 3, noise: float = 0.2):
        super().__init__(min_length, max_length)
        if not 1 <= n_info <= min_length:
            raise ValueError(f"n_info must be in [1, min_length={min_length}], got {n_info}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.n_info, self.noise = n_info, float(noise)

    def prefix(self, keys, batch_size: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """([M, n_info, B] prefix inputs, [M, B] class)."""
        raise NotImplementedError

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        x = self.noise * rng.normal(rng.derive(keys, "noise"), (length, batch_size), dtype)
        prefix, label = self.prefix(keys, batch_size, dtype)
        x[:, : self.n_info] = prefix
        return Batch(x[..., None], label[:, None])

    def describe(self) -> dict:
        return {**super().describe(), "n_info": self.n_info, "noise": self.noise}


class Latch(_NoisyPrefixTask):
    """Latching ("2-sequence") task: the class c ∈ {0, 1} is shown as the value 2c − 1 at each
    of the first ``n_info`` steps; steps n_info … T−1 are N(0, noise²); target c at step T."""

    name = "latch"

    def prefix(self, keys, batch_size, dtype):
        label = rng.randint(rng.derive(keys, "class"), 2, (batch_size,))
        value = (2 * label - 1).to(dtype)
        return value[:, None, :].expand(-1, self.n_info, -1), label


class Parity(_NoisyPrefixTask):
    """Parity of the first ``n_info`` bits b_k ∈ {0, 1}, shown as 2b_k − 1 at steps 0 … n_info−1,
    followed by N(0, noise²) noise; target (Σ_k b_k) mod 2 at step T."""

    name = "parity"

    def prefix(self, keys, batch_size, dtype):
        bits = rng.randint(rng.derive(keys, "bits"), 2, (self.n_info, batch_size))
        return (2 * bits - 1).to(dtype), bits.sum(1) % 2
