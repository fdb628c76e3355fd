"""The trainer's per-update records on the CPU (csrc/torch/trainer_records.cpp): the VEG flags
(``rnnlab::veg_flags_add``) and the interval sums (``rnnlab::interval_sums_add``) equal their
definitions in torch ops (``add_in_torch``) bit for bit over random sequences of updates — NaN,
±inf and zero norms, compacted populations, window wrap-around, refresh updates, float32 and
float64 inputs — and bad arguments are refused by name."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.train.trainer import _Accumulator
from rnnlab.train.veg import VegCounter, VegRule

_SPECIAL = torch.tensor([0.0, math.nan, math.inf, 1e-30, 1e30])


def _values(g: torch.Generator, shape, dtype, special: float) -> torch.Tensor:
    """Positive values over 24 decades, a fraction ``special`` of them 0, NaN, inf or extreme."""
    v = torch.pow(10.0, torch.empty(shape, dtype=torch.float64).uniform_(-12, 12, generator=g))
    pick = torch.rand(shape, generator=g, dtype=torch.float64) < special
    v[pick] = _SPECIAL[torch.randint(0, len(_SPECIAL), (int(pick.sum()),), generator=g)].double()
    return v.to(dtype)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _updates(seed: int, M: int, updates: int):
    """Random subsets of the M models (the active ones of a compacted population), in order."""
    g = torch.Generator().manual_seed(seed)
    for k in range(updates):
        idx = torch.randperm(M, generator=g)[: int(torch.randint(1, M + 1, (1,), generator=g))].sort().values
        yield k, idx, g


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), M=st.integers(1, 6), T=st.integers(1, 5), B=st.integers(1, 7),
       window=st.integers(1, 6), refresh=st.integers(1, 4), special=st.sampled_from([0.0, 0.2, 0.6]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_veg_flags_op_equals_its_definition(seed, M, T, B, window, refresh, special, dtype):
    rule = VegRule(eps_vanish=1e-3, eps_explode=1e3, jump=3.0, window=window, refresh=refresh)
    op, definition = VegCounter(M, rule, "cpu"), VegCounter(M, rule, "cpu")
    for k, idx, g in _updates(seed, M, 12):
        delta_sq = _values(g, (len(idx), T, B), dtype, special)
        norm = _values(g, (len(idx),), dtype, special)
        op.add(idx, delta_sq, norm, k)
        definition.add_in_torch(idx, delta_sq, norm, k)
        for name in ("steps", "vanishing", "exploding", "norms", "reference"):
            assert _same(getattr(op, name), getattr(definition, name)), (name, k)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), M=st.integers(1, 6), special=st.sampled_from([0.0, 0.3]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_interval_sums_op_equals_its_definition(seed, M, special, dtype):
    op, definition = _Accumulator(M, "cpu"), _Accumulator(M, "cpu")
    for k, idx, g in _updates(seed, M, 12):
        m = len(idx)
        loss, norm, omega = (_values(g, (m,), dtype, special) for _ in range(3))
        clipped, fallback = (torch.rand(m, generator=g) < 0.5 for _ in range(2))
        op.add(idx, loss, norm, omega, clipped, fallback)
        definition.add_in_torch(idx, loss, norm, omega, clipped, fallback)
        if k % 5 == 4:  # a validation: interval means, then the interval sums restart
            means, defined = op.interval(), definition.interval()
            assert all(_same(means[name], defined[name]) for name in defined)
        for name, value in vars(definition).items():
            assert _same(getattr(op, name), value), (name, k)


def test_interval_means_are_the_definitions():
    op, definition = _Accumulator(3, "cpu"), _Accumulator(3, "cpu")
    idx, t = torch.tensor([0, 2]), torch.tensor([1.5, math.inf])
    op.add(idx, t, t, t, t > 2, t < 2)
    definition.add_in_torch(idx, t, t, t, t > 2, t < 2)
    a, b = op.interval(), definition.interval()
    assert a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)


def test_bad_arguments_are_named():
    veg = VegCounter(3, VegRule(), "cpu")
    d, n = torch.ones(2, 4, 5), torch.ones(2)
    ops = torch.ops.rnnlab
    state = (veg.steps, veg.vanishing, veg.exploding, veg.norms, veg.reference)
    with pytest.raises(ValueError, match=r"idx must be in \[0, 3\), got 3"):
        ops.veg_flags_add(torch.tensor([0, 3]), d, n, *state, 0, 1e-6, 1e6, 10.0, 10)
    with pytest.raises(TypeError, match="idx must be int64"):
        ops.veg_flags_add(torch.tensor([0, 1], dtype=torch.int32), d, n, *state, 0, 1e-6, 1e6, 10.0, 10)
    with pytest.raises(ValueError, match=r"delta_sq must be a CPU tensor of shape \[m, T, B\] with m = 2"):
        ops.veg_flags_add(torch.tensor([0, 1]), d[:1], n, *state, 0, 1e-6, 1e6, 10.0, 10)
    with pytest.raises(ValueError, match="norm must be a CPU tensor of shape"):
        ops.veg_flags_add(torch.tensor([0, 1]), d, n[:1], *state, 0, 1e-6, 1e6, 10.0, 10)
    with pytest.raises(TypeError, match="steps must be float64"):
        ops.veg_flags_add(torch.tensor([0, 1]), d, n, veg.steps.float(), *state[1:], 0, 1e-6, 1e6, 10.0, 10)
    with pytest.raises(ValueError, match="refresh must be >= 1"):
        ops.veg_flags_add(torch.tensor([0, 1]), d, n, *state, 0, 1e-6, 1e6, 10.0, 0)
    acc = _Accumulator(3, "cpu")
    sums = [acc.loss, acc.norm, acc.omega, acc.count, acc.norm_total, acc.norm_count, acc.clipped, acc.fallbacks]
    with pytest.raises(ValueError, match="sums must be"):
        ops.interval_sums_add(torch.tensor([0]), n[:1], n[:1], n[:1], n[:1], n[:1], sums[:7], acc.norm_max)
    with pytest.raises(ValueError, match="sums\\[i\\] must have shape"):
        ops.interval_sums_add(torch.tensor([0]), n[:1], n[:1], n[:1], n[:1], n[:1], sums[:7] + [torch.zeros(2).double()],
                              acc.norm_max)
    with pytest.raises(ValueError, match="clipped must be a CPU tensor of shape"):
        ops.interval_sums_add(torch.tensor([0]), n[:1], n[:1], n[:1], n, n[:1], sums, acc.norm_max)
