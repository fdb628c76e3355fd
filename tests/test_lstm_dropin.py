"""rnnlab.LSTM against torch.nn.LSTM: construction, parameters, forward outputs and every gradient."""
from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from torch import nn

import rnnlab
from rnnlab import reference as ref
from rnnlab.nn import LSTM
from rnnlab.nn import lstm as lstm_module

import helpers_dropin as dropin
from helpers_dropin import Config, Family

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
FAMILY = Family(LSTM, nn.LSTM, lstm_module.fallback_counts, state_names=("h", "c"))


# ---------------------------------------------------------------------------------------------
# randomized grid against nn.LSTM
# ---------------------------------------------------------------------------------------------
def _draw(rng) -> Config:
    H = dropin.log_uniform_int(rng, 1, 200)
    return Config(
        I=dropin.log_uniform_int(rng, 1, 64),
        H=H,
        T=dropin.log_uniform_int(rng, 1, 300),
        B=dropin.log_uniform_int(rng, 1, 64),
        layers=rng.choice([1, 2, 3]),
        bidirectional=rng.random() < 0.5,
        batch_first=rng.random() < 0.5,
        bias=rng.random() < 0.75,
        proj_size=rng.randrange(1, H) if H > 1 and rng.random() < 0.1 else 0,
        unbatched=rng.random() < 0.15,
        with_state=rng.random() < 0.6,
        dtype=rng.choice([torch.float32, torch.float64]),
    )


EXTREMES = [
    Config(I=5, H=200, T=20, B=3, dtype=torch.float32),
    Config(I=3, H=16, T=300, B=4, bidirectional=True, layers=2),
    Config(I=7, H=24, T=30, B=64, batch_first=True, dtype=torch.float32),
    Config(I=1, H=1, T=40, B=1, layers=3, bias=False),
    Config(I=4, H=12, T=1, B=5, layers=2, bidirectional=True, dtype=torch.float32),
    Config(I=6, H=9, T=25, B=1, unbatched=True, bidirectional=True, batch_first=True, layers=2),
    Config(I=3, H=10, T=12, B=4, layers=2, bidirectional=True, proj_size=4),
]
GRID = dropin.seeded_grid(EXTREMES, 30, seed=2025, draw=_draw, gates=4, budget=1e7)


@pytest.mark.parametrize("cfg", GRID, ids=[f"c{i}" for i in range(len(GRID))])
def test_matches_nn_lstm(cfg):
    dropin.compare_to_peer(FAMILY, cfg, seed=GRID.index(cfg))


@settings(max_examples=15, deadline=None)
@given(**dropin.shape_strategies(max_T=10))
def test_property_shapes(**fields):
    dropin.check_small_shape_matches_peer(FAMILY, **fields)


# ---------------------------------------------------------------------------------------------
# construction, parameters, state_dict
# ---------------------------------------------------------------------------------------------
CONSTRUCT = [
    dict(),
    dict(num_layers=3, bidirectional=True),
    dict(num_layers=2, bias=False, batch_first=True),
    dict(num_layers=2, dropout=0.3, dtype=torch.float64),
    dict(num_layers=2, bidirectional=True, proj_size=3),
    dict(bias=False, proj_size=2),
]


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_same_parameters_and_init(kwargs):
    peer, mod = dropin.check_same_parameters_and_init(FAMILY, kwargs)
    assert repr(mod).replace("rnnlab.", "") == repr(peer)


def test_positional_arguments_like_nn_lstm():
    mod = LSTM(3, 4, 2, False, True, 0.0, True, 2)
    assert (mod.bias, mod.batch_first, mod.bidirectional, mod.proj_size) == (False, True, True, 2)


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_state_dict_loads_both_ways(kwargs):
    dropin.check_state_dict_loads_both_ways(FAMILY, kwargs)


@pytest.mark.parametrize(
    "args, kwargs",
    [*dropin.BAD_CONSTRUCTOR_ARGS, *(((3, 4), dict(proj_size=value)) for value in (-1, 4, 5, 2.0, None))],
)
def test_bad_constructor_arguments_raise_like_nn_lstm(args, kwargs):
    dropin.check_constructor_raises_like_peer(FAMILY, args, kwargs)


def test_dropout_with_one_layer_warns_like_nn_lstm():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        LSTM(3, 4, dropout=0.5)


def test_proj_size_fallback_is_counted():
    before = lstm_module.fallback_counts["proj_size"]
    dropin.compare_to_peer(FAMILY, Config(I=3, H=6, T=5, B=2, layers=2, proj_size=2))
    assert lstm_module.fallback_counts["proj_size"] == before + 2  # once per layer
    before = lstm_module.fallback_counts["proj_size"]
    dropin.compare_to_peer(FAMILY, Config(I=3, H=6, T=5, B=2, layers=2))
    assert lstm_module.fallback_counts["proj_size"] == before



@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_private_surface_like_nn_lstm(kwargs):
    dropin.check_private_surface_like_peer(FAMILY, kwargs)


@pytest.mark.parametrize("patch", list(dropin.WEIGHT_PATCHES))
def test_weight_patch_like_nn_lstm(patch):
    dropin.check_weight_patch_like_peer(FAMILY, dropin.WEIGHT_PATCHES[patch])


def test_functional_call_swaps_weights_like_nn_lstm():
    dropin.check_functional_call_swaps_weights_like_peer(FAMILY)

# ---------------------------------------------------------------------------------------------
# PackedSequence
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("layers, bidirectional, proj_size", [(1, False, 0), (2, True, 0), (2, True, 2)])
@pytest.mark.parametrize("with_state", [False, True])
def test_packed_sequence_matches_nn_lstm(enforce_sorted, layers, bidirectional, proj_size, with_state):
    dropin.check_packed_sequence_matches_peer(
        FAMILY, enforce_sorted, layers, bidirectional, with_state, proj_size=proj_size
    )


# ---------------------------------------------------------------------------------------------
# dropout between layers
# ---------------------------------------------------------------------------------------------
def test_dropout_eval_mode_and_p0_match_nn_lstm():
    dropin.check_dropout_eval_mode_and_p0_match_peer(FAMILY)
    dropin.check_dropout_p1_matches_peer(FAMILY)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_semantics(bidirectional):
    dropin.check_dropout_semantics(FAMILY, bidirectional)


# ---------------------------------------------------------------------------------------------
# bad and unusual inputs: nn.LSTM's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
def _bad_inputs():
    def state(h_shape=(2, 2, 4), c_shape=(2, 2, 4), **kw):
        return torch.randn(h_shape, **kw), torch.randn(c_shape, **kw)

    return {
        **dropin.bad_input_cases(),
        "h0 shape": (lambda: (torch.randn(5, 2, 3), state(h_shape=(2, 3, 4))), r"hidden\[0\] size"),
        "c0 shape": (lambda: (torch.randn(5, 2, 3), state(c_shape=(2, 2, 5))), r"hidden\[1\] size"),
        "h0 2-D for batched": (lambda: (torch.randn(5, 2, 3), state(h_shape=(2, 4))), "should also be 3-D"),
        "c0 3-D for unbatched": (lambda: (torch.randn(5, 3), state((2, 4), (2, 1, 4))), "should also be 2-D"),
        "h0 unbatched shape": (lambda: (torch.randn(5, 3), state((1, 4), (2, 4))), r"hidden\[0\] size"),
        "c0 on meta": (lambda: (torch.randn(5, 2, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4, device="meta"))),
                       "same device"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_raises_like_nn_lstm(case):
    dropin.check_bad_input_raises_like_peer(FAMILY, *_bad_inputs()[case])


def test_bad_state_types_name_the_argument():
    mod = LSTM(3, 4)
    with pytest.raises(TypeError, match="input must be a Tensor"):
        mod([[1.0, 2.0, 3.0]])
    for hx in (torch.zeros(1, 1, 4), (torch.zeros(1, 1, 4),), (torch.zeros(1, 1, 4), None)):
        with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
            mod(torch.randn(2, 1, 3), hx)
    with pytest.raises(RuntimeError, match=r"hx\[1\] dtype"):
        mod(torch.randn(2, 1, 3), (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4, dtype=torch.float64)))


def test_half_precision_model_is_refused_clearly():
    dropin.check_half_precision_model_is_refused_clearly(FAMILY)


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_like_nn_lstm(batch_first):
    dropin.check_empty_batch_like_peer(FAMILY, batch_first)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_propagate_like_nn_lstm(value):
    dropin.check_nan_and_inf_propagate_like_peer(FAMILY, value)


def test_non_contiguous_inputs_give_the_same_answer():
    dropin.check_non_contiguous_inputs_give_the_same_answer(FAMILY)


# ---------------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------------
def test_diagnostics_report_hidden_state_gradient_norms():
    """delta_norm is ‖∂L/∂h_t‖ of the kernel's hidden state, in original time order for both
    directions (the reverse direction's kernel runs on the time-flipped input)."""
    torch.manual_seed(0)
    mod = LSTM(3, 5, bidirectional=True, dtype=torch.float64)
    mod.diagnostics = True
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, _ = mod(x)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    stats = mod.gradient_stats
    for d in (0, 1):
        w_ih, w_hh, b_ih, b_hh = mod.all_weights[d]
        xs = x if d == 0 else x.flip(0)
        gd = g[..., 5 * d : 5 * (d + 1)]
        gd = gd if d == 0 else gd.flip(0)
        xp = (xs @ w_ih.T + b_ih + b_hh).detach().unsqueeze(0)
        zeros = torch.zeros(1, 2, 5, dtype=torch.float64)
        fwd = ref.lstm_forward(xp, w_hh.detach().unsqueeze(0), zeros, zeros)
        want = ref.lstm_backward(gd.unsqueeze(0), None, *fwd, zeros, zeros, w_hh.detach().unsqueeze(0))
        delta_norm = want[4][0].sqrt()
        dropin.assert_close_rel(stats.delta_norm(0, d), delta_norm if d == 0 else delta_norm.flip(0), 1e-12, f"dir {d}")


def test_diagnostics_with_proj_size_are_refused_clearly():
    mod = LSTM(3, 5, proj_size=2)
    mod.diagnostics = True
    with pytest.raises(NotImplementedError, match="proj_size"):
        mod(torch.randn(4, 2, 3))


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
def test_torch_compile_fullgraph_matches_eager():
    dropin.check_torch_compile_fullgraph_matches_eager(FAMILY)


def test_vmap_grad_over_stacked_modules_matches_loop():
    dropin.check_vmap_grad_over_stacked_modules_matches_loop(FAMILY)


def test_exported_from_package():
    assert rnnlab.LSTM is LSTM and rnnlab.nn.LSTM is LSTM


def test_no_warnings_on_the_fused_path():
    peer, mod = FAMILY.pair(3, 4, 2, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod(torch.randn(5, 2, 3))
