"""Packing runs into populations: compatible runs train together, sized to the device's memory.

Runs can share a population when they agree on every field the trainer shares
(:data:`rnnlab.train.config.SHARED_FIELDS`: task and lengths, hidden size, optimizer kind, batch
size, budget, validation protocol, length stream, dtype, cell). Within a group, runs
are cut into near-equal populations of at most ``max_models`` models, where ``max_models`` is the
smaller of a cap (throughput stops growing long before memory runs out on a CPU) and what fits
in ``memory_fraction`` of the device's free memory by :func:`bytes_per_model`.

A model's result does not depend on which population it lands in (its data and initialisation
come from its own seed), so packing changes speed, never results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..cells import get_cell
from ..train.config import population_key
from .spec import Run

#: default cap on models per population: CPU throughput saturates at a few hundred models;
#: a GPU needs thousands to fill its SMs.
DEFAULT_MAX_MODELS = {"cpu": 256, "cuda": 8192}
_DTYPE_BYTES = {"float32": 4, "float64": 8}
#: autograd keeps a few copies of each activation tensor alive (inputs, outputs, gradients).
_ACTIVATION_COPIES = 4


@dataclass
class RunGroup:
    """Runs packed to train together as one population: ``key`` is the shared-field key,
    ``runs`` the members (M of them)."""

    key: str
    runs: list[Run]

    @property
    def size(self) -> int:
        return len(self.runs)

    @property
    def cost(self) -> float:
        """Relative work of the population if no model stops early: M·T·(state width)·H²·updates."""
        c = self.runs[0].config
        layers = c.forward_options().get("num_layers", 1)
        return self.size * c.make_task().max_length * get_cell(c.cell).state_width * layers * c.hidden**2 * c.max_updates

    @property
    def population_id(self) -> str:
        """A name for logs and rows: the first run's id and the population size."""
        return f"{self.runs[0].run_id}+{self.size}"


def bytes_per_model(run: Run) -> int:
    """An upper estimate of the memory one model of ``run`` needs inside a population, bytes.

    The larger of a training update (inputs [T, B, I], projected inputs and states [T, B, H],
    their gradients, the [2, T, B] gradient sink, int64 task draws) and a validation chunk
    (forward only, ``val_chunk`` sequences), plus parameters, gradients and optimizer state.
    T is the longest sequence the task can draw (its length jitter included).
    """
    c = run.config
    task = c.make_task()
    s = _DTYPE_BYTES[c.dtype]
    T = task.sequence_length(task.max_length, 1.0 - 1e-9)
    I, H, O = task.n_in, c.hidden, task.n_out
    cell = get_cell(c.cell)
    # per-step state values of one sample (Cell.state_width), every layer of a stack
    width = cell.state_width * H * c.forward_options().get("num_layers", 1)
    train = T * c.batch_size * (s * (_ACTIVATION_COPIES * (I + width) + 2 * 2) + 8 * 4)
    valid = T * c.val_chunk * (s * (I + width) + 8 * 4)
    n_params = sum(math.prod(shape) for shape in cell.param_shapes(1, I, H, O, **c.forward_options()).values())
    return int(max(train, valid) + s * n_params * 6)


def free_memory(device: torch.device | str) -> int:
    """Bytes free on ``device`` now (CUDA: the allocator's view; CPU: MemAvailable)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # no /proc (macOS, Windows): assume 4 GiB


def max_models(run: Run, device: torch.device | str, cap: int | None = None, memory_fraction: float = 0.5) -> int:
    """How many models like ``run`` one population may hold on ``device`` (at least 1)."""
    device = torch.device(device)
    if cap is None:
        cap = DEFAULT_MAX_MODELS.get(device.type, DEFAULT_MAX_MODELS["cpu"])
    if cap < 1:
        raise ValueError(f"max_population must be >= 1, got {cap}")
    if not 0 < memory_fraction <= 1:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction}")
    fit = int(memory_fraction * free_memory(device) // bytes_per_model(run))
    return max(1, min(cap, fit))


def group_key(run: Run) -> str:
    """Runs with equal keys can share a population."""
    return f"{run.cell}|{population_key(run.config)}"


def pack(runs: list[Run], device: torch.device | str = "cpu", max_population: int | None = None,
         memory_fraction: float = 0.5) -> list[RunGroup]:
    """Group ``runs`` by :func:`group_key` (groups in order of first appearance, runs in their
    given order) and cut each group into ⌈n / max_models⌉ populations of near-equal size."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(group_key(r), []).append(r)
    out = []
    for key, members in groups.items():
        limit = max_models(members[0], device, max_population, memory_fraction)
        n_pop = math.ceil(len(members) / limit)
        base, extra = divmod(len(members), n_pop)
        start = 0
        for i in range(n_pop):
            size = base + (1 if i < extra else 0)
            out.append(RunGroup(key, members[start : start + size]))
            start += size
    return out
