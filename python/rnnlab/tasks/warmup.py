"""Regression benchmarks of Lambrechts et al.'s warm-up paper (SPEC §6.2, ``datasets.py``):
copy-first-input and denoising. Both use MSE on their read-out steps.

Per-sequence error rule [INF, project choice]: as for the adding problem (SPEC §2.2), a read-out
value is wrong when its squared error exceeds 0.04; a sequence is wrong if any of its read-out
values is; a run succeeds when under 1 % of fresh sequences are wrong (SPEC §2.3).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import rng
from .arithmetic import SQUARED_ERROR_BOUND
from .base import Batch, Task

#: SPEC §6.2: the denoising task recalls this many marked values.
N_MARKED = 5


class _RegressionTask(Task):
    classification = False

    def sequence_errors(self, y: Tensor, batch: Batch) -> Tensor:
        return (y - batch.target).pow(2).amax(3).amax(1) > SQUARED_ERROR_BOUND


class CopyFirst(_RegressionTask):
    """Copy first input: x_t ~ N(0, 1) (1-D), T = length; target x_1 at the last step."""

    name = "copy"
    n_in = 1
    n_out = 1

    def __init__(self, min_length: int = 100, max_length: int = 100):
        super().__init__(min_length, max_length)

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        x = rng.normal(rng.derive(keys, "x"), (length, batch_size), dtype)[..., None]
        return Batch(x, x[:, :1].clone())


class Denoise(_RegressionTask):
    """Denoising: channel 0 is N(0, 1) noise, channel 1 a marker, 1 at 5 distinct positions among
    the first T − pad steps and −1 at step T − 5 (the "start output" cue); the targets are the 5
    marked values in temporal order, at the last 5 steps (the first at the cue step)."""

    name = "denoise"
    n_in = 2
    n_out = 1

    def __init__(self, min_length: int = 100, max_length: int = 100, pad: int = 5):
        super().__init__(min_length, max_length)
        if pad < N_MARKED or min_length - pad < N_MARKED:
            raise ValueError(f"need pad >= {N_MARKED} and min_length - pad >= {N_MARKED}, got pad={pad}, min_length={min_length}")
        self.pad = pad

    def readout_steps(self, length: int) -> int:
        return N_MARKED

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        M, T, B = keys.shape[0], length, batch_size
        noise = rng.normal(rng.derive(keys, "noise"), (T, B), dtype)
        # 5 distinct positions: the ranks of i.i.d. uniform scores (a uniform random 5-subset).
        scores = rng.uniform(rng.derive(keys, "positions"), (B, T - self.pad))
        pos = scores.topk(N_MARKED, dim=2, largest=False).indices.sort(2).values.transpose(1, 2)  # [M, 5, B]
        marker = torch.zeros(M, T, B, dtype=dtype, device=keys.device)
        marker.scatter_(1, pos, 1.0)
        marker[:, T - N_MARKED] = -1.0
        target = noise.gather(1, pos)[..., None]  # [M, K=5, B, 1]
        return Batch(torch.stack([noise, marker], -1), target)

    def describe(self) -> dict:
        return {**super().describe(), "pad": self.pad}
