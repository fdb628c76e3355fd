"""rnnlab.RNN against torch.nn.RNN: construction, parameters, forward outputs and every gradient."""
from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import rnnlab
from rnnlab.nn import RNN
from rnnlab.nn import rnn as rnn_module

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


# ---------------------------------------------------------------------------------------------
# helpers
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
    nonlinearity: str = "tanh"
    unbatched: bool = False
    with_h0: bool = True
    dtype: torch.dtype = torch.float64

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    def module_args(self) -> dict:
        return dict(
            input_size=self.I,
            hidden_size=self.H,
            num_layers=self.layers,
            nonlinearity=self.nonlinearity,
            bias=self.bias,
            batch_first=self.batch_first,
            bidirectional=self.bidirectional,
            dtype=self.dtype,
        )

    def inputs(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.unbatched:
            x_shape, h_shape = (self.T, self.I), (self.layers * self.D, self.H)
        else:
            x_shape = (self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I)
            h_shape = (self.layers * self.D, self.B, self.H)
        x = torch.randn(x_shape, generator=gen, dtype=self.dtype)
        h0 = torch.randn(h_shape, generator=gen, dtype=self.dtype) if self.with_h0 else None
        return x, h0


def run_with_grads(model: nn.Module, x: torch.Tensor, h0, g_out: torch.Tensor, g_h: torch.Tensor):
    """Outputs and the gradients of a random linear functional of (output, h_n).

    Returns [output, h_n, ∂/∂x, ∂/∂h0 (if given), ∂/∂p for every parameter in order].
    """
    x = x.detach().clone().requires_grad_()
    leaves = [x]
    if h0 is not None:
        h0 = h0.detach().clone().requires_grad_()
        leaves.append(h0)
    out, h_n = model(x, h0)
    loss = (out * g_out).sum() + (h_n * g_h).sum()
    grads = torch.autograd.grad(loss, leaves + list(model.parameters()), allow_unused=True)
    return [out.detach(), h_n.detach(), *grads]


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """max |actual − expected| ≤ tol · max(1, max |expected|): relative to the tensor's scale."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} × {scale:.3g}"


def compare_to_nn_rnn(rnn_pair, cfg: Config, seed: int = 0) -> None:
    ref, mod = rnn_pair(**cfg.module_args(), seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x, h0 = cfg.inputs(gen)
    with torch.no_grad():
        out, h_n = ref(x, h0)
    g_out = torch.randn(out.shape, generator=gen, dtype=cfg.dtype)
    g_h = torch.randn(h_n.shape, generator=gen, dtype=cfg.dtype)
    expected = run_with_grads(ref, x, h0, g_out, g_h)
    actual = run_with_grads(mod, x, h0, g_out, g_h)
    names = ["output", "h_n", "grad input"] + (["grad h0"] if h0 is not None else [])
    names += [f"grad {n}" for n, _ in ref.named_parameters()]
    for name, a, e in zip(names, actual, expected, strict=True):
        assert_close_rel(a, e, TOL[cfg.dtype], f"{cfg} {name}")


# ---------------------------------------------------------------------------------------------
# randomized grid against nn.RNN
# ---------------------------------------------------------------------------------------------
def _log_uniform_int(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _grid(n: int, seed: int = 2024, budget: float = 3e7) -> list[Config]:
    """Extremes of every range first, then n − len(extremes) seeded random configs.

    ``budget`` bounds T·B·H·(H+I)·layers·directions (the recurrent work) so the grid stays fast
    on 2 cores: nn.RNN, the peer, is the slow side.
    """
    extremes = [
        Config(I=5, H=300, T=20, B=3, dtype=torch.float32),
        Config(I=3, H=16, T=500, B=4, bidirectional=True, layers=2),
        Config(I=7, H=24, T=30, B=64, batch_first=True, nonlinearity="relu", dtype=torch.float32),
        Config(I=1, H=1, T=40, B=1, layers=3, bias=False),
        Config(I=4, H=12, T=1, B=5, layers=2, bidirectional=True, dtype=torch.float32),
        Config(I=6, H=9, T=25, B=1, unbatched=True, bidirectional=True, batch_first=True, layers=2),
    ]
    rng = random.Random(seed)
    configs = list(extremes)
    while len(configs) < n:
        cfg = Config(
            I=_log_uniform_int(rng, 1, 64),
            H=_log_uniform_int(rng, 1, 300),
            T=_log_uniform_int(rng, 1, 500),
            B=_log_uniform_int(rng, 1, 64),
            layers=rng.choice([1, 2, 3]),
            bidirectional=rng.random() < 0.5,
            batch_first=rng.random() < 0.5,
            bias=rng.random() < 0.75,
            nonlinearity=rng.choice(["tanh", "relu"]),
            unbatched=rng.random() < 0.15,
            with_h0=rng.random() < 0.6,
            dtype=rng.choice([torch.float32, torch.float64]),
        )
        B = 1 if cfg.unbatched else cfg.B
        if cfg.T * B * cfg.H * (cfg.H + cfg.I) * cfg.layers * cfg.D <= budget:
            configs.append(cfg)
    return configs


GRID = _grid(40)


@pytest.mark.parametrize("cfg", GRID, ids=[f"c{i}" for i in range(len(GRID))])
def test_matches_nn_rnn(rnn_pair, cfg):
    compare_to_nn_rnn(rnn_pair, cfg, seed=GRID.index(cfg))


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 12),
    B=st.integers(0, 5),
    I=st.integers(1, 6),
    H=st.integers(1, 10),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    unbatched=st.booleans(),
    with_h0=st.booleans(),
    nonlinearity=st.sampled_from(["tanh", "relu"]),
)
def test_property_shapes(T, B, I, H, layers, bidirectional, batch_first, unbatched, with_h0, nonlinearity):
    torch.manual_seed(0)
    ref = nn.RNN(I, H, layers, nonlinearity, batch_first=batch_first, bidirectional=bidirectional).double()
    mod = RNN(I, H, layers, nonlinearity, batch_first=batch_first, bidirectional=bidirectional).double()
    mod.load_state_dict(ref.state_dict())
    cfg = Config(I, H, T, B, layers, bidirectional, batch_first, True, nonlinearity, unbatched, with_h0)
    x, h0 = cfg.inputs(torch.Generator().manual_seed(T * 1000 + B * 100 + H))
    g = torch.Generator().manual_seed(1)
    out, h_n = ref(x, h0)
    g_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    g_h = torch.randn(h_n.shape, generator=g, dtype=torch.float64)
    expected = run_with_grads(ref, x, h0, g_out, g_h)
    actual = run_with_grads(mod, x, h0, g_out, g_h)
    for a, e in zip(actual, expected, strict=True):
        assert_close_rel(a, e, 1e-10, "property")


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
def test_same_parameters_and_init(rnn_pair, kwargs):
    ref, mod = rnn_pair(5, 7, **kwargs, seed=3)
    assert not isinstance(mod, nn.RNN)
    ref_params, mod_params = list(ref.named_parameters()), list(mod.named_parameters())
    assert [n for n, _ in mod_params] == [n for n, _ in ref_params]
    for (name, p), (_, q) in zip(ref_params, mod_params):
        assert q.shape == p.shape and q.dtype == p.dtype, name
        assert torch.equal(q, p), f"{name}: same seed, different init"
    for attr in ("input_size", "hidden_size", "num_layers", "nonlinearity", "mode", "bias", "batch_first",
                 "dropout", "bidirectional", "proj_size"):
        assert getattr(mod, attr) == getattr(ref, attr), attr
    assert [[tuple(p.shape) for p in ps] for ps in mod.all_weights] == [
        [tuple(p.shape) for p in ps] for ps in ref.all_weights
    ]
    assert not hasattr(mod, "_flat_weights")
    mod.flatten_parameters()  # no-op, for compatibility


def test_positional_nonlinearity():
    mod = RNN(3, 4, 2, "relu", False, True, 0.0, True)
    assert (mod.nonlinearity, mod.bias, mod.batch_first, mod.bidirectional) == ("relu", False, True, True)
    assert "nonlinearity='relu'" in repr(mod)


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_state_dict_loads_both_ways(kwargs):
    torch.manual_seed(0)
    ref = nn.RNN(5, 7, **kwargs)
    torch.manual_seed(1)
    mod = RNN(5, 7, **kwargs)
    mod.load_state_dict(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mod.parameters(), ref.parameters()))
    torch.manual_seed(2)
    mod.reset_parameters()
    ref.load_state_dict(mod.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mod.parameters(), ref.parameters()))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((3, 4), dict(nonlinearity="sigmoid")),
        ((3, 4), dict(dropout=1.5)),
        ((3, 4), dict(dropout=True)),
        ((3, 4), dict(bias=1)),
        ((3, 4), dict(batch_first=None)),
        ((0, 4), {}),
        ((3.0, 4), {}),
        ((3, 0), {}),
        ((3, 4), dict(num_layers=0)),
    ],
)
def test_bad_constructor_arguments_raise_like_nn_rnn(args, kwargs):
    with pytest.raises(Exception) as expected:
        nn.RNN(*args, **kwargs)
    with pytest.raises(type(expected.value)) as actual:
        RNN(*args, **kwargs)
    assert str(actual.value) == str(expected.value)


def test_dropout_with_one_layer_warns_like_nn_rnn():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        RNN(3, 4, dropout=0.5)


# ---------------------------------------------------------------------------------------------
# PackedSequence
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_packed_sequence_matches_nn_rnn(rnn_pair, enforce_sorted, layers, bidirectional, with_h0):
    ref, mod = rnn_pair(3, 6, layers, bidirectional=bidirectional, dtype=torch.float64)
    lengths = [9, 6, 6, 2, 1] if enforce_sorted else [4, 9, 1, 6, 6]
    gen = torch.Generator().manual_seed(7)
    seqs = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in lengths]
    D = 2 if bidirectional else 1
    h0 = torch.randn(layers * D, len(lengths), 6, generator=gen, dtype=torch.float64) if with_h0 else None
    results = []
    before = rnn_module.fallback_counts["packed_padded"]
    for model in (ref, mod):
        leaves = [s.clone().requires_grad_() for s in seqs]
        h = None if h0 is None else h0.clone().requires_grad_()
        out, h_n = model(pack_sequence(leaves, enforce_sorted=enforce_sorted), h)
        g_out = torch.randn(out.data.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        g_h = torch.randn(h_n.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        wrt = leaves + ([h] if h is not None else []) + list(model.parameters())
        grads = torch.autograd.grad((out.data * g_out).sum() + (h_n * g_h).sum(), wrt)
        results.append((out, h_n, grads))
    assert rnn_module.fallback_counts["packed_padded"] == before + 1
    (out_e, h_e, g_e), (out_a, h_a, g_a) = results
    assert torch.equal(out_a.batch_sizes, out_e.batch_sizes)
    for idx in ("sorted_indices", "unsorted_indices"):
        e, a = getattr(out_e, idx), getattr(out_a, idx)
        assert (e is None and a is None) or torch.equal(a, e)
    assert_close_rel(out_a.data, out_e.data, 1e-12, "packed output")
    assert_close_rel(h_a, h_e, 1e-12, "packed h_n")
    for a, e in zip(g_a, g_e, strict=True):
        assert_close_rel(a, e, 1e-12, "packed grad")


# ---------------------------------------------------------------------------------------------
# dropout between layers
# ---------------------------------------------------------------------------------------------
def test_dropout_eval_mode_and_p0_match_nn_rnn(rnn_pair):
    x = torch.randn(8, 3, 4, dtype=torch.float64)
    ref, mod = rnn_pair(4, 5, 3, dropout=0.5, bidirectional=True, dtype=torch.float64)
    ref.eval(), mod.eval()
    assert_close_rel(mod(x)[0], ref(x)[0], 1e-12, "eval mode")
    ref, mod = rnn_pair(4, 5, 3, dropout=0.0, dtype=torch.float64)
    assert_close_rel(mod(x)[0], ref(x)[0], 1e-12, "train mode, p = 0")


def test_dropout_p1_matches_nn_rnn(rnn_pair):
    """p = 1 zeroes every inter-layer input: deterministic, so comparable bit for bit."""
    ref, mod = rnn_pair(4, 5, 2, dropout=1.0, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    assert_close_rel(mod(x)[0], ref(x)[0], 1e-12, "train mode, p = 1")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_semantics(bidirectional):
    """Training mode: inverted dropout (F.dropout) on each layer's output except the last one.

    The reference is a stack of one-layer nn.RNNs with F.dropout in between, run under the same
    seed (the kernels draw no random numbers, so both draw the same masks).
    """
    L, p, D = 3, 0.4, 2 if bidirectional else 1
    torch.manual_seed(0)
    mod = RNN(4, 5, L, dropout=p, bidirectional=bidirectional, dtype=torch.float64)
    layers = []
    for layer in range(L):
        single = nn.RNN(4 if layer == 0 else 5 * D, 5, bidirectional=bidirectional, dtype=torch.float64)
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
# bad and unusual inputs: nn.RNN's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
def _bad_inputs():
    f32, f64 = torch.float32, torch.float64
    return {
        "input dtype": (lambda: (torch.randn(5, 2, 3, dtype=f64), None), "dtype"),
        "integer input": (lambda: (torch.ones(5, 2, 3, dtype=torch.long), None), "dtype"),
        "input 4-D": (lambda: (torch.randn(5, 2, 3, 1), None), "2D or 3D"),
        "input 1-D": (lambda: (torch.randn(5), None), "2D or 3D"),
        "input size": (lambda: (torch.randn(5, 2, 2), None), "input_size"),
        "h0 shape": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 3, 4)), "hidden size"),
        "h0 2-D for batched": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 4)), "hx should also be 3-D"),
        "h0 3-D for unbatched": (lambda: (torch.randn(5, 3), torch.randn(2, 1, 4)), "hx should also be 2-D"),
        "h0 unbatched shape": (lambda: (torch.randn(5, 3), torch.randn(1, 4)), "hidden size"),
        "h0 dtype": (lambda: (torch.randn(5, 2, 3, dtype=f32), torch.randn(2, 2, 4, dtype=f64)), "hx dtype"),
        "input on meta": (lambda: (torch.randn(5, 2, 3, device="meta"), None), "same device"),
        "h0 on meta": (lambda: (torch.randn(5, 2, 3), torch.randn(2, 2, 4, device="meta")), "same device"),
        "T = 0": (lambda: (torch.randn(0, 2, 3), None), "sequence length"),
        "T = 0 unbatched": (lambda: (torch.randn(0, 3), None), "sequence length"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_raises_like_nn_rnn(rnn_pair, case):
    make, message = _bad_inputs()[case]
    ref, mod = rnn_pair(3, 4, 2)
    x, h0 = make()
    with pytest.raises(Exception) as expected:
        ref(x, h0)
    with pytest.raises(type(expected.value), match=message):
        mod(x, h0)


def test_non_tensor_input_names_the_argument():
    mod = RNN(3, 4)
    with pytest.raises(TypeError, match="input must be a Tensor"):
        mod([[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match="hx must be a Tensor"):
        mod(torch.randn(2, 1, 3), [0.0] * 4)


def test_half_precision_model_is_refused_clearly():
    mod = RNN(3, 4, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float32 or float64"):
        mod(torch.randn(5, 2, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_like_nn_rnn(rnn_pair, batch_first):
    ref, mod = rnn_pair(3, 4, 2, bidirectional=True, batch_first=batch_first)
    x = torch.randn((0, 5, 3) if batch_first else (5, 0, 3), requires_grad=True)
    (out_e, h_e), (out_a, h_a) = ref(x), mod(x)
    assert out_a.shape == out_e.shape and h_a.shape == h_e.shape
    (out_a.sum() + h_a.sum()).backward()
    assert x.grad.shape == x.shape and mod.weight_hh_l0.grad.abs().max() == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_propagate_like_nn_rnn(rnn_pair, value):
    ref, mod = rnn_pair(3, 4, 2, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    x[2, 1, 0] = value
    (out_e, h_e), (out_a, h_a) = ref(x), mod(x)
    for a, e in ((out_a, out_e), (h_a, h_e)):
        assert torch.equal(a.isnan(), e.isnan())
        finite = ~e.isnan()
        assert_close_rel(a[finite], e[finite], 1e-12, "finite part")


def test_non_contiguous_inputs_give_the_same_answer():
    torch.manual_seed(0)
    mod = RNN(3, 4, 2, bidirectional=True, batch_first=True, dtype=torch.float64)
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    h0 = torch.randn(4, 6, 4, dtype=torch.float64)
    x_strided = torch.randn(5, 6, 3, dtype=torch.float64).transpose(0, 1)
    x_strided.copy_(x)
    h0_strided = torch.randn(6, 4, 4, dtype=torch.float64).transpose(0, 1)
    h0_strided.copy_(h0)
    assert not x_strided.is_contiguous() and not h0_strided.is_contiguous()
    out, h_n = mod(x, h0)
    out_s, h_n_s = mod(x_strided, h0_strided)
    assert torch.equal(out, out_s) and torch.equal(h_n, h_n_s)


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = RNN(3, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        out, h_n = self.rnn(x)
        return self.head(out).square().mean() + h_n.square().mean()


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = _Model()
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


def test_vmap_grad_over_stacked_modules_matches_loop():
    """An ensemble of rnnlab.RNNs via torch.func (nn.RNN has no vmap rule, pytorch#105982)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    torch.manual_seed(0)
    models = [RNN(2, 6, dtype=torch.float64) for _ in range(3)]
    params, _ = stack_module_state(models)
    template = RNN(2, 6, dtype=torch.float64).to("meta")
    x = torch.randn(7, 4, 2, dtype=torch.float64)

    def loss(p, x):
        return functional_call(template, p, (x,))[0].square().sum()

    grads = vmap(grad(loss), in_dims=(0, None))(params, x)
    for i, model in enumerate(models):
        expected = torch.autograd.grad(model(x)[0].square().sum(), list(model.parameters()))
        for (name, _), e in zip(model.named_parameters(), expected):
            assert_close_rel(grads[name][i], e, 1e-12, f"vmap grad {name}")


def test_exported_from_package():
    assert rnnlab.RNN is RNN and rnnlab.nn.RNN is RNN
