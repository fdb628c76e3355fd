"""rnnlab.LSTM against torch.nn.LSTM: construction, parameters, forward outputs and every gradient."""
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
from rnnlab import reference as ref
from rnnlab.nn import LSTM
from rnnlab.nn import lstm as lstm_module

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def make_pair(*args, seed: int = 0, **kwargs) -> tuple[nn.LSTM, LSTM]:
    """(nn.LSTM, rnnlab.LSTM) built under the same seed: identical weights iff the init matches."""
    torch.manual_seed(seed)
    peer = nn.LSTM(*args, **kwargs)
    torch.manual_seed(seed)
    return peer, LSTM(*args, **kwargs)


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """max |actual − expected| ≤ tol · max(1, max |expected|): relative to the tensor's scale."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} × {scale:.3g}"


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
    proj_size: int = 0
    unbatched: bool = False
    with_state: bool = True
    dtype: torch.dtype = torch.float64

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    def module_args(self) -> dict:
        return dict(
            input_size=self.I, hidden_size=self.H, num_layers=self.layers, bias=self.bias,
            batch_first=self.batch_first, bidirectional=self.bidirectional, proj_size=self.proj_size,
            dtype=self.dtype,
        )

    def inputs(self, gen: torch.Generator):
        LD, H_out = self.layers * self.D, self.proj_size or self.H
        if self.unbatched:
            x_shape, h_shape, c_shape = (self.T, self.I), (LD, H_out), (LD, self.H)
        else:
            x_shape = (self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I)
            h_shape, c_shape = (LD, self.B, H_out), (LD, self.B, self.H)
        x = torch.randn(x_shape, generator=gen, dtype=self.dtype)
        if not self.with_state:
            return x, None
        return x, (torch.randn(h_shape, generator=gen, dtype=self.dtype), torch.randn(c_shape, generator=gen, dtype=self.dtype))


def run_with_grads(model: nn.Module, x: torch.Tensor, hx, gens: list[torch.Tensor]):
    """Outputs and the gradients of a random linear functional of (output, h_n, c_n).

    Returns [output, h_n, c_n, ∂/∂x, ∂/∂h0, ∂/∂c0 (if given), ∂/∂p for every parameter in order].
    """
    x = x.detach().clone().requires_grad_()
    leaves = [x]
    if hx is not None:
        hx = tuple(h.detach().clone().requires_grad_() for h in hx)
        leaves += list(hx)
    out, (h_n, c_n) = model(x, hx)
    loss = sum((t * g).sum() for t, g in zip((out, h_n, c_n), gens))
    grads = torch.autograd.grad(loss, leaves + list(model.parameters()), allow_unused=True)
    return [out.detach(), h_n.detach(), c_n.detach(), *grads]


def compare_to_nn_lstm(cfg: Config, seed: int = 0, tol: float | None = None) -> None:
    peer, mod = make_pair(**cfg.module_args(), seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x, hx = cfg.inputs(gen)
    with torch.no_grad():
        out, (h_n, c_n) = peer(x, hx)
    gens = [torch.randn(t.shape, generator=gen, dtype=cfg.dtype) for t in (out, h_n, c_n)]
    expected = run_with_grads(peer, x, hx, gens)
    actual = run_with_grads(mod, x, hx, gens)
    names = ["output", "h_n", "c_n", "grad input"] + (["grad h0", "grad c0"] if hx is not None else [])
    names += [f"grad {n}" for n, _ in peer.named_parameters()]
    for name, a, e in zip(names, actual, expected, strict=True):
        assert_close_rel(a, e, tol or TOL[cfg.dtype], f"{cfg} {name}")


# ---------------------------------------------------------------------------------------------
# randomized grid against nn.LSTM
# ---------------------------------------------------------------------------------------------
def _log_uniform_int(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _grid(n: int, seed: int = 2025, budget: float = 1e7) -> list[Config]:
    """Extremes of every range first, then n − len(extremes) seeded random configs.

    ``budget`` bounds T·B·4H·(H+I)·layers·directions (the recurrent work) so the grid stays fast
    on 2 cores: nn.LSTM, the peer, is the slow side.
    """
    extremes = [
        Config(I=5, H=200, T=20, B=3, dtype=torch.float32),
        Config(I=3, H=16, T=300, B=4, bidirectional=True, layers=2),
        Config(I=7, H=24, T=30, B=64, batch_first=True, dtype=torch.float32),
        Config(I=1, H=1, T=40, B=1, layers=3, bias=False),
        Config(I=4, H=12, T=1, B=5, layers=2, bidirectional=True, dtype=torch.float32),
        Config(I=6, H=9, T=25, B=1, unbatched=True, bidirectional=True, batch_first=True, layers=2),
        Config(I=3, H=10, T=12, B=4, layers=2, bidirectional=True, proj_size=4),
    ]
    rng = random.Random(seed)
    configs = list(extremes)
    while len(configs) < n:
        H = _log_uniform_int(rng, 1, 200)
        cfg = Config(
            I=_log_uniform_int(rng, 1, 64),
            H=H,
            T=_log_uniform_int(rng, 1, 300),
            B=_log_uniform_int(rng, 1, 64),
            layers=rng.choice([1, 2, 3]),
            bidirectional=rng.random() < 0.5,
            batch_first=rng.random() < 0.5,
            bias=rng.random() < 0.75,
            proj_size=rng.randrange(1, H) if H > 1 and rng.random() < 0.1 else 0,
            unbatched=rng.random() < 0.15,
            with_state=rng.random() < 0.6,
            dtype=rng.choice([torch.float32, torch.float64]),
        )
        B = 1 if cfg.unbatched else cfg.B
        if cfg.T * B * 4 * cfg.H * (cfg.H + cfg.I) * cfg.layers * cfg.D <= budget:
            configs.append(cfg)
    return configs


GRID = _grid(30)


@pytest.mark.parametrize("cfg", GRID, ids=[f"c{i}" for i in range(len(GRID))])
def test_matches_nn_lstm(cfg):
    compare_to_nn_lstm(cfg, seed=GRID.index(cfg))


@settings(max_examples=15, deadline=None)
@given(
    T=st.integers(1, 10),
    B=st.integers(0, 5),
    I=st.integers(1, 6),
    H=st.integers(1, 10),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    unbatched=st.booleans(),
    with_state=st.booleans(),
)
def test_property_shapes(T, B, I, H, layers, bidirectional, batch_first, unbatched, with_state):
    cfg = Config(I, H, T, B, layers, bidirectional, batch_first, True, 0, unbatched, with_state)
    compare_to_nn_lstm(cfg, seed=T * 1000 + B * 100 + H)


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
    peer, mod = make_pair(5, 7, **kwargs, seed=3)
    assert not isinstance(mod, nn.LSTM)
    peer_params, mod_params = list(peer.named_parameters()), list(mod.named_parameters())
    assert [n for n, _ in mod_params] == [n for n, _ in peer_params]
    for (name, p), (_, q) in zip(peer_params, mod_params):
        assert q.shape == p.shape and q.dtype == p.dtype, name
        assert torch.equal(q, p), f"{name}: same seed, different init"
    for attr in ("input_size", "hidden_size", "num_layers", "mode", "bias", "batch_first", "dropout",
                 "bidirectional", "proj_size"):
        assert getattr(mod, attr) == getattr(peer, attr), attr
    assert [[tuple(p.shape) for p in ps] for ps in mod.all_weights] == [
        [tuple(p.shape) for p in ps] for ps in peer.all_weights
    ]
    assert repr(mod).replace("rnnlab.", "") == repr(peer)
    mod.flatten_parameters()  # no-op, for compatibility


def test_positional_arguments_like_nn_lstm():
    mod = LSTM(3, 4, 2, False, True, 0.0, True, 2)
    assert (mod.bias, mod.batch_first, mod.bidirectional, mod.proj_size) == (False, True, True, 2)


@pytest.mark.parametrize("kwargs", CONSTRUCT)
def test_state_dict_loads_both_ways(kwargs):
    torch.manual_seed(0)
    peer = nn.LSTM(5, 7, **kwargs)
    torch.manual_seed(1)
    mod = LSTM(5, 7, **kwargs)
    mod.load_state_dict(peer.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mod.parameters(), peer.parameters()))
    torch.manual_seed(2)
    mod.reset_parameters()
    peer.load_state_dict(mod.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mod.parameters(), peer.parameters()))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((3, 4), dict(dropout=1.5)),
        ((3, 4), dict(dropout=True)),
        ((3, 4), dict(bias=1)),
        ((3, 4), dict(batch_first=None)),
        ((0, 4), {}),
        ((3.0, 4), {}),
        ((3, 0), {}),
        ((3, 4), dict(num_layers=0)),
        ((3, 4), dict(proj_size=-1)),
        ((3, 4), dict(proj_size=4)),
    ],
)
def test_bad_constructor_arguments_raise_like_nn_lstm(args, kwargs):
    with pytest.raises(Exception) as expected:
        nn.LSTM(*args, **kwargs)
    with pytest.raises(type(expected.value)) as actual:
        LSTM(*args, **kwargs)
    assert str(actual.value) == str(expected.value)


def test_dropout_with_one_layer_warns_like_nn_lstm():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        LSTM(3, 4, dropout=0.5)


def test_proj_size_fallback_is_counted():
    before = lstm_module.fallback_counts["proj_size"]
    compare_to_nn_lstm(Config(I=3, H=6, T=5, B=2, layers=2, proj_size=2))
    assert lstm_module.fallback_counts["proj_size"] == before + 2  # once per layer
    before = lstm_module.fallback_counts["proj_size"]
    compare_to_nn_lstm(Config(I=3, H=6, T=5, B=2, layers=2))
    assert lstm_module.fallback_counts["proj_size"] == before


# ---------------------------------------------------------------------------------------------
# PackedSequence
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("layers, bidirectional, proj_size", [(1, False, 0), (2, True, 0), (2, True, 2)])
@pytest.mark.parametrize("with_state", [False, True])
def test_packed_sequence_matches_nn_lstm(enforce_sorted, layers, bidirectional, proj_size, with_state):
    peer, mod = make_pair(3, 6, layers, bidirectional=bidirectional, proj_size=proj_size, dtype=torch.float64)
    lengths = [9, 6, 6, 2, 1] if enforce_sorted else [4, 9, 1, 6, 6]
    gen = torch.Generator().manual_seed(7)
    seqs = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in lengths]
    LD = layers * (2 if bidirectional else 1)
    hx = None
    if with_state:
        hx = (torch.randn(LD, len(lengths), proj_size or 6, generator=gen, dtype=torch.float64),
              torch.randn(LD, len(lengths), 6, generator=gen, dtype=torch.float64))
    results = []
    before = lstm_module.fallback_counts["packed_padded"]
    for model in (peer, mod):
        leaves = [s.clone().requires_grad_() for s in seqs]
        state = None if hx is None else tuple(h.clone().requires_grad_() for h in hx)
        out, (h_n, c_n) = model(pack_sequence(leaves, enforce_sorted=enforce_sorted), state)
        gens = [torch.randn(t.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
                for i, t in enumerate((out.data, h_n, c_n))]
        wrt = leaves + (list(state) if state is not None else []) + list(model.parameters())
        loss = sum((t * g).sum() for t, g in zip((out.data, h_n, c_n), gens))
        results.append((out, h_n, c_n, torch.autograd.grad(loss, wrt)))
    assert lstm_module.fallback_counts["packed_padded"] == before + 1
    (out_e, h_e, c_e, g_e), (out_a, h_a, c_a, g_a) = results
    assert torch.equal(out_a.batch_sizes, out_e.batch_sizes)
    for idx in ("sorted_indices", "unsorted_indices"):
        e, a = getattr(out_e, idx), getattr(out_a, idx)
        assert (e is None and a is None) or torch.equal(a, e)
    assert_close_rel(out_a.data, out_e.data, 1e-12, "packed output")
    assert_close_rel(h_a, h_e, 1e-12, "packed h_n")
    assert_close_rel(c_a, c_e, 1e-12, "packed c_n")
    for a, e in zip(g_a, g_e, strict=True):
        assert_close_rel(a, e, 1e-12, "packed grad")


# ---------------------------------------------------------------------------------------------
# dropout between layers
# ---------------------------------------------------------------------------------------------
def test_dropout_eval_mode_and_p0_match_nn_lstm():
    x = torch.randn(8, 3, 4, dtype=torch.float64)
    peer, mod = make_pair(4, 5, 3, dropout=0.5, bidirectional=True, dtype=torch.float64)
    peer.eval(), mod.eval()
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "eval mode")
    peer, mod = make_pair(4, 5, 3, dropout=0.0, dtype=torch.float64)
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "train mode, p = 0")
    peer, mod = make_pair(4, 5, 2, dropout=1.0, bidirectional=True, dtype=torch.float64)
    assert_close_rel(mod(x)[0], peer(x)[0], 1e-12, "train mode, p = 1")  # deterministic


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_semantics(bidirectional):
    """Training mode: inverted dropout (F.dropout) on each layer's output except the last one,
    checked against a stack of one-layer nn.LSTMs with F.dropout in between under the same seed."""
    L, p, D = 3, 0.4, 2 if bidirectional else 1
    torch.manual_seed(0)
    mod = LSTM(4, 5, L, dropout=p, bidirectional=bidirectional, dtype=torch.float64)
    layers = []
    for layer in range(L):
        single = nn.LSTM(4 if layer == 0 else 5 * D, 5, bidirectional=bidirectional, dtype=torch.float64)
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
# bad and unusual inputs: nn.LSTM's behaviour, or a clear error naming the argument
# ---------------------------------------------------------------------------------------------
def _bad_inputs():
    f32, f64 = torch.float32, torch.float64

    def state(h_shape=(2, 2, 4), c_shape=(2, 2, 4), **kw):
        return torch.randn(h_shape, **kw), torch.randn(c_shape, **kw)

    return {
        "input dtype": (lambda: (torch.randn(5, 2, 3, dtype=f64), None), "dtype"),
        "integer input": (lambda: (torch.ones(5, 2, 3, dtype=torch.long), None), "dtype"),
        "input 4-D": (lambda: (torch.randn(5, 2, 3, 1), None), "2D or 3D"),
        "input 1-D": (lambda: (torch.randn(5), None), "2D or 3D"),
        "input size": (lambda: (torch.randn(5, 2, 2), None), "input_size"),
        "h0 shape": (lambda: (torch.randn(5, 2, 3), state(h_shape=(2, 3, 4))), r"hidden\[0\] size"),
        "c0 shape": (lambda: (torch.randn(5, 2, 3), state(c_shape=(2, 2, 5))), r"hidden\[1\] size"),
        "h0 2-D for batched": (lambda: (torch.randn(5, 2, 3), state(h_shape=(2, 4))), "should also be 3-D"),
        "c0 3-D for unbatched": (lambda: (torch.randn(5, 3), state((2, 4), (2, 1, 4))), "should also be 2-D"),
        "h0 unbatched shape": (lambda: (torch.randn(5, 3), state((1, 4), (2, 4))), r"hidden\[0\] size"),
        "input on meta": (lambda: (torch.randn(5, 2, 3, device="meta"), None), "same device"),
        "c0 on meta": (lambda: (torch.randn(5, 2, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4, device="meta"))),
                       "same device"),
        "T = 0": (lambda: (torch.randn(0, 2, 3), None), "sequence length"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_raises_like_nn_lstm(case):
    make, message = _bad_inputs()[case]
    peer, mod = make_pair(3, 4, 2)
    x, hx = make()
    with pytest.raises(Exception) as expected:
        peer(x, hx)
    with pytest.raises(type(expected.value), match=message):
        mod(x, hx)


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
    mod = LSTM(3, 4, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float32 or float64"):
        mod(torch.randn(5, 2, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_like_nn_lstm(batch_first):
    peer, mod = make_pair(3, 4, 2, bidirectional=True, batch_first=batch_first)
    x = torch.randn((0, 5, 3) if batch_first else (5, 0, 3), requires_grad=True)
    (out_e, (h_e, c_e)), (out_a, (h_a, c_a)) = peer(x), mod(x)
    assert out_a.shape == out_e.shape and h_a.shape == h_e.shape and c_a.shape == c_e.shape
    (out_a.sum() + h_a.sum() + c_a.sum()).backward()
    assert x.grad.shape == x.shape and mod.weight_hh_l0.grad.abs().max() == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_propagate_like_nn_lstm(value):
    peer, mod = make_pair(3, 4, 2, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    x[2, 1, 0] = value
    (out_e, state_e), (out_a, state_a) = peer(x), mod(x)
    for a, e in ((out_a, out_e), *zip(state_a, state_e)):
        assert torch.equal(a.isnan(), e.isnan())
        finite = ~e.isnan()
        assert_close_rel(a[finite], e[finite], 1e-12, "finite part")


def test_non_contiguous_inputs_give_the_same_answer():
    torch.manual_seed(0)
    mod = LSTM(3, 4, 2, bidirectional=True, batch_first=True, dtype=torch.float64)
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    h0, c0 = torch.randn(4, 6, 4, dtype=torch.float64), torch.randn(4, 6, 4, dtype=torch.float64)
    x_strided = torch.randn(5, 6, 3, dtype=torch.float64).transpose(0, 1)
    x_strided.copy_(x)
    c0_strided = torch.randn(6, 4, 4, dtype=torch.float64).transpose(0, 1)
    c0_strided.copy_(c0)
    out, (h_n, c_n) = mod(x, (h0, c0))
    out_s, (h_n_s, c_n_s) = mod(x_strided, (h0, c0_strided))
    assert torch.equal(out, out_s) and torch.equal(h_n, h_n_s) and torch.equal(c_n, c_n_s)


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
        assert_close_rel(stats.delta_norm(0, d), delta_norm if d == 0 else delta_norm.flip(0), 1e-12, f"dir {d}")


def test_diagnostics_with_proj_size_are_refused_clearly():
    mod = LSTM(3, 5, proj_size=2)
    mod.diagnostics = True
    with pytest.raises(NotImplementedError, match="proj_size"):
        mod(torch.randn(4, 2, 3))


# ---------------------------------------------------------------------------------------------
# composability: torch.compile, torch.func
# ---------------------------------------------------------------------------------------------
class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = LSTM(3, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        out, (h_n, c_n) = self.lstm(x)
        return self.head(out).square().mean() + h_n.square().mean() + c_n.square().mean()


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = _Model()
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
    """An ensemble of rnnlab.LSTMs via torch.func (nn.LSTM has no vmap rule, pytorch#105982)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    torch.manual_seed(0)
    models = [LSTM(2, 6, dtype=torch.float64) for _ in range(3)]
    params, _ = stack_module_state(models)
    template = LSTM(2, 6, dtype=torch.float64).to("meta")
    x = torch.randn(7, 4, 2, dtype=torch.float64)

    def loss(p, x):
        out, (_, c_n) = functional_call(template, p, (x,))
        return out.square().sum() + c_n.sum()

    grads = vmap(grad(loss), in_dims=(0, None))(params, x)
    for i, model in enumerate(models):
        out, (_, c_n) = model(x)
        expected = torch.autograd.grad(out.square().sum() + c_n.sum(), list(model.parameters()))
        for (name, _), e in zip(model.named_parameters(), expected):
            assert_close_rel(grads[name][i], e, 1e-12, f"vmap grad {name}")


def test_exported_from_package():
    assert rnnlab.LSTM is LSTM and rnnlab.nn.LSTM is LSTM


def test_no_warnings_on_the_fused_path():
    peer, mod = make_pair(3, 4, 2, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod(torch.randn(5, 2, 3))
