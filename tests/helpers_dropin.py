"""What the drop-in tests (test_rnn_dropin.py, test_lstm_dropin.py, test_gru_dropin.py) share:
a module and its torch.nn peer built alike, their outputs and every gradient compared, the
randomized grid, and the checks that hold for every drop-in (parameters and init, state_dict,
constructor errors, PackedSequence, dropout, bad and unusual inputs, torch.compile, torch.func).

A drop-in returns ``(output, h_n)`` (RNN, GRU) or ``(output, (h_n, c_n))`` (LSTM); the helpers see the
final states as a tuple either way (:func:`split_result`) and build the ``hx`` argument from one
(:meth:`Family.hx`).
"""
from __future__ import annotations

import copy
import io
import math
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrizations, prune
from torch.nn.utils.rnn import pack_sequence

import rnnlab

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """max |actual − expected| ≤ tol · max(1, max |expected|): relative to the tensor's scale."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} × {scale:.3g}"


def split_result(result) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(output, final states as a tuple) of a forward's result, for one state or several."""
    out, states = result
    return out, states if isinstance(states, tuple) else (states,)


@dataclass(frozen=True)
class Family:
    """A drop-in, its torch.nn peer and what tells them apart in the tests."""

    module: type
    peer: type
    fallback_counts: Counter
    state_names: tuple[str, ...]  # ("h",) or ("h", "c"): h_n, grad h0, …

    def pair(self, *args, seed: int = 0, **kwargs):
        """(peer, drop-in) built under the same seed: identical weights iff the init matches."""
        torch.manual_seed(seed)
        peer = self.peer(*args, **kwargs)
        torch.manual_seed(seed)
        return peer, self.module(*args, **kwargs)

    def state_sizes(self, hidden: int, proj_size: int = 0) -> tuple[int, ...]:
        """The last dimension of each state: H_out for h, H for c."""
        return (proj_size or hidden, hidden)[: len(self.state_names)]

    def hx(self, states):
        """The forward's ``hx`` argument for a list of states (None: none given)."""
        if states is None:
            return None
        return states[0] if len(self.state_names) == 1 else tuple(states)


FAMILIES = {
    "rnn": Family(rnnlab.RNN, nn.RNN, rnnlab.nn.rnn.fallback_counts, state_names=("h",)),
    "lstm": Family(rnnlab.LSTM, nn.LSTM, rnnlab.nn.lstm.fallback_counts, state_names=("h", "c")),
    "gru": Family(rnnlab.GRU, nn.GRU, rnnlab.nn.gru.fallback_counts, state_names=("h",)),
}


# ---------------------------------------------------------------------------------------------
# randomized comparison against the peer
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    I: int
    H: int
    T: int
    B: int
    layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    bias: bool = True
    unbatched: bool = False
    with_state: bool = True
    dtype: torch.dtype = torch.float64
    nonlinearity: str | None = None  # RNN only (None: the default)
    proj_size: int = 0  # LSTM only

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    def module_args(self) -> dict:
        args = dict(input_size=self.I, hidden_size=self.H, num_layers=self.layers, bias=self.bias,
                    batch_first=self.batch_first, bidirectional=self.bidirectional, dtype=self.dtype)
        if self.nonlinearity is not None:
            args["nonlinearity"] = self.nonlinearity
        if self.proj_size:
            args["proj_size"] = self.proj_size
        return args

    def inputs(self, family: Family, gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """x and the initial states (None unless with_state), drawn from gen in that order."""
        LD = self.layers * self.D
        if self.unbatched:
            x_shape, lead = (self.T, self.I), (LD,)
        else:
            x_shape = (self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I)
            lead = (LD, self.B)
        x = torch.randn(x_shape, generator=gen, dtype=self.dtype)
        if not self.with_state:
            return x, None
        sizes = family.state_sizes(self.H, self.proj_size)
        return x, [torch.randn(*lead, size, generator=gen, dtype=self.dtype) for size in sizes]


def log_uniform_int(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def seeded_grid(extremes: list[Config], n: int, seed: int, draw: Callable[[random.Random], Config], gates: int,
                budget: float) -> list[Config]:
    """The extremes first, then configs from draw(rng) until there are n.

    ``budget`` bounds T·B·gates·H·(H+I)·layers·directions (the recurrent work) so the grid stays
    fast on 2 cores: the torch.nn peer is the slow side.
    """
    rng = random.Random(seed)
    configs = list(extremes)
    while len(configs) < n:
        cfg = draw(rng)
        B = 1 if cfg.unbatched else cfg.B
        if cfg.T * B * gates * cfg.H * (cfg.H + cfg.I) * cfg.layers * cfg.D <= budget:
            configs.append(cfg)
    return configs


def shape_strategies(max_T: int) -> dict:
    """Hypothesis strategies for the small-shape property tests: Config's fields but dtype."""
    return dict(
        T=st.integers(1, max_T),
        B=st.integers(0, 5),
        I=st.integers(1, 6),
        H=st.integers(1, 10),
        layers=st.integers(1, 3),
        bidirectional=st.booleans(),
        batch_first=st.booleans(),
        unbatched=st.booleans(),
        with_state=st.booleans(),
    )


def check_small_shape_matches_peer(family: Family, **fields) -> None:
    """compare_to_peer on Config(**fields) (a property test's draw), seeded by its sizes."""
    compare_to_peer(family, Config(**fields), seed=fields["T"] * 1000 + fields["B"] * 100 + fields["H"])


def run_with_grads(model: nn.Module, family: Family, x: torch.Tensor, states, cotangents: list[torch.Tensor]):
    """Outputs and the gradients of a random linear functional of (output, final states).

    Returns [output, final states…, ∂/∂x, ∂/∂state0… (if given), ∂/∂p for every parameter in order].
    """
    x = x.detach().clone().requires_grad_()
    leaves = [x]
    if states is not None:
        states = [s.detach().clone().requires_grad_() for s in states]
        leaves += states
    out, finals = split_result(model(x, family.hx(states)))
    loss = sum((t * g).sum() for t, g in zip((out, *finals), cotangents))
    grads = torch.autograd.grad(loss, leaves + list(model.parameters()), allow_unused=True)
    return [out.detach(), *(f.detach() for f in finals), *grads]


def compare_to_peer(family: Family, cfg: Config, seed: int = 0, tol: float | None = None) -> None:
    """The drop-in's outputs and every gradient equal the peer's (same seed, same inputs), and are
    contiguous where the peer's are (code that calls .view on a gradient)."""
    peer, mod = family.pair(**cfg.module_args(), seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x, states = cfg.inputs(family, gen)
    with torch.no_grad():
        out, finals = split_result(peer(x, family.hx(states)))
    cotangents = [torch.randn(t.shape, generator=gen, dtype=cfg.dtype) for t in (out, *finals)]
    expected = run_with_grads(peer, family, x, states, cotangents)
    actual = run_with_grads(mod, family, x, states, cotangents)
    names = ["output"] + [f"{s}_n" for s in family.state_names] + ["grad input"]
    names += [f"grad {s}0" for s in family.state_names] if states is not None else []
    names += [f"grad {n}" for n, _ in peer.named_parameters()]
    for name, a, e in zip(names, actual, expected, strict=True):
        assert_close_rel(a, e, tol or TOL[cfg.dtype], f"{cfg} {name}")
        assert a.is_contiguous() == e.is_contiguous(), f"{cfg} {name}: strides {a.stride()}, {e.stride()}"


# ---------------------------------------------------------------------------------------------
# construction, parameters, state_dict
# ---------------------------------------------------------------------------------------------
COMMON_ATTRS = ("input_size", "hidden_size", "num_layers", "mode", "bias", "batch_first", "dropout",
                "bidirectional", "proj_size")


def check_same_parameters_and_init(family: Family, kwargs: dict, attrs: tuple[str, ...] = COMMON_ATTRS):
    """Same parameter names, shapes, dtypes and values under the same seed; same attributes."""
    peer, mod = family.pair(5, 7, **kwargs, seed=3)
    assert not isinstance(mod, family.peer)
    peer_params, mod_params = list(peer.named_parameters()), list(mod.named_parameters())
    assert [n for n, _ in mod_params] == [n for n, _ in peer_params]
    for (name, p), (_, q) in zip(peer_params, mod_params):
        assert q.shape == p.shape and q.dtype == p.dtype, name
        assert torch.equal(q, p), f"{name}: same seed, different init"
    for attr in attrs:
        assert getattr(mod, attr) == getattr(peer, attr), attr
    assert [[tuple(p.shape) for p in ps] for ps in mod.all_weights] == [
        [tuple(p.shape) for p in ps] for ps in peer.all_weights
    ]
    mod.flatten_parameters()  # no-op, for compatibility
    return peer, mod


def check_state_dict_loads_both_ways(family: Family, kwargs: dict) -> None:
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


#: (args, kwargs) that every torch.nn recurrent layer refuses; each file adds its own.
BAD_CONSTRUCTOR_ARGS = [
    ((3, 4), dict(dropout=1.5)),
    ((3, 4), dict(dropout=True)),
    ((3, 4), dict(bias=1)),
    ((3, 4), dict(batch_first=None)),
    ((0, 4), {}),
    ((3.0, 4), {}),
    ((3, 0), {}),
    ((3, 4), dict(num_layers=0)),
]


#: nn.RNN and nn.GRU refuse the proj_size keyword whatever its value, before any other check.
PROJ_SIZE_REFUSED = [((3, 4), dict(proj_size=value)) for value in (0, 2, -1, None)] + [
    ((3, 4), dict(proj_size=0, dropout=2.0))
]


def check_constructor_raises_like_peer(family: Family, args: tuple, kwargs: dict) -> None:
    """The same exception type and message as the peer."""
    with pytest.raises(Exception) as expected:
        family.peer(*args, **kwargs)
    with pytest.raises(type(expected.value)) as actual:
        family.module(*args, **kwargs)
    assert str(actual.value) == str(expected.value)


# ---------------------------------------------------------------------------------------------
# nn.RNNBase's private surface: _flat_weights and the code that patches or swaps weights
# ---------------------------------------------------------------------------------------------
def check_private_surface_like_peer(family: Family, kwargs: dict) -> None:
    """_flat_weights_names, _all_weights and _flat_weights as the peer's: same names, order and
    values, and _flat_weights the module's own weights, also after a move, deepcopy and pickling."""
    def pickled(module):
        buffer = io.BytesIO()
        torch.save(module, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=False)

    peer, mod = family.pair(5, 7, **kwargs, seed=3)
    for change in (lambda m: m, nn.Module.double, lambda m: m.to(torch.float32), copy.deepcopy, pickled):
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
#: weight_hh_l0, which every configuration has).
WEIGHT_PATCHES = {
    "setattr a new Parameter": _replace_weight_hh,
    "patched _flat_weights": _patch_flat_weights,
    "AWD-LSTM weight drop": _awd_lstm_weight_drop,
    "orthogonal parametrization": lambda m: parametrizations.orthogonal(m, "weight_hh_l0"),
    "weight_norm parametrization": lambda m: parametrizations.weight_norm(m, "weight_hh_l0"),
    "weight_norm hook": lambda m: torch.nn.utils.weight_norm(m, "weight_hh_l0"),
    "prune": lambda m: prune.l1_unstructured(m, "weight_hh_l0", amount=0.5),
}


def check_weight_patch_like_peer(family: Family, patch: Callable) -> None:
    """After the same patch, the same outputs and gradients for every parameter as the peer, before
    and after an in-place update of the parameters (which the next forward must see)."""
    peer, mod = family.pair(4, 4, 2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    for model in (peer, mod):
        torch.manual_seed(1)  # the same random completion of a non-square orthogonal weight
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the deprecated torch.nn.utils.weight_norm
            patch(model)
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


def check_functional_call_swaps_weights_like_peer(family: Family) -> None:
    """torch.func.functional_call with another weight_hh_l0, then a plain forward: the peer's results."""
    peer, mod = family.pair(4, 4, dtype=torch.float64)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    swapped = {"weight_hh_l0": torch.randn(peer.weight_hh_l0.shape, dtype=torch.float64)}
    for call in (lambda m: torch.func.functional_call(m, swapped, (x,)), lambda m: m(x)):
        assert_close_rel(call(mod)[0], call(peer)[0], 1e-12, "output")


# ---------------------------------------------------------------------------------------------
# PackedSequence
# ---------------------------------------------------------------------------------------------
def check_packed_sequence_matches_peer(family: Family, enforce_sorted: bool, layers: int, bidirectional: bool,
                                       with_state: bool, **options) -> None:
    """Packed in, packed out: same data, indices, final states and gradients; counted once."""
    peer, mod = family.pair(3, 6, layers, bidirectional=bidirectional, dtype=torch.float64, **options)
    lengths = [9, 6, 6, 2, 1] if enforce_sorted else [4, 9, 1, 6, 6]
    gen = torch.Generator().manual_seed(7)
    seqs = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in lengths]
    LD = layers * (2 if bidirectional else 1)
    states = None
    if with_state:
        sizes = family.state_sizes(6, options.get("proj_size", 0))
        states = [torch.randn(LD, len(lengths), size, generator=gen, dtype=torch.float64) for size in sizes]
    results = []
    before = family.fallback_counts["packed_padded"]
    for model in (peer, mod):
        leaves = [s.clone().requires_grad_() for s in seqs]
        hx = None if states is None else [h.clone().requires_grad_() for h in states]
        out, finals = split_result(model(pack_sequence(leaves, enforce_sorted=enforce_sorted), family.hx(hx)))
        outputs = (out.data, *finals)
        cotangents = [torch.randn(t.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
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
def check_dropout_eval_mode_and_p0_match_peer(family: Family) -> None:
    x = torch.randn(8, 3, 4, dtype=torch.float64)
    peer, mod = family.pair(4, 5, 3, dropout=0.5, bidirectional=True, dtype=torch.float64)
    peer.eval(), mod.eval()
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "eval mode")
    peer, mod = family.pair(4, 5, 3, dropout=0.0, dtype=torch.float64)
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "train mode, p = 0")


def check_dropout_p1_matches_peer(family: Family) -> None:
    """p = 1 zeroes every inter-layer input: deterministic, so comparable bit for bit."""
    peer, mod = family.pair(4, 5, 2, dropout=1.0, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "train mode, p = 1")


def check_dropout_semantics(family: Family, bidirectional: bool) -> None:
    """Training mode: inverted dropout (F.dropout) on each layer's output except the last one.

    The reference is a stack of one-layer peers with F.dropout in between, run under the same
    seed (the kernels draw no random numbers, so both draw the same masks).
    """
    L, p, D = 3, 0.4, 2 if bidirectional else 1
    torch.manual_seed(0)
    mod = family.module(4, 5, L, dropout=p, bidirectional=bidirectional, dtype=torch.float64)
    layers = []
    for layer in range(L):
        single = family.peer(4 if layer == 0 else 5 * D, 5, bidirectional=bidirectional, dtype=torch.float64)
        single.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in mod.state_dict().items()
                                if f"_l{layer}" in k})
        layers.append(single)
    x = torch.randn(7, 2, 4, dtype=torch.float64)
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
# bad and unusual inputs: the peer's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
def bad_input_cases() -> dict:
    """{case: (make() -> (x, hx), message)} for a (3, 4, num_layers=2) module, about the input
    alone (hx None); each file adds the cases of its states."""
    f64 = torch.float64
    return {
        "input dtype": (lambda: (torch.randn(5, 2, 3, dtype=f64), None), "dtype"),
        "integer input": (lambda: (torch.ones(5, 2, 3, dtype=torch.long), None), "dtype"),
        "input 4-D": (lambda: (torch.randn(5, 2, 3, 1), None), "2D or 3D"),
        "input 1-D": (lambda: (torch.randn(5), None), "2D or 3D"),
        "input size": (lambda: (torch.randn(5, 2, 2), None), "input_size"),
        "input on meta": (lambda: (torch.randn(5, 2, 3, device="meta"), None), "same device"),
        "T = 0": (lambda: (torch.randn(0, 2, 3), None), "sequence length"),
        "T = 0 unbatched": (lambda: (torch.randn(0, 3), None), "sequence length"),
    }


def one_state_bad_input_cases() -> dict:
    """bad_input_cases and those of the lone state h0 of nn.RNN and nn.GRU (hx a Tensor)."""
    f32, f64 = torch.float32, torch.float64
    return {
        **bad_input_cases(),
        "h0 shape": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 3, 4)), "hidden size"),
        "h0 2-D for batched": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 4)), "hx should also be 3-D"),
        "h0 3-D for unbatched": (lambda: (torch.randn(5, 3), torch.randn(2, 1, 4)), "hx should also be 2-D"),
        "h0 unbatched shape": (lambda: (torch.randn(5, 3), torch.randn(1, 4)), "hidden size"),
        "h0 dtype": (lambda: (torch.randn(5, 2, 3, dtype=f32), torch.randn(2, 2, 4, dtype=f64)), "hx dtype"),
        "h0 on meta": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 2, 4, device="meta")), "same device"),
    }


def check_bad_input_raises_like_peer(family: Family, make: Callable, message: str) -> None:
    """The peer's exception type, with a message that matches `message`."""
    peer, mod = family.pair(3, 4, 2)
    x, hx = make()
    with pytest.raises(Exception) as expected:
        peer(x, hx)
    with pytest.raises(type(expected.value), match=message):
        mod(x, hx)


def check_one_state_non_tensor_inputs_name_the_argument(family: Family) -> None:
    """A list as input or as hx (nn.RNN and nn.GRU fail on it deep inside): a TypeError naming it."""
    mod = family.module(3, 4)
    with pytest.raises(TypeError, match="input must be a Tensor"):
        mod([[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match="hx must be a Tensor"):
        mod(torch.randn(2, 1, 3), [0.0] * 4)


def check_half_precision_model_is_refused_clearly(family: Family) -> None:
    mod = family.module(3, 4, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float32 or float64"):
        mod(torch.randn(5, 2, 3, dtype=torch.bfloat16))


def check_empty_batch_like_peer(family: Family, batch_first: bool) -> None:
    peer, mod = family.pair(3, 4, 2, bidirectional=True, batch_first=batch_first)
    x = torch.randn((0, 5, 3) if batch_first else (5, 0, 3), requires_grad=True)
    (out_e, finals_e), (out_a, finals_a) = split_result(peer(x)), split_result(mod(x))
    assert out_a.shape == out_e.shape and [a.shape for a in finals_a] == [e.shape for e in finals_e]
    (out_a.sum() + sum(a.sum() for a in finals_a)).backward()
    assert x.grad.shape == x.shape and mod.weight_hh_l0.grad.abs().max() == 0


def check_nan_and_inf_propagate_like_peer(family: Family, value: float) -> None:
    peer, mod = family.pair(3, 4, 2, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    x[2, 1, 0] = value
    (out_e, finals_e), (out_a, finals_a) = split_result(peer(x)), split_result(mod(x))
    for a, e in ((out_a, out_e), *zip(finals_a, finals_e)):
        assert torch.equal(a.isnan(), e.isnan())
        finite = ~e.isnan()
        assert_close_rel(a[finite], e[finite], 1e-12, "finite part")


def check_non_contiguous_inputs_give_the_same_answer(family: Family) -> None:
    """Transposed inputs give the contiguous inputs' answer.

    Transposed states (h0, c0) reach only rnnlab's kernels, which read them contiguous: bitwise
    the same results. A transposed x reaches torch's GEMM first (the input projection), which
    picks its kernel, and so its order of summation, by the strides and the CPU (AMD and Intel
    round differently): the results may differ by a reordering of sums, the kind of difference
    the comparisons against torch.nn allow for, so they get the same float64 tolerance.
    """
    torch.manual_seed(0)
    mod = family.module(3, 4, 2, bidirectional=True, batch_first=True, dtype=torch.float64)
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    states = [torch.randn(4, 6, 4, dtype=torch.float64) for _ in family.state_names]
    x_strided = torch.randn(5, 6, 3, dtype=torch.float64).transpose(0, 1).copy_(x)
    states_strided = [torch.randn(6, 4, 4, dtype=torch.float64).transpose(0, 1).copy_(s) for s in states]
    assert not any(t.is_contiguous() for t in (x_strided, *states_strided))
    expected = split_result(mod(x, family.hx(states)))
    out, finals = split_result(mod(x, family.hx(states_strided)))
    assert torch.equal(out, expected[0]) and all(map(torch.equal, finals, expected[1]))
    out, finals = split_result(mod(x_strided, family.hx(states)))
    for name, a, e in zip(("output", *family.state_names), (out, *finals), (expected[0], *expected[1]), strict=True):
        assert_close_rel(a, e, TOL[torch.float64], f"strided x: {name}")


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
class _Model(nn.Module):
    """The drop-in (input 3, hidden 8, 2 layers, bidirectional, batch_first) and a linear head."""

    def __init__(self, family: Family):
        super().__init__()
        self.rnn = family.module(3, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        out, finals = split_result(self.rnn(x))
        return self.head(out).square().mean() + sum(h.square().mean() for h in finals)


def check_torch_compile_fullgraph_matches_eager(family: Family, configure: Callable = lambda rnn: None) -> None:
    """configure(drop-in) sets options before both runs (e.g. the regularizer)."""
    torch.manual_seed(0)
    model = _Model(family)
    configure(model.rnn)
    x = torch.randn(4, 10, 3)
    loss = model(x)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss_c = compiled(x)
    grads_c = torch.autograd.grad(loss_c, list(model.parameters()))
    assert_close_rel(loss_c, loss, 1e-6, "compiled loss")
    for g_c, g in zip(grads_c, grads, strict=True):
        assert_close_rel(g_c, g, 1e-6, "compiled grad")


def check_vmap_grad_over_stacked_modules_matches_loop(family: Family) -> None:
    """An ensemble of drop-ins via torch.func (torch.nn's have no vmap rule, pytorch#105982)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    torch.manual_seed(0)
    models = [family.module(2, 6, dtype=torch.float64) for _ in range(3)]
    params, _ = stack_module_state(models)
    template = family.module(2, 6, dtype=torch.float64).to("meta")
    x = torch.randn(7, 4, 2, dtype=torch.float64)

    def loss_of(result):
        out, finals = split_result(result)
        return out.square().sum() + sum(h.sum() for h in finals)

    grads = vmap(grad(lambda p, x: loss_of(functional_call(template, p, (x,)))), in_dims=(0, None))(params, x)
    for i, model in enumerate(models):
        expected = torch.autograd.grad(loss_of(model(x)), list(model.parameters()))
        for (name, _), e in zip(model.named_parameters(), expected):
            assert_close_rel(grads[name][i], e, 1e-12, f"vmap grad {name}")
