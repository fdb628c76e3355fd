"""Per-layer gradient statistics of :class:`rnnlab.RNN` (SPEC.md §8.1 B1–B4, §2.5).

The fused backward kernel delivers ‖δ_t‖², ‖v_t‖², Ω and N through one
:class:`rnnlab.GradientSink` per layer (M = number of directions). This module turns those
kernel-layout statistics back into the user's view: original time order, original batch order.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..functional import GradientSink


class GradientStats:
    """Gradient statistics of the most recent forward pass of an :class:`rnnlab.RNN`.

    Filled by ``loss.backward()``; read them afterwards. Every per-step statistic is [T, B] in
    the *original* time order, also for the reverse direction (whose kernel runs on the
    time-flipped input), and in the caller's batch order, also for ``batch_first`` input (still
    [T, B], not [B, T]), unbatched input (B = 1) and ``PackedSequence`` input (T = longest
    sequence; steps past a sequence's end have ‖δ_t‖ = 0, ratio NaN, and count as invalid in Ω).

    Args:
        sinks: one :class:`GradientSink` per layer, each with M = num_directions.
        reverse_time: maps a [T, B] statistic of the reverse direction from kernel (processing)
            order back to original time order.
        batch_order: [B] index that maps kernel batch rows back to the caller's order, or None.
    """

    def __init__(
        self,
        sinks: list[GradientSink],
        reverse_time: Callable[[Tensor], Tensor],
        batch_order: Tensor | None,
    ):
        self._sinks = sinks
        self._reverse_time = reverse_time
        self._batch_order = batch_order

    @property
    def num_layers(self) -> int:
        return len(self._sinks)

    def _sink(self, layer: int, direction: int) -> GradientSink:
        if not 0 <= layer < len(self._sinks):
            raise IndexError(f"layer must be in [0, {len(self._sinks)}), got {layer}")
        directions = self._sinks[layer].step.shape[0]
        if not 0 <= direction < directions:
            raise IndexError(f"direction must be in [0, {directions}), got {direction}")
        return self._sinks[layer]

    def _per_step(self, stat: Tensor, direction: int) -> Tensor:
        """Kernel-layout [T, B] of one direction -> original time and batch order."""
        if direction == 1:
            stat = self._reverse_time(stat)
        if self._batch_order is not None:
            stat = stat.index_select(1, self._batch_order)
        return stat

    def delta_norm(self, layer: int, direction: int = 0) -> Tensor:
        """[T, B] ‖∂L/∂h_t‖ of one layer and direction (0 forward, 1 reverse); SPEC §8.1 B1."""
        return self._per_step(self._sink(layer, direction).delta_norm[direction], direction)

    def ratio(self, layer: int, direction: int = 0) -> Tensor:
        """[T, B] ‖v_t‖² / ‖δ_t‖², the ratio inside Ω (SPEC §2.5); NaN where δ_t = 0.

        v_t is the part of the gradient on the *previous* state in processing order that came
        through the recurrence: h_{t-1} for the forward direction, h_{t+1} for the reverse one.
        """
        return self._per_step(self._sink(layer, direction).ratio[direction], direction)

    @property
    def omega(self) -> Tensor:
        """[L, D] Pascanu's Ω of each layer and direction (SPEC §2.5, §8.1 B4)."""
        return torch.stack([sink.omega for sink in self._sinks])

    @property
    def n_valid(self) -> Tensor:
        """[L, D] N = Σ_t mean_b [‖δ_t‖² ≥ 1e-20], the valid-step count of Ω (SPEC §8.1 B3)."""
        return torch.stack([sink.n_valid for sink in self._sinks])
