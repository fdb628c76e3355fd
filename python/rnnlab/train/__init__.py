"""Training layer: initialisations, clipping, the regularizer schedule, per-model optimizers and
the population trainer (DESIGN.md §5; SPEC §2.1–2.5). See docs/training.md.

Entry points for a sweep engine::

    from rnnlab.train import RunConfig, train_population
    results = train_population([RunConfig(seed=s, lr=lr) for s in range(5) for lr in (1e-2, 1e-3)], "cpu")
"""
from .config import SHARED_FIELDS, RunConfig, RunResult, check_compatible, population_key
from .memory import retain_freed_memory
from .trainer import train, train_population, validate

__all__ = ["SHARED_FIELDS", "RunConfig", "RunResult", "check_compatible", "population_key", "retain_freed_memory",
           "train", "train_population", "validate"]
