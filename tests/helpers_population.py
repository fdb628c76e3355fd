"""What the population tests of each cell (test_population_elman.py, test_population_lstm_diag.py,
test_population_gru.py) share."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnlab.nn.population import param_shapes, population_forward
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, train_population
from rnnlab.train.init import init_population


def torch_layer_of_model(cls: type, params: dict, m: int, **kwargs) -> nn.Module:
    """A one-layer float64 torch.nn ``cls`` (nn.RNN, nn.LSTM, nn.GRU) holding population model m's
    recurrent weights: weight_ih, weight_hh, and ``bias`` as bias_ih. bias_hh is zero (a population
    has one bias per unit) but for a GRU's n-gate block, which holds ``bias_hn``: r multiplies that
    bias, so it cannot fold into ``bias``. kwargs go to the constructor (e.g. nonlinearity)."""
    hidden, inputs = params["weight_hh"].shape[-1], params["weight_ih"].shape[-1]
    layer = cls(inputs, hidden, dtype=torch.float64, **kwargs)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(params["weight_ih"][m])
        layer.weight_hh_l0.copy_(params["weight_hh"][m])
        layer.bias_ih_l0.copy_(params["bias"][m])
        layer.bias_hh_l0.zero_()
        if "bias_hn" in params:
            layer.bias_hh_l0[-hidden:].copy_(params["bias_hn"][m])
    return layer


def check_population_matches_torch_layers(cell: str, cls: type, I: int, H: int, O: int, T: int = 9, B: int = 4) -> dict:
    """Three float64 models of `cell` (orthogonal, normal and basic_tanh inits, random biases):
    population_forward with a 2-step readout equals, per model, the torch.nn ``cls`` layer holding
    its weights (:func:`torch_layer_of_model`) with the same readout, and the gradients of its
    recurrent parameters equal the layer's. Returns the params (with their gradients)."""
    M = 3
    torch.manual_seed(0)
    params = init_population(rng.seed_keys([1, 2, 3]), ["orthogonal", "normal", "basic_tanh"], I, H, O,
                             gains=[0.9, 1.0, 1.2], dtype=torch.float64, cell=cell)
    for name in ("bias", "bias_hn"):  # zero after init; random, so that a misplaced bias shows
        if name in params:
            params[name] = 0.3 * torch.randn_like(params[name])
    params = {n: v.requires_grad_(True) for n, v in params.items()}
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    y = population_forward(params, x, cell=cell, readout_steps=2)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    for m in range(M):
        layer = torch_layer_of_model(cls, params, m)
        out = nn.functional.linear(layer(x[m])[0][-2:], params["weight_out"][m], params["bias_out"][m])
        torch.testing.assert_close(y[m], out, rtol=1e-12, atol=1e-12)
        (out * w[m]).sum().backward()
        pairs = [("weight_ih", layer.weight_ih_l0.grad), ("weight_hh", layer.weight_hh_l0.grad),
                 ("bias", layer.bias_ih_l0.grad)]
        if "bias_hn" in params:
            pairs.append(("bias_hn", layer.bias_hh_l0.grad[-H:]))
        for name, want in pairs:
            torch.testing.assert_close(params[name].grad[m], want, rtol=1e-10, atol=1e-12, msg=f"model {m} {name}")
    return params


def check_orthogonal_init_per_gate(cell: str, gates: int, I: int, H: int, O: int) -> tuple[dict, torch.Tensor]:
    """The "orthogonal" init of two models with gains 0.5, 1.5 has param_shapes' shapes, and each
    of weight_hh's `gates` H×H blocks is orthogonal times its model's gain (blocks drawn one by
    one, not one 3H×H or 4H×H matrix). Returns the params and the blocks [2, gates, H, H]."""
    p = init_population(rng.seed_keys([5, 6]), "orthogonal", I, H, O, gains=[0.5, 1.5], dtype=torch.float64, cell=cell)
    assert {n: tuple(v.shape) for n, v in p.items()} == param_shapes(2, I, H, O, cell)
    blocks = p["weight_hh"].view(2, gates, H, H)
    eye = torch.eye(H, dtype=torch.float64)
    for m, g in enumerate((0.5, 1.5)):
        for k in range(gates):
            torch.testing.assert_close(blocks[m, k] @ blocks[m, k].T, g * g * eye)
    return p, blocks


def check_init_depends_only_on_the_seed(cell: str, init: str, I: int, H: int, O: int) -> None:
    """A model's init is the same in a population of three as alone: it depends on its seed only."""
    together = init_population(rng.seed_keys([7, 8, 9]), init, I, H, O, cell=cell)
    alone = init_population(rng.seed_keys([9]), init, I, H, O, cell=cell)
    assert all(torch.equal(together[n][2], alone[n][0]) for n in alone)


#: the task each cell is trained on in the trained-alone check: temporal order, except system
#: identification for the diagonal cell (a linear recurrence cannot solve temporal order).
TRAINED_ALONE_TASKS = {"diag": ("sysid", {})}
DEFAULT_TRAINED_ALONE_TASK = ("torder", {"min_length": 6, "max_length": 9})


def trained_alone_configs(cell: str, **extra) -> list[RunConfig]:
    """Three float64 runs of a cell (seeds 1–3, each its own lr and clip) for the trained-alone
    check, on the cell's task of :data:`TRAINED_ALONE_TASKS`.

    One validation chunk: chunked validation stops early once no model of the population can
    succeed, and the estimate from fewer chunks would depend on the other models."""
    task, kwargs = TRAINED_ALONE_TASKS.get(cell, DEFAULT_TRAINED_ALONE_TASK)
    base = dict(task=task, task_kwargs=kwargs, cell=cell, hidden=8, max_updates=30, val_every=10, val_size=200,
                val_chunk=200, dtype="float64", stop_at_success=False, **extra)
    return [RunConfig(seed=1, lr=0.05, clip=1.0, **base), RunConfig(seed=2, lr=0.01, clip=None, **base),
            RunConfig(seed=3, lr=0.02, clip=0.3, **base)]


def check_trained_in_population_equals_trained_alone(configs: list[RunConfig], models=(0, 2)) -> None:
    """train_population(configs): each of `models` ends with the parameters, validation losses,
    mean gradient norm and VEG step count it has when trained alone (float64 round-off aside)."""
    together = train_population(configs)
    for m in models:
        alone = train_population([configs[m]])[0]
        for n, v in alone.params.items():
            torch.testing.assert_close(together[m].params[n], v, rtol=1e-9, atol=1e-10, msg=n)
        assert together[m].history["val_loss"] == pytest.approx(alone.history["val_loss"], rel=1e-9)
        assert together[m].grad_norm_mean == pytest.approx(alone.grad_norm_mean, rel=1e-9)
        assert together[m].veg_steps == alone.veg_steps == configs[m].max_updates
