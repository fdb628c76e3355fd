"""Per-model random draws of the initialisations: every value is a function of the model's key
(:mod:`rnnlab.tasks.rng`) and the parameter's name only, so a model starts from the same
weights alone or inside any population. All draws are float64 [M, ...]."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..tasks import rng


def normal(keys: Tensor, name: str, shape: Sequence[int], std: float) -> Tensor:
    """[M, *shape[1:]] N(0, std²) draws of parameter ``name`` (``shape`` includes M)."""
    return std * rng.normal(rng.derive(keys, "init", name), shape[1:], torch.float64)


def uniform(keys: Tensor, name: str, shape: Sequence[int]) -> Tensor:
    """[M, *shape] U[0, 1) draws tagged ``name`` (``shape`` excludes M)."""
    return rng.uniform(rng.derive(keys, "init", name), shape, torch.float64)


def orthogonal(keys: Tensor, H: int, blocks: int = 1) -> Tensor:
    """[M, blocks·H, H]: ``blocks`` independent Haar-orthogonal [H, H] matrices stacked by rows."""
    M = keys.shape[0]
    q, r = torch.linalg.qr(normal(keys, "weight_hh", (0, blocks, H, H), 1.0))
    # Sign fix so that Q is Haar-distributed (the QR of a Gaussian matrix fixes diag(R) > 0 only up to sign).
    return (q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)).reshape(M, blocks * H, H)


def spectral_radius(w: Tensor) -> Tensor:
    """[M] max |eigenvalue| of each [M, H, H] matrix (eigenvalues in float64 on the CPU, the
    result in ``w``'s dtype and device)."""
    w = w.detach()
    return torch.linalg.eigvals(w.to("cpu", torch.float64)).abs().amax(-1).to(w.device, w.dtype)
