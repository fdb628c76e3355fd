"""Sweeps: factorial grids of training runs, packed into populations, stored in SQLite
(DESIGN.md §5). See docs/sweeps.md.

    from rnnlab.sweep import SweepSpec, run_sweep
    spec = SweepSpec.from_file("examples/sweeps/quick.toml")
    run_sweep(spec, "runs/quick/quick.sqlite")
"""
from .pack import RunGroup, pack
from .record import VegRule
from .runner import run_sweep
from .spec import Run, SpecError, SweepSpec, grid, logspace, run_id
from .store import ResultStore

__all__ = ["ResultStore", "Run", "RunGroup", "SpecError", "SweepSpec", "VegRule", "grid", "logspace", "pack",
           "run_id", "run_sweep"]
