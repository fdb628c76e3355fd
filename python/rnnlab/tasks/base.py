"""The task interface shared by all generators: batches, lengths, loss, error rule, success.

A task makes batches for a population of M models at once. Shapes (population-first, time-major
inside each model, like the kernels, DESIGN.md §2):

    x       [M, T, B, I]   inputs
    y       [M, K, B, O]   model outputs at the last K steps (K = ``task.readout_steps(T)``)
    target  [M, K, B]      int64 class indices (classification), or
            [M, K, B, O]   float values (regression)

Randomness (see :mod:`rnnlab.tasks.rng`): model m's sequences are a function of its own key only.
The sequence length is shared by the whole population in one update (one fused kernel call needs
one T), so it comes from a population-level stream: a function of ``length_seed`` and the update
index only. Models with equal seeds and equal ``length_seed`` therefore see identical data whether
they are trained alone or inside a population of any size, at any position.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from . import rng

#: SPEC §2.3: a run succeeds when under 1 % of 10,000 fresh sequences are misclassified.
SUCCESS_ERROR = 0.01


@dataclass
class Batch:
    """One batch for M models: ``x`` [M, T, B, I] and ``target`` (see the module docstring)."""

    x: Tensor
    target: Tensor

    @property
    def length(self) -> int:
        """T, the number of steps."""
        return self.x.shape[1]


class Task:
    """Base class of the task generators.

    Subclasses set ``name``, ``n_in``, ``n_out``, ``classification`` and implement
    :meth:`sample`; regression tasks also implement :meth:`sequence_errors`.

    Args:
        min_length, max_length: SPEC §2.2 length sampling: each training update draws
            ``length = min_length + randint(max_length − min_length)``, uniform on
            {min, …, max−1}; equal bounds give a fixed length.
    """

    name = "task"
    n_in = 1
    n_out = 1
    classification = True
    #: the fraction of wrong sequences under which a run succeeds (SPEC §2.3).
    success_error = SUCCESS_ERROR
    #: tasks whose sequences depend on nothing random across validations set this False.
    fresh_validation = True

    def __init__(self, min_length: int = 50, max_length: int = 200):
        if not isinstance(min_length, int) or not isinstance(max_length, int):
            raise TypeError(f"min_length and max_length must be ints, got {min_length!r}, {max_length!r}")
        if min_length < 1 or max_length < min_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got min_length={min_length}, max_length={max_length}")
        self.min_length = min_length
        self.max_length = max_length

    # ---- lengths ------------------------------------------------------------------------------
    def base_length(self, u: float) -> int:
        """SPEC §2.2: ``min + randint(max − min)`` from one uniform u ∈ [0, 1)."""
        span = self.max_length - self.min_length
        return self.min_length + (int(u * span) if span > 0 else 0)

    def sequence_length(self, length: int, u: float) -> int:
        """The number of steps T of a sequence of nominal ``length`` (tasks add jitter or
        padding here); ``u`` is an independent uniform from the same population-level stream."""
        return length

    def train_length(self, length_seed: int, update: int) -> int:
        """T of training update ``update`` (shared by every model of a population)."""
        base = self.base_length(rng.scalar_uniform(length_seed, "train-length", update))
        return self.sequence_length(base, rng.scalar_uniform(length_seed, "train-jitter", update))

    def valid_length(self, length_seed: int, round_: int, chunk: int) -> int:
        """T of validation chunk ``chunk`` of validation round ``round_`` (SPEC §2.2: each chunk of
        a validation draws its own length)."""
        base = self.base_length(rng.scalar_uniform(length_seed, "valid-length", round_, chunk))
        return self.sequence_length(base, rng.scalar_uniform(length_seed, "valid-jitter", round_, chunk))

    # ---- data ---------------------------------------------------------------------------------
    def setup(self, keys: Tensor) -> dict[str, Tensor]:
        """Per-model constants drawn once per run (e.g. a teacher network), as [M, ...] tensors.

        Args:
            keys: [M, 2] int64 model keys (:func:`rnnlab.tasks.rng.seed_keys`).
        """
        return {}

    def sample(self, keys: Tensor, ctx: dict[str, Tensor], length: int, batch_size: int,
               dtype: torch.dtype = torch.float32) -> Batch:
        """A batch of ``batch_size`` sequences of T = ``length`` steps for each model.

        Args:
            keys: [M, 2] int64 keys of this batch (already derived for the update or chunk).
            ctx: the models' :meth:`setup` constants, indexed like ``keys``.
        Returns:
            a :class:`Batch` on ``keys.device``.
        """
        raise NotImplementedError

    def validation_batches(self, keys: Tensor, ctx: dict[str, Tensor], length_seed: int, round_: int,
                           size: int, chunk: int, dtype: torch.dtype = torch.float32) -> Iterator[Batch]:
        """``size`` fresh validation sequences per model, in chunks of ``chunk`` (SPEC §2.2)."""
        for c in range(math.ceil(size / chunk)):
            n = min(chunk, size - c * chunk)
            T = self.valid_length(length_seed, round_, c)
            yield self.sample(rng.derive(keys, "valid", round_, c), ctx, T, n, dtype)

    # ---- outputs ------------------------------------------------------------------------------
    def readout_steps(self, length: int) -> int:
        """K: the model is read out at its last K states (1 for the last-step tasks)."""
        return 1

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        """[M] loss of each model: cross-entropy averaged over the K·B read-out rows
        (classification), or the mean squared error over K·B·O (regression).

        Args:
            y: [M, K, B, O] outputs.
        """
        if self.classification:
            M = y.shape[0]
            nll = F.cross_entropy(y.reshape(-1, y.shape[-1]), batch.target.reshape(-1), reduction="none")
            return nll.view(M, -1).mean(1)
        return (y - batch.target).pow(2).flatten(1).mean(1)

    def sequence_errors(self, y: Tensor, batch: Batch) -> Tensor:
        """[M, B] bool, True where a sequence is wrong. Classification: the argmax is wrong at
        any read-out step (SPEC §2.2, ``report = 'all'``)."""
        if not self.classification:
            raise NotImplementedError(f"task {self.name} must define its per-sequence error rule")
        return (y.argmax(-1) != batch.target).any(1)

    def describe(self) -> dict:
        """The task's parameters, for run records."""
        return {"name": self.name, "min_length": self.min_length, "max_length": self.max_length}


def one_hot(symbols: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """[..] int64 symbols in [0, n) -> [.., n] one-hot floats.

    Rows of the identity gathered by index: 5× faster than ``F.one_hot(..).to(dtype)`` (which
    checks the symbols' range with two reductions and writes int64 first), and the temporal
    order task's one-hot inputs used to cost as much as a small population's training update."""
    eye = torch.eye(n, dtype=dtype, device=symbols.device)
    return eye.index_select(0, symbols.reshape(-1)).view(*symbols.shape, n)


def positions(keys: Tensor, start: int, width: int, batch_size: int) -> Tensor:
    """[M, B] int64 positions ``start + U{0 … width−1}`` (width 0 gives ``start``, as numpy's
    ``randint`` cannot; the Pascanu generators never ask for it at their lengths)."""
    return start + rng.randint(keys, max(width, 1), (batch_size,))
