"""Linear teacher–student system identification (SPEC §4.2, Zucchet & Orvieto's
``regression.py``, the ``dense`` teacher).

Every model gets its own teacher, drawn once from its own key (:meth:`setup`), so that a model's
data depends only on its seed. The student is read out at every step; pair it with
``nonlinearity="identity"`` for the linear-RNN student of the paper.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import functional
from . import rng
from .base import Batch, Task


class SystemIdentification(Task):
    """y_t = C h_t + D x_t with h_t = A h_{t−1} + B x_t, h_0 = 0, x_t ~ N(0, 1), 1-D in and out.

    Teacher (SPEC §4.2): A0 = randn(n, n)/√n = V diag(l) V⁻¹; the eigenvalues are remapped to
    l' = (ν0 + (1 − ν0) tanh|l|)·exp(i·angle(l)·max_phase/π) and A = Re(V diag(l') V⁻¹);
    B ~ randn(n, 1), C ~ randn(1, n)/√n, D ~ randn(1, 1). Loss ½·mean (ŷ − y)² over all T·B
    outputs. Per-sequence error rule [INF, project choice]: a sequence is wrong when its
    normalized squared error Σ_t(ŷ_t − y_t)² / Σ_t y_t² exceeds 0.01.
    """

    name = "sysid"
    n_in = 1
    n_out = 1
    classification = False
    relative_error_bound = 0.01

    def __init__(self, min_length: int = 300, max_length: int = 300, n_teacher: int = 10, nu0: float = 0.9,
                 max_phase: float = 3.14):
        super().__init__(min_length, max_length)
        if n_teacher < 1:
            raise ValueError(f"n_teacher must be >= 1, got {n_teacher}")
        if not 0 <= nu0 < 1:
            raise ValueError(f"nu0 must be in [0, 1), got {nu0}")
        self.n_teacher, self.nu0, self.max_phase = n_teacher, float(nu0), float(max_phase)

    def setup(self, keys: Tensor) -> dict[str, Tensor]:
        """Teacher matrices per model: A [M, n, n], B [M, n, 1], C [M, 1, n], D [M, 1, 1] (float64)."""
        n = self.n_teacher
        f64 = torch.float64
        a0 = rng.normal(rng.derive(keys, "teacher-A"), (n, n), f64) / math.sqrt(n)
        lam, vec = torch.linalg.eig(a0.cpu())
        radius = self.nu0 + (1 - self.nu0) * torch.tanh(lam.abs())
        lam = torch.polar(radius, lam.angle() * self.max_phase / math.pi)
        a = (vec @ torch.diag_embed(lam) @ torch.linalg.inv(vec)).real.to(keys.device)
        return {
            "A": a,
            "B": rng.normal(rng.derive(keys, "teacher-B"), (n, 1), f64),
            "C": rng.normal(rng.derive(keys, "teacher-C"), (1, n), f64) / math.sqrt(n),
            "D": rng.normal(rng.derive(keys, "teacher-D"), (1, 1), f64),
        }

    def readout_steps(self, length: int) -> int:
        return length

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        x = rng.normal(rng.derive(keys, "x"), (length, batch_size, 1), torch.float64)  # [M, T, B, 1]
        with torch.no_grad():
            # The teacher is itself a linear Elman recurrence: run it through the fused op.
            xp = torch.einsum("mtbi,mni->mtbn", x, ctx["B"])
            hs = functional.elman(xp.contiguous(), ctx["A"], nonlinearity="identity")
            y = torch.einsum("mtbn,mon->mtbo", hs, ctx["C"]) + torch.einsum("mtbi,moi->mtbo", x, ctx["D"])
        return Batch(x.to(dtype), y.to(dtype))

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        return 0.5 * super().loss(y, batch)

    def sequence_errors(self, y: Tensor, batch: Batch) -> Tensor:
        err = (y - batch.target).pow(2).sum((1, 3))
        return err > self.relative_error_bound * batch.target.pow(2).sum((1, 3))

    def describe(self) -> dict:
        return {**super().describe(), "n_teacher": self.n_teacher, "nu0": self.nu0, "max_phase": self.max_phase}
