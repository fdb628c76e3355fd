"""The cell registry: one :class:`Cell` record per recurrent cell.

The population model (:mod:`rnnlab.nn.population`), the trainer and its config validation
(:mod:`rnnlab.train`), the initialisations, packing and the sweep spec (:mod:`rnnlab.sweep`) and
the analyses read what a cell needs from its record — parameters, gates, the recurrence call,
options and their validation, initialisations, the recurrent radius ρ, the state width of the
memory estimate, whether Ω applies, the analysis system — instead of branching on its name.

======== ============================================= ==========================
cell     record                                        recurrence (kernels)
======== ============================================= ==========================
elman    :data:`rnnlab.cells.elman.ELMAN`              :func:`rnnlab.elman`
lstm     :data:`rnnlab.cells.lstm.LSTM`                :func:`rnnlab.lstm`
gru      :data:`rnnlab.cells.gru.GRU`                  :func:`rnnlab.gru`
diag     :data:`rnnlab.cells.diag.DIAG`                :func:`rnnlab.diag_recurrence`
======== ============================================= ==========================

A new cell is one module here defining its record (:func:`rnnlab.cells.projected.projected_cell`
for the PyTorch layout: input projection, ``weight_hh`` recurrence, linear read-out) and one entry
in :data:`REGISTRY`, plus its kernels.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor

from .base import Cell
from .diag import DIAG
from .elman import ELMAN
from .gru import GRU
from .lstm import LSTM

#: name -> record, in the order cells are listed in messages and help.
REGISTRY: dict[str, Cell] = {cell.name: cell for cell in (ELMAN, LSTM, GRU, DIAG)}
#: the cell names.
CELLS = tuple(REGISTRY)
#: every initialisation some cell defines, in the order the records list them.
INITS = tuple(dict.fromkeys(init for cell in REGISTRY.values() for init in cell.inits))


def get_cell(name: str) -> Cell:
    """The record of cell ``name``; ValueError naming the cells for any other value."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"cell must be one of {CELLS}, got {name!r}")
    return REGISTRY[name]


def cell_of(params: Mapping[str, Tensor]) -> Cell | None:
    """The cell whose parameters ``params`` are exactly (names and shapes), or None."""
    return next((cell for cell in REGISTRY.values() if cell.holds(params)), None)


def names(where: Callable[[Cell], bool]) -> tuple[str, ...]:
    """The names of the cells whose record satisfies ``where``, e.g. ``names(lambda c: c.omega)``."""
    return tuple(name for name, cell in REGISTRY.items() if where(cell))


def option_choices(option: str) -> tuple:
    """The values some cell allows for ``option`` (e.g. every Elman ``nonlinearity``)."""
    return tuple(dict.fromkeys(v for cell in REGISTRY.values() for v in cell.choices.get(option, ())))


__all__ = ["CELLS", "INITS", "REGISTRY", "Cell", "cell_of", "get_cell", "names", "option_choices"]
