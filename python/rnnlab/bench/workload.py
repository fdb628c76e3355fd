"""What ``rnnlab bench`` times: the Elman configurations (five single layers from small and
latency-bound to large and GEMM-bound, and a population of 256 small models), their data, and
their flop counts.

Every implementation runs the same job on the same numbers: a one-layer tanh Elman RNN
``h_t = tanh(x_t W_ihᵀ + b_ih + b_hh + h_{t-1} W_hhᵀ)`` from h_0 = 0 over x [T, B, I] (float32),
and for forward+backward the loss ``L = Σ hs ⊙ G`` with a fixed random G of the shape of the
outputs, back-propagated to every parameter (not to x). A random G (rather than ``hs.sum()``)
gives a dense, arbitrary ∂L/∂h_t like a real readout does, and leaves no implementation a constant
gradient to fold away.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Config:
    """M independent models of hidden size H, batch B, T steps, input size I (= H when None).

    The single-model configs use I = H, the input of a stacked layer, so the input projection is
    as large as the recurrence and both sides pay for it in a GEMM outside the recurrence.
    """

    H: int
    B: int
    T: int
    I: int | None = None
    M: int = 1

    @property
    def input_size(self) -> int:
        return self.H if self.I is None else self.I

    @property
    def label(self) -> str:
        lead = f"M={self.M} " if self.M > 1 else ""
        tail = f" I={self.input_size}" if self.I is not None else ""
        return f"{lead}H={self.H} B={self.B} T={self.T}{tail}"

    def flops(self, backward: bool) -> float:
        """Useful recurrent work: 2·B·H² flops per step and model for ``h_{t-1} W_hhᵀ`` in the
        forward pass; the backward pass adds ``u_t W_hh`` (∂L/∂h_{t-1}) and ``u_tᵀ h_{t-1}``
        (∂L/∂W_hh), 2·B·H² each, so forward+backward is 6·M·T·B·H². The input projection, bias,
        activation and loss are not counted (see docs/performance.md)."""
        return (6 if backward else 2) * self.M * self.T * self.B * self.H**2


SINGLE = (Config(32, 32, 256), Config(64, 1, 1000), Config(128, 32, 200), Config(256, 64, 200), Config(512, 128, 100))
POPULATION = Config(32, 32, 100, I=2, M=256)
# --quick: same shapes with shorter sequences (per-step costs, hence ratios, are nearly unchanged).
QUICK_SINGLE = (Config(32, 32, 64), Config(64, 1, 250), Config(128, 32, 50), Config(256, 64, 50), Config(512, 128, 25))
QUICK_POPULATION = Config(32, 32, 25, I=2, M=256)


@dataclass(frozen=True)
class Data:
    """The numbers every implementation uses, in nn.RNN's layout with a leading model dimension.

    x: [T, B, I] shared by all models; w_ih: [M, H, I]; w_hh: [M, H, H]; b_ih, b_hh: [M, H];
    g: [M, T, B, H], the loss weights G.
    """

    x: Tensor
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor
    b_hh: Tensor
    g: Tensor

    @staticmethod
    def make(cfg: Config, seed: int = 0) -> "Data":
        """Random data; weights uniform in ±1/√H like nn.RNN's initialisation."""
        gen = torch.Generator().manual_seed(seed)
        M, H, I = cfg.M, cfg.H, cfg.input_size
        k = H**-0.5

        def uniform(*shape: int) -> Tensor:
            return (torch.rand(*shape, generator=gen) * 2 - 1) * k

        return Data(
            x=torch.randn(cfg.T, cfg.B, I, generator=gen),
            w_ih=uniform(M, H, I),
            w_hh=uniform(M, H, H),
            b_ih=uniform(M, H),
            b_hh=uniform(M, H),
            g=torch.randn(M, cfg.T, cfg.B, H, generator=gen),
        )

    def params(self, m: int) -> dict[str, Tensor]:
        """Model m's parameters under nn.RNN's names (copies, so callers may own them)."""
        return {
            "weight_ih_l0": self.w_ih[m].clone(),
            "weight_hh_l0": self.w_hh[m].clone(),
            "bias_ih_l0": self.b_ih[m].clone(),
            "bias_hh_l0": self.b_hh[m].clone(),
        }
