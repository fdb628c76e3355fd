"""``rnnlab.GRU``: a drop-in for ``torch.nn.GRU`` that runs on the fused GRU kernels (DESIGN.md §4)."""
from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor

from ..functional import gru
from ._common import PROJ_SIZE_NOT_GIVEN, DropIn, _stack, refuse_proj_size

#: How often each path that is not one fused call per layer ran (DESIGN.md §4: fallbacks are
#: visible and countable). ``"packed_padded"``: a ``PackedSequence`` forward, run on the padded batch.
fallback_counts: Counter = Counter()


class GRU(DropIn):
    r"""Multi-layer GRU, a drop-in replacement for :class:`torch.nn.GRU`.

    Same constructor, parameters (names, shapes, order, initialization: the same seed gives the
    same weights, and ``state_dict``\ s load both ways), forward inputs and outputs as
    ``nn.GRU``; it is not a subclass of it (Dynamo graph-breaks on ``nn.GRU`` instances, so
    ``torch.compile(fullgraph=True)`` works here).

    Each layer is one input-projection GEMM over all steps (``x W_ihᵀ``) and one fused
    :func:`rnnlab.gru` call, which adds ``b_ih + [b_hr, b_hz, 0]`` as it reads the projection
    (the n gate's hidden bias b_hn is multiplied by r, so it goes to the kernel on its own); a
    bidirectional layer is a single call with M = 2 models, the reverse direction running on the
    time-flipped projected input. Dropout (``dropout > 0``, training mode) is applied to every
    layer's output except the last, as in ``nn.GRU``. Parameters must be float32 or float64; CUDA tensors run the pure-PyTorch
    reference (see :func:`rnnlab.gru`).

    ``PackedSequence`` input is padded to [T_max, B] and run through the same fused calls, the
    reverse direction flipped within each sequence's own length; the padded steps are computed
    and discarded. Each such call increments ``rnnlab.nn.gru.fallback_counts["packed_padded"]``.

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size, I = input_size):
        input: [T, B, I], or [B, T, I] with ``batch_first``, or unbatched [T, I], or a
            ``PackedSequence``.
        hx: [L·D, B, H] (unbatched: [L·D, H]) initial states, or None for zeros.
        returns output [T, B, D·H] (``batch_first``: [B, T, D·H]; unbatched: [T, D·H]; packed
        in, packed out) and h_n [L·D, B, H] (unbatched: [L·D, H]).

    Gradient diagnostics (beyond ``nn.GRU``; off by default): with ``diagnostics = True`` each
    forward pass attaches gradient sinks, and after one ``loss.backward()`` :attr:`gradient_stats`
    holds, per layer and direction, ‖∂L/∂h_t‖ and ‖v_t‖²/‖δ_t‖² as [T, B] in original time order
    and Ω, N as [L, D] (SPEC.md §8.1; v_t is the whole contribution of step t to ∂L/∂h_{t-1}, the
    ``z ⊙ δ_t`` skip path included, so the ratio is the per-step gain as for ``rnnlab.RNN``), see
    :class:`rnnlab.nn.GradientStats`. There is no regularizer for the GRU.

    Example::

        gru = rnnlab.GRU(2, 64, num_layers=2, bidirectional=True)
        out, h_n = gru(x)                      # x: [T, B, 2]
    """

    _name = "GRU"
    _fallback_counts = fallback_counts

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        proj_size=PROJ_SIZE_NOT_GIVEN,
    ) -> None:
        refuse_proj_size(proj_size)
        super().__init__(
            "GRU", 3, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype
        )

    def _layer_params(self, layer: int) -> list[dict[str, Tensor]]:
        """DropIn's {kind: parameter} per direction, with the b_hn split off: ``"bias_hh"`` (what the
        op's bias folds in with b_ih) becomes [b_hr, b_hz, 0] and ``"bias_hn"`` holds b_hn for the kernel."""
        params = super()._layer_params(layer)
        if self.bias:
            H = self.hidden_size
            for p in params:
                b_hh = p["bias_hh"]
                p["bias_hh"] = torch.cat([b_hh[: 2 * H], b_hh.new_zeros(H)])
                p["bias_hn"] = b_hh[2 * H :]
        return params

    def _recurrence(self, xp, bias, w_hh, states, sink, params):
        """h = gru(xp, w_hh, b_hn, h0, bias=bias) of the layer's D directions: ([D, T, B, H],)."""
        b_hn = _stack([p["bias_hn"] for p in params]) if self.bias else None
        h0 = None if states is None else states[0]
        return (gru(xp, w_hh, b_hn, h0, sink=sink, bias=bias),)
