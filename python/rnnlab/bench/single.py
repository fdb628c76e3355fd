"""One Elman layer (M = 1): nn.RNN against rnnlab doing the same job (workload.py).

Each builder returns a zero-argument callable that runs one forward pass (under no_grad) and
returns hs [T, B, H], or one forward+backward pass (gradients reset, loss Σ hs ⊙ G, backward to
all four parameters) and returns the gradients (∂W_ih, ∂W_hh, ∂b_ih, ∂b_hh) in nn.RNN's layout.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import rnnlab

from .workload import Config, Data


def _step(forward: Callable[[], Tensor], params: list[Tensor], g: Tensor, backward: bool) -> Callable[[], object]:
    if not backward:
        def run_forward() -> Tensor:
            with torch.no_grad():
                return forward()
        return run_forward

    def run_forward_backward() -> tuple:
        for p in params:
            p.grad = None
        (forward() * g).sum().backward()
        return tuple(p.grad for p in params)
    return run_forward_backward


def nn_rnn(cfg: Config, data: Data, backward: bool) -> Callable[[], object]:
    """torch.nn.RNN (tanh, one layer, bias) with the data's weights; out: [T, B, H]."""
    model = torch.nn.RNN(cfg.input_size, cfg.H)
    model.load_state_dict(data.params(0))
    return _step(lambda: model(data.x)[0], list(model.parameters()), data.g[0], backward)


def rnnlab_rnn(cfg: Config, data: Data, backward: bool) -> Callable[[], object]:
    """The drop-in rnnlab.RNN with the data's weights; out: [T, B, H]."""
    model = rnnlab.RNN(cfg.input_size, cfg.H)
    model.load_state_dict(data.params(0))
    return _step(lambda: model(data.x)[0], list(model.parameters()), data.g[0], backward)


def rnnlab_functional(cfg: Config, data: Data, backward: bool) -> Callable[[], object]:
    """``F.linear(x, W_ih, b_ih + b_hh)`` then ``rnnlab.elman`` with M = 1: what rnnlab.RNN runs
    for one layer, without the module (breakdown.py compares the two)."""
    w_ih, w_hh, b_ih, b_hh = params = [p.requires_grad_() for p in data.params(0).values()]

    def forward() -> Tensor:
        xp = F.linear(data.x, w_ih, b_ih + b_hh)
        return rnnlab.elman(xp.unsqueeze(0), w_hh.unsqueeze(0)).squeeze(0)  # a view: no zero-fill in backward

    return _step(forward, params, data.g[0], backward)
