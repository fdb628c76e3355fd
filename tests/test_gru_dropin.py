"""rnnlab.GRU against torch.nn.GRU: construction, parameters, forward outputs, every gradient, diagnostics."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from torch import nn

import rnnlab
from rnnlab import reference as ref
from rnnlab.nn import GRU
from rnnlab.nn import gru as gru_module

import helpers_dropin as dropin
from helpers_dropin import Config, Family

FAMILY = Family(GRU, nn.GRU, gru_module.fallback_counts, state_names=("h",))


# ---------------------------------------------------------------------------------------------
# randomized grid against nn.GRU
# ---------------------------------------------------------------------------------------------
def _draw(rng) -> Config:
    return Config(
        I=dropin.log_uniform_int(rng, 1, 64),
        H=dropin.log_uniform_int(rng, 1, 200),
        T=dropin.log_uniform_int(rng, 1, 300),
        B=dropin.log_uniform_int(rng, 1, 48),
        layers=rng.choice([1, 2, 3]),
        bidirectional=rng.random() < 0.5,
        batch_first=rng.random() < 0.5,
        bias=rng.random() < 0.75,
        unbatched=rng.random() < 0.15,
        with_state=rng.random() < 0.6,
        dtype=rng.choice([torch.float32, torch.float64]),
    )


EXTREMES = [
    Config(I=5, H=200, T=20, B=3, dtype=torch.float32),
    Config(I=3, H=16, T=300, B=4, bidirectional=True, layers=2),
    Config(I=7, H=24, T=30, B=48, batch_first=True, dtype=torch.float32),
    Config(I=1, H=1, T=40, B=1, layers=3, bias=False),
    Config(I=4, H=12, T=1, B=5, layers=2, bidirectional=True, dtype=torch.float32),
    Config(I=6, H=9, T=25, B=1, unbatched=True, bidirectional=True, batch_first=True, layers=2),
]
GRID = dropin.seeded_grid(EXTREMES, 30, seed=2025, draw=_draw, gates=3, budget=2e7)


@pytest.mark.parametrize("cfg", GRID, ids=[f"c{i}" for i in range(len(GRID))])
def test_matches_nn_gru(cfg):
    dropin.compare_to_peer(FAMILY, cfg, seed=GRID.index(cfg))


@settings(max_examples=25, deadline=None)
@given(**dropin.shape_strategies(max_T=12))
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
]


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_same_parameters_and_init(kwargs):
    dropin.check_same_parameters_and_init(FAMILY, kwargs)


def test_positional_arguments_and_repr_like_nn_gru():
    args = (3, 4, 2, False, True, 0.0, True)
    assert repr(GRU(*args)) == repr(nn.GRU(*args))


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_state_dict_loads_both_ways(kwargs):
    dropin.check_state_dict_loads_both_ways(FAMILY, kwargs)


@pytest.mark.parametrize("args, kwargs", dropin.BAD_CONSTRUCTOR_ARGS + dropin.PROJ_SIZE_REFUSED)
def test_bad_constructor_arguments_raise_like_nn_gru(args, kwargs):
    dropin.check_constructor_raises_like_peer(FAMILY, args, kwargs)


def test_dropout_with_one_layer_warns_like_nn_gru():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        GRU(3, 4, dropout=0.5)



@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_private_surface_like_nn_gru(kwargs):
    dropin.check_private_surface_like_peer(FAMILY, kwargs)


@pytest.mark.parametrize("patch", list(dropin.WEIGHT_PATCHES))
def test_weight_patch_like_nn_gru(patch):
    dropin.check_weight_patch_like_peer(FAMILY, dropin.WEIGHT_PATCHES[patch])


def test_functional_call_swaps_weights_like_nn_gru():
    dropin.check_functional_call_swaps_weights_like_peer(FAMILY)

# ---------------------------------------------------------------------------------------------
# PackedSequence, dropout
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_packed_sequence_matches_nn_gru(enforce_sorted, layers, bidirectional, with_h0):
    dropin.check_packed_sequence_matches_peer(FAMILY, enforce_sorted, layers, bidirectional, with_h0)


def test_dropout_eval_mode_and_p0_match_nn_gru():
    dropin.check_dropout_eval_mode_and_p0_match_peer(FAMILY)


def test_dropout_p1_matches_nn_gru():
    dropin.check_dropout_p1_matches_peer(FAMILY)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_semantics(bidirectional):
    dropin.check_dropout_semantics(FAMILY, bidirectional)


# ---------------------------------------------------------------------------------------------
# bad and unusual inputs: nn.GRU's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(dropin.one_state_bad_input_cases()))
def test_bad_input_raises_like_nn_gru(case):
    dropin.check_bad_input_raises_like_peer(FAMILY, *dropin.one_state_bad_input_cases()[case])


def test_non_tensor_input_names_the_argument():
    dropin.check_one_state_non_tensor_inputs_name_the_argument(FAMILY)


def test_half_precision_model_is_refused_clearly():
    dropin.check_half_precision_model_is_refused_clearly(FAMILY)


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_like_nn_gru(batch_first):
    dropin.check_empty_batch_like_peer(FAMILY, batch_first)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_propagate_like_nn_gru(value):
    dropin.check_nan_and_inf_propagate_like_peer(FAMILY, value)


def test_non_contiguous_inputs_give_the_same_answer():
    dropin.check_non_contiguous_inputs_give_the_same_answer(FAMILY)


# ---------------------------------------------------------------------------------------------
# gradient diagnostics
# ---------------------------------------------------------------------------------------------
def _stepwise_directions(mod: GRU, x: torch.Tensor):
    """Both directions of a one-layer bidirectional GRU as chains of one-step reference calls,
    each h_t its own tensor (retain_grad: its .grad is the total ∂L/∂h_t), in processing order."""
    H = mod.hidden_size
    chains = []
    for suffix, xs in (("", x), ("_reverse", x.flip(0))):
        w_ih, w_hh, b_ih, b_hh = (getattr(mod, f"{k}_l0{suffix}") for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        xp = xs @ w_ih.T + b_ih + torch.cat([b_hh[: 2 * H], torch.zeros_like(b_hh[2 * H :])])
        h, chain = x.new_zeros(1, x.shape[1], H), []
        for t in range(x.shape[0]):
            h = ref.gru_forward(xp[t][None, None], w_hh[None], b_hh[None, 2 * H :], h)[0][:, 0]
            h.retain_grad()
            chain.append(h)
        chains.append(chain)
    return chains


def test_gradient_stats_are_the_hidden_state_gradients():
    """‖δ_t‖ of both directions (original time order) and the forward ratio ‖v_t‖²/‖δ_t‖², with
    v_t = δ_{t-1} − ∂⁺L/∂h_{t-1} (the skip path included), against autograd."""
    torch.manual_seed(0)
    T, B, I, H = 9, 3, 4, 6
    mod = GRU(I, H, bidirectional=True, dtype=torch.float64)
    mod.diagnostics = True
    x = torch.randn(T, B, I, dtype=torch.float64)
    g = torch.randn(T, B, 2 * H, dtype=torch.float64)
    (mod(x)[0] * g).sum().backward()
    stats = mod.gradient_stats

    fwd, rev = _stepwise_directions(mod, x)
    out = torch.cat([torch.cat(fwd), torch.cat(rev[::-1])], -1)
    (out * g).sum().backward()
    delta_f = torch.cat([h.grad for h in fwd])  # [T, B, H], time order
    delta_r = torch.cat([h.grad for h in rev[::-1]])  # original time order
    torch.testing.assert_close(stats.delta_norm(0, 0), delta_f.norm(dim=-1))
    torch.testing.assert_close(stats.delta_norm(0, 1), delta_r.norm(dim=-1))
    v = delta_f[:-1] - g[:-1, :, :H]  # v_t for t = 2 … T
    torch.testing.assert_close(stats.ratio(0, 0)[1:], v.square().sum(-1) / delta_f[1:].square().sum(-1))
    assert stats.omega.shape == stats.n_valid.shape == (1, 2)


def test_gradient_stats_before_backward_raise():
    with pytest.raises(RuntimeError, match="gru.diagnostics = True"):
        GRU(3, 4).gradient_stats


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
def test_torch_compile_fullgraph_matches_eager():
    dropin.check_torch_compile_fullgraph_matches_eager(FAMILY)


def test_vmap_grad_over_stacked_modules_matches_loop():
    dropin.check_vmap_grad_over_stacked_modules_matches_loop(FAMILY)


def test_exported_from_package():
    assert rnnlab.GRU is GRU and rnnlab.nn.GRU is GRU
