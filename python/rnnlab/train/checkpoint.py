"""Checkpoints of a training population: save, find and resume (docs/training.md, Checkpoints).

A checkpoint holds everything the trainer needs to continue exactly where it stopped: the
weights, the optimizer state, the per-model counters and accumulators, the VEG counters and
their norm window, the active flags, every run's history so far and the results of the runs
already final. The task streams are not saved: batches, sequence lengths and validation sets
are counter-based draws from the seed keys and the update index (:mod:`rnnlab.tasks.rng`), so
the index is their whole state. A run interrupted at any update and resumed from its last
checkpoint therefore gives bit for bit the result of the uninterrupted run (on the same
machine, dtype and thread count).

Files, both replaced atomically (written to a temporary file, fsynced, ``os.replace``d):

* ``<name>.pt``: the state (``torch.save``; loaded with ``weights_only=True``: plain tensors,
  numbers, strings, lists and dicts, nothing executable);
* ``<name>.json``: a summary that ``rnnlab sweep status`` and the sweep runner read without
  loading tensors: update, budget, models still training, elapsed time, and the caller's
  ``info`` (a sweep puts the population's run ids there). It is written before the state, so a
  state file never lacks its summary (the summary may be one save ahead of it).
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: how often a population is checkpointed by default, seconds (the cost is measured in
#: docs/training.md: well under 1 % of the training time at this interval).
DEFAULT_EVERY_S = 300.0


@dataclass
class Checkpointing:
    """Where and how often :func:`rnnlab.train.train_population` checkpoints its population.

    Attributes:
        path: the state file (``.pt``); its summary goes next to it with the suffix ``.json``.
            If the state file exists when training starts, training resumes from it.
        every_s: seconds of training between checkpoints (> 0); one is also written when the
            time limit stops training.
        info: JSON-ready values copied into the summary (e.g. a sweep's run ids).
    """

    path: Path
    every_s: float = DEFAULT_EVERY_S
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.path = Path(self.path)
        if self.path.suffix != ".pt":
            raise ValueError(f"checkpoint path must end in .pt, got {str(self.path)!r}")
        if not self.every_s > 0:
            raise ValueError(f"checkpoint every_s must be > 0 seconds, got {self.every_s!r}")

    @property
    def summary_path(self) -> Path:
        return self.path.with_suffix(".json")


class TrainingPaused(Exception):
    """Training stopped at its time limit after saving a checkpoint; calling the trainer again
    with the same runs and checkpoint continues it. ``update``: updates done; ``path``: the file."""

    def __init__(self, update: int, path: Path):
        super().__init__(f"training paused at update {update}; its checkpoint is {path}")
        self.update, self.path = update, path


def fingerprint(configs: list, **options) -> str:
    """A hash of the runs and of the trainer options that shape their results, stored in a
    checkpoint so that it is never resumed by another population. Fields at their default value
    are left out, so a field added to RunConfig later (with a default that keeps the old
    behaviour) does not orphan the checkpoints of a study in progress."""
    def set_fields(config) -> dict:
        defaults = type(config)()
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if getattr(config, f.name) != getattr(defaults, f.name)}

    text = json.dumps([set_fields(c) for c in configs] + [options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` through ``write(file)`` so that a reader (or a resumed run) sees either the
    old file or the new one, never a torn one, even after SIGKILL or a power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself is durable once the directory is synced
        os.fsync(directory)
    finally:
        os.close(directory)


def save(checkpointing: Checkpointing, state: dict, summary: dict) -> None:
    """Write the summary, then the state (see the module docstring for why in that order)."""
    summary = {**summary, "info": checkpointing.info, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _atomic_write(checkpointing.summary_path, lambda f: f.write(json.dumps(summary).encode()))
    _atomic_write(checkpointing.path, lambda f: torch.save(state, f))


def load(path: Path, device) -> dict:
    """The state saved at ``path``, its tensors on ``device``."""
    return torch.load(path, map_location=device, weights_only=True)


def read_summary(path: Path) -> dict | None:
    """The summary of the checkpoint whose state file is ``path`` (``.pt``), or None when there is
    no state file."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.with_suffix(".json").read_text())


def remove(path: Path) -> None:
    """Delete a checkpoint (state first: a summary without state is ignored, the reverse never
    exists), and the temporary files of writes that a killed process left behind."""
    path = Path(path)
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)
    for torn in path.parent.glob(f"{glob.escape(path.stem)}.*.tmp"):
        torn.unlink(missing_ok=True)


def tensor_fields(obj) -> dict:
    """The tensor attributes of a trainer helper (accumulators, VEG counters), to save."""
    return {name: value for name, value in vars(obj).items() if isinstance(value, torch.Tensor)}


def result_fields(result) -> dict:
    """A :class:`rnnlab.train.RunResult`'s fields except its config (the caller supplies the configs)."""
    return {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "config"}


def restore_fields(obj, saved: dict) -> None:
    """Set the attributes saved by :func:`tensor_fields` or :func:`result_fields` back on ``obj``."""
    for name, value in saved.items():
        setattr(obj, name, value)
