"""Where rnnlab's forward+backward time goes: each part timed alone, against the whole pass.

The parts are what one training step of the functional path runs (single.py, population.py):
the input projection GEMM, the fused forward kernel, the loss, the fused backward op (recurrent
kernel, then the ∂W_hh GEMMs and Ω inside the same op; the GEMMs are also timed alone), and the
projection's backward GEMMs. ``whole pass − Σ parts`` is what autograd, Python, dispatch and
allocation add.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .._ops import ops
from . import population, single
from .harness import FULL, Budget, measure
from .workload import Config, Data


def _parts(cfg: Config, data: Data) -> dict[str, Callable[[], object]]:
    M, T, B, H = cfg.M, cfg.T, cfg.B, cfg.H
    x = data.x
    bias = data.b_ih + data.b_hh
    if M == 1:
        def project():
            return F.linear(x, data.w_ih[0], bias[0]).unsqueeze(0)
    else:
        xs = x.reshape(1, T * B, -1).expand(M, T * B, x.shape[-1])

        def project():
            return torch.baddbmm(bias.unsqueeze(1), xs, data.w_ih.transpose(1, 2)).view(M, T, B, H)

    xp = project()
    h0 = xp.new_zeros(M, B, H)
    hs = ops.elman_forward(xp, data.w_hh, h0, "tanh")
    grad_xp = ops.elman_backward(data.g, hs, h0, data.w_hh, "tanh", None)[0]
    u = grad_xp.view(M, T * B, H)
    prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], 1).view(M, T * B, H)
    flat_x = x.reshape(T * B, -1)

    return {
        "projection x·W_ihᵀ": project,
        "kernel forward": lambda: ops.elman_forward(xp, data.w_hh, h0, "tanh"),
        "loss Σ hs⊙G": lambda: (hs * data.g).sum(),
        "elman_backward op (all)": lambda: ops.elman_backward(data.g, hs, h0, data.w_hh, "tanh", None),
        "  of which ∂W_hh GEMMs": lambda: torch.bmm(u.transpose(1, 2), prev),
        "projection backward ∂W_ih, ∂b": lambda: (torch.matmul(u.transpose(1, 2), flat_x), u.sum(1)),
    }


def breakdown(cfg: Config, budget: Budget = FULL) -> dict[str, float]:
    """Median seconds of each part of rnnlab's forward+backward on ``cfg``; of the whole pass
    through the same functional calls (single.rnnlab_functional for M = 1, population.fused
    otherwise) and the overhead ``whole − Σ parts`` (the "of which" line is not added twice);
    and, for comparison, of the whole pass through rnnlab.RNN (M = 1) or vmap (M > 1)."""
    data = Data.make(cfg)
    out = {name: measure(fn, budget).median for name, fn in _parts(cfg, data).items()}
    parts = sum(t for name, t in out.items() if not name.startswith(" "))
    if cfg.M == 1:
        whole, other = single.rnnlab_functional(cfg, data, True), single.rnnlab_rnn(cfg, data, True)
    else:
        whole, other = population.fused(cfg, data), population.vmap(cfg, data)
    out["whole pass, functional"] = measure(whole, budget).median
    out["autograd/Python/alloc overhead"] = out["whole pass, functional"] - parts
    out["whole pass, rnnlab.RNN" if cfg.M == 1 else "whole pass, vmap"] = measure(other, budget).median
    return out
