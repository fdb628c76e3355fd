"""rnnlab.RNN, rnnlab.LSTM and rnnlab.GRU against torch.nn.RNN, nn.LSTM and nn.GRU: construction,
parameters, nn's private surface, forward outputs and every gradient (a randomized grid per
cell), PackedSequence, dropout, bad and unusual inputs, diagnostics, torch.compile, torch.func.

Every test runs for each cell family (``cell``: "rnn", "lstm", "gru"; see helpers_dropin.FAMILIES)
unless it is about one cell's own feature. The checks of nn's behaviour call by call are in
test_dropin_nn_parity.py, second derivatives in test_dropin_double_backward.py.
"""
from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrizations, prune
from torch.nn.utils.rnn import pack_sequence

import rnnlab
from rnnlab import reference as ref

import helpers_dropin as dropin
from helpers_dropin import FAMILIES, Config, assert_close_rel, split_result

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
F64 = torch.float64
CELLS = list(FAMILIES)


# ---------------------------------------------------------------------------------------------
# randomized grid against the torch.nn peer
# ---------------------------------------------------------------------------------------------
def _draw_rnn(rng) -> Config:
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


def _draw_lstm(rng) -> Config:
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


def _draw_gru(rng) -> Config:
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


def _extremes(H: int, T: int, B: int, **large_batch) -> list[Config]:
    """The corners every cell's grid starts with: a wide float32 layer (H), a long bidirectional
    stack (T), a large batch_first batch (B, with options large_batch), one unit without bias,
    one step, an unbatched sequence."""
    return [
        Config(I=5, H=H, T=20, B=3, dtype=torch.float32),
        Config(I=3, H=16, T=T, B=4, bidirectional=True, layers=2),
        Config(I=7, H=24, T=30, B=B, batch_first=True, dtype=torch.float32, **large_batch),
        Config(I=1, H=1, T=40, B=1, layers=3, bias=False),
        Config(I=4, H=12, T=1, B=5, layers=2, bidirectional=True, dtype=torch.float32),
        Config(I=6, H=9, T=25, B=1, unbatched=True, bidirectional=True, batch_first=True, layers=2),
    ]


#: {cell: the grid}: the extremes, then seeded draws within a budget of recurrent work (the
#: torch.nn peer is the slow side on 2 cores)
GRIDS = {
    "rnn": dropin.seeded_grid(_extremes(H=300, T=500, B=64, nonlinearity="relu"), 40, seed=2024, draw=_draw_rnn,
                              gates=1, budget=3e7),
    "lstm": dropin.seeded_grid(_extremes(H=200, T=300, B=64) + [
        Config(I=3, H=10, T=12, B=4, layers=2, bidirectional=True, proj_size=4)
    ], 30, seed=2025, draw=_draw_lstm, gates=4, budget=1e7),
    "gru": dropin.seeded_grid(_extremes(H=200, T=300, B=48), 30, seed=2025, draw=_draw_gru, gates=3, budget=2e7),
}


@pytest.mark.parametrize(
    "cell, index", [(cell, i) for cell, grid in GRIDS.items() for i in range(len(grid))],
    ids=[f"{cell}-c{i}" for cell, grid in GRIDS.items() for i in range(len(grid))],
)
def test_matches_nn(cell, index):
    dropin.compare_to_peer(FAMILIES[cell], GRIDS[cell][index], seed=index)


#: {cell: (examples, longest sequence, extra strategies)} of the small-shape property test
PROPERTY = {
    "rnn": (25, 12, dict(nonlinearity=st.sampled_from(["tanh", "relu"]))),
    "lstm": (15, 10, {}),
    "gru": (25, 12, {}),
}


@pytest.mark.parametrize("cell", CELLS)
def test_property_small_shapes_match_nn(cell):
    examples, max_T, extra = PROPERTY[cell]

    @settings(max_examples=examples, deadline=None)
    @given(**dropin.shape_strategies(max_T), **extra)
    def check(**fields):
        seed = fields["T"] * 1000 + fields["B"] * 100 + fields["H"]
        dropin.compare_to_peer(FAMILIES[cell], Config(**fields), seed=seed)

    check()


# ---------------------------------------------------------------------------------------------
# construction, parameters, state_dict
# ---------------------------------------------------------------------------------------------
_CONSTRUCT_COMMON = [
    dict(),
    dict(num_layers=3, bidirectional=True),
    dict(num_layers=2, bias=False, batch_first=True),
    dict(num_layers=2, dropout=0.3, dtype=F64),
]
#: {cell: constructor options}: every kind of layer each cell builds
CONSTRUCT = {
    "rnn": [*_CONSTRUCT_COMMON[:2], dict(num_layers=2, bias=False, batch_first=True, nonlinearity="relu"),
            _CONSTRUCT_COMMON[3]],
    "lstm": [*_CONSTRUCT_COMMON, dict(num_layers=2, bidirectional=True, proj_size=3), dict(bias=False, proj_size=2)],
    "gru": _CONSTRUCT_COMMON,
}
CONSTRUCT_CASES = [(cell, kwargs) for cell, options in CONSTRUCT.items() for kwargs in options]
COMMON_ATTRS = ("input_size", "hidden_size", "num_layers", "mode", "bias", "batch_first", "dropout",
                "bidirectional", "proj_size")


def _attrs(cell: str) -> tuple[str, ...]:
    return (*COMMON_ATTRS, "nonlinearity") if cell == "rnn" else COMMON_ATTRS


def _nn_repr(module: nn.Module) -> str:
    """repr of a drop-in as nn's: rnnlab.RNN also shows a nonlinearity other than tanh, nn.RNN does not."""
    return repr(module).replace(", nonlinearity='relu'", "")


@pytest.mark.parametrize("cell, kwargs", CONSTRUCT_CASES)
def test_same_parameters_init_and_repr(cell, kwargs):
    """Same parameter names, shapes, dtypes and values under the same seed; same attributes, all_weights and repr."""
    family = FAMILIES[cell]
    peer, mod = family.pair(5, 7, **kwargs, seed=3)
    assert not isinstance(mod, family.peer)
    peer_params, mod_params = list(peer.named_parameters()), list(mod.named_parameters())
    assert [n for n, _ in mod_params] == [n for n, _ in peer_params]
    for (name, p), (_, q) in zip(peer_params, mod_params):
        assert q.shape == p.shape and q.dtype == p.dtype, name
        assert torch.equal(q, p), f"{name}: same seed, different init"
    for attr in _attrs(cell):
        assert getattr(mod, attr) == getattr(peer, attr), attr
    assert [[tuple(p.shape) for p in ps] for ps in mod.all_weights] == [
        [tuple(p.shape) for p in ps] for ps in peer.all_weights
    ]
    assert _nn_repr(mod) == repr(peer)
    mod.flatten_parameters()  # no-op, for compatibility


#: {cell: positional constructor arguments}: nn's documented order, every option not the default
POSITIONAL = {
    "rnn": (3, 4, 2, "relu", False, True, 0.0, True),
    "lstm": (3, 4, 2, False, True, 0.0, True, 2),
    "gru": (3, 4, 2, False, True, 0.0, True),
}


@pytest.mark.parametrize("cell", CELLS)
def test_positional_arguments_like_nn(cell):
    family = FAMILIES[cell]
    peer, mod = family.pair(*POSITIONAL[cell])
    for attr in _attrs(cell):
        assert getattr(mod, attr) == getattr(peer, attr), attr
    assert _nn_repr(mod) == repr(peer)
    if cell == "rnn":
        assert "nonlinearity='relu'" in repr(mod)


@pytest.mark.parametrize("cell, kwargs", CONSTRUCT_CASES)
def test_state_dict_loads_both_ways(cell, kwargs):
    family = FAMILIES[cell]
    torch.manual_seed(0)
    peer = family.peer(5, 7, **kwargs)
    torch.manual_seed(1)
    mod = family.module(5, 7, **kwargs)
    mod.load_state_dict(peer.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mod.parameters(), peer.parameters()))
    torch.manual_seed(2)
    mod.reset_parameters()
    peer.load_state_dict(mod.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mod.parameters(), peer.parameters()))


#: (args, kwargs) that every torch.nn recurrent layer refuses
_BAD_CONSTRUCTOR_ARGS = [
    ((3, 4), dict(dropout=1.5)),
    ((3, 4), dict(dropout=True)),
    ((3, 4), dict(bias=1)),
    ((3, 4), dict(batch_first=None)),
    ((0, 4), {}),
    ((3.0, 4), {}),
    ((3, 0), {}),
    ((3, 4), dict(num_layers=0)),
]
#: nn.RNN and nn.GRU refuse the proj_size keyword whatever its value, before any other check
_PROJ_SIZE_REFUSED = [((3, 4), dict(proj_size=value)) for value in (0, 2, -1, None)] + [
    ((3, 4), dict(proj_size=0, dropout=2.0))
]
BAD_CONSTRUCTOR_ARGS = {
    "rnn": [((3, 4), dict(nonlinearity="sigmoid")), ((3, 4), dict(nonlinearity="sigmoid", proj_size=0)),
            *_BAD_CONSTRUCTOR_ARGS, *_PROJ_SIZE_REFUSED],
    "lstm": [*_BAD_CONSTRUCTOR_ARGS, *(((3, 4), dict(proj_size=value)) for value in (-1, 4, 5, 2.0, None))],
    "gru": _BAD_CONSTRUCTOR_ARGS + _PROJ_SIZE_REFUSED,
}


@pytest.mark.parametrize(
    "cell, args, kwargs", [(cell, *case) for cell, cases in BAD_CONSTRUCTOR_ARGS.items() for case in cases]
)
def test_bad_constructor_arguments_raise_like_nn(cell, args, kwargs):
    """The same exception type and message as nn."""
    family = FAMILIES[cell]
    with pytest.raises(Exception) as expected:
        family.peer(*args, **kwargs)
    with pytest.raises(type(expected.value)) as actual:
        family.module(*args, **kwargs)
    assert str(actual.value) == str(expected.value)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_with_one_layer_warns_like_nn(cell):
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        FAMILIES[cell].module(3, 4, dropout=0.5)


def test_lstm_proj_size_fallback_is_counted():
    family, counts = FAMILIES["lstm"], FAMILIES["lstm"].fallback_counts
    before = counts["proj_size"]
    dropin.compare_to_peer(family, Config(I=3, H=6, T=5, B=2, layers=2, proj_size=2))
    assert counts["proj_size"] == before + 2  # once per layer
    before = counts["proj_size"]
    dropin.compare_to_peer(family, Config(I=3, H=6, T=5, B=2, layers=2))
    assert counts["proj_size"] == before


# ---------------------------------------------------------------------------------------------
# nn.RNNBase's private surface: _flat_weights and the code that patches or swaps weights
# ---------------------------------------------------------------------------------------------
def _pickled(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("cell, kwargs", CONSTRUCT_CASES)
def test_private_surface_like_nn(cell, kwargs):
    """_flat_weights_names, _all_weights and _flat_weights as nn's: same names, order and values,
    and _flat_weights the module's own weights, also after a move, deepcopy and pickling."""
    peer, mod = FAMILIES[cell].pair(5, 7, **kwargs, seed=3)
    for change in (lambda m: m, nn.Module.double, lambda m: m.to(torch.float32), copy.deepcopy, _pickled):
        peer, mod = change(peer), change(mod)
        assert mod._flat_weights_names == peer._flat_weights_names
        assert mod._all_weights == peer._all_weights
        assert all(w is getattr(mod, name) for w, name in zip(mod._flat_weights, mod._flat_weights_names, strict=True))
        assert all(map(torch.equal, mod._flat_weights, peer._flat_weights))


def _replace_weight_hh(module: nn.Module) -> None:
    module.weight_hh_l0 = nn.Parameter(module.weight_hh_l0.detach() * 2)


def _patch_flat_weights(module: nn.Module) -> None:
    """What some weight-drop code does: the forward uses the tensor in _flat_weights (a constant
    here, so weight_hh_l0 itself gets no gradient)."""
    module._flat_weights[module._flat_weights_names.index("weight_hh_l0")] = module.weight_hh_l0.detach() * 0.5


def _awd_lstm_weight_drop(module: nn.Module) -> None:
    """AWD-LSTM's WeightDrop: the raw weight becomes a new parameter, and before every forward
    a dropped-out copy of it is assigned as a plain tensor attribute."""
    raw = module.weight_hh_l0
    del module._parameters["weight_hh_l0"]
    module.register_parameter("weight_hh_l0_raw", nn.Parameter(raw.detach().clone()))
    module.register_forward_pre_hook(
        lambda m, _: setattr(m, "weight_hh_l0", nn.functional.dropout(m.weight_hh_l0_raw, 0.5, training=True)))


#: {name: patch(module)}: what code written for torch.nn does to an RNN's weights (each one to
#: weight_hh_l0, which every configuration has)
WEIGHT_PATCHES = {
    "setattr a new Parameter": _replace_weight_hh,
    "patched _flat_weights": _patch_flat_weights,
    "AWD-LSTM weight drop": _awd_lstm_weight_drop,
    "orthogonal parametrization": lambda m: parametrizations.orthogonal(m, "weight_hh_l0"),
    "weight_norm parametrization": lambda m: parametrizations.weight_norm(m, "weight_hh_l0"),
    "weight_norm hook": lambda m: torch.nn.utils.weight_norm(m, "weight_hh_l0"),
    "prune": lambda m: prune.l1_unstructured(m, "weight_hh_l0", amount=0.5),
}


@pytest.mark.parametrize("patch", list(WEIGHT_PATCHES))
@pytest.mark.parametrize("cell", CELLS)
def test_weight_patch_like_nn(cell, patch):
    """After the same patch, the same outputs and gradients for every parameter as nn, before
    and after an in-place update of the parameters (which the next forward must see)."""
    peer, mod = FAMILIES[cell].pair(4, 4, 2, bidirectional=True, dtype=F64)
    x = torch.randn(5, 3, 4, dtype=F64)
    for model in (peer, mod):
        torch.manual_seed(1)  # the same random completion of a non-square orthogonal weight
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the deprecated torch.nn.utils.weight_norm
            WEIGHT_PATCHES[patch](model)
    assert [n for n, _ in mod.named_parameters()] == [n for n, _ in peer.named_parameters()]
    for step in range(2):
        results = []
        for model in (peer, mod):
            torch.manual_seed(step)  # the same weight-drop mask
            out, finals = split_result(model(x))
            loss = out.square().sum() + sum(h.sum() for h in finals)
            results.append((out, torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)))
        (out_e, grads_e), (out_a, grads_a) = results
        assert_close_rel(out_a, out_e, 1e-12, f"step {step} output")
        for (name, _), a, e in zip(peer.named_parameters(), grads_a, grads_e, strict=True):
            assert (a is None) == (e is None), name
            if e is not None:
                assert_close_rel(a, e, 1e-12, f"step {step} grad {name}")
        with torch.no_grad():
            for p in (*peer.parameters(), *mod.parameters()):
                p.mul_(0.9)


@pytest.mark.parametrize("cell", CELLS)
def test_functional_call_swaps_weights_like_nn(cell):
    """torch.func.functional_call with another weight_hh_l0, then a plain forward: nn's results."""
    peer, mod = FAMILIES[cell].pair(4, 4, dtype=F64)
    x = torch.randn(5, 3, 4, dtype=F64)
    swapped = {"weight_hh_l0": torch.randn(peer.weight_hh_l0.shape, dtype=F64)}
    for call in (lambda m: torch.func.functional_call(m, swapped, (x,)), lambda m: m(x)):
        assert_close_rel(call(mod)[0], call(peer)[0], 1e-12, "output")


# ---------------------------------------------------------------------------------------------
# PackedSequence
# ---------------------------------------------------------------------------------------------
#: {cell: (layers, bidirectional, options)} of the packed comparisons
PACKED = {
    "rnn": [(1, False, {}), (2, True, {})],
    "lstm": [(1, False, {}), (2, True, {}), (2, True, dict(proj_size=2))],
    "gru": [(1, False, {}), (2, True, {})],
}


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize(
    "cell, layers, bidirectional, options", [(cell, *case) for cell, cases in PACKED.items() for case in cases]
)
def test_packed_sequence_matches_nn(cell, layers, bidirectional, options, enforce_sorted, with_state):
    """Packed in, packed out: same data, indices, final states and gradients; counted once."""
    family = FAMILIES[cell]
    peer, mod = family.pair(3, 6, layers, bidirectional=bidirectional, dtype=F64, **options)
    lengths = [9, 6, 6, 2, 1] if enforce_sorted else [4, 9, 1, 6, 6]
    gen = torch.Generator().manual_seed(7)
    seqs = [torch.randn(n, 3, generator=gen, dtype=F64) for n in lengths]
    LD = layers * (2 if bidirectional else 1)
    states = None
    if with_state:
        sizes = family.state_sizes(6, options.get("proj_size", 0))
        states = [torch.randn(LD, len(lengths), size, generator=gen, dtype=F64) for size in sizes]
    results = []
    before = family.fallback_counts["packed_padded"]
    for model in (peer, mod):
        leaves = [s.clone().requires_grad_() for s in seqs]
        hx = None if states is None else [h.clone().requires_grad_() for h in states]
        out, finals = split_result(model(pack_sequence(leaves, enforce_sorted=enforce_sorted), family.hx(hx)))
        outputs = (out.data, *finals)
        cotangents = [torch.randn(t.shape, generator=torch.Generator().manual_seed(i), dtype=F64)
                      for i, t in enumerate(outputs)]
        wrt = leaves + (hx if hx is not None else []) + list(model.parameters())
        loss = sum((t * g).sum() for t, g in zip(outputs, cotangents))
        results.append((out, finals, torch.autograd.grad(loss, wrt)))
    assert family.fallback_counts["packed_padded"] == before + 1
    (out_e, finals_e, g_e), (out_a, finals_a, g_a) = results
    assert torch.equal(out_a.batch_sizes, out_e.batch_sizes)
    for idx in ("sorted_indices", "unsorted_indices"):
        e, a = getattr(out_e, idx), getattr(out_a, idx)
        assert (e is None and a is None) or torch.equal(a, e)
    assert_close_rel(out_a.data, out_e.data, 1e-12, "packed output")
    for name, a, e in zip(family.state_names, finals_a, finals_e, strict=True):
        assert_close_rel(a, e, 1e-12, f"packed {name}_n")
    for a, e in zip(g_a, g_e, strict=True):
        assert_close_rel(a, e, 1e-12, "packed grad")


# ---------------------------------------------------------------------------------------------
# dropout between layers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_eval_mode_and_p0_match_nn(cell):
    x = torch.randn(8, 3, 4, dtype=F64)
    peer, mod = FAMILIES[cell].pair(4, 5, 3, dropout=0.5, bidirectional=True, dtype=F64)
    peer.eval(), mod.eval()
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "eval mode")
    peer, mod = FAMILIES[cell].pair(4, 5, 3, dropout=0.0, dtype=F64)
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "train mode, p = 0")


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_p1_matches_nn(cell):
    """p = 1 zeroes every inter-layer input: deterministic, so comparable bit for bit."""
    peer, mod = FAMILIES[cell].pair(4, 5, 2, dropout=1.0, bidirectional=True, dtype=F64)
    x = torch.randn(6, 3, 4, dtype=F64)
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "train mode, p = 1")


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_semantics(cell, bidirectional):
    """Training mode: inverted dropout (F.dropout) on each layer's output except the last one.

    The reference is a stack of one-layer peers with F.dropout in between, run under the same
    seed (the kernels draw no random numbers, so both draw the same masks).
    """
    family = FAMILIES[cell]
    L, p, D = 3, 0.4, 2 if bidirectional else 1
    torch.manual_seed(0)
    mod = family.module(4, 5, L, dropout=p, bidirectional=bidirectional, dtype=F64)
    layers = []
    for layer in range(L):
        single = family.peer(4 if layer == 0 else 5 * D, 5, bidirectional=bidirectional, dtype=F64)
        single.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in mod.state_dict().items()
                                if f"_l{layer}" in k})
        layers.append(single)
    x = torch.randn(7, 2, 4, dtype=F64)
    torch.manual_seed(123)
    out = mod(x)[0]
    torch.manual_seed(123)
    expected = x
    for layer, single in enumerate(layers):
        expected = single(expected)[0]
        if layer < L - 1:
            expected = torch.nn.functional.dropout(expected, p, training=True)
    assert_close_rel(out, expected, 1e-12, "dropout stack")
    mod.eval()
    assert (mod(x)[0] - out).abs().max() > 1e-3, "train-mode dropout had no effect"


# ---------------------------------------------------------------------------------------------
# bad and unusual inputs: nn's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
def _lstm_states(h_shape=(2, 2, 4), c_shape=(2, 2, 4), **kw):
    return torch.randn(h_shape, **kw), torch.randn(c_shape, **kw)


#: {case: (make() -> (x, hx), message)} about the input alone (hx None), for a (3, 4, num_layers=2) module
_BAD_INPUTS = {
    "input dtype": (lambda: (torch.randn(5, 2, 3, dtype=F64), None), "dtype"),
    "integer input": (lambda: (torch.ones(5, 2, 3, dtype=torch.long), None), "dtype"),
    "input 4-D": (lambda: (torch.randn(5, 2, 3, 1), None), "2D or 3D"),
    "input 1-D": (lambda: (torch.randn(5), None), "2D or 3D"),
    "input size": (lambda: (torch.randn(5, 2, 2), None), "input_size"),
    "input on meta": (lambda: (torch.randn(5, 2, 3, device="meta"), None), "same device"),
    "T = 0": (lambda: (torch.randn(0, 2, 3), None), "sequence length"),
    "T = 0 unbatched": (lambda: (torch.randn(0, 3), None), "sequence length"),
}
#: the cases of nn.RNN's and nn.GRU's lone state h0 (hx a Tensor)
_ONE_STATE_BAD_INPUTS = {
    "h0 shape": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 3, 4)), "hidden size"),
    "h0 2-D for batched": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 4)), "hx should also be 3-D"),
    "h0 3-D for unbatched": (lambda: (torch.randn(5, 3), torch.randn(2, 1, 4)), "hx should also be 2-D"),
    "h0 unbatched shape": (lambda: (torch.randn(5, 3), torch.randn(1, 4)), "hidden size"),
    "h0 dtype": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 2, 4, dtype=F64)), "hx dtype"),
    "h0 on meta": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 2, 4, device="meta")), "same device"),
}
#: the cases of nn.LSTM's (h0, c0)
_LSTM_BAD_INPUTS = {
    "h0 shape": (lambda: (torch.randn(5, 2, 3), _lstm_states(h_shape=(2, 3, 4))), r"hidden\[0\] size"),
    "c0 shape": (lambda: (torch.randn(5, 2, 3), _lstm_states(c_shape=(2, 2, 5))), r"hidden\[1\] size"),
    "h0 2-D for batched": (lambda: (torch.randn(5, 2, 3), _lstm_states(h_shape=(2, 4))), "should also be 3-D"),
    "c0 3-D for unbatched": (lambda: (torch.randn(5, 3), _lstm_states((2, 4), (2, 1, 4))), "should also be 2-D"),
    "h0 unbatched shape": (lambda: (torch.randn(5, 3), _lstm_states((1, 4), (2, 4))), r"hidden\[0\] size"),
    "c0 on meta": (lambda: (torch.randn(5, 2, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4, device="meta"))),
                   "same device"),
}
BAD_INPUTS = {
    "rnn": _BAD_INPUTS | _ONE_STATE_BAD_INPUTS,
    "lstm": _BAD_INPUTS | _LSTM_BAD_INPUTS,
    "gru": _BAD_INPUTS | _ONE_STATE_BAD_INPUTS,
}


@pytest.mark.parametrize("cell, case", [(cell, case) for cell, cases in BAD_INPUTS.items() for case in cases])
def test_bad_input_raises_like_nn(cell, case):
    """nn's exception type, with a message that matches the case's."""
    make, message = BAD_INPUTS[cell][case]
    peer, mod = FAMILIES[cell].pair(3, 4, 2)
    x, hx = make()
    with pytest.raises(Exception) as expected:
        peer(x, hx)
    with pytest.raises(type(expected.value), match=message):
        mod(x, hx)


#: {cell: [(hx, exception type, message)]}: states of the wrong kind (nn fails on them deep
#: inside, if at all): an error naming the argument
BAD_STATES = {
    "rnn": [([0.0] * 4, TypeError, "hx must be a Tensor")],
    "lstm": [
        *((hx, TypeError, r"hx must be a tuple \(h0, c0\)")
          for hx in (torch.zeros(1, 1, 4), (torch.zeros(1, 1, 4),), (torch.zeros(1, 1, 4), None))),
        ((torch.zeros(1, 1, 4), torch.zeros(1, 1, 4, dtype=F64)), RuntimeError, r"hx\[1\] dtype"),
    ],
    "gru": [([0.0] * 4, TypeError, "hx must be a Tensor")],
}


@pytest.mark.parametrize("cell", CELLS)
def test_non_tensor_input_and_bad_states_name_the_argument(cell):
    mod = FAMILIES[cell].module(3, 4)
    with pytest.raises(TypeError, match="input must be a Tensor"):
        mod([[1.0, 2.0, 3.0]])
    for hx, error, message in BAD_STATES[cell]:
        with pytest.raises(error, match=message):
            mod(torch.randn(2, 1, 3), hx)


@pytest.mark.parametrize("cell", CELLS)
def test_half_precision_model_is_refused_clearly(cell):
    mod = FAMILIES[cell].module(3, 4, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float32 or float64"):
        mod(torch.randn(5, 2, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch_like_nn(cell, batch_first):
    peer, mod = FAMILIES[cell].pair(3, 4, 2, bidirectional=True, batch_first=batch_first)
    x = torch.randn((0, 5, 3) if batch_first else (5, 0, 3), requires_grad=True)
    (out_e, finals_e), (out_a, finals_a) = split_result(peer(x)), split_result(mod(x))
    assert out_a.shape == out_e.shape and [a.shape for a in finals_a] == [e.shape for e in finals_e]
    (out_a.sum() + sum(a.sum() for a in finals_a)).backward()
    assert x.grad.shape == x.shape and mod.weight_hh_l0.grad.abs().max() == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("cell", CELLS)
def test_nan_and_inf_propagate_like_nn(cell, value):
    peer, mod = FAMILIES[cell].pair(3, 4, 2, dtype=F64)
    x = torch.randn(6, 3, 3, dtype=F64)
    x[2, 1, 0] = value
    (out_e, finals_e), (out_a, finals_a) = split_result(peer(x)), split_result(mod(x))
    for a, e in ((out_a, out_e), *zip(finals_a, finals_e)):
        assert torch.equal(a.isnan(), e.isnan())
        finite = ~e.isnan()
        assert_close_rel(a[finite], e[finite], 1e-12, "finite part")


@pytest.mark.parametrize("cell", CELLS)
def test_non_contiguous_inputs_give_the_same_answer(cell):
    """Transposed inputs give the contiguous inputs' answer.

    Transposed states (h0, c0) reach only rnnlab's kernels, which read them contiguous: bitwise
    the same results. A transposed x reaches torch's GEMM first (the input projection), which
    picks its kernel, and so its order of summation, by the strides and the CPU (AMD and Intel
    round differently): the results may differ by a reordering of sums, the kind of difference
    the comparisons against torch.nn allow for, so they get the same float64 tolerance.
    """
    family = FAMILIES[cell]
    torch.manual_seed(0)
    mod = family.module(3, 4, 2, bidirectional=True, batch_first=True, dtype=F64)
    x = torch.randn(6, 5, 3, dtype=F64)
    states = [torch.randn(4, 6, 4, dtype=F64) for _ in family.state_names]
    x_strided = torch.randn(5, 6, 3, dtype=F64).transpose(0, 1).copy_(x)
    states_strided = [torch.randn(6, 4, 4, dtype=F64).transpose(0, 1).copy_(s) for s in states]
    assert not any(t.is_contiguous() for t in (x_strided, *states_strided))
    expected = split_result(mod(x, family.hx(states)))
    out, finals = split_result(mod(x, family.hx(states_strided)))
    assert torch.equal(out, expected[0]) and all(map(torch.equal, finals, expected[1]))
    out, finals = split_result(mod(x_strided, family.hx(states)))
    for name, a, e in zip(("output", *family.state_names), (out, *finals), (expected[0], *expected[1]), strict=True):
        assert_close_rel(a, e, dropin.TOL[F64], f"strided x: {name}")


@pytest.mark.parametrize("cell", CELLS)
def test_no_warnings_on_the_fused_path(cell):
    peer, mod = FAMILIES[cell].pair(3, 4, 2, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod(torch.randn(5, 2, 3))


# ---------------------------------------------------------------------------------------------
# gradient diagnostics of the LSTM and the GRU (the RNN's: test_diagnostics.py)
# ---------------------------------------------------------------------------------------------
def test_lstm_diagnostics_report_hidden_state_gradient_norms():
    """delta_norm is ‖∂L/∂h_t‖ of the kernel's hidden state, in original time order for both
    directions (the reverse direction's kernel runs on the time-flipped input)."""
    torch.manual_seed(0)
    mod = rnnlab.LSTM(3, 5, bidirectional=True, dtype=F64)
    mod.diagnostics = True
    x = torch.randn(6, 2, 3, dtype=F64)
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
        zeros = torch.zeros(1, 2, 5, dtype=F64)
        fwd = ref.lstm_forward(xp, w_hh.detach().unsqueeze(0), zeros, zeros)
        want = ref.lstm_backward(gd.unsqueeze(0), None, *fwd, zeros, zeros, w_hh.detach().unsqueeze(0))
        delta_norm = want[4][0].sqrt()
        assert_close_rel(stats.delta_norm(0, d), delta_norm if d == 0 else delta_norm.flip(0), 1e-12, f"dir {d}")


def test_lstm_diagnostics_with_proj_size_are_refused_clearly():
    mod = rnnlab.LSTM(3, 5, proj_size=2)
    mod.diagnostics = True
    with pytest.raises(NotImplementedError, match="proj_size"):
        mod(torch.randn(4, 2, 3))


def _stepwise_gru_directions(mod: rnnlab.GRU, x: torch.Tensor):
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


def test_gru_gradient_stats_are_the_hidden_state_gradients():
    """‖δ_t‖ of both directions (original time order) and the forward ratio ‖v_t‖²/‖δ_t‖², with
    v_t = δ_{t-1} − ∂⁺L/∂h_{t-1} (the skip path included), against autograd."""
    torch.manual_seed(0)
    T, B, I, H = 9, 3, 4, 6
    mod = rnnlab.GRU(I, H, bidirectional=True, dtype=F64)
    mod.diagnostics = True
    x = torch.randn(T, B, I, dtype=F64)
    g = torch.randn(T, B, 2 * H, dtype=F64)
    (mod(x)[0] * g).sum().backward()
    stats = mod.gradient_stats

    fwd, rev = _stepwise_gru_directions(mod, x)
    out = torch.cat([torch.cat(fwd), torch.cat(rev[::-1])], -1)
    (out * g).sum().backward()
    delta_f = torch.cat([h.grad for h in fwd])  # [T, B, H], time order
    delta_r = torch.cat([h.grad for h in rev[::-1]])  # original time order
    torch.testing.assert_close(stats.delta_norm(0, 0), delta_f.norm(dim=-1))
    torch.testing.assert_close(stats.delta_norm(0, 1), delta_r.norm(dim=-1))
    v = delta_f[:-1] - g[:-1, :, :H]  # v_t for t = 2 … T
    torch.testing.assert_close(stats.ratio(0, 0)[1:], v.square().sum(-1) / delta_f[1:].square().sum(-1))
    assert stats.omega.shape == stats.n_valid.shape == (1, 2)


def test_gru_gradient_stats_before_backward_raise():
    with pytest.raises(RuntimeError, match="gru.diagnostics = True"):
        rnnlab.GRU(3, 4).gradient_stats


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
class _Model(nn.Module):
    """The drop-in (input 3, hidden 8, 2 layers, bidirectional, batch_first) and a linear head."""

    def __init__(self, family):
        super().__init__()
        self.rnn = family.module(3, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        out, finals = split_result(self.rnn(x))
        return self.head(out).square().mean() + sum(h.square().mean() for h in finals)


@pytest.mark.parametrize("cell", CELLS)
def test_torch_compile_fullgraph_matches_eager(cell):
    torch.manual_seed(0)
    model = _Model(FAMILIES[cell])
    if cell == "rnn":
        model.rnn.regularizer = 2.0  # the regularizer is part of the compiled backward too
    x = torch.randn(4, 10, 3)
    loss = model(x)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss_c = compiled(x)
    grads_c = torch.autograd.grad(loss_c, list(model.parameters()))
    assert_close_rel(loss_c, loss, 1e-6, "compiled loss")
    for g_c, g in zip(grads_c, grads, strict=True):
        assert_close_rel(g_c, g, 1e-6, "compiled grad")


@pytest.mark.parametrize("cell", CELLS)
def test_vmap_grad_over_stacked_modules_matches_loop(cell):
    """An ensemble of drop-ins via torch.func (torch.nn's have no vmap rule, pytorch#105982)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    family = FAMILIES[cell]
    torch.manual_seed(0)
    models = [family.module(2, 6, dtype=F64) for _ in range(3)]
    params, _ = stack_module_state(models)
    template = family.module(2, 6, dtype=F64).to("meta")
    x = torch.randn(7, 4, 2, dtype=F64)

    def loss_of(result):
        out, finals = split_result(result)
        return out.square().sum() + sum(h.sum() for h in finals)

    grads = vmap(grad(lambda p, x: loss_of(functional_call(template, p, (x,)))), in_dims=(0, None))(params, x)
    for i, model in enumerate(models):
        expected = torch.autograd.grad(loss_of(model(x)), list(model.parameters()))
        for (name, _), e in zip(model.named_parameters(), expected):
            assert_close_rel(grads[name][i], e, 1e-12, f"vmap grad {name}")


@pytest.mark.parametrize("cell", CELLS)
def test_exported_from_package(cell):
    cls = FAMILIES[cell].module
    assert getattr(rnnlab, cls.__name__) is cls and getattr(rnnlab.nn, cls.__name__) is cls
