"""Input sequences for the analysis, from a task generator (:mod:`rnnlab.tasks`).

Every model of a population gets the same sequences (one stream from ``seed``), so a model's
analysis is the same alone or inside any population, and models can be compared on equal data.
"""
from __future__ import annotations

import torch

from ..tasks import Batch, Task, rng


def task_length(task: Task, length: int | None) -> int:
    """The sequence length T to analyse: ``length``, or the task's when it has one fixed length."""
    if length is None:
        if task.min_length != task.max_length:
            raise ValueError(f"task {task.name!r} draws lengths in [{task.min_length}, {task.max_length}]; pass length=T")
        length = task.min_length
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    return task.sequence_length(length, 0.0)


def task_keys(num_models: int, seed: int, *tags: int | str, device=None) -> torch.Tensor:
    """[M, 2] keys of one stream, identical for all M models."""
    return rng.derive(rng.seed_keys([seed] * num_models, device), *tags)


def task_sequences(task: Task, num_models: int, length: int, batch_size: int, seed: int, *tags: int | str,
                   dtype: torch.dtype = torch.float64, device=None) -> Batch:
    """``batch_size`` sequences of T = ``length`` steps (x [M, T, B, I], the same for every model)
    from ``task``'s generator, seeded by ``seed`` and the stream ``tags``."""
    keys = task_keys(num_models, seed, device=device)
    return task.sample(rng.derive(keys, *tags), task.setup(keys), length, batch_size, dtype)
