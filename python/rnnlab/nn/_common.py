"""Helpers shared by the drop-in recurrent modules: nn.RNNBase's constructor checks, and the
forward plumbing around a module's fused layers (input layouts, nn.RNNBase's forward checks,
``PackedSequence`` → padded batch and back; DESIGN.md §4)."""
from __future__ import annotations

import numbers
import warnings
from collections import Counter
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

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


def drop_in_forward(
    module: nn.Module,
    input,
    hx: tuple[Tensor, ...] | None,
    *,
    name: str,
    state_sizes: tuple[int, ...],
    run: Callable,
    fallback_counts: Counter,
):
    """nn.RNNBase's forward around a drop-in's fused layers: every input layout, its checks, its errors.

    Args:
        module: the drop-in (its ``batch_first``, ``input_size``, ``num_layers``,
            ``_num_directions`` and ``weight_ih_l0`` are read).
        input: [T, B, I], or [B, T, I] with ``module.batch_first``, or unbatched [T, I], or a
            ``PackedSequence``.
        hx: the initial states as a tuple (``(h0,)`` for an RNN, ``(h0, c0)`` for an LSTM), each
            [L·D, B, size] (unbatched: [L·D, size]), or None for zeros.
        name: the module's name in messages (``"RNN"``, ``"LSTM"``).
        state_sizes: the last dimension of each state.
        run: the module's layers, ``run(x, hx, lengths=…, batch_order=…) -> (output, final
            states)`` on a time-major x [T, B, I] (output [T, B, ·], states [L·D, B, size]);
            lengths [B] (padded packed input) and batch_order (the caller's order of the batch
            rows) are None for a Tensor input.
        fallback_counts: the module's counter; a ``PackedSequence`` forward counts ``"packed_padded"``.
    Returns:
        (output, final states) in the input's layout: packed in, packed out; unbatched in,
        unbatched states out.
    """
    check = partial(_check_forward_args, module, name, state_sizes)
    if isinstance(input, PackedSequence):
        return _forward_packed(input, hx, check, run, fallback_counts)
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor or a PackedSequence, got {type(input).__name__}")
    if input.dim() not in (2, 3):
        raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D tensor instead")
    batched = input.dim() == 3
    if hx is not None:
        want, kind = (3, "batched 3-D") if batched else (2, "unbatched 2-D")
        for h, suffix in zip(hx, _state_suffixes(len(hx))):
            if h.dim() != want:
                raise RuntimeError(f"For {kind} input, hx{suffix} should also be {want}-D but got {h.dim()}-D tensor")
    batch_dim = 0 if module.batch_first else 1
    if not batched:
        input = input.unsqueeze(batch_dim)
        hx = None if hx is None else tuple(h.unsqueeze(1) for h in hx)
    x = input.transpose(0, 1) if module.batch_first else input
    check(x, hx)
    output, finals = run(x, hx, lengths=None, batch_order=None)
    if module.batch_first:
        output = output.transpose(0, 1)
    if not batched:
        output, finals = output.squeeze(batch_dim), tuple(h.squeeze(1) for h in finals)
    return output, finals


def _forward_packed(packed: PackedSequence, hx, check: Callable, run: Callable, fallback_counts: Counter):
    """A ``PackedSequence`` forward, run on the padded batch (the padded steps are computed and discarded)."""
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    if data.dim() != 2:
        raise RuntimeError(f"input must have 2 dimensions, got {data.dim()}")
    fallback_counts["packed_padded"] += 1
    x, lengths, t_idx, b_idx = padded_from_packed(data, batch_sizes)
    check(x, hx)
    if hx is not None and sorted_indices is not None:  # the kernel sees the batch in sorted order
        hx = tuple(h.index_select(1, sorted_indices) for h in hx)
    output, finals = run(x, hx, lengths=lengths, batch_order=unsorted_indices)
    if unsorted_indices is not None:
        finals = tuple(h.index_select(1, unsorted_indices) for h in finals)
    return PackedSequence(output[t_idx, b_idx], batch_sizes, sorted_indices, unsorted_indices), finals


def _state_suffixes(n: int) -> list[str]:
    """How messages index the states: a lone state is ``hx``, several are ``hx[0]``, ``hx[1]``, … (as nn.LSTM)."""
    return [""] if n == 1 else [f"[{i}]" for i in range(n)]


def _check_forward_args(
    module: nn.Module, name: str, state_sizes: tuple[int, ...], x: Tensor, hx: tuple[Tensor, ...] | None
) -> None:
    """x: [T, B, I] time-major; hx: states [L·D, B, size] or None. nn.RNNBase's checks, plus the kernels'."""
    w = module.weight_ih_l0
    if x.dtype != w.dtype:
        raise ValueError(
            f"RNN input dtype ({x.dtype}) does not match weight dtype ({w.dtype}). "
            f"Convert input: input.to({w.dtype}), or convert model: model.to({x.dtype})"
        )
    if w.dtype not in KERNEL_DTYPES:
        raise TypeError(f"rnnlab.{name} runs in float32 or float64, but its parameters are {w.dtype}")
    if x.size(-1) != module.input_size:
        raise RuntimeError(
            f"input.size(-1) must be equal to input_size. Expected {module.input_size}, got {x.size(-1)}"
        )
    if x.device != w.device:
        raise RuntimeError(
            "Input and parameter tensors are not at the same device, "
            f"found input tensor at {x.device} and parameter tensor at {w.device}"
        )
    if hx is not None:
        LD, B = module.num_layers * module._num_directions, x.size(1)
        for h, size, suffix in zip(hx, state_sizes, _state_suffixes(len(hx))):
            if tuple(h.shape) != (LD, B, size):
                raise RuntimeError(f"Expected hidden{suffix} size {(LD, B, size)}, got {list(h.shape)}")
            if h.device != x.device:
                raise RuntimeError(
                    "Input and hidden tensors are not at the same device, "
                    f"found input tensor at {x.device} and hidden tensor at {h.device}"
                )
            if h.dtype != x.dtype:
                raise RuntimeError(f"hx{suffix} dtype ({h.dtype}) does not match input dtype ({x.dtype})")
    if x.size(0) == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
