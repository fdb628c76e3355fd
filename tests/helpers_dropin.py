"""What the drop-in tests (test_dropin.py, test_dropin_nn_parity.py, test_dropin_double_backward.py)
share: the cell families (a drop-in and its torch.nn peer), built alike, their outputs and every
gradient compared over a randomized grid of configurations, and torch's ModuleInfo samples.

A drop-in returns ``(output, h_n)`` (RNN, GRU) or ``(output, (h_n, c_n))`` (LSTM); the helpers see the
final states as a tuple either way (:func:`split_result`) and build the ``hx`` argument from one
(:meth:`Family.hx`).
"""
from __future__ import annotations

import functools
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch
from hypothesis import strategies as st
from torch import nn

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
# torch's ModuleInfo samples for nn.RNN, nn.LSTM, nn.GRU (what test_modules.py runs them on)
# ---------------------------------------------------------------------------------------------
@functools.cache
def module_info(cell: str):
    """torch's ModuleInfo of the cell's peer (common_modules is slow to import: only on use)."""
    from torch.testing._internal.common_modules import module_db

    return next(info for info in module_db if info.module_cls is FAMILIES[cell].peer)


def module_info_samples(cell: str, dtype=torch.float64, requires_grad: bool = False, training: bool = True):
    info = module_info(cell)
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=requires_grad, training=training)


def build(cls: type, sample, dtype=torch.float64, training: bool = True) -> nn.Module:
    """cls (nn's or rnnlab's) built from a sample's constructor arguments, seeded the same."""
    torch.manual_seed(0)
    module = cls(*sample.constructor_input.args, **sample.constructor_input.kwargs).to(dtype)
    return module.train(training)


def forward(module: nn.Module, sample):
    return module(*sample.forward_input.args, **sample.forward_input.kwargs)


def gradcheck_function(module: nn.Module, sample):
    """(f, inputs) for gradcheck: f(*inputs) is the sample's forward, flattened, where inputs are
    the sample's tensors then the parameters (which the module uses as they are)."""
    flat, spec = torch.utils._pytree.tree_flatten(sample.forward_input.args)

    def f(*inputs):
        out = module(*torch.utils._pytree.tree_unflatten(list(inputs[: len(flat)]), spec))
        return tuple(torch.utils._pytree.tree_flatten(out)[0])

    return f, (*flat, *module.parameters())
