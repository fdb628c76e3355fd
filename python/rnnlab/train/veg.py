"""Per-update vanishing/exploding-gradient (VEG) flags of SPEC §3.3, counted inside the trainer.

For last-step-loss tasks δ_k = δ_T J_T ⋯ J_{k+1}, so the per-sample ratio R_1 = ‖δ_1‖/‖δ_T‖ is
the gain of the whole Jacobian product along the error direction. At every update of a model:

* vanishing if median_b R_1 < ε_v;
* exploding if max_b R_1 > ε_e, or the global gradient norm is more than ``jump`` times the
  median of the model's previous ``window`` norms (a windowed running median: bounded memory;
  recomputed every ``refresh`` updates, since a median over the window costs more than the rest
  of the test);

‖δ_t‖² comes from the fused backward's gradient sink ([M, T, B]), so the flags cost a few
reductions per update. A sample whose ‖δ_1‖ underflowed to 0 has R_1 = 0 (vanishing); one with
‖δ_T‖ = 0 has no ratio and is left out of the median and the max.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VegRule:
    """Thresholds of the VEG flags (SPEC §3.3 defaults); ``fraction``: a run "has VEG" when a
    flag fires on more than this fraction of its updates."""

    eps_vanish: float = 1e-6
    eps_explode: float = 1e6
    jump: float = 10.0
    fraction: float = 0.1
    window: int = 100
    refresh: int = 10

    def to_dict(self) -> dict:
        return {"eps_vanish": self.eps_vanish, "eps_explode": self.eps_explode, "jump": self.jump,
                "fraction": self.fraction, "window": self.window, "refresh": self.refresh}


class VegCounter:
    """Per-model counts of flagged updates ([M] float64 tensors ``steps``, ``vanishing``,
    ``exploding``) and the ring buffer of recent gradient norms for the jump test."""

    def __init__(self, M: int, rule: VegRule, device):
        self.rule = rule
        z = lambda: torch.zeros(M, dtype=torch.float64, device=device)  # noqa: E731
        self.steps, self.vanishing, self.exploding = z(), z(), z()
        self.norms = torch.full((M, rule.window), math.nan, dtype=torch.float64, device=device)
        self.reference = torch.full((M,), math.nan, dtype=torch.float64, device=device)  # the window's median

    def add(self, idx: Tensor, delta_sq: Tensor, norm: Tensor, update: int) -> None:
        """Flag one update of the models ``idx``: ``delta_sq`` [m, T, B] per-step ‖δ_t‖² from the
        sink, ``norm`` [m] the pre-clipping global gradient norms; ``update`` is 0-based.

        On the CPU one op call (``rnnlab::veg_flags_add``, csrc/torch/trainer_records.cpp) computes
        what :meth:`add_in_torch` defines, bit for bit; other devices run that."""
        if delta_sq.device.type == "cpu":
            torch.ops.rnnlab.veg_flags_add(idx, delta_sq.contiguous(), norm, self.steps, self.vanishing, self.exploding,
                                           self.norms, self.reference, update, self.rule.eps_vanish,
                                           self.rule.eps_explode, self.rule.jump, self.rule.refresh)
            return
        self.add_in_torch(idx, delta_sq, norm, update)

    @torch.no_grad()
    def add_in_torch(self, idx: Tensor, delta_sq: Tensor, norm: Tensor, update: int) -> None:
        """:meth:`add` in torch ops: the definition (any device)."""
        first, last = delta_sq[:, 0].double(), delta_sq[:, -1].double()  # only the end steps: not all of [m, T, B]
        r1 = torch.where(last > 0, first / last, math.nan).sqrt()  # [m, B]; no ratio where ‖δ_T‖ = 0
        missing = torch.isnan(r1)
        has_missing = bool(missing.any())  # rare (‖δ_T‖ = 0); median is ~6x cheaper than nanmedian
        median = (r1.nanmedian(1) if has_missing else r1.median(1)).values
        largest = torch.where(missing, -math.inf, r1).amax(1) if has_missing else r1.amax(1)
        if update % self.rule.refresh == 0:  # NaN before the first update
            self.reference = self.norms.nanmedian(1).values
        norm = norm.double()
        jumped = torch.isfinite(norm) & (norm > self.rule.jump * self.reference[idx])
        self.steps.index_add_(0, idx, torch.ones_like(median))
        self.vanishing.index_add_(0, idx, (median < self.rule.eps_vanish).double())
        self.exploding.index_add_(0, idx, ((largest > self.rule.eps_explode) | jumped).double())
        self.norms[idx, update % self.rule.window] = torch.where(torch.isfinite(norm), norm, math.nan)
