"""The trainer's training batches, drawn several updates at a time.

A batch is a counter-based draw (:mod:`rnnlab.tasks.rng`): model m's sequences of update k are a
function of ``derive(keys[m], "train", k)`` and the model's task constants alone, so the batches
of D updates are one ``task.sample`` call on D·M key rows, each update's batch the rows of its
models — the same values bit for bit as D calls (tests/test_batches.py checks every task; system
identification's targets go through a batched GEMM, so there a BLAS may round them differently). One
call instead of D matters at small H and M: a sample is ≈ 20 small ATen calls, which cost more
than a fused update of 32 Elman models at H = 8 (docs/sweeps.md, "The trainer around the fused
step").

A block never crosses a validation (where the models still training may change) nor a change
of the sequence length, and holds at most :data:`PREFETCH_BYTES` of inputs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..tasks import rng
from ..tasks.base import Batch, Task

#: the most input memory a block of prefetched batches holds (a few updates of a small
#: population; a large one gets one update per block, where the calls' overhead is amortized)
PREFETCH_BYTES = 4 << 20
#: the most updates a block holds
PREFETCH_UPDATES = 16


class TrainingBatches:
    """The batch of every update of one population's training.

    Args:
        task: the population's task; ``keys`` [M, 2] its models' keys, ``ctx`` their
            :meth:`Task.setup` constants; ``length_seed``, ``batch_size``, ``dtype`` as in the
            runs' :class:`rnnlab.train.RunConfig`; ``val_every``, ``max_updates``: where blocks end.
    """

    def __init__(self, task: Task, keys: Tensor, ctx: dict[str, Tensor], length_seed: int, batch_size: int,
                 dtype: torch.dtype, val_every: int, max_updates: int):
        self.task, self.keys, self.ctx = task, keys, ctx
        self.length_seed, self.batch_size, self.dtype = length_seed, batch_size, dtype
        self.val_every, self.max_updates = val_every, max_updates
        self._first, self._block = 0, []  # the prefetched updates _first, _first + 1, …

    def get(self, update: int, idx: Tensor | None) -> Batch:
        """The batch of the 0-based ``update`` for the models ``idx`` (None: all of them). The
        models must stay the same until the next validation."""
        if not self._first <= update < self._first + len(self._block):
            self._draw(update, idx)
        return self._block[update - self._first]

    def _draw(self, update: int, idx: Tensor | None) -> None:
        keys = self.keys if idx is None else self.keys[idx]
        ctx = self.ctx if idx is None else {n: v[idx] for n, v in self.ctx.items()}
        M = keys.shape[0]
        T = self.task.train_length(self.length_seed, update)
        per_update = max(1, M * T * self.batch_size * self.task.n_in * self.dtype.itemsize)
        end = min(update + PREFETCH_UPDATES, update + max(1, PREFETCH_BYTES // per_update), self.max_updates,
                  (update // self.val_every + 1) * self.val_every)
        D = 1
        while update + D < end and self.task.train_length(self.length_seed, update + D) == T:
            D += 1
        rows = torch.cat([rng.derive(keys, "train", k) for k in range(update, update + D)])
        ctx = {n: v.repeat(D, *([1] * (v.dim() - 1))) for n, v in ctx.items()}
        batch = self.task.sample(rows, ctx, T, self.batch_size, self.dtype)
        self._first = update
        self._block = [Batch(x, target) for x, target in zip(batch.x.split(M), batch.target.split(M))]
