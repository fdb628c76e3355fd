"""Helpers shared by the drop-in recurrent modules: nn.RNNBase's constructor checks and the
``PackedSequence`` → padded-batch conversion (DESIGN.md §4)."""
from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor


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
