"""Optimizers vectorized over a population, with per-model hyper-parameters.

``torch.optim`` applies one learning rate to a whole tensor; a population stores M models in
one [M, ...] tensor per parameter and needs M learning rates, momenta, …. These updates take
every hyper-parameter as an [M] tensor and broadcast it over the model's parameter.

* ``sgd``: p ← p − lr·g (Pascanu et al.'s MSGD, the papers' default, SPEC §2.3).
* ``momentum``: b ← μ·b + g; p ← p − lr·b (PyTorch's SGD-momentum convention).
* ``adam``: Kingma & Ba with bias correction; m, v per parameter entry.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

OPTIMIZERS = ("sgd", "momentum", "adam")


def _bcast(h: Tensor, like: Tensor) -> Tensor:
    return h.view((-1,) + (1,) * (like.dim() - 1))


def init_state(kind: str, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Zero optimizer state for ``params`` ([M, ...] tensors), keyed ``"<slot>.<param>"``."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
    slots = {"sgd": (), "momentum": ("buf",), "adam": ("m", "v")}[kind]
    return {f"{s}.{n}": torch.zeros_like(p) for s in slots for n, p in params.items()}


@torch.no_grad()
def update_(
    kind: str,
    params: dict[str, Tensor],
    grads: Mapping[str, Tensor],
    state: dict[str, Tensor],
    lr: Tensor,
    *,
    momentum: Tensor | None = None,
    beta1: Tensor | None = None,
    beta2: Tensor | None = None,
    eps: float = 1e-8,
    step: int = 1,
) -> None:
    """One update of M models in place.

    Args:
        kind: one of :data:`OPTIMIZERS`.
        params, grads, state: name -> [M, ...] tensors (state from :func:`init_state`).
        lr: [M] learning rates (already scheduled).
        momentum: [M] μ (``momentum``); beta1, beta2: [M] (``adam``).
        step: the 1-based number of this update (Adam's bias correction; every model that is
            updated has taken the same number of steps).
    """
    for name, p in params.items():
        g = grads[name]
        if kind == "sgd":
            p.sub_(_bcast(lr, p) * g)
        elif kind == "momentum":
            buf = state[f"buf.{name}"]
            buf.mul_(_bcast(momentum, p)).add_(g)
            p.sub_(_bcast(lr, p) * buf)
        elif kind == "adam":
            b1, b2 = _bcast(beta1, p), _bcast(beta2, p)
            m, v = state[f"m.{name}"], state[f"v.{name}"]
            m.mul_(b1).add_((1 - b1) * g)
            v.mul_(b2).add_((1 - b2) * g * g)
            m_hat = m / (1 - b1**step)
            v_hat = v / (1 - b2**step)
            p.sub_(_bcast(lr, p) * m_hat / (v_hat.sqrt() + eps))
        else:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
