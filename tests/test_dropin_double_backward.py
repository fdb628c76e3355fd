"""Gradients of gradients through the drop-ins: gradgradcheck in float64 on tiny modules and on
torch's ModuleInfo samples (test_modules' test_gradgrad), and the second derivatives of a
gradient penalty and of a Hessian-vector product equal to torch.nn's."""
from __future__ import annotations

import pytest
import torch

import helpers_dropin as dropin
from helpers_dropin import FAMILIES

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
F64 = torch.float64

#: tiny configurations: every kind of layer the forward builds (several layers, both
#: directions, no biases, batch_first, LSTM projections), small enough for finite differences
CONFIGS = {
    "2 layers, bidirectional": dict(num_layers=2, bidirectional=True),
    "no bias, batch_first": dict(bias=False, batch_first=True),
    "projections": dict(num_layers=2, proj_size=1),
}


def _cases():
    return [(cell, name) for cell in FAMILIES for name, config in CONFIGS.items() if cell == "lstm" or "proj_size" not in config]


def _inputs(family, module, gen: torch.Generator):
    """x [T=3, B=2, 2] (or batch_first) and the initial states, leaves that require grad."""
    x_shape = (2, 3, 2) if module.batch_first else (3, 2, 2)
    LD = module.num_layers * (2 if module.bidirectional else 1)
    x = torch.randn(x_shape, generator=gen, dtype=F64)
    states = [torch.randn(LD, 2, size, generator=gen, dtype=F64) for size in family.state_sizes(3, module.proj_size)]
    return [t.requires_grad_() for t in (x, *states)]


@pytest.mark.parametrize("cell, config", _cases())
def test_gradgradcheck(cell, config):
    family = FAMILIES[cell]
    torch.manual_seed(0)
    module = family.module(2, 3, dtype=F64, **CONFIGS[config])
    x, *states = _inputs(family, module, torch.Generator().manual_seed(1))
    params = list(module.parameters())

    def f(x, *rest):
        out, finals = dropin.split_result(module(x, family.hx(list(rest[: len(states)]))))
        return out, *finals

    assert torch.autograd.gradgradcheck(f, (x, *states, *params), fast_mode=True)


def _second_derivatives(family, model, x, *states):
    """The gradients (x, states, parameters) of two second-order losses of a random linear
    functional L of the outputs: a gradient penalty ‖∂L/∂x‖² + ‖∂L/∂θ‖², and the Hessian-vector
    product (∂²L/∂θ²)·v dotted with a fixed u."""
    out, finals = dropin.split_result(model(x, family.hx(list(states))))
    gen = torch.Generator().manual_seed(2)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=F64)).sum() for t in (out, *finals))
    params = list(model.parameters())
    first = torch.autograd.grad(loss, [x, *params], create_graph=True)
    penalty = sum(g.square().sum() for g in first)
    wrt = [x, *states, *params]
    penalty_grads = torch.autograd.grad(penalty, wrt, retain_graph=True)
    v = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]
    hvp = torch.autograd.grad(first[1:], params, v, create_graph=True)
    u = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]
    hvp_grads = torch.autograd.grad(sum((h * w).sum() for h, w in zip(hvp, u)), wrt, allow_unused=True)
    return penalty_grads, hvp, hvp_grads


@pytest.mark.parametrize("cell, config", _cases())
def test_second_derivatives_match_nn(cell, config):
    family = FAMILIES[cell]
    peer, mod = family.pair(2, 3, dtype=F64, **CONFIGS[config])
    results = [_second_derivatives(family, model, *_inputs(family, model, torch.Generator().manual_seed(1)))
               for model in (peer, mod)]
    for kind, expected, actual in zip(("penalty grad", "hvp", "hvp grad"), *results):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert (a is None) == (e is None), f"{kind} {i}"
            if e is not None:
                dropin.assert_close_rel(a, e, dropin.TOL[F64], f"{kind} {i}")


@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_gradgradcheck(cell):
    """test_modules' test_gradgrad: the total second derivative of each ModuleInfo sample."""
    for sample in dropin.module_info_samples(cell, requires_grad=True):
        f, inputs = dropin.gradcheck_function(dropin.build(FAMILIES[cell].module, sample), sample)
        assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True)
