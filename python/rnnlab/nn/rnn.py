"""``rnnlab.RNN``: a drop-in for ``torch.nn.RNN`` that runs on the fused Elman kernels (DESIGN.md §4)."""
from __future__ import annotations

import math
from collections import Counter
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import GradientSink, elman
from ._common import check_constructor_args, drop_in_forward
from ._diagnostics import GradientStats

#: How often each non-rectangular path ran (DESIGN.md §4: fallbacks are visible and countable).
#: ``"packed_padded"``: a ``PackedSequence`` forward, run on the padded batch (see :class:`RNN`).
fallback_counts: Counter = Counter()


def _flip_time(t: Tensor) -> Tensor:
    """Reverse a time-major [T, B, ...] tensor in time."""
    return t.flip(0)


def _reverse_each_sequence(t: Tensor, index: Tensor) -> Tensor:
    """Reverse each column of a padded time-major [T, B, ...] tensor within its own length.

    ``index`` [T, B] is the per-column permutation from :func:`_reversal_index`; it is its own
    inverse, so the same call maps kernel order back to original order.
    """
    index = index.view(*index.shape, *(1,) * (t.dim() - 2)).expand_as(t)
    return t.gather(0, index)


def _reversal_index(lengths: Tensor, T: int) -> Tensor:
    """[T, B] s ↦ lengths[b] − 1 − s on a column's valid steps, identity on its padding."""
    s = torch.arange(T, device=lengths.device).unsqueeze(1)
    return torch.where(s < lengths, lengths - 1 - s, s)


class RNN(nn.Module):
    r"""Multi-layer Elman RNN, a drop-in replacement for :class:`torch.nn.RNN`.

    Same constructor, parameters (names, shapes, order, initialization: the same seed gives the
    same weights, and ``state_dict``\ s load both ways), forward inputs and outputs as
    ``nn.RNN``; it is not a subclass of it (Dynamo graph-breaks on ``nn.RNN`` instances, so
    ``torch.compile(fullgraph=True)`` works here).

    Each layer is one input-projection GEMM over all steps (``x W_ihᵀ + b_ih + b_hh``) and one
    fused :func:`rnnlab.elman` call; a bidirectional layer is a single call with M = 2 models,
    the reverse direction running on the time-flipped projected input. Dropout (``dropout > 0``,
    training mode) is applied to every layer's output except the last, as in ``nn.RNN``.
    Parameters must be float32 or float64.

    ``PackedSequence`` input is padded to [T_max, B] and run through the same fused calls, with
    the reverse direction flipped within each sequence's own length; the result equals
    ``nn.RNN``'s, but the padded steps are computed and discarded (a relu RNN that overflows to
    inf on them would turn weight gradients NaN where ``nn.RNN``'s stay finite). Each such call
    increments ``rnnlab.nn.rnn.fallback_counts["packed_padded"]``.

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size, I = input_size):
        input: [T, B, I], or [B, T, I] with ``batch_first``, or unbatched [T, I], or a
            ``PackedSequence``.
        hx: [L·D, B, H] (unbatched: [L·D, H]) initial states, or None for zeros.
        returns output [T, B, D·H] (``batch_first``: [B, T, D·H]; unbatched: [T, D·H]; packed
        in, packed out) and h_n [L·D, B, H] (unbatched: [L·D, H]).

    Gradient diagnostics and regularizer (beyond ``nn.RNN``; both off by default):
        regularizer: α of Pascanu's vanishing-gradient regularizer (SPEC.md §2.5), a float. When
            nonzero, ``loss.backward()`` adds α·∂⁺Ω/∂W_hh to the gradient of every
            ``weight_hh_l*`` (each layer and direction has its own Ω; no other parameter gets an
            Ω term). The loss value is unchanged.
        diagnostics: when True, each forward pass attaches gradient sinks, and after one
            ``loss.backward()`` :attr:`gradient_stats` holds, per layer and direction, ‖∂L/∂h_t‖
            and ‖v_t‖²/‖δ_t‖² as [T, B] in original time order, and Ω, N as [L, D]
            (see :class:`rnnlab.nn.GradientStats`). When False nothing extra is computed or kept.
            Eager mode only: under ``torch.compile`` Dynamo cannot create the sinks (leaf tensors
            that require grad) inside the graph. The regularizer works compiled.

    Example::

        rnn = rnnlab.RNN(2, 50, num_layers=2, bidirectional=True)
        rnn.regularizer, rnn.diagnostics = 4.0, True
        out, h_n = rnn(x)                    # x: [T, B, 2]
        loss_fn(out).backward()
        rnn.gradient_stats.delta_norm(1, direction=1)   # [T, B] ‖∂L/∂h_t‖, layer 1, reverse
        rnn.gradient_stats.omega                        # [2, 2]
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        check_constructor_args(input_size, hidden_size, num_layers, bias, batch_first, dropout)

        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        self.regularizer = 0.0
        self.diagnostics = False
        self._gradient_stats: GradientStats | None = None

        # Registration order = nn.RNN's, so reset_parameters draws the same numbers.
        factory = {"device": device, "dtype": dtype}
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if bias else ("weight_ih", "weight_hh")
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self._num_directions
            shapes = {
                "weight_ih": (hidden_size, layer_input),
                "weight_hh": (hidden_size, hidden_size),
                "bias_ih": (hidden_size,),
                "bias_hh": (hidden_size,),
            }
            for direction in range(self._num_directions):
                suffix = "_reverse" if direction == 1 else ""
                names = [f"{kind}_l{layer}{suffix}" for kind in kinds]
                for kind, name in zip(kinds, names):
                    setattr(self, name, nn.Parameter(torch.empty(shapes[kind], **factory)))
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, drawn in registration order (as nn.RNN)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op, for compatibility: the parameters are used as they are, never flattened."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters per (layer, direction), in nn.RNN's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def gradient_stats(self) -> GradientStats:
        """Gradient statistics of the latest forward pass run with ``diagnostics = True``."""
        if self._gradient_stats is None:
            raise RuntimeError(
                "no gradient statistics: set rnn.diagnostics = True before the forward pass, then call loss.backward()"
            )
        return self._gradient_stats

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s

    # -----------------------------------------------------------------------------------------
    # forward
    # -----------------------------------------------------------------------------------------
    def forward(self, input, hx: Tensor | None = None):
        """See the class docstring for shapes."""
        if hx is not None and not isinstance(hx, Tensor):
            raise TypeError(f"hx must be a Tensor or None, got {type(hx).__name__}")
        output, (h_n,) = drop_in_forward(
            self,
            input,
            None if hx is None else (hx,),
            name="RNN",
            state_sizes=(self.hidden_size,),
            run=self._run,
            fallback_counts=fallback_counts,
        )
        return output, h_n

    def _run(self, x: Tensor, hx: tuple[Tensor] | None, lengths: Tensor | None, batch_order: Tensor | None):
        """All layers on time-major x [T, B, I] and hx (h0,) -> (output [T, B, D·H], (h_n [L·D, B, H],)).

        lengths: [B] valid steps per column of a padded batch (packed input), or None.
        batch_order: maps kernel batch rows to the caller's order (for the diagnostics only).
        """
        T, B = x.shape[:2]
        H, D = self.hidden_size, self._num_directions
        if lengths is None:
            reverse = _flip_time
        else:
            reverse = partial(_reverse_each_sequence, index=_reversal_index(lengths, T))
            rows = torch.arange(B, device=x.device)
        weights = self.all_weights
        sinks = [] if self.diagnostics else None
        finals = []
        for layer in range(self.num_layers):
            params = weights[layer * D : (layer + 1) * D]
            # One GEMM projects all steps for both directions: [T, B, D·H].
            w_ih = params[0][0] if D == 1 else torch.cat([p[0] for p in params])
            b = None
            if self.bias:
                b = params[0][2] + params[0][3] if D == 1 else torch.cat([p[2] + p[3] for p in params])
            y = F.linear(x, w_ih, b)
            if D == 1:
                xp, w_hh = y.unsqueeze(0), params[0][1].unsqueeze(0)
            else:
                xp = torch.stack([y[..., :H], reverse(y[..., H:])])
                w_hh = torch.stack([p[1] for p in params])
            h0 = None if hx is None else hx[0][layer * D : (layer + 1) * D]
            sink = None if sinks is None else GradientSink.like(xp)
            hs = elman(xp, w_hh, h0, nonlinearity=self.nonlinearity, reg_weight=self.regularizer, sink=sink)
            if sink is not None:
                sinks.append(sink)
            finals.append(hs[:, -1] if lengths is None else hs[:, lengths - 1, rows])
            # squeeze, not hs[0]: a view whose backward is free (select's zero-fills [1, T, B, H])
            x = hs.squeeze(0) if D == 1 else torch.cat([hs[0], reverse(hs[1])], -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        if sinks is not None:
            self._gradient_stats = GradientStats(sinks, reverse, batch_order)
        return x, (torch.cat(finals),)
