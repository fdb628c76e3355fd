"""A population of M Elman RNNs with their own weights on shared inputs, forward+backward.

The peers a PyTorch user has without rnnlab, and rnnlab's two ways to run the population:

* ``loop``: a Python loop over M ``nn.RNN`` modules (nn.RNN has no vmap rule, pytorch#105982);
* ``bmm``: the best hand-rolled batched version: one batched projection, then per step one
  ``baddbmm`` and one ``tanh`` over ``unbind``-ed steps under autograd;
* ``fused``: the same projection, then one ``rnnlab.elman`` call with M models;
* ``vmap``: ``torch.func.vmap(torch.func.grad(loss))`` of one rnnlab.RNN over stacked weights,
  which rnnlab's vmap rule turns into one fused call.

Each builder returns a callable that runs one forward+backward pass of ``L = Σ_m Σ hs_m ⊙ G_m``
(workload.py) and returns the gradients (∂W_ih [M, H, I], ∂W_hh [M, H, H], ∂b_ih [M, H],
∂b_hh [M, H]), so that the peers can be checked against each other.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

import rnnlab

from .workload import Config, Data


def _stacked(data: Data) -> list[Tensor]:
    return [t.clone().requires_grad_() for t in (data.w_ih, data.w_hh, data.b_ih, data.b_hh)]


def _project(x: Tensor, w_ih: Tensor, bias: Tensor) -> Tensor:
    """x [T, B, I], w_ih [M, H, I], bias [M, H] -> xp [M, T, B, H] in one batched GEMM."""
    T, B, I = x.shape
    M, H, _ = w_ih.shape
    xs = x.reshape(1, T * B, I).expand(M, T * B, I)
    return torch.baddbmm(bias.unsqueeze(1), xs, w_ih.transpose(1, 2)).view(M, T, B, H)


def _backward_step(forward: Callable[[], Tensor], params: list[Tensor], g: Tensor) -> Callable[[], tuple]:
    def run() -> tuple:
        for p in params:
            p.grad = None
        (forward() * g).sum().backward()
        return tuple(p.grad for p in params)
    return run


def loop(cfg: Config, data: Data) -> Callable[[], tuple]:
    models = []
    for m in range(cfg.M):
        model = torch.nn.RNN(cfg.input_size, cfg.H)
        model.load_state_dict(data.params(m))
        models.append(model)
    params = [p for model in models for p in model.parameters()]

    def run() -> tuple:
        for p in params:
            p.grad = None
        loss = sum((model(data.x)[0] * data.g[m]).sum() for m, model in enumerate(models))
        loss.backward()
        per_name = zip(*(model.parameters() for model in models))  # W_ih of every model, then W_hh, ...
        return tuple(torch.stack([p.grad for p in same]) for same in per_name)
    return run


def bmm(cfg: Config, data: Data) -> Callable[[], tuple]:
    w_ih, w_hh, b_ih, b_hh = params = _stacked(data)

    def forward() -> Tensor:
        xp = _project(data.x, w_ih, b_ih + b_hh)
        w_t = w_hh.transpose(1, 2)
        h = xp.new_zeros(cfg.M, cfg.B, cfg.H)
        hs = []
        for xp_t in xp.unbind(1):
            h = torch.tanh(torch.baddbmm(xp_t, h, w_t))
            hs.append(h)
        return torch.stack(hs, 1)

    return _backward_step(forward, params, data.g)


def fused(cfg: Config, data: Data) -> Callable[[], tuple]:
    w_ih, w_hh, b_ih, b_hh = params = _stacked(data)
    return _backward_step(lambda: rnnlab.elman(_project(data.x, w_ih, b_ih + b_hh), w_hh), params, data.g)


def vmap(cfg: Config, data: Data) -> Callable[[], tuple]:
    """``vmap(grad(loss))`` of one rnnlab.RNN through ``torch.func.functional_call``."""
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    params = dict(zip(names, (data.w_ih, data.w_hh, data.b_ih, data.b_hh)))
    model = rnnlab.RNN(cfg.input_size, cfg.H)

    def loss(p: dict[str, Tensor], x: Tensor, g: Tensor) -> Tensor:
        return (torch.func.functional_call(model, p, (x,))[0] * g).sum()

    grads = torch.func.vmap(torch.func.grad(loss), in_dims=(0, None, 0))

    def run() -> tuple:
        g = grads(params, data.x, data.g)
        return tuple(g[n] for n in names)
    return run


BUILDERS = {"nn.RNN loop": loop, "bmm/unbind": bmm, "rnnlab fused": fused, "rnnlab vmap": vmap}
