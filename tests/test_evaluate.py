"""The validation forward ``rnnlab::<cell>_evaluate`` (kernels/cpu/evaluate.h): the outputs of
population_forward at the last K steps, a sequence's outputs bitwise independent of its block,
its lane, the models beside it and the thread count, on every ISA; bad inputs raise."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers_ops import LOWER_ISAS, run_under_isa
from rnnlab.cells import get_cell
from rnnlab.nn.population import population_forward
from rnnlab.train.config import RunConfig
from rnnlab.train.trainer import validation_outputs

CELLS = [("elman", {"nonlinearity": "tanh"}), ("elman", {"nonlinearity": "relu"}),
         ("elman", {"nonlinearity": "sigmoid"}), ("elman", {"nonlinearity": "identity"}), ("lstm", {}), ("gru", {})]
IDS = ["elman-tanh", "elman-relu", "elman-sigmoid", "elman-identity", "lstm", "gru"]


def make(cell: str, M: int, T: int, B: int, I: int, H: int, O: int, dtype=torch.float64, seed: int = 0):
    """Random parameters (scaled so the states stay in the activations' working range) and inputs."""
    g = torch.Generator().manual_seed(seed)
    shapes = get_cell(cell).shapes(M, I, H, O, get_cell(cell).complete_options({}))
    params = {n: (torch.randn(s, generator=g, dtype=torch.float64) / math.sqrt(max(s[-1], 1))).to(dtype)
              for n, s in shapes.items()}
    x = torch.randn(M, T, B, I, generator=g, dtype=torch.float64).to(dtype)
    return params, x


def evaluate(cell: str, params, x, K: int, **options):
    record = get_cell(cell)
    names = record.shapes(1, 1, 1, 1, record.complete_options(options))
    return getattr(torch.ops.rnnlab, record.evaluate)(x, [params[n] for n in names], K, **options)


@pytest.mark.parametrize("cell,options", CELLS, ids=IDS)
@pytest.mark.parametrize("B", [1, 5, 37])
def test_equals_population_forward_float64(cell, options, B):
    params, x = make(cell, 3, 9, B, 3, 7, 4)
    for K in (1, 4):
        y = evaluate(cell, params, x, K, **options)
        ref = population_forward(params, x, cell=cell, readout_steps=K, **options)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell,options", CELLS, ids=IDS)
def test_float32_close_to_float64(cell, options):
    # float32 against the float64 reference: each output sums ~H + I products per step through
    # T steps of contracting activations, so a few hundred ulp of float32 bound the difference.
    params, x = make(cell, 4, 20, 33, 2, 16, 3)
    y = evaluate(cell, {n: p.float() for n, p in params.items()}, x.float(), 2, **options)
    ref = population_forward(params, x, cell=cell, readout_steps=2, **options)
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=500 * torch.finfo(torch.float32).eps)


@settings(max_examples=25, deadline=None)
@given(cell=st.sampled_from(["elman", "lstm", "gru"]), M=st.integers(1, 3), T=st.integers(1, 6), B=st.integers(1, 20),
       I=st.integers(1, 4), H=st.integers(1, 19), O=st.integers(1, 5), data=st.data())
def test_any_shape_equals_population_forward(cell, M, T, B, I, H, O, data):
    K = data.draw(st.integers(1, T))
    params, x = make(cell, M, T, B, I, H, O, seed=M * 1000 + T * 100 + B)
    torch.testing.assert_close(evaluate(cell, params, x, K), population_forward(params, x, cell=cell, readout_steps=K),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_a_sequence_is_independent_of_its_block_lane_and_population(cell, dtype):
    params, x = make(cell, 5, 12, 41, 3, 9, 2, dtype)
    y = evaluate(cell, params, x, 3)
    perm = torch.randperm(41, generator=torch.Generator().manual_seed(1))
    assert torch.equal(evaluate(cell, params, x[:, :, perm].contiguous(), 3), y[:, :, perm])
    for m in (0, 3):  # alone, and with its sequences cut to a batch of 7 (another block split)
        alone = {n: p[m:m + 1].contiguous() for n, p in params.items()}
        assert torch.equal(evaluate(cell, alone, x[m:m + 1].contiguous(), 3), y[m:m + 1])
        assert torch.equal(evaluate(cell, alone, x[m:m + 1, :, 10:17].contiguous(), 3), y[m:m + 1, :, 10:17])


def test_thread_counts_agree_bitwise():
    params, x = make("lstm", 6, 15, 50, 2, 12, 3, torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = evaluate("lstm", params, x, 2)
        torch.set_num_threads(2)
        two = evaluate("lstm", params, x, 2)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_an_infinite_recurrent_weight_does_not_reach_the_first_step():
    # h_0 = 0: the first step has no recurrent term at all (not 0·W_hh, which is NaN for inf)
    params, x = make("gru", 1, 1, 3, 2, 4, 2)
    params["weight_hh"][0, 0, 0] = math.inf
    assert torch.isfinite(evaluate("gru", params, x, 1)).all()


def test_trainer_validation_uses_it_for_one_plain_layer(monkeypatch):
    real = torch.ops.rnnlab.lstm_evaluate
    calls = []
    monkeypatch.setattr(torch.ops.rnnlab, "lstm_evaluate", lambda *a, **k: calls.append(1) or real(*a, **k),
                        raising=False)
    params, x = make("lstm", 2, 6, 8, 1, 5, 2)
    y = validation_outputs(params, x, RunConfig(task="latch", cell="lstm", hidden=5), 1)
    assert calls == [1] and torch.equal(y, real(x, list(params.values()), 1))
    # a stack is population_forward's, layer by layer
    stacked = RunConfig(task="latch", cell="lstm", hidden=5, cell_kwargs={"num_layers": 2})
    options = get_cell("lstm").complete_options(stacked.forward_options())
    g = torch.Generator().manual_seed(0)
    params = {n: torch.randn(s, generator=g, dtype=torch.float64) / 3
              for n, s in get_cell("lstm").shapes(2, 1, 5, 2, options).items()}
    y = validation_outputs(params, x, stacked, 1)
    assert calls == [1]
    torch.testing.assert_close(y, population_forward(params, x, cell="lstm", readout_steps=1, **stacked.forward_options()),
                               rtol=0, atol=0)


@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_isa(isa):
    run_under_isa(isa, """
import math, torch
from rnnlab.cells import get_cell
from rnnlab.nn.population import population_forward
g = torch.Generator().manual_seed(0)
for cell in ("elman", "lstm", "gru"):
    shapes = get_cell(cell).shapes(2, 3, 11, 2, get_cell(cell).complete_options({}))
    p = {n: torch.randn(s, generator=g, dtype=torch.float64) / math.sqrt(s[-1]) for n, s in shapes.items()}
    x = torch.randn(2, 7, 19, 3, generator=g, dtype=torch.float64)
    y = getattr(torch.ops.rnnlab, get_cell(cell).evaluate)(x, list(p.values()), 2)
    torch.testing.assert_close(y, population_forward(p, x, cell=cell, readout_steps=2), rtol=1e-12, atol=1e-12)
""")


def test_bad_inputs_raise():
    params, x = make("gru", 2, 4, 3, 2, 5, 2)
    ps = list(params.values())
    op = torch.ops.rnnlab.gru_evaluate
    with pytest.raises(ValueError, match="params must hold 6 tensors"):
        op(x, ps[:5], 1)
    with pytest.raises(ValueError, match=r"params\[3\] \(bias_hn\) must have shape \[M, H\]"):
        op(x, ps[:3] + [ps[3][:, :4]] + ps[4:], 1)
    with pytest.raises(ValueError, match=r"readout_steps must be in \[1, T = 4\]"):
        op(x, ps, 5)
    with pytest.raises(ValueError, match=r"x must have shape \[M, T, B, I\]"):
        op(x[0], ps, 1)
    with pytest.raises(TypeError, match="must have dtype"):
        op(x.float(), ps, 1)
    with pytest.raises(ValueError, match=r"params\[0\] \(weight_ih\) must have shape"):
        op(x[..., :1].contiguous(), ps, 1)
    eparams, ex = make("elman", 1, 2, 2, 1, 3, 1)
    with pytest.raises(ValueError, match="activation must be one of"):
        torch.ops.rnnlab.elman_evaluate(ex, list(eparams.values()), 1, nonlinearity="softplus")
