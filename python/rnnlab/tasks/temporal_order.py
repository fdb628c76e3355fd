"""Temporal order problems (SPEC §2.2 ``torder``, ``torder3``; ``tempOrder.py``,
``tempOrder3bit.py``): the order of 2 or 3 marked symbols in a stream of distractors."""
from __future__ import annotations

import torch

from . import rng
from .base import Batch, Task, one_hot, positions

#: SPEC §2.2: the marked symbol k sits in [start_k·T, start_k·T + int(.1 T)).
_STARTS = {2: (0.1, 0.5), 3: (0.1, 0.3, 0.6)}


class TemporalOrder(Task):
    """Temporal order with ``n_bits`` marked symbols (2: ``torder``, 3: ``torder3``).

    T = length. Inputs: one-hot over 6 symbols; distractors are symbols 2–5; the marked symbols
    v_k ∈ {0 (A), 1 (B)} sit at p_k (``_STARTS``). Target class Σ_k v_k·2^k, read from h_T
    (AA=0, BA=1, AB=2, BB=3 for 2 bits). Loss: cross-entropy at step T; error: argmax mismatch.
    Chance: error 1 − 2^-n_bits, NLL n_bits·ln 2.
    """

    n_in = 6

    def __init__(self, min_length: int = 50, max_length: int = 200, n_bits: int = 2):
        super().__init__(min_length, max_length)
        if n_bits not in _STARTS:
            raise ValueError(f"n_bits must be 2 or 3, got {n_bits!r}")
        self.n_bits = n_bits
        self.n_out = 2**n_bits
        self.name = "torder" if n_bits == 2 else "torder3"

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        T, B = length, batch_size
        symbols = 2 + rng.randint(rng.derive(keys, "distractors"), 4, (T, B))
        bits = rng.randint(rng.derive(keys, "bits"), 2, (self.n_bits, B))
        target = torch.zeros_like(bits[:, 0])
        for k, start in enumerate(_STARTS[self.n_bits]):
            p = positions(rng.derive(keys, "p", k), int(start * T), int(0.1 * T), B)
            symbols.scatter_(1, p[:, None], bits[:, k : k + 1])
            target += bits[:, k] << k
        return Batch(one_hot(symbols, 6, dtype), target[:, None])

    def describe(self) -> dict:
        return {**super().describe(), "n_bits": self.n_bits}
