"""rnnlab.RNN against torch.nn.RNN: construction, parameters, forward outputs and every gradient."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rnnlab
from rnnlab.nn import RNN
from rnnlab.nn import rnn as rnn_module

import helpers_dropin as dropin
from helpers_dropin import Config, Family

FAMILY = Family(RNN, nn.RNN, rnn_module.fallback_counts, state_names=("h",))


# ---------------------------------------------------------------------------------------------
# randomized grid against nn.RNN
# ---------------------------------------------------------------------------------------------
def _draw(rng) -> Config:
    return Config(
        I=dropin.log_uniform_int(rng, 1, 64),
        H=dropin.log_uniform_int(rng, 1, 300),
        T=dropin.log_uniform_int(rng, 1, 500),
        B=dropin.log_uniform_int(rng, 1, 64),
        layers=rng.choice([1, 2, 3]),
        bidirectional=rng.random() < 0.5,
        batch_first=rng.random() < 0.5,
        bias=rng.random() < 0.75,
        nonlinearity=rng.choice(["tanh", "relu"]),
        unbatched=rng.random() < 0.15,
        with_state=rng.random() < 0.6,
        dtype=rng.choice([torch.float32, torch.float64]),
    )


EXTREMES = [
    Config(I=5, H=300, T=20, B=3, dtype=torch.float32),
    Config(I=3, H=16, T=500, B=4, bidirectional=True, layers=2),
    Config(I=7, H=24, T=30, B=64, batch_first=True, nonlinearity="relu", dtype=torch.float32),
    Config(I=1, H=1, T=40, B=1, layers=3, bias=False),
    Config(I=4, H=12, T=1, B=5, layers=2, bidirectional=True, dtype=torch.float32),
    Config(I=6, H=9, T=25, B=1, unbatched=True, bidirectional=True, batch_first=True, layers=2),
]
GRID = dropin.seeded_grid(EXTREMES, 40, seed=2024, draw=_draw, gates=1, budget=3e7)


@pytest.mark.parametrize("cfg", GRID, ids=[f"c{i}" for i in range(len(GRID))])
def test_matches_nn_rnn(cfg):
    dropin.compare_to_peer(FAMILY, cfg, seed=GRID.index(cfg))


@settings(max_examples=25, deadline=None)
@given(**dropin.shape_strategies(max_T=12), nonlinearity=st.sampled_from(["tanh", "relu"]))
def test_property_shapes(**fields):
    dropin.check_small_shape_matches_peer(FAMILY, **fields)


# ---------------------------------------------------------------------------------------------
# construction, parameters, state_dict
# ---------------------------------------------------------------------------------------------
CONSTRUCT = [
    dict(),
    dict(num_layers=3, bidirectional=True),
    dict(num_layers=2, bias=False, batch_first=True, nonlinearity="relu"),
    dict(num_layers=2, dropout=0.3, dtype=torch.float64),
]


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_same_parameters_and_init(kwargs):
    dropin.check_same_parameters_and_init(FAMILY, kwargs, attrs=(*dropin.COMMON_ATTRS, "nonlinearity"))


def test_positional_nonlinearity():
    mod = RNN(3, 4, 2, "relu", False, True, 0.0, True)
    assert (mod.nonlinearity, mod.bias, mod.batch_first, mod.bidirectional) == ("relu", False, True, True)
    assert "nonlinearity='relu'" in repr(mod)


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_state_dict_loads_both_ways(kwargs):
    dropin.check_state_dict_loads_both_ways(FAMILY, kwargs)


@pytest.mark.parametrize(
    "args, kwargs",
    [((3, 4), dict(nonlinearity="sigmoid")), ((3, 4), dict(nonlinearity="sigmoid", proj_size=0)),
     *dropin.BAD_CONSTRUCTOR_ARGS, *dropin.PROJ_SIZE_REFUSED],
)
def test_bad_constructor_arguments_raise_like_nn_rnn(args, kwargs):
    dropin.check_constructor_raises_like_peer(FAMILY, args, kwargs)


def test_dropout_with_one_layer_warns_like_nn_rnn():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        RNN(3, 4, dropout=0.5)



@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_private_surface_like_nn_rnn(kwargs):
    dropin.check_private_surface_like_peer(FAMILY, kwargs)


@pytest.mark.parametrize("patch", list(dropin.WEIGHT_PATCHES))
def test_weight_patch_like_nn_rnn(patch):
    dropin.check_weight_patch_like_peer(FAMILY, dropin.WEIGHT_PATCHES[patch])


def test_functional_call_swaps_weights_like_nn_rnn():
    dropin.check_functional_call_swaps_weights_like_peer(FAMILY)

# ---------------------------------------------------------------------------------------------
# PackedSequence
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_packed_sequence_matches_nn_rnn(enforce_sorted, layers, bidirectional, with_h0):
    dropin.check_packed_sequence_matches_peer(FAMILY, enforce_sorted, layers, bidirectional, with_h0)


# ---------------------------------------------------------------------------------------------
# dropout between layers
# ---------------------------------------------------------------------------------------------
def test_dropout_eval_mode_and_p0_match_nn_rnn():
    dropin.check_dropout_eval_mode_and_p0_match_peer(FAMILY)


def test_dropout_p1_matches_nn_rnn():
    dropin.check_dropout_p1_matches_peer(FAMILY)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_semantics(bidirectional):
    dropin.check_dropout_semantics(FAMILY, bidirectional)


# ---------------------------------------------------------------------------------------------
# bad and unusual inputs: nn.RNN's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(dropin.one_state_bad_input_cases()))
def test_bad_input_raises_like_nn_rnn(case):
    dropin.check_bad_input_raises_like_peer(FAMILY, *dropin.one_state_bad_input_cases()[case])


def test_non_tensor_input_names_the_argument():
    dropin.check_one_state_non_tensor_inputs_name_the_argument(FAMILY)


def test_half_precision_model_is_refused_clearly():
    dropin.check_half_precision_model_is_refused_clearly(FAMILY)


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_like_nn_rnn(batch_first):
    dropin.check_empty_batch_like_peer(FAMILY, batch_first)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_propagate_like_nn_rnn(value):
    dropin.check_nan_and_inf_propagate_like_peer(FAMILY, value)


def test_non_contiguous_inputs_give_the_same_answer():
    dropin.check_non_contiguous_inputs_give_the_same_answer(FAMILY)


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
def test_torch_compile_fullgraph_matches_eager():
    # the regularizer is part of the compiled backward too
    dropin.check_torch_compile_fullgraph_matches_eager(FAMILY, configure=lambda rnn: setattr(rnn, "regularizer", 2.0))


def test_vmap_grad_over_stacked_modules_matches_loop():
    dropin.check_vmap_grad_over_stacked_modules_matches_loop(FAMILY)


def test_exported_from_package():
    assert rnnlab.RNN is RNN and rnnlab.nn.RNN is RNN
