"""The drop-in modules' forward+backward against their peers.

``rnnlab.RNN`` / ``rnnlab.LSTM`` / ``rnnlab.GRU`` against ``torch.nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
with the same weights (on the CPU PyTorch hands nn.LSTM to oneDNN; nn.RNN and nn.GRU run ATen's
step-by-step loop) and against ``jax.jit(jax.grad(L))`` of a ``lax.scan`` of the same cell
(peer_cells.py; the input projection hoisted out of the scan, as rnnlab and nn do). The job is
``rnnlab bench``'s (workload.py): one layer from zero states, ``L = Σ hs ⊙ G`` with a fixed random
G, back-propagated to every parameter (not to x), float32. Each builder returns a blocking
callable that runs one forward+backward pass and returns the gradients of (W_ih, W_hh, the bias
folded as rnnlab folds it), so the peers can be checked against each other.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .peer_cells import PeerCell, jax_scan


@dataclass(frozen=True)
class Size:
    """Hidden size H, batch B, length T, input size I."""

    H: int
    B: int
    T: int
    I: int

    @property
    def label(self) -> str:
        return f"H={self.H} B={self.B} T={self.T} I={self.I}"

    def flops(self, gates: int) -> int:
        """Useful flops of one forward+backward pass of a cell with ``gates`` H-row blocks: the
        forward and backward recurrences and ∂W_hh (2·T·B·G·H² each), the projection and ∂W_ih
        (2·T·B·G·H·I each); the loss, the bias and the cell's elementwise math not counted."""
        return 2 * self.T * self.B * gates * self.H * (3 * self.H + 2 * self.I)


SIZES = (Size(48, 24, 300, 48), Size(96, 8, 300, 96), Size(24, 1, 300, 24), Size(200, 40, 100, 200))
QUICK_SIZES = (Size(8, 2, 10, 8), Size(12, 1, 6, 5))


@dataclass(frozen=True)
class Case:
    """The torch.nn peer (seeded initialisation), the input x [T, B, I] and the loss weights G [T, B, H]."""

    cell: PeerCell
    size: Size
    peer: nn.Module
    x: Tensor
    g: Tensor

    @staticmethod
    def make(cell: PeerCell, size: Size, seed: int = 0) -> "Case":
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            peer = cell.nn_class(size.I, size.H)
            return Case(cell, size, peer, torch.randn(size.T, size.B, size.I), torch.randn(size.T, size.B, size.H))


Pass = Callable[[], tuple]


def _module_pass(model: nn.Module, case: Case) -> Pass:
    def run() -> tuple:
        model.zero_grad(set_to_none=True)
        (model(case.x)[0] * case.g).sum().backward()
        # the folded bias enters where b_ih does: its gradient is b_ih's
        return model.weight_ih_l0.grad, model.weight_hh_l0.grad, model.bias_ih_l0.grad

    return run


def torch_nn(case: Case) -> Pass:
    return _module_pass(case.peer, case)


def rnnlab_dropin(case: Case) -> Pass:
    ours = case.cell.dropin_class(case.size.I, case.size.H)
    ours.load_state_dict(case.peer.state_dict())
    return _module_pass(ours, case)


def jax_grad(case: Case) -> Pass:
    """``jax.jit(jax.grad(L))`` with the peer's weights (compiled here, outside every clock)."""
    import jax
    import jax.numpy as jnp

    cell = case.cell

    def loss(p, x, g):
        _, hs = jax_scan(cell, x @ p["weight_ih"].T + p["bias"], p["weight_hh"], p.get("bias_hn"))
        return jnp.sum(hs * g)

    with torch.no_grad():
        bias, bias_hn = cell.split_bias(case.peer.bias_ih_l0, case.peer.bias_hh_l0)
    torch_params = {"weight_ih": case.peer.weight_ih_l0, "weight_hh": case.peer.weight_hh_l0, "bias": bias,
                    **({"bias_hn": bias_hn} if bias_hn is not None else {})}
    params = {n: jnp.asarray(v.detach().numpy()) for n, v in torch_params.items()}
    x, g = jnp.asarray(case.x.numpy()), jnp.asarray(case.g.numpy())
    grad = jax.jit(jax.grad(loss))
    jax.block_until_ready(grad(params, x, g))

    def run() -> tuple:
        out = jax.block_until_ready(grad(params, x, g))
        return out["weight_ih"], out["weight_hh"], out["bias"]

    return run


BUILDERS: dict[str, Callable[[Case], Pass]] = {"rnnlab": rnnlab_dropin, "torch.nn": torch_nn, "jax": jax_grad}
