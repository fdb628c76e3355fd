"""What the op tests (test_elman_ops.py, test_lstm_ops.py, test_gru_ops.py, test_diag.py) share:
closeness relative to a tensor's scale, the empty sizes, ∂L/∂h_t by autograd, the statistics a
gradient sink holds, the checks against non-contiguous inputs and loss gradients, torch.compile
and torch.func, and the kernels compiled for the lower ISAs run in a subprocess (test_rng.py's
fill loops too; the ``kernel_calls`` fixture that counts fused calls is in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable

import torch

from rnnlab import reference

#: Relative tolerance of assert_close_scaled per (real) dtype, unless the caller gives its own.
SCALED_REL = {torch.float64: 1e-10, torch.float32: 2e-5}

#: (M, T, B, H) with one size zero: every op returns empty or zero outputs without running a kernel.
EMPTY_SIZES = [(2, 0, 3, 4), (2, 5, 0, 4), (0, 5, 3, 4), (1, 3, 2, 0)]

#: The ISAs below the machine's that every kernel is also compiled for (forced with RNNLAB_ISA).
LOWER_ISAS = ["avx2", "portable"]


def assert_close_scaled(a: torch.Tensor, b: torch.Tensor, name: str = "", rel: dict | None = None) -> None:
    """Elementwise closeness relative to b's largest entry, rel[b's real dtype] (SCALED_REL by
    default): a sum over steps and rows like grad_w = Σ_t u_tᵀ h_{t-1} may cancel to entries far
    smaller than its addends."""
    tol = (rel or SCALED_REL)[b.real.dtype]
    scale = b.abs().max().item() if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=0, atol=tol * max(scale, 1e-30), msg=lambda m: f"{name}: {m}")


def run_under_isa(isa: str, code: str) -> None:
    """Runs `code` in a fresh interpreter whose kernels are those compiled for `isa` (RNNLAB_ISA;
    'portable' where the machine lacks it). The prelude imports itertools, torch, rnnlab and
    ``reference as ref`` and seeds a generator ``g``; a failed assert fails the calling test."""
    prelude = (
        "import itertools, torch, rnnlab; from rnnlab import reference as ref\n"
        f"assert rnnlab._C.cpu_isa() in ('{isa}', 'portable'), rnnlab._C.cpu_isa()\n"
        "g = torch.Generator().manual_seed(1)\n"
    )
    subprocess.run([sys.executable, "-c", prelude + code], env=dict(os.environ, RNNLAB_ISA=isa), check=True)


def check_compiled_grads_match_eager(f: Callable, inputs: list[torch.Tensor]) -> None:
    """torch.compile(f, fullgraph=True) gives the eager gradients of the scalar f(*inputs)."""
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    args = [t.clone().requires_grad_(True) for t in inputs]
    args_c = [t.clone().requires_grad_(True) for t in inputs]
    f(*args).backward()
    compiled(*args_c).backward()
    for a, b in zip(args, args_c):
        torch.testing.assert_close(a.grad, b.grad)


def check_vmap_grad_is_one_fused_call(calls: list, loss: Callable, stacked: torch.Tensor, reference_loss: Callable,
                                      fused_shape: tuple[int, ...]) -> None:
    """vmap(grad(loss)) over `stacked` [E, …] runs the kernel once, on the input of shape
    `fused_shape` (E·M models), and equals autograd of reference_loss on each slice.

    calls: the list of the kernel_calls fixture for the op that loss runs.
    """
    grads = torch.func.vmap(torch.func.grad(loss))(stacked)
    assert calls == [torch.Size(fused_shape)], calls
    for e in range(len(stacked)):
        w = stacked[e].clone().requires_grad_(True)
        (want,) = torch.autograd.grad(reference_loss(w), w)
        torch.testing.assert_close(grads[e], want)


def hidden_state_gradients(step: Callable, state0: tuple, g: torch.Tensor) -> torch.Tensor:
    """δ_t = ∂L/∂h_t [M, T, B, H] of L = Σ_t <g_t, h_t>, by autograd, for the recurrence
    state_t = step(t, state_{t-1}) whose states are tuples with h_t first (state0 = (h0, …)).

    Each h_t gets an additive zero offset: the offset's gradient is h_t's total gradient, through
    every later step (SPEC §1's δ_t, which the kernels' delta_sq is the squared norm of)."""
    offsets = torch.zeros_like(g, requires_grad=True)
    state, loss = state0, 0
    for t in range(g.shape[1]):
        h, *rest = step(t, state)
        state = (h + offsets[:, t], *rest)
        loss = loss + (g[:, t] * state[0]).sum()
    (delta,) = torch.autograd.grad(loss, offsets)
    return delta


def check_sink_statistics(sink, delta_sq: torch.Tensor, v_sq: torch.Tensor) -> None:
    """A GradientSink after one backward holds these per-step norms [M, T, B] and the Ω, N that
    reference.omega_from_norms makes of them (SPEC §2.5)."""
    torch.testing.assert_close(sink.delta_sq, delta_sq)
    torch.testing.assert_close(sink.v_sq, v_sq)
    omega, n_valid, _ = reference.omega_from_norms(delta_sq, v_sq)
    torch.testing.assert_close(sink.omega, omega)
    torch.testing.assert_close(sink.n_valid, n_valid)


def gradient_layouts(shape: tuple[int, int, int, int], dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """Loss gradients [M, T, B, H] in the layouts autograd hands a backward op: broadcast from a
    sum (all strides 0) or a mean over steps, rows or units, transposed, strided, offset."""
    M, T, B, H = shape
    g = torch.Generator().manual_seed(seed)

    def randn(*size):
        return torch.randn(*size, dtype=dtype, generator=g)

    return {
        "sum": torch.ones((), dtype=dtype).expand(shape),
        "broadcast over steps": randn(M, 1, B, H).expand(shape),
        "broadcast over rows": randn(M, T, 1, H).expand(shape),
        "broadcast over units": randn(M, T, B, 1).expand(shape),
        "steps and rows swapped": randn(M, B, T, H).transpose(1, 2),
        "every other unit": randn(M, T, B, 2 * H)[..., ::2],
        "rows of a larger batch": randn(M, T, B + 1, H)[:, :, 1:],
    }


def check_strided_gradients_give_the_same_answer(backward: Callable, shape: tuple[int, int, int, int],
                                                 dtype: torch.dtype = torch.float64) -> None:
    """``backward(grad)``, a backward op with all its arguments fixed except one loss gradient of
    ``shape``, returns bitwise the same outputs for that gradient in every layout of
    :func:`gradient_layouts` as for its contiguous copy (the kernels read the rows where they lie)."""
    for layout, grad in gradient_layouts(shape, dtype).items():
        for i, (a, b) in enumerate(zip(backward(grad), backward(grad.contiguous()), strict=True)):
            assert torch.equal(a, b), f"{layout}: output {i} differs"


def check_non_contiguous_inputs_give_the_same_answer(f: Callable, xp: torch.Tensor, w_hh: torch.Tensor, *rest) -> None:
    """The functional op f(xp, w_hh, *rest) gives the same result for xp and w_hh laid out
    non-contiguously (dims 1 and 2 swapped in memory) as for contiguous ones."""
    strided = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (xp, w_hh)]
    assert not any(t.is_contiguous() for t in strided)
    torch.testing.assert_close(f(*strided, *rest), f(xp, w_hh, *rest))
