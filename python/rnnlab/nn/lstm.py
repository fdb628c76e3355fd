"""``rnnlab.LSTM``: a drop-in for ``torch.nn.LSTM`` that runs on the fused LSTM kernels (DESIGN.md §4)."""
from __future__ import annotations

import math
from collections import Counter
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import reference
from ..functional import GradientSink, lstm
from ._common import check_constructor_args, drop_in_forward
from ._diagnostics import GradientStats
from .rnn import _flip_time, _reversal_index, _reverse_each_sequence

#: How often each path that is not one fused call per layer ran (DESIGN.md §4: fallbacks are
#: visible and countable). ``"packed_padded"``: a ``PackedSequence`` forward, run on the padded
#: batch; ``"proj_size"``: a layer with ``proj_size > 0``, run by :func:`rnnlab.reference.lstm_forward`.
fallback_counts: Counter = Counter()


def _stack(tensors: list[Tensor]) -> Tensor:
    """torch.stack, as a view for a single tensor (one direction): no copy, no copy back in backward."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class LSTM(nn.Module):
    r"""Multi-layer LSTM, a drop-in replacement for :class:`torch.nn.LSTM`.

    Same constructor (including ``proj_size``), parameters (names, shapes, order,
    initialization: the same seed gives the same weights, and ``state_dict``\ s load both ways),
    forward inputs and outputs as ``nn.LSTM``; it is not a subclass of it (Dynamo graph-breaks on
    ``nn.LSTM`` instances, so ``torch.compile(fullgraph=True)`` works here).

    Each layer is one input-projection GEMM over all steps (``x W_ihᵀ + b_ih + b_hh``) and one
    fused :func:`rnnlab.lstm` call; a bidirectional layer is a single call with M = 2 models, the
    reverse direction running on the time-flipped projected input. Dropout (``dropout > 0``,
    training mode) is applied to every layer's output except the last, as in ``nn.LSTM``.
    Parameters must be float32 or float64.

    Fallbacks (same results as ``nn.LSTM``, counted in ``rnnlab.nn.lstm.fallback_counts``):

    * ``proj_size > 0``: the fused kernel has no projection; such layers run the pure-PyTorch
      :func:`rnnlab.reference.lstm_forward` (a per-step loop differentiated by autograd, so much
      slower) and count ``"proj_size"`` once per layer call. Diagnostics are not available there.
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
        super().__init__()
        check_constructor_args(input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.mode = "LSTM"
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.diagnostics = False
        self._gradient_stats: GradientStats | None = None

        # Registration order = nn.LSTM's, so reset_parameters draws the same numbers.
        factory = {"device": device, "dtype": dtype}
        H, H_out = hidden_size, self._output_size
        self._kinds = ["weight_ih", "weight_hh"] + ["bias_ih", "bias_hh"] * bias + ["weight_hr"] * (proj_size > 0)
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            shapes = {
                "weight_ih": (4 * H, input_size if layer == 0 else H_out * self._num_directions),
                "weight_hh": (4 * H, H_out),
                "bias_ih": (4 * H,),
                "bias_hh": (4 * H,),
                "weight_hr": (proj_size, H),
            }
            for direction in range(self._num_directions):
                suffix = "_reverse" if direction == 1 else ""
                names = [f"{kind}_l{layer}{suffix}" for kind in self._kinds]
                for kind, name in zip(self._kinds, names):
                    setattr(self, name, nn.Parameter(torch.empty(shapes[kind], **factory)))
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _output_size(self) -> int:
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, drawn in registration order (as nn.LSTM)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op, for compatibility: the parameters are used as they are, never flattened."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters per (layer, direction), in nn.LSTM's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _layer_params(self, layer: int) -> list[dict[str, Tensor]]:
        """{kind: parameter} of each direction of one layer, kind = "weight_ih", "bias_hh", …"""
        suffixes = ["", "_reverse"][: self._num_directions]
        return [{kind: getattr(self, f"{kind}_l{layer}{suffix}") for kind in self._kinds} for suffix in suffixes]

    @property
    def gradient_stats(self) -> GradientStats:
        """Gradient statistics of the latest forward pass run with ``diagnostics = True``."""
        if self._gradient_stats is None:
            raise RuntimeError(
                "no gradient statistics: set lstm.diagnostics = True before the forward pass, then call loss.backward()"
            )
        return self._gradient_stats

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s

    # -----------------------------------------------------------------------------------------
    # forward
    # -----------------------------------------------------------------------------------------
    def forward(self, input, hx: tuple[Tensor, Tensor] | None = None):
        """See the class docstring for shapes."""
        if hx is not None and not (
            isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(h, Tensor) for h in hx)
        ):
            raise TypeError(f"hx must be a tuple (h0, c0) of two Tensors or None, got {type(hx).__name__}")
        output, (h_n, c_n) = drop_in_forward(
            self,
            input,
            None if hx is None else tuple(hx),
            name="LSTM",
            state_sizes=(self._output_size, self.hidden_size),
            run=self._run,
            fallback_counts=fallback_counts,
        )
        return output, (h_n, c_n)

    def _run(self, x: Tensor, hx: tuple[Tensor, Tensor] | None, lengths: Tensor | None, batch_order: Tensor | None):
        """All layers on time-major x [T, B, I] -> (output [T, B, D·H_out], (h_n, c_n)).

        lengths: [B] valid steps per column of a padded batch (packed input), or None.
        batch_order: maps kernel batch rows to the caller's order (for the diagnostics only).
        """
        if self.diagnostics and self.proj_size > 0:
            raise NotImplementedError("rnnlab.LSTM diagnostics are not available with proj_size > 0 (reference fallback)")
        T, B = x.shape[:2]
        G, D = 4 * self.hidden_size, self._num_directions
        if lengths is None:
            reverse = _flip_time
        else:
            reverse = partial(_reverse_each_sequence, index=_reversal_index(lengths, T))
            rows = torch.arange(B, device=x.device)
        sinks = [] if self.diagnostics else None
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            params = self._layer_params(layer)
            # One GEMM projects all steps for both directions: [T, B, D·4H].
            b = _cat([p["bias_ih"] + p["bias_hh"] for p in params]) if self.bias else None
            y = F.linear(x, _cat([p["weight_ih"] for p in params]), b)
            xp = y.unsqueeze(0) if D == 1 else torch.stack([y[..., :G], reverse(y[..., G:])])
            w_hh = _stack([p["weight_hh"] for p in params])
            h0 = c0 = None
            if hx is not None:
                h0, c0 = hx[0][layer * D : (layer + 1) * D], hx[1][layer * D : (layer + 1) * D]
            if self.proj_size > 0:
                fallback_counts["proj_size"] += 1
                zeros = (xp.new_zeros(D, B, self.proj_size), xp.new_zeros(D, B, self.hidden_size))
                hs, cs, _ = reference.lstm_forward(
                    xp, w_hh, *(zeros if hx is None else (h0, c0)), w_hr=_stack([p["weight_hr"] for p in params])
                )
            else:
                sink = None if sinks is None else GradientSink.like(xp)
                hs, cs = lstm(xp, w_hh, h0, c0, sink=sink)
                if sink is not None:
                    sinks.append(sink)
            last = (slice(None), -1) if lengths is None else (slice(None), lengths - 1, rows)
            finals_h.append(hs[last])
            finals_c.append(cs[last])
            x = hs.squeeze(0) if D == 1 else torch.cat([hs[0], reverse(hs[1])], -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        if sinks is not None:
            self._gradient_stats = GradientStats(sinks, reverse, batch_order)
        return x, (torch.cat(finals_h), torch.cat(finals_c))
