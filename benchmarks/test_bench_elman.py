"""pytest-benchmark suite of the Elman RNN: ``pytest benchmarks/test_bench_elman.py``.

The same cases as ``rnnlab bench`` (rnnlab.bench), grouped so that pytest-benchmark's table puts
rnnlab next to its peers: one group per (config, pass). ``rnnlab bench`` prints the ratios,
GFLOP/s and the sgemm yardstick; this suite gives pytest-benchmark's statistics and its
``--benchmark-compare`` history. ``test_peers_agree`` checks that every peer computes the same
gradients, i.e. that the timings compare the same job.
"""
import numpy as np
import pytest
import torch

from rnnlab.bench import jax_peer, suite, workload

needs_jax = pytest.mark.skipif(not jax_peer.available(), reason="jax not installed (pip install rnnlab[bench])")
SINGLE = suite.single_builders(use_jax=True)
POPULATION = suite.population_builders(use_jax=True)


def _impl_params(impls):
    return [pytest.param(name, marks=needs_jax if "jax" in name else ()) for name in impls]


def _record(benchmark, flops):
    benchmark.extra_info["flops"] = flops
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("impl", _impl_params(SINGLE))
@pytest.mark.parametrize("mode,backward", suite.MODES, ids=[m for m, _ in suite.MODES])
@pytest.mark.parametrize("cfg", workload.SINGLE, ids=lambda c: c.label.replace(" ", "-"))
def test_single(benchmark, cfg, mode, backward, impl):
    benchmark.group = f"{cfg.label} {mode}"
    benchmark(SINGLE[impl](cfg, workload.Data.make(cfg), backward))
    _record(benchmark, cfg.flops(backward))


@pytest.mark.parametrize("impl", _impl_params(POPULATION))
def test_population(benchmark, impl):
    cfg = workload.POPULATION
    benchmark.group = f"{cfg.label} forward+backward"
    fn = POPULATION[impl](cfg, workload.Data.make(cfg))
    # The nn.RNN loop takes seconds per call: a few rounds are enough to rank it.
    benchmark.pedantic(fn, rounds=3 if impl == "nn.RNN loop" else 10, warmup_rounds=1)
    _record(benchmark, cfg.flops(True))


def _as_torch(a):
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a))  # JAX arrays


def _close(results, rtol=1e-4, atol=1e-5):
    ref = results[0]
    for other in results[1:]:
        for a, b in zip(other, ref):
            torch.testing.assert_close(_as_torch(a), b, rtol=rtol, atol=atol)


def test_peers_agree():
    """Every single-layer peer returns the same hs (forward) and gradients (forward+backward)."""
    cfg = workload.Config(H=24, B=3, T=9, I=5)
    data = workload.Data.make(cfg)
    impls = suite.single_builders(use_jax=jax_peer.available())
    _close([(impl(cfg, data, False)(),) for impl in impls.values()])
    _close([impl(cfg, data, True)() for impl in impls.values()])


def test_population_peers_agree():
    cfg = workload.Config(H=8, B=3, T=6, I=2, M=5)
    data = workload.Data.make(cfg)
    _close([build(cfg, data)() for build in suite.population_builders(use_jax=jax_peer.available()).values()])
