"""``rnnlab.RNN``: a drop-in for ``torch.nn.RNN`` that runs on the fused Elman kernels (DESIGN.md §4)."""
from __future__ import annotations

from collections import Counter

from ..functional import elman
from ._common import PROJ_SIZE_NOT_GIVEN, DropIn, refuse_proj_size

#: How often each non-rectangular path ran (DESIGN.md §4: fallbacks are visible and countable).
#: ``"packed_padded"``: a ``PackedSequence`` forward, run on the padded batch (see :class:`RNN`).
fallback_counts: Counter = Counter()


class RNN(DropIn):
    r"""Multi-layer Elman RNN, a drop-in replacement for :class:`torch.nn.RNN`.

    Same constructor, parameters (names, shapes, order, initialization: the same seed gives the
    same weights, and ``state_dict``\ s load both ways), forward inputs and outputs as
    ``nn.RNN``; it is not a subclass of it (Dynamo graph-breaks on ``nn.RNN`` instances, so
    ``torch.compile(fullgraph=True)`` works here).

    Each layer is one input-projection GEMM over all steps (``x W_ihᵀ``) and one fused
    :func:`rnnlab.elman` call, which adds ``b_ih + b_hh`` as it reads the projection; a
    bidirectional layer is a single call with M = 2 models, the reverse direction running on the
    time-flipped projected input. Dropout (``dropout > 0``, training mode) is applied to every
    layer's output except the last, as in ``nn.RNN``.
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

    _name = "RNN"
    _fallback_counts = fallback_counts
    _repr_options = DropIn._repr_options + (("nonlinearity", "tanh"),)
    _input_dims_message = "{name}: Expected input to be 2D or 3D, got {dim}D tensor instead"

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
        *,
        proj_size=PROJ_SIZE_NOT_GIVEN,
    ) -> None:
        refuse_proj_size(proj_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, 1, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype
        )
        self.nonlinearity = nonlinearity
        self.regularizer = 0.0

    def _recurrence(self, xp, bias, w_hh, states, sink, params):
        """h = elman(xp, w_hh, h0, bias=bias) of the layer's D directions: ([D, T, B, H],)."""
        h0 = None if states is None else states[0]
        return (elman(xp, w_hh, h0, nonlinearity=self.nonlinearity, reg_weight=self.regularizer, sink=sink, bias=bias),)
