"""Timing: warm-up, repeats, median; the machine the numbers come from; the sgemm yardstick."""
from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one call: median over ``n`` timed calls, with min and quartiles."""

    median: float
    min: float
    q1: float
    q3: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Budget:
    """How long to measure one case: ``warmup`` untimed calls, then between ``min_repeats`` and
    ``max_repeats`` timed ones, as many as fit in ``seconds``."""

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 50
    seconds: float = 2.0


FULL = Budget()
QUICK = Budget(warmup=1, min_repeats=3, max_repeats=10, seconds=0.3)


def measure(fn: Callable[[], object], budget: Budget = FULL) -> Timing:
    """Times ``fn()`` (which must block until its result is ready) and returns the median.

    The last warm-up call sizes the number of repeats (the first one may include compilation,
    e.g. JAX's jit); garbage is collected once before timing so a previous case's garbage is not
    charged to this one.
    """
    gc.collect()
    for _ in range(max(1, budget.warmup)):
        start = time.perf_counter()
        fn()
        last = time.perf_counter() - start
    n = int(min(budget.max_repeats, max(budget.min_repeats, budget.seconds / max(last, 1e-6))))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    q = statistics.quantiles(samples, n=4) if n >= 2 else [samples[0]] * 3
    return Timing(median=statistics.median(samples), min=samples[0], q1=q[0], q3=q[2], n=n)


def sgemm_gflops(n: int = 1024, budget: Budget = FULL) -> float:
    """GFLOP/s of ``torch.mm`` on two n×n float32 matrices (2·n³ flops) at the current thread count."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    c = torch.empty(n, n)
    t = measure(lambda: torch.mm(a, b, out=c), budget)
    return 2 * n**3 / t.median / 1e9


def _busy_seconds() -> float | None:
    """CPU-seconds all processes have spent busy since boot (/proc/stat), None where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """How busy the rest of the machine was while this process measured: the share of all cores'
    time spent by other processes between construction and :meth:`share` (0 = quiet machine)."""

    def __init__(self) -> None:
        self._busy, self._own, self._wall = _busy_seconds(), time.process_time(), time.perf_counter()

    def share(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            return None
        others = (busy - self._busy) - (time.process_time() - self._own)
        # /proc/stat counts every core, whatever CPUs this process is pinned to (see confined)
        return max(0.0, others / ((time.perf_counter() - self._wall) * os.cpu_count()))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """What the numbers were measured on: CPU, cores, kernel ISA, threads, library versions."""
    from .. import _C

    info = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "rnnlab_isa": _C.cpu_isa(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import jax

        info["jax"] = jax.__version__
    except ImportError:
        info["jax"] = None
    return info


def conclude(results: list, load: OtherLoad, json_path: str | None) -> None:
    """The end of a benchmark script: print what the table was measured on (CPU, kernel ISA, the
    other processes' load meanwhile) and write it with ``results`` to ``json_path`` (if given)."""
    info = {**machine_info(), "other_load": load.share(), "results": results}
    other = "unknown" if info["other_load"] is None else f"{info['other_load']:.0%}"
    print(f"\n{info['cpu']}, kernels {info['rnnlab_isa']}; other processes' share of the cores meanwhile: {other}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(info, f, indent=1)


@contextmanager
def confined(threads: int | None) -> Iterator[None]:
    """Runs the body on ``threads`` of the process's CPUs (no change when None): torch with that
    many threads, and every thread started meanwhile allowed only those CPUs. JAX needs the
    latter: its CPU client ignores XLA's thread flags and sizes its pools from the task affinity,
    so a peer meant to run on one core must be created inside this block."""
    if threads is None:
        yield
        return
    cpus = os.sched_getaffinity(0)
    if not 1 <= threads <= len(cpus):
        raise ValueError(f"threads must be in [1, {len(cpus)}] (the CPUs this process may use), got {threads}")
    torch.set_num_threads(threads)
    os.sched_setaffinity(0, sorted(cpus)[:threads])
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)
