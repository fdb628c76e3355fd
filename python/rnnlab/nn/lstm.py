"""``rnnlab.LSTM``: a drop-in for ``torch.nn.LSTM`` that runs on the fused LSTM kernels (DESIGN.md §4)."""
from __future__ import annotations

from collections import Counter

from torch import Tensor

from ..functional import lstm
from ._common import DropIn, _stack

#: How often each path that is not one fused call per layer ran (DESIGN.md §4: fallbacks are
#: visible and countable). ``"packed_padded"``: a ``PackedSequence`` forward, run on the padded
#: batch; ``"proj_size"``: a layer with ``proj_size > 0``, run by :func:`rnnlab.lstm`'s reference
#: path (which ``rnnlab._ops.fallbacks[("lstm_forward", "proj_size")]`` counts too).
fallback_counts: Counter = Counter()


class LSTM(DropIn):
    r"""Multi-layer LSTM, a drop-in replacement for :class:`torch.nn.LSTM`.

    Same constructor (including ``proj_size``), parameters (names, shapes, order,
    initialization: the same seed gives the same weights, and ``state_dict``\ s load both ways),
    forward inputs and outputs as ``nn.LSTM``; it is not a subclass of it (Dynamo graph-breaks on
    ``nn.LSTM`` instances, so ``torch.compile(fullgraph=True)`` works here).

    Each layer is one input-projection GEMM over all steps (``x W_ihᵀ``) and one fused
    :func:`rnnlab.lstm` call, which adds ``b_ih + b_hh`` as it reads the projection; a
    bidirectional layer is a single call with M = 2 models, the reverse direction running on the
    time-flipped projected input. Dropout (``dropout > 0``, training mode) is applied to every
    layer's output except the last, as in ``nn.LSTM``.
    Parameters must be float32 or float64.

    Fallbacks (same results as ``nn.LSTM``, counted in ``rnnlab.nn.lstm.fallback_counts``):

    * ``proj_size > 0``: the fused kernel has no projection; such layers run
      :func:`rnnlab.lstm` with ``w_hr``, whose reference path is the pure-PyTorch
      :func:`rnnlab.reference.lstm_forward` (a per-step loop differentiated by autograd, so much
      slower), and count ``"proj_size"`` once per layer call. Diagnostics are not available there.
    * ``PackedSequence`` input is padded to [T_max, B] and run through the same fused calls, the
      reverse direction flipped within each sequence's own length; the padded steps are
      computed and discarded. Counts ``"packed_padded"`` once per call.

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size, I = input_size,
    H_out = proj_size if proj_size > 0 else H):
        input: [T, B, I], or [B, T, I] with ``batch_first``, or unbatched [T, I], or a
            ``PackedSequence``.
        hx: a tuple (h0 [L·D, B, H_out], c0 [L·D, B, H]) (unbatched: without the B axis), or
            None for zeros.
        returns output [T, B, D·H_out] (``batch_first``: [B, T, D·H_out]; unbatched:
        [T, D·H_out]; packed in, packed out) and (h_n [L·D, B, H_out], c_n [L·D, B, H]).

    Gradient diagnostics (beyond ``nn.LSTM``; off by default): with ``diagnostics = True``
    each forward pass attaches gradient sinks, and after one ``loss.backward()``
    :attr:`gradient_stats` holds per layer and direction ‖∂L/∂h_t‖ and ‖v_t‖²/‖δ_t‖² of the
    hidden state as [T, B] in original time order (SPEC.md §8.1; v_t is the part of ∂L/∂h_{t-1}
    that came through ``weight_hh``, the cell path excluded), see :class:`rnnlab.nn.GradientStats`.

    Example::

        lstm = rnnlab.LSTM(2, 64, num_layers=2, bidirectional=True)
        out, (h_n, c_n) = lstm(x)              # x: [T, B, 2]
    """

    _name = "LSTM"
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
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            "LSTM", 4, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            device, dtype,
        )

    def _states(self, hx) -> tuple[Tensor, Tensor] | None:
        """The forward's hx: a pair (h0, c0) of Tensors, or None."""
        if hx is not None and not (
            isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(h, Tensor) for h in hx)
        ):
            raise TypeError(f"hx must be a tuple (h0, c0) of two Tensors or None, got {type(hx).__name__}")
        return None if hx is None else tuple(hx)

    def _result(self, output, finals: tuple[Tensor, Tensor]):
        """(output, (h_n, c_n)), as nn.LSTM's forward returns it."""
        return output, finals

    @property
    def _state_sizes(self) -> tuple[int, int]:
        return self._output_size, self.hidden_size

    def _recurrence(self, xp, bias, w_hh, states, sink, params):
        """(hs [D, T, B, H_out], cs [D, T, B, H]) of the layer's D directions: the fused op, or with
        ``proj_size > 0`` its reference path (counted in ``fallback_counts["proj_size"]``)."""
        if self.proj_size == 0:
            return lstm(xp, w_hh, *(states or (None, None)), sink=sink, bias=bias)
        if sink is not None:
            raise NotImplementedError("rnnlab.LSTM diagnostics are not available with proj_size > 0 (reference fallback)")
        fallback_counts["proj_size"] += 1
        w_hr = _stack([p["weight_hr"] for p in params])
        return lstm(xp, _contiguous_grad(w_hh), *(states or (None, None)), w_hr=_contiguous_grad(w_hr), bias=bias)


def _contiguous_grad(w: Tensor) -> Tensor:
    """w, as a view whose gradient arrives contiguous, as nn.LSTM's weight gradients do (the
    reference multiplies by wᵀ, whose gradient is transposed): a view's backward reshapes the
    gradient to the flat shape, which copies a transposed one."""
    return w.reshape(-1).view_as(w)
