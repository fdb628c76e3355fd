"""The JAX peer: the same Elman RNN written with ``jax.lax.scan`` (peer_cells.jax_scan), compiled
with ``jax.jit``.

Optional (``pip install rnnlab[bench]``); :func:`available` says whether jax imports. The
projection is hoisted out of the scan as a JAX user would write it (and as rnnlab does), the
loss is the same ``Σ hs ⊙ G`` (workload.py), and every call blocks until its result is ready.
JAX runs on its own thread pool over the CPUs the process may use, not torch's thread count.
"""
from __future__ import annotations

from typing import Callable

from .peer_cells import PEER_CELLS, jax_scan
from .workload import Config, Data


def available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _model():
    import jax
    import jax.numpy as jnp

    def elman(params, x):
        """params: (w_ih [H, I], w_hh [H, H], b_ih [H], b_hh [H]); x: [T, B, I] -> hs [T, B, H]."""
        w_ih, w_hh, b_ih, b_hh = params
        return jax_scan(PEER_CELLS["elman"], x @ w_ih.T + (b_ih + b_hh), w_hh, None)[1]

    def loss(params, x, g):
        return jnp.sum(elman(params, x) * g)

    return jax, jnp, elman, loss


def _arrays(jnp, data: Data, m: int | None):
    """The data as JAX arrays: model m's parameters (all models stacked when m is None)."""
    pick = (lambda t: t) if m is None else (lambda t: t[m])
    params = tuple(jnp.asarray(pick(t).numpy()) for t in (data.w_ih, data.w_hh, data.b_ih, data.b_hh))
    return params, jnp.asarray(data.x.numpy()), jnp.asarray(pick(data.g).numpy())


def single(cfg: Config, data: Data, backward: bool) -> Callable[[], object]:
    """``jax.jit(elman)`` or ``jax.jit(jax.grad(loss))`` for one model."""
    jax, jnp, elman, loss = _model()
    params, x, g = _arrays(jnp, data, 0)
    if backward:
        grad = jax.jit(jax.grad(loss))
        return lambda: jax.block_until_ready(grad(params, x, g))
    forward = jax.jit(elman)
    return lambda: jax.block_until_ready(forward(params, x))


def population(cfg: Config, data: Data) -> Callable[[], object]:
    """``jax.jit(jax.vmap(jax.grad(loss)))`` over the M stacked models, x shared."""
    jax, jnp, _, loss = _model()
    params, x, g = _arrays(jnp, data, None)
    grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None, 0)))
    return lambda: jax.block_until_ready(grads(params, x, g))
