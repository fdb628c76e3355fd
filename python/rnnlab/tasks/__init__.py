"""Long-term-memory tasks, vectorized over a population of models (DESIGN.md §5).

``make_task(name, **kw)`` builds a task by name:

=========== ========================================================= ===============
name        task                                                      SPEC
=========== ========================================================= ===============
add, mul    adding / multiplication problem                           §2.2
torder      temporal order (2 symbols, 4 classes)                     §2.2
torder3     3-bit temporal order (8 classes)                          §2.2
perm        random permutation                                        §2.2
mem5, mem20 noiseless memorization, 5-bit and 20-bit variants          §2.2
mem         noiseless memorization with explicit n_values, n_pos      §2.2
latch       latching (class in the first inputs, then noise)          §3.3
parity      parity of the first n bits, then noise                    §3.3
copy        copy first input                                          §6.2
denoise     denoising                                                 §6.2
sysid       linear teacher–student system identification             §4.2
digits      sequential 8×8 digits (scikit-learn)                      §6.2 (analogue)
=========== ========================================================= ===============
"""
from __future__ import annotations

from functools import partial

from .arithmetic import Addition, Multiplication
from .base import SUCCESS_ERROR, Batch, Task
from .digits import SequentialDigits
from .latching import Latch, Parity
from .memorization import VARIANTS, Memorization
from .permutation import RandomPermutation
from .system_id import SystemIdentification
from .temporal_order import TemporalOrder
from .warmup import CopyFirst, Denoise

TASKS = {
    "add": Addition,
    "mul": Multiplication,
    "torder": partial(TemporalOrder, n_bits=2),
    "torder3": partial(TemporalOrder, n_bits=3),
    "perm": RandomPermutation,
    "mem": Memorization,
    **{name: partial(Memorization, n_values=v, n_pos=p) for name, (v, p) in VARIANTS.items()},
    "latch": Latch,
    "parity": Parity,
    "copy": CopyFirst,
    "denoise": Denoise,
    "sysid": SystemIdentification,
    "digits": SequentialDigits,
}


def make_task(name: str, **kwargs) -> Task:
    """The task ``name`` (one of :data:`TASKS`) built with its keyword arguments, e.g.
    ``make_task("torder", min_length=50, max_length=200)``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name](**kwargs)


__all__ = ["TASKS", "SUCCESS_ERROR", "Batch", "Task", "make_task"]
