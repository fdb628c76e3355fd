"""Runs the whole Elman benchmark in one process and returns JSON-able results.

Layout of the result::

    {"machine": {...}, "budget": {...},
     "sgemm_gflops": {"start": float, "end": float}, "other_load": float | None,
     "single": [{"config": {...}, "label": str, "mode": "forward" | "forward+backward",
                 "flops": float, "times": {"nn.RNN": Timing, "rnnlab": Timing, "jax": Timing}}],
     "population": {"config": {...}, "label": str, "flops": float, "times": {impl: Timing}} | None}

Times are :class:`~rnnlab.bench.harness.Timing` dicts in seconds. sgemm is measured before and
after the cases, and ``other_load`` is the share of the cores other processes used meanwhile
(harness.OtherLoad), so that a drift or a busy machine shows up in the report.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Iterable

from . import jax_peer, population, single
from .harness import FULL, Budget, OtherLoad, machine_info, measure, sgemm_gflops
from .workload import Config, Data

MODES = (("forward", False), ("forward+backward", True))


def single_builders(use_jax: bool) -> dict[str, Callable]:
    impls = {"nn.RNN": single.nn_rnn, "rnnlab": single.rnnlab_rnn}
    if use_jax:
        impls["jax"] = jax_peer.single
    return impls


def population_builders(use_jax: bool) -> dict[str, Callable]:
    impls = dict(population.BUILDERS)
    if use_jax:
        impls["jax vmap"] = jax_peer.population
    return impls


def run(
    configs: Iterable[Config],
    population_config: Config | None,
    *,
    budget: Budget = FULL,
    use_jax: bool = True,
    progress: Callable[[str], None] = lambda line: None,
) -> dict:
    """Measures every (config, mode, implementation) and the population case; see module doc."""
    use_jax = use_jax and jax_peer.available()
    other_load = OtherLoad()
    results = {
        "machine": machine_info(),
        "budget": asdict(budget),
        "sgemm_gflops": {"start": sgemm_gflops(budget=budget)},
        "single": [],
        "population": None,
    }
    for cfg in configs:
        data = Data.make(cfg)
        for mode, backward in MODES:
            times = {}
            for impl, build in single_builders(use_jax).items():
                progress(f"{cfg.label} {mode} {impl}")
                times[impl] = measure(build(cfg, data, backward), budget).as_dict()
            results["single"].append(
                {"config": asdict(cfg), "label": cfg.label, "mode": mode, "flops": cfg.flops(backward), "times": times}
            )
    if population_config is not None:
        data = Data.make(population_config)
        times = {}
        for impl, build in population_builders(use_jax).items():
            progress(f"{population_config.label} {impl}")
            times[impl] = measure(build(population_config, data), budget).as_dict()
        results["population"] = {
            "config": asdict(population_config),
            "label": population_config.label,
            "flops": population_config.flops(True),
            "times": times,
        }
    results["sgemm_gflops"]["end"] = sgemm_gflops(budget=budget)
    results["other_load"] = other_load.share()
    return results
