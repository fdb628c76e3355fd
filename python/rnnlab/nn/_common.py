"""What the drop-in recurrent modules share: nn.RNNBase's constructor checks, and :class:`DropIn`,
the base class that holds nn.RNNBase's parameters and private surface and runs nn's forward
(input layouts and their checks, ``PackedSequence`` → padded batch and back) around the layer
loop and a cell's fused call (DESIGN.md §4)."""
from __future__ import annotations

import math
import numbers
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..functional import GradientSink
from ._diagnostics import GradientStats

#: The parameter dtypes the fused kernels run in.
KERNEL_DTYPES = (torch.float32, torch.float64)


def check_constructor_args(
    input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size: int = 0
) -> None:
    """nn.RNNBase's argument checks: same order, exception types and messages, so code that
    handles torch.nn's construction errors handles rnnlab's too."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
        )
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
            f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
            stacklevel=3,
        )
    for name, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


#: The default of ``rnnlab.RNN``'s and ``rnnlab.GRU``'s keyword ``proj_size``: nn.RNN and nn.GRU
#: refuse that keyword whatever its value, 0 included, so only leaving it out is accepted.
PROJ_SIZE_NOT_GIVEN = _NotGiven()


def refuse_proj_size(proj_size) -> None:
    """nn.RNN's and nn.GRU's check, first of all their checks."""
    if proj_size is not PROJ_SIZE_NOT_GIVEN:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


def padded_from_packed(data: Tensor, batch_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The padded time-major batch behind a ``PackedSequence`` (batch in sorted order).

    Args:
        data: [N, I] packed rows; batch_sizes: [T] (on the CPU, as PackedSequence keeps it).
    Returns:
        x [T, B, I] (zeros past each sequence's end), lengths [B], and (t_idx, b_idx): the
        (step, column) of every packed row, so ``out[t_idx, b_idx]`` packs a padded output again.
    """
    T, B = batch_sizes.numel(), int(batch_sizes[0])
    # mask[t, b]: sequence b has a step t. Its row-major nonzeros are the packed rows, in order.
    mask = torch.arange(B) < batch_sizes.unsqueeze(1)
    lengths = mask.sum(0).to(data.device)
    t_idx, b_idx = (i.to(data.device) for i in mask.nonzero(as_tuple=True))
    x = data.new_zeros(T, B, data.shape[1]).index_put((t_idx, b_idx), data)
    return x, lengths, t_idx, b_idx


@dataclass
class _Batch:
    """A forward's input as the layers take it, and what it takes to hand their result back in
    the input's layout."""

    x: Tensor  # [T, B, I], time-major, the batch in the kernels' order
    states: tuple[Tensor, ...] | None  # the initial states, each [L·D, B, size], or None for zeros
    lengths: Tensor | None = None  # [B] valid steps per column of a padded PackedSequence
    packed: PackedSequence | None = None  # the packed input: its batch sizes and orders
    rows: tuple[Tensor, Tensor] | None = None  # (step, column) in x of each packed row
    batch_first: bool = False
    unbatched: bool = False

    @property
    def order(self) -> Tensor | None:
        """Maps the kernels' batch rows to the caller's order (a packed input's), or None."""
        return None if self.packed is None else self.packed.unsorted_indices

    def restore(self, output: Tensor, finals: tuple[Tensor, ...]) -> tuple:
        """The layers' output [T, B, ·] and final states [L·D, B, size] in the input's layout:
        packed in, packed out; unbatched in, unbatched states out."""
        if self.packed is not None:
            _, batch_sizes, sorted_indices, unsorted_indices = self.packed
            if unsorted_indices is not None:
                finals = tuple(h.index_select(1, unsorted_indices) for h in finals)
            return PackedSequence(output[self.rows], batch_sizes, sorted_indices, unsorted_indices), finals
        if self.batch_first:
            output = output.transpose(0, 1)
        if self.unbatched:
            output, finals = output.squeeze(0 if self.batch_first else 1), tuple(h.squeeze(1) for h in finals)
        return output, finals


def _state_dims_message(batched: bool, dims: list[int]) -> str:
    """nn's message for states whose number of dimensions does not match the input's."""
    kind, want = ("batched 3-D", 3) if batched else ("unbatched 2-D", 2)
    if len(dims) == 1:
        return f"For {kind} input, hx should also be {want}-D but got {dims[0]}-D tensor"
    return f"For {kind} input, hx and cx should also be {want}-D but got ({dims[0]}-D, {dims[1]}-D) tensors"


def _state_suffixes(n: int) -> list[str]:
    """How messages index the states: a lone state is ``hx``, several are ``hx[0]``, ``hx[1]``, … (as nn.LSTM)."""
    return [""] if n == 1 else [f"[{i}]" for i in range(n)]


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


def _stack(tensors: list[Tensor]) -> Tensor:
    """torch.stack, as a view for a single tensor (one direction): no copy, no copy back in backward."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _weak_refs(weights: list[Tensor | None]) -> list[weakref.ref | None]:
    return [None if w is None else weakref.ref(w) for w in weights]


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class DropIn(nn.Module):
    """The part of a drop-in (``rnnlab.RNN``, ``rnnlab.LSTM``, ``rnnlab.GRU``) that does not
    depend on its cell.

    It holds nn.RNNBase's attributes, parameters — same names, shapes, registration order and
    U(−1/√H, 1/√H) initialization, so the same seed gives the same weights — and private surface
    (``_flat_weights`` …), and runs nn's forward: :meth:`forward` brings every input layout to a
    time-major batch with nn's checks (:meth:`_tensor_batch`, :meth:`_packed_batch`), runs the
    layers (:meth:`_layers`: per layer one input-projection GEMM over all steps and both
    directions, the reverse direction on the time-flipped input — flipped within each sequence's
    length for a padded ``PackedSequence`` —, one call of the cell's fused op with M = D models
    (:meth:`_recurrence`), dropout between layers, the gradient sinks of ``diagnostics``) and
    hands the result back in the input's layout. It is not an ``nn.RNNBase`` (Dynamo
    graph-breaks on those).

    A subclass sets ``_name`` (its name in messages) and ``_fallback_counts`` (its module's
    counter) and implements :meth:`_recurrence`; one whose states are not a lone h (the LSTM's
    (h, c)) also overrides :meth:`_states`, :meth:`_result` and :attr:`_state_sizes`.
    """

    _name: str
    _fallback_counts: Counter
    #: nn's message for an input that is neither 2-D nor 3-D (nn.RNN's words it differently)
    _input_dims_message = "{name}: Expected input to be 2D or 3D, got {dim}D instead"
    #: (attribute, default) pairs that :meth:`extra_repr` shows when they differ from the default,
    #: in nn.RNNBase's order (bias, batch_first, dropout and bidirectional follow).
    _repr_options: tuple[tuple[str, object], ...] = (("proj_size", 0), ("num_layers", 1))

    def __init__(
        self,
        mode: str,
        gates: int,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        device,
        dtype,
    ) -> None:
        """gates: blocks of ``hidden_size`` rows in ``weight_ih`` / ``weight_hh`` (1 for the
        Elman RNN, 4 for the LSTM), as nn.RNNBase's gate_size = gates · hidden_size."""
        super().__init__()
        check_constructor_args(input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.mode = mode
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.diagnostics = False
        self._gradient_stats: GradientStats | None = None

        # Registration order = nn.RNNBase's, so reset_parameters draws the same numbers.
        factory = {"device": device, "dtype": dtype}
        G, H_out = gates * hidden_size, self._output_size
        self._kinds = ["weight_ih", "weight_hh"] + ["bias_ih", "bias_hh"] * bias + ["weight_hr"] * (proj_size > 0)
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            shapes = {
                "weight_ih": (G, input_size if layer == 0 else H_out * self._num_directions),
                "weight_hh": (G, H_out),
                "bias_ih": (G,),
                "bias_hh": (G,),
                "weight_hr": (proj_size, hidden_size),
            }
            for direction in range(self._num_directions):
                suffix = "_reverse" if direction == 1 else ""
                names = [f"{kind}_l{layer}{suffix}" for kind in self._kinds]
                for kind, name in zip(self._kinds, names):
                    setattr(self, name, nn.Parameter(torch.empty(shapes[kind], **factory)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self._init_flat_weights()
        self.reset_parameters()

    @property
    def _num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _output_size(self) -> int:
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, drawn in registration order (as nn.RNNBase)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op, for compatibility: the parameters are used as they are, never flattened."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters per (layer, direction), in nn.RNNBase's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def gradient_stats(self) -> GradientStats:
        """Gradient statistics of the latest forward pass run with ``diagnostics = True``."""
        if self._gradient_stats is None:
            raise RuntimeError(
                f"no gradient statistics: set {self._name.lower()}.diagnostics = True before the forward pass, "
                "then call loss.backward()"
            )
        return self._gradient_stats

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        tail = (("bias", True), ("batch_first", False), ("dropout", 0), ("bidirectional", False))
        for name, default in self._repr_options + tail:
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # nn.RNNBase's private surface, with its semantics, because code written for torch.nn uses it
    # (AWD-LSTM's weight drop, weight norm, pruning, torch.func): the forward reads the weights
    # from ``_flat_weights`` (names in ``_flat_weights_names``), which assigning a weight
    # attribute updates, moving the module rebuilds, and a weight that is no longer the tensor
    # recorded (swapped in without __setattr__) refreshes before the next forward.

    def _init_flat_weights(self) -> None:
        self._flat_weights = [getattr(self, name, None) for name in self._flat_weights_names]
        self._flat_weight_refs = _weak_refs(self._flat_weights)

    def __setattr__(self, name: str, value) -> None:
        if name in self.__dict__.get("_flat_weights_names", ()):
            self._flat_weights[self._flat_weights_names.index(name)] = value
        super().__setattr__(name, value)

    def _apply(self, fn, recurse=True):
        # no weak references while the parameters may be swapped (torch.utils.swap_tensors refuses them)
        self._flat_weight_refs = []
        result = super()._apply(fn, recurse)
        self._init_flat_weights()
        return result

    def _weights_have_changed(self) -> bool:
        """A weight attribute is no longer the tensor ``_flat_weights`` was built from
        (torch.func.functional_call and parametrizations swap weights without __setattr__)."""
        for ref, name in zip(self._flat_weight_refs, self._flat_weights_names, strict=True):
            weight = getattr(self, name, None)
            if weight is not None and ref is not None and ref() is not weight:
                return True
        return False

    def _update_flat_weights(self) -> None:
        if self._weights_have_changed():
            self._init_flat_weights()

    def __getstate__(self):
        self._update_flat_weights()
        state = self.__dict__.copy()
        del state["_flat_weight_refs"]  # weak references cannot be pickled
        return state

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._flat_weight_refs = _weak_refs(self._flat_weights)

    def _replicate_for_data_parallel(self):
        replica = super()._replicate_for_data_parallel()
        # the replica's __dict__ is a shallow copy: its own lists, so its __setattr__ leaves ours alone
        replica._flat_weights = replica._flat_weights[:]
        replica._flat_weights_names = replica._flat_weights_names[:]
        return replica

    # nn's forward ---------------------------------------------------------------------------

    def forward(self, input, hx=None):
        """input: [T, B, I], or [B, T, I] with ``batch_first``, or unbatched [T, I], or a
        ``PackedSequence``; hx: the initial states (see the subclass), or None for zeros.
        Returns (output, final states) in the input's layout: packed in, packed out; unbatched
        in, unbatched states out."""
        states = self._states(hx)
        self._update_flat_weights()
        if not isinstance(input, (Tensor, PackedSequence)):
            raise TypeError(f"input must be a Tensor or a PackedSequence, got {type(input).__name__}")
        device_type = (input.data if isinstance(input, PackedSequence) else input).device.type
        if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
            # The kernels run in float32 or float64 only, so under autocast the drop-in runs in
            # its weights' dtype, autocast off, as autocast runs the ops it keeps in float32.
            dtype = self._flat_weights[0].dtype
            with torch.autocast(device_type, enabled=False):
                return self._result(*self._forward(
                    input.to(dtype), None if states is None else tuple(h.to(dtype) for h in states)
                ))
        return self._result(*self._forward(input, states))

    def _forward(self, input, states: tuple[Tensor, ...] | None) -> tuple:
        """(output, final states as a tuple) in the input's layout."""
        if isinstance(input, PackedSequence):
            batch = self._packed_batch(input, states)
        else:
            batch = self._tensor_batch(input, states)
        output, finals = self._layers(batch.x, batch.states, batch.lengths, batch.order)
        return batch.restore(output, finals)

    def _states(self, hx) -> tuple[Tensor, ...] | None:
        """The forward's hx as a tuple of states: nn.RNN's and nn.GRU's hx is one Tensor or None."""
        if hx is not None and not isinstance(hx, Tensor):
            raise TypeError(f"hx must be a Tensor or None, got {type(hx).__name__}")
        return None if hx is None else (hx,)

    def _result(self, output, finals: tuple[Tensor, ...]) -> tuple:
        """(output, h_n), as nn.RNN's and nn.GRU's forward return it."""
        return output, finals[0]

    @property
    def _state_sizes(self) -> tuple[int, ...]:
        """The last dimension of each state."""
        return (self.hidden_size,)

    def _tensor_batch(self, input: Tensor, states: tuple[Tensor, ...] | None) -> _Batch:
        """A Tensor input (batched or not, ``batch_first`` or not) as a time-major batch, checked."""
        if input.dim() not in (2, 3):
            raise ValueError(self._input_dims_message.format(name=self._name, dim=input.dim()))
        batched = input.dim() == 3
        if states is not None and any(h.dim() != input.dim() for h in states):
            raise RuntimeError(_state_dims_message(batched, [h.dim() for h in states]))
        if not batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
            states = None if states is None else tuple(h.unsqueeze(1) for h in states)
        x = input.transpose(0, 1) if self.batch_first else input
        self._check_forward_args(x, x.size(1), states, packed=False)
        return _Batch(x, states, batch_first=self.batch_first, unbatched=not batched)

    def _packed_batch(self, packed: PackedSequence, states: tuple[Tensor, ...] | None) -> _Batch:
        """A ``PackedSequence`` as its padded batch, checked (the padded steps are computed and
        discarded; counted in ``_fallback_counts["packed_padded"]``)."""
        data, batch_sizes, sorted_indices, _ = packed
        # the kernels see the batch in sorted order; nn sorts hx before its checks (so an hx
        # with extra rows passes, one with too few fails in index_select)
        if states is not None and sorted_indices is not None:
            states = tuple(h.index_select(1, sorted_indices) for h in states)
        self._check_forward_args(data, int(batch_sizes[0]), states, packed=True)
        self._fallback_counts["packed_padded"] += 1
        x, lengths, t_idx, b_idx = padded_from_packed(data, batch_sizes)
        return _Batch(x, states, lengths=lengths, packed=packed, rows=(t_idx, b_idx))

    def _check_forward_args(self, x: Tensor, batch: int, states: tuple[Tensor, ...] | None, *, packed: bool) -> None:
        """nn.RNNBase's checks in its order (the input, then the states' sizes) with its exception
        types and messages, once per forward, plus the kernels' dtypes.

        x: time-major [T, B, I], or a ``PackedSequence``'s data [N, I] (packed); batch: B;
        states: each [L·D, B, size], or None.
        """
        w = self._flat_weights[0]
        if x.dtype != w.dtype:
            raise ValueError(
                f"RNN input dtype ({x.dtype}) does not match weight dtype ({w.dtype}). "
                f"Convert input: input.to({w.dtype}), or convert model: model.to({x.dtype})"
            )
        if w.dtype not in KERNEL_DTYPES:
            raise TypeError(f"rnnlab.{self._name} runs in float32 or float64, but its parameters are {w.dtype}")
        if packed and x.dim() != 2:  # a Tensor input is 3-D by now
            raise RuntimeError(f"input must have 2 dimensions, got {x.dim()}")
        if x.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.size(-1)}"
            )
        if x.device != w.device:
            raise RuntimeError(
                "Input and parameter tensors are not at the same device, "
                f"found input tensor at {x.device} and parameter tensor at {w.device}"
            )
        if states is not None:
            LD = self.num_layers * self._num_directions
            for h, size, suffix in zip(states, self._state_sizes, _state_suffixes(len(states))):
                if tuple(h.shape) != (LD, batch, size):
                    raise RuntimeError(f"Expected hidden{suffix} size {(LD, batch, size)}, got {list(h.shape)}")
                if h.device != x.device:
                    raise RuntimeError(
                        "Input and hidden tensors are not at the same device, "
                        f"found input tensor at {x.device} and hidden tensor at {h.device}"
                    )
                if h.dtype != x.dtype:
                    raise RuntimeError(f"hx{suffix} dtype ({h.dtype}) does not match input dtype ({x.dtype})")
        if not packed and x.size(0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")

    # the layers ------------------------------------------------------------------------------

    def _recurrence(
        self, xp: Tensor, bias: Tensor | None, w_hh: Tensor, states: tuple[Tensor, ...] | None,
        sink: GradientSink | None, params
    ) -> tuple[Tensor, ...]:
        """One layer's recurrence, all directions in one call of the cell's op.

        Args:
            xp: [D, T, B, G] projected inputs x W_ihᵀ (the reverse direction already flipped);
            bias: [D, G] the bias b_ih + b_hh that the op adds at every step, or None;
            w_hh: [D, G, H_out]; states: the layer's initial states, each [D, B, size], or None
            for zeros; sink: a :class:`GradientSink` for ``diagnostics``, or None;
            params: the layer's {kind: parameter} per direction (:meth:`_layer_params`).
        Returns:
            the state sequences, hidden state first, each [D, T, B, size].
        """
        raise NotImplementedError

    def _layers(self, x: Tensor, hx: tuple[Tensor, ...] | None, lengths: Tensor | None, batch_order: Tensor | None):
        """All layers on time-major x [T, B, I] and hx (states [L·D, B, size] or None) ->
        (output [T, B, D·H_out], final states [L·D, B, size]).

        lengths: [B] valid steps per column of a padded batch (packed input), or None.
        batch_order: maps kernel batch rows to the caller's order (for the diagnostics only).
        """
        T, B = x.shape[:2]
        D = self._num_directions
        if lengths is None:
            reverse, last = _flip_time, (slice(None), -1)
        else:
            reverse = partial(_reverse_each_sequence, index=_reversal_index(lengths, T))
            last = (slice(None), lengths - 1, torch.arange(B, device=x.device))
        sinks = [] if self.diagnostics else None
        finals = []
        for layer in range(self.num_layers):
            params = self._layer_params(layer)
            # One GEMM projects all steps for both directions: [T, B, D·G]. The biases go to the
            # op, which adds them as it reads xp: a bias in the GEMM would cost a pass over its
            # output (addmm first copies the broadcast bias there) and another in backward (the
            # bias gradient's sum over steps and rows, which the op's backward does as a GEMV).
            y = F.linear(x, _cat([p["weight_ih"] for p in params]))
            G = y.shape[-1] // D
            xp = y.unsqueeze(0) if D == 1 else torch.stack([y[..., :G], reverse(y[..., G:])])
            bias = _stack([p["bias_ih"] + p["bias_hh"] for p in params]) if self.bias else None
            w_hh = _stack([p["weight_hh"] for p in params])
            states = None if hx is None else tuple(h[layer * D : (layer + 1) * D] for h in hx)
            sink = None if sinks is None else GradientSink.like(xp)
            seqs = self._recurrence(xp, bias, w_hh, states, sink, params)
            if sink is not None:
                sinks.append(sink)
            finals.append(tuple(seq[last] for seq in seqs))
            hs = seqs[0]
            # squeeze, not hs[0]: a view whose backward is free (select's zero-fills [1, T, B, H])
            x = hs.squeeze(0) if D == 1 else torch.cat([hs[0], reverse(hs[1])], -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        if sinks is not None:
            self._gradient_stats = GradientStats(sinks, reverse, batch_order)
        return x, tuple(torch.cat(layers) for layers in zip(*finals))

    def _layer_params(self, layer: int) -> list[dict[str, Tensor]]:
        """{kind: weight} of each direction of one layer from ``_flat_weights``, kind = "weight_ih", "bias_hh", …"""
        weights = dict(zip(self._flat_weights_names, self._flat_weights))
        suffixes = ["", "_reverse"][: self._num_directions]
        return [{kind: weights[f"{kind}_l{layer}{suffix}"] for kind in self._kinds} for suffix in suffixes]
