"""The cells as rnnlab's peers write them: the matching ``torch.nn`` module and rnnlab drop-in,
and one step of the recurrence written once over an array namespace (:class:`ArrayOps`), so that
the torch.func peer (torch ops) and the JAX peers (``jax.numpy``) run the same arithmetic.

One model's parameters in rnnlab's layout (:mod:`rnnlab.cells.projected`): weight_ih [G·H, I],
weight_hh [G·H, H], bias [G·H] (input and hidden biases folded into one, except the GRU's n-gate
hidden bias, which r multiplies), the GRU's bias_hn [H]; gate blocks in PyTorch's order. The step
receives ``xp_t = x_t W_ihᵀ + bias``: every peer hoists the input projection out of the time loop,
as rnnlab does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import rnnlab


@dataclass(frozen=True)
class ArrayOps:
    """The element-wise functions a step needs from an array library (``@`` and ``.T`` are
    common to torch and JAX); ``split(a, n)``: n equal chunks of the last axis."""

    tanh: Callable
    sigmoid: Callable
    split: Callable


TORCH_OPS = ArrayOps(torch.tanh, torch.sigmoid, lambda a, n: a.chunk(n, -1))


def jax_ops() -> ArrayOps:
    """:class:`ArrayOps` of ``jax.numpy`` (imports jax: call it where JAX is meant to start)."""
    import jax
    import jax.numpy as jnp

    return ArrayOps(jnp.tanh, jax.nn.sigmoid, lambda a, n: jnp.split(a, n, axis=-1))


def _elman_step(ops: ArrayOps, xp_t, state, w_hh, b_hn):
    """nn.RNN (tanh): h_t = tanh(xp_t + h_{t−1} W_hhᵀ)."""
    (h,) = state
    return (ops.tanh(xp_t + h @ w_hh.T),)


def _lstm_step(ops: ArrayOps, xp_t, state, w_hh, b_hn):
    """nn.LSTM, gates i, f, g, o: c_t = σ(f)·c + σ(i)·tanh(g), h_t = σ(o)·tanh(c_t)."""
    h, c = state
    i, f, g, o = ops.split(xp_t + h @ w_hh.T, 4)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _gru_step(ops: ArrayOps, xp_t, state, w_hh, b_hn):
    """nn.GRU, gates r, z, n: n = tanh(xp_n + r·(h W_hnᵀ + b_hn)), h_t = n + z·(h − n)."""
    (h,) = state
    x_r, x_z, x_n = ops.split(xp_t, 3)
    a_r, a_z, a_n = ops.split(h @ w_hh.T, 3)
    r, z = ops.sigmoid(x_r + a_r), ops.sigmoid(x_z + a_z)
    n = ops.tanh(x_n + r * (a_n + b_hn))
    return (n + z * (h - n),)


@dataclass(frozen=True)
class PeerCell:
    """One cell as the peers run it.

    Attributes:
        name: rnnlab's cell name (:data:`rnnlab.cells.CELLS`).
        module: the class name in ``torch.nn`` and in ``rnnlab`` (RNN, LSTM, GRU).
        gates: H-row blocks of weight_ih / weight_hh / bias.
        states: tensors of the recurrent state ((h,) or (h, c)); h comes first.
        step: (ops, xp_t, state, w_hh, b_hn or None) -> the next state.
        kept_hidden_bias: whether the last gate block of nn's bias_hh stays out of the folded
            bias (the GRU's b_hn, rnnlab's ``bias_hn``).
    """

    name: str
    module: str
    gates: int
    states: int
    step: Callable
    kept_hidden_bias: bool = False

    @property
    def nn_class(self) -> type[nn.Module]:
        return getattr(nn, self.module)

    @property
    def dropin_class(self) -> type[nn.Module]:
        return getattr(rnnlab, self.module)

    def split_bias(self, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor | None]:
        """nn's (bias_ih, bias_hh) ([G·H] or stacked [M, G·H]) -> (rnnlab's folded ``bias``,
        ``bias_hn`` or None), as new tensors."""
        if not self.kept_hidden_bias:
            return b_ih + b_hh, None
        H = b_hh.shape[-1] // self.gates
        return b_ih + torch.cat([b_hh[..., :-H], torch.zeros_like(b_hh[..., -H:])], -1), b_hh[..., -H:].clone()

    def nn_biases(self, bias: Tensor, bias_hn: Tensor | None) -> tuple[Tensor, Tensor]:
        """The inverse of :meth:`split_bias` with nn's bias_hh zero wherever rnnlab has no
        parameter: (bias_ih, bias_hh)."""
        b_hh = torch.zeros_like(bias)
        if self.kept_hidden_bias:
            b_hh[..., -bias_hn.shape[-1]:] = bias_hn
        return bias.clone(), b_hh

    def hidden_bias_mask(self, H: int) -> Tensor | None:
        """[G·H] ones where nn's bias_hh holds one of rnnlab's parameters (the GRU's b_hn), or
        None where it holds none (Elman, LSTM: the bias is folded into bias_ih)."""
        if not self.kept_hidden_bias:
            return None
        return torch.cat([torch.zeros((self.gates - 1) * H), torch.ones(H)])

    def zero_state(self, zeros: Callable[[], object]) -> tuple:
        return tuple(zeros() for _ in range(self.states))


PEER_CELLS = {
    "elman": PeerCell("elman", "RNN", 1, 1, _elman_step),
    "lstm": PeerCell("lstm", "LSTM", 4, 2, _lstm_step),
    "gru": PeerCell("gru", "GRU", 3, 1, _gru_step, kept_hidden_bias=True),
}


def peer_cell(name: str) -> PeerCell:
    """The peers' version of rnnlab cell ``name``; ValueError for a cell without torch.nn peers."""
    if name not in PEER_CELLS:
        raise ValueError(f"the peers cover the cells {tuple(PEER_CELLS)} (those with a torch.nn module), got {name!r}")
    return PEER_CELLS[name]


def jax_scan(cell: PeerCell, xp, w_hh, b_hn, outputs: bool = True):
    """``jax.lax.scan`` of ``cell`` over xp [T, B, G·H] from zero states: (final state,
    hs [T, B, H] or None without ``outputs``: a training step reading the last state only
    stacks nothing)."""
    import jax
    import jax.numpy as jnp

    ops = jax_ops()

    def step(state, xp_t):
        state = cell.step(ops, xp_t, state, w_hh, b_hn)
        return state, state[0] if outputs else None

    zeros = lambda: jnp.zeros((xp.shape[1], w_hh.shape[1]), xp.dtype)  # noqa: E731
    return jax.lax.scan(step, cell.zero_state(zeros), xp)
