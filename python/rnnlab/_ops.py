"""Registration of the compiled ops with PyTorch: fake kernels, vmap rules, autograd.

The C++ extension defines the ops (``torch.ops.rnnlab.*``, schemas in csrc/torch/*_ops.cpp).
Here each op gets

* a fake (meta) kernel, so torch.compile and opcheck can trace it;
* a vmap rule that folds the vmapped dimension into the model dimension M, so a
  ``torch.func.vmap`` over stacked weights becomes one fused call (DESIGN.md §2);

and each forward/backward pair is wrapped in an ``autograd.Function`` with a separate
``setup_context`` and ``generate_vmap_rule = True`` (works with autograd, torch.func.grad,
vmap(grad) and torch.compile; ``torch.library.register_autograd`` does not, pytorch#168393).
The ops that a backward pass calls are differentiable functions themselves
(:func:`_differentiable`), so gradients of gradients are right.
"""
from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable

import torch
from torch import Tensor

from . import _C  # noqa: F401  (loads the extension and registers torch.ops.rnnlab)
from . import reference

ops = torch.ops.rnnlab


# ---------------------------------------------------------------------------------------------
# vmap support: fold the vmapped dimension into the leading model dimension M.
# ---------------------------------------------------------------------------------------------
def _fold(x: Tensor | None, in_dim: int | None, size: int) -> Tensor | None:
    """[.., V at in_dim, ..] (or unbatched) -> [V*M, ...] with V leading."""
    if x is None:
        return None
    if in_dim is None:
        x = x.unsqueeze(0).expand(size, *x.shape)
    else:
        x = x.movedim(in_dim, 0)
    return x.reshape(size * x.shape[1], *x.shape[2:]).contiguous()


def _unfold(x: Tensor, size: int) -> Tensor:
    return x.reshape(size, x.shape[0] // size, *x.shape[1:])


def _folded_vmap(name: str):
    """The vmap rule of the population-first op ``torch.ops.rnnlab.<name>``: vmap's dim V folds into the model dim M (every
    tensor argument [V, M, ...] -> [V·M, ...], non-tensor options passed as they are), the op
    runs once on V·M models, and its outputs unfold to [V, M, ...]."""

    def rule(info, in_dims, *args):
        V = info.batch_size
        op = getattr(ops, name)  # looked up per call, like the autograd functions' calls
        outs = op(*(_fold(x, d, V) if isinstance(x, Tensor) else x for x, d in zip(args, in_dims)))
        if isinstance(outs, Tensor):
            return _unfold(outs, V), 0
        return tuple(_unfold(o, V) for o in outs), (0,) * len(outs)

    return rule


# ---------------------------------------------------------------------------------------------
# Reference fallbacks: where rnnlab has no native kernel, an op's definition in torch ops runs.
# ---------------------------------------------------------------------------------------------
#: Every place where a pure-PyTorch definition runs instead of a native kernel (DESIGN.md §4:
#: fallbacks are documented and countable): (op, where) -> calls so far in this process. ``where``
#: is a device type without a kernel for the op (:func:`register_reference_kernel`) or the name
#: of a case that no kernel covers (:func:`reference_path`).
fallbacks: Counter = Counter()


def register_reference_kernel(op_name: str, device_type: str, definition: Callable) -> None:
    """Makes ``definition`` (the op in torch ops: same arguments, same outputs) the kernel of
    ``torch.ops.rnnlab.<op_name>`` on ``device_type``, which has no native one. Callers keep
    calling the op, so autograd, vmap, torch.compile and the sinks work as on a native device;
    each call counts in ``fallbacks[(op_name, device_type)]``."""
    torch.library.register_kernel(f"rnnlab::{op_name}", device_type, reference_path(op_name, device_type, definition))


def reference_path(op_name: str, case: str, definition: Callable) -> Callable:
    """``definition`` counted in ``fallbacks[(op_name, case)]``: for a case of the op that no
    kernel covers on any device (e.g. the LSTM's projection), called instead of the op."""
    fallbacks[(op_name, case)] = 0

    def counted(*args, **kwargs):
        fallbacks[(op_name, case)] += 1
        return definition(*args, **kwargs)

    return counted


# ---------------------------------------------------------------------------------------------
# The recurrences' Functions: apply without binding its arguments on every call
# ---------------------------------------------------------------------------------------------
class _PositionalFunction(torch.autograd.Function):
    """An autograd.Function whose ``apply`` skips what ``Function.apply`` does first whenever a
    Function has a ``setup_context``: binding the arguments to ``forward``'s signature
    (``inspect.signature`` on every call, ≈ 15 µs: 5 % of an ``rnnlab.RNN`` pass at H = 24,
    B = 1). When a caller passes every argument of ``forward`` positionally, as rnnlab's callers
    do, that binding returns the arguments unchanged, so they go straight to the C++ apply that
    ``Function.apply`` calls next. Any other call, and every call under a functorch transform
    (vmap, grad, …), goes through ``Function.apply`` itself. Dynamo traces ``apply`` by name and
    never runs this method."""

    _arity: int  # forward's number of parameters

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._arity = len(inspect.signature(cls.forward).parameters)

    @classmethod
    def apply(cls, *args, **kwargs):
        if kwargs or len(args) != cls._arity or torch._C._are_functorch_transforms_active():
            return super().apply(*args, **kwargs)
        # Function.apply's own next steps without the binding (see its NOTE on functorch's vjp)
        return super(torch.autograd.Function, cls).apply(*torch._functorch.utils.unwrap_dead_wrappers(args))


# ---------------------------------------------------------------------------------------------
# Gradients of gradients: each op a backward pass calls, as a differentiable function.
# ---------------------------------------------------------------------------------------------
def _differentiable(op_name: str, reference_op: Callable) -> type[torch.autograd.Function]:
    """The op ``torch.ops.rnnlab.<op_name>`` as an autograd.Function: its forward runs the
    kernel, its backward is the vjp of ``reference_op`` (the pure-PyTorch definition of the same
    op: same arguments, same outputs) at the saved arguments.

    The vjp runs the reference again under torch.func.vjp: a per-step loop, so a second
    derivative costs tens of times the kernel's first one (DESIGN.md §2); it is made of
    differentiable torch ops, so third and higher derivatives are right too. Forward-mode AD
    (torch.func.jvp, jacfwd, torch.func.hessian) is not implemented, and torch says so; reverse
    over reverse (jacrev(jacrev(f)), torch.autograd.functional.hessian) works.
    """

    class Differentiable(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(*args):
            return getattr(ops, op_name)(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.tensor_at = [i for i, a in enumerate(inputs) if isinstance(a, Tensor)]
            ctx.options = [None if isinstance(a, Tensor) else a for a in inputs]  # strings, None
            ctx.save_for_backward(*(inputs[i] for i in ctx.tensor_at))

        @staticmethod
        def backward(ctx, *grads):
            def reference(*tensors):
                args = list(ctx.options)
                for i, t in zip(ctx.tensor_at, tensors):
                    args[i] = t
                return reference_op(*args)

            _, vjp = torch.func.vjp(reference, *ctx.saved_tensors)
            out = [None] * len(ctx.options)
            for i, g in zip(ctx.tensor_at, vjp(grads)):
                out[i] = g
            return tuple(out)

    Differentiable.__name__ = Differentiable.__qualname__ = f"{op_name}_differentiable"
    return Differentiable


_DIFFERENTIABLE = {
    **{
        name: _differentiable(name, getattr(reference, name))
        for name in ("elman_backward", "lstm_backward", "gru_backward", "diag_backward")
    },
    "omega_from_norms": _differentiable("omega_from_norms", lambda d, v: reference.omega_from_norms(d, v)[:2]),
}


def _zero_gradient(t: Tensor) -> Tensor:
    """The gradient of an output that the loss does not use: zeros of t's shape, broadcast from
    one element (the backward ops read their loss gradients through any strides)."""
    return t.new_zeros(()).expand_as(t)


def _in_backward(op_name: str, *args):
    """Calls an op from a Function's backward. Autograd records a backward pass only for a
    gradient of a gradient (create_graph=True; torch.func.grad always asks for it): then the op
    runs as its differentiable function, otherwise directly. (Always going through the Function
    would cost little, but Dynamo cannot trace a Function applied in another one's backward, and
    torch.compile traces the first-order backward.)"""
    if torch.is_grad_enabled():
        return _DIFFERENTIABLE[op_name].apply(*args)
    return getattr(ops, op_name)(*args)


# ---------------------------------------------------------------------------------------------
# Sinks: the per-step statistics and Ω (SPEC §2.5), for every cell
# ---------------------------------------------------------------------------------------------
@torch.library.register_fake("rnnlab::omega_from_norms")
def _omega_from_norms_fake(delta_sq, v_sq):
    return delta_sq.new_empty(delta_sq.shape[0]), delta_sq.new_empty(delta_sq.shape[0])


def _sink_grads(ctx, delta_sq: Tensor, v_sq: Tensor, omega_and_n: tuple[Tensor, Tensor] | None = None):
    """The gradients of a GradientSink's two leaves: (‖δ_t‖², ‖v_t‖²) and (Ω, N) of SPEC §2.5.

    Ω and N come from the op ``omega_from_norms``, the C++ function that the Elman backward op
    also uses (it returns them, and passes them here as ``omega_and_n``): one Ω for every cell.
    """
    step_grad = torch.stack([delta_sq, v_sq], 1) if ctx.want_stats[0] else None
    if not ctx.want_stats[1]:
        return step_grad, None
    if omega_and_n is None:
        omega_and_n = _in_backward("omega_from_norms", delta_sq, v_sq)
    return step_grad, torch.stack(omega_and_n, 1)


def _bias_grad(ctx, grad_xp: Tensor) -> Tensor | None:
    """The gradient of the bias b [M, G] that a recurrence Function takes as its last input (added
    to xp [M, T, B, G] at every step): Σ over steps and rows of grad_xp, or None when b needs none.

    A batched GEMV with a vector of ones: one pass over grad_xp, like a reduction over its middle
    dimensions, but faster at the widths of the gated cells (G = 3H, 4H).
    """
    if not ctx.needs_input_grad[-1]:
        return None
    M, T, B, G = grad_xp.shape
    return torch.bmm(grad_xp.new_ones(M, 1, T * B), grad_xp.reshape(M, T * B, G)).view(M, G)


# ---------------------------------------------------------------------------------------------
# Elman
# ---------------------------------------------------------------------------------------------
@torch.library.register_fake("rnnlab::elman_forward")
def _elman_forward_fake(xp, w_hh, h0, activation, b=None):
    return torch.empty_like(xp, memory_format=torch.contiguous_format)


@torch.library.register_fake("rnnlab::elman_backward")
def _elman_backward_fake(grad_hs, hs, h0, w_hh, activation, reg_weight):
    M, T, B, H = hs.shape
    return (
        torch.empty_like(hs, memory_format=torch.contiguous_format),
        torch.empty_like(w_hh, memory_format=torch.contiguous_format),
        torch.empty_like(h0, memory_format=torch.contiguous_format),
        hs.new_empty(M, T, B),
        hs.new_empty(M, T, B),
        hs.new_empty(M),
        hs.new_empty(M),
    )


class ElmanFunction(_PositionalFunction):
    """hs = elman(xp, w_hh, h0, b); the two sinks receive the per-step statistics as "gradients".

    step_sink [M, 2, T, B] gets (‖δ_t‖², ‖v_t‖²); reg_sink [M, 2] gets (Ω, N). They carry no
    value in the forward pass; they exist so that one ``loss.backward()`` delivers the
    diagnostics computed inside the fused backward kernel (DESIGN.md §2).

    With a regularizer (reg_weight α) the backward pass is not the vjp of the forward: it adds
    α·∂⁺Ω/∂W_hh. So that a gradient of that gradient differentiates the states themselves, a
    recorded backward pass reads hs through :class:`ElmanStates`, whose vjp has no α term; for
    that the Function keeps xp and b too when α is given.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(xp, w_hh, h0, step_sink, reg_sink, reg_weight, activation, b):
        return ops.elman_forward(xp, w_hh, h0, activation, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        xp, w_hh, h0, step_sink, reg_sink, reg_weight, activation, b = inputs
        kept = (None, None) if reg_weight is None else (xp, b)
        ctx.save_for_backward(output, h0, w_hh, reg_weight, *kept)
        ctx.activation = activation
        ctx.want_stats = (step_sink is not None, reg_sink is not None)

    @staticmethod
    def backward(ctx, grad_hs):
        hs, h0, w_hh, reg_weight, xp, b = ctx.saved_tensors
        if reg_weight is not None and torch.is_grad_enabled():
            hs = ElmanStates.apply(hs, xp, w_hh, h0, ctx.activation, b)
        grad_xp, grad_w, grad_h0, delta_sq, v_sq, omega, n_valid = _in_backward(
            "elman_backward", grad_hs, hs, h0, w_hh, ctx.activation, reg_weight
        )
        return (grad_xp, grad_w, grad_h0, *_sink_grads(ctx, delta_sq, v_sq, (omega, n_valid)), None, None,
                _bias_grad(ctx, grad_xp))


class ElmanStates(_PositionalFunction):
    """hs = elman(xp, w_hh, h0, b) already computed, returned as a view whose backward is the plain
    vjp of the states (no regularizer term, no sinks): what a gradient of a regularized
    :class:`ElmanFunction` gradient must differentiate."""

    generate_vmap_rule = True

    @staticmethod
    def forward(hs, xp, w_hh, h0, activation, b):
        return hs.view_as(hs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, _, w_hh, h0, activation, _ = inputs
        ctx.save_for_backward(output, h0, w_hh)
        ctx.activation = activation

    @staticmethod
    def backward(ctx, grad_hs):
        hs, h0, w_hh = ctx.saved_tensors
        grad_xp, grad_w, grad_h0, *_ = _in_backward("elman_backward", grad_hs, hs, h0, w_hh, ctx.activation, None)
        return None, grad_xp, grad_w, grad_h0, None, _bias_grad(ctx, grad_xp)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------
@torch.library.register_fake("rnnlab::lstm_forward")
def _lstm_forward_fake(xp, w_hh, h0, c0, b=None):
    M, T, B, G = xp.shape
    H = G // 4
    return xp.new_empty(M, T, B, H), xp.new_empty(M, T, B, H), torch.empty_like(xp, memory_format=torch.contiguous_format)


@torch.library.register_fake("rnnlab::lstm_backward")
def _lstm_backward_fake(grad_hs, grad_cs, hs, cs, gates, h0, c0, w_hh):
    M, T, B, _ = hs.shape
    return (
        torch.empty_like(gates, memory_format=torch.contiguous_format),
        torch.empty_like(w_hh, memory_format=torch.contiguous_format),
        torch.empty_like(h0, memory_format=torch.contiguous_format),
        torch.empty_like(c0, memory_format=torch.contiguous_format),
        hs.new_empty(M, T, B),
        hs.new_empty(M, T, B),
    )


class LstmFunction(_PositionalFunction):
    """(hs, cs, gates) = lstm(xp, w_hh, h0, c0, b); the sinks receive the per-step statistics.

    ``gates`` [M, T, B, 4H] is saved for the backward pass. It is a differentiable output because
    the backward pass reads it: a gradient of a gradient reaches it (and only then is its gradient
    not None), which the reference backward takes and the kernel does not. The sinks work as in
    :class:`ElmanFunction`: step_sink [M, 2, T, B] gets (‖δ_t‖², ‖v_t‖²) of the hidden state,
    reg_sink [M, 2] gets (Ω, N) computed from them.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(xp, w_hh, h0, c0, step_sink, reg_sink, b):
        return ops.lstm_forward(xp, w_hh, h0, c0, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, w_hh, h0, c0, step_sink, reg_sink, _ = inputs
        hs, cs, gates = output
        ctx.save_for_backward(hs, cs, gates, h0, c0, w_hh)
        ctx.want_stats = (step_sink is not None, reg_sink is not None)
        # An unused output gets None instead of a tensor of zeros: most callers use hs only, and
        # the kernel then skips reading a [M, T, B, H] grad_cs; the gates get None unless a
        # gradient of a gradient reaches them.
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_hs, grad_cs, grad_gates):
        hs, cs, gates, h0, c0, w_hh = ctx.saved_tensors
        grad_hs = _zero_gradient(hs) if grad_hs is None else grad_hs
        if grad_gates is None:
            out = _in_backward("lstm_backward", grad_hs, grad_cs, hs, cs, gates, h0, c0, w_hh)
        else:
            out = reference.lstm_backward(grad_hs, grad_cs, hs, cs, gates, h0, c0, w_hh, grad_gates)
        grad_xp, grad_w, grad_h0, grad_c0, delta_sq, v_sq = out
        return (grad_xp, grad_w, grad_h0, grad_c0, *_sink_grads(ctx, delta_sq, v_sq), _bias_grad(ctx, grad_xp))


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------
@torch.library.register_fake("rnnlab::gru_forward")
def _gru_forward_fake(xp, w_hh, b_hn, h0, b=None):
    M, T, B, G = xp.shape
    H = G // 3
    return xp.new_empty(M, T, B, H), xp.new_empty(M, T, B, 4 * H)


@torch.library.register_fake("rnnlab::gru_backward")
def _gru_backward_fake(grad_hs, hs, gates, h0, w_hh):
    M, T, B, H = hs.shape
    return (
        hs.new_empty(M, T, B, 3 * H),
        torch.empty_like(w_hh, memory_format=torch.contiguous_format),
        hs.new_empty(M, H),
        torch.empty_like(h0, memory_format=torch.contiguous_format),
        hs.new_empty(M, T, B),
        hs.new_empty(M, T, B),
    )


# There is no CUDA GRU kernel: on CUDA tensors both ops run the reference (per-step loop speed).
register_reference_kernel("gru_forward", "cuda", reference.gru_forward)
register_reference_kernel("gru_backward", "cuda", reference.gru_backward)


class GruFunction(_PositionalFunction):
    """(hs, gates) = gru(xp, w_hh, b_hn, h0, b); the sinks receive the per-step statistics.

    ``gates`` [M, T, B, 4H] (r, z, n, hn) is saved for the backward pass, and differentiable for
    the reason given in :class:`LstmFunction`. The sinks work as in :class:`ElmanFunction`:
    step_sink [M, 2, T, B] gets (‖δ_t‖², ‖v_t‖²), reg_sink [M, 2] gets (Ω, N) computed from them.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(xp, w_hh, b_hn, h0, step_sink, reg_sink, b):
        return ops.gru_forward(xp, w_hh, b_hn, h0, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, w_hh, _, h0, step_sink, reg_sink, _ = inputs
        hs, gates = output
        ctx.save_for_backward(hs, gates, h0, w_hh)
        ctx.want_stats = (step_sink is not None, reg_sink is not None)
        # The gates' gradient is None unless a gradient of a gradient reaches them: without this
        # autograd would hand backward a zero-filled [M, T, B, 4H] gradient on every call.
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_hs, grad_gates):
        hs, gates, h0, w_hh = ctx.saved_tensors
        grad_hs = _zero_gradient(hs) if grad_hs is None else grad_hs
        if grad_gates is None:
            out = _in_backward("gru_backward", grad_hs, hs, gates, h0, w_hh)
        else:
            out = reference.gru_backward(grad_hs, hs, gates, h0, w_hh, grad_gates)
        grad_xp, grad_w, grad_b_hn, grad_h0, delta_sq, v_sq = out
        return (grad_xp, grad_w, grad_b_hn, grad_h0, *_sink_grads(ctx, delta_sq, v_sq), _bias_grad(ctx, grad_xp))


# ---------------------------------------------------------------------------------------------
# Diagonal linear recurrence
# ---------------------------------------------------------------------------------------------
@torch.library.register_fake("rnnlab::diag_forward")
def _diag_forward_fake(u, lam, h0, stats):
    M, T, B, N = u.shape
    real = u.real.dtype if u.is_complex() else u.dtype
    stat = u.new_empty(M, T if stats else 0, N, dtype=real)
    return torch.empty_like(u, memory_format=torch.contiguous_format), stat, stat.clone()


@torch.library.register_fake("rnnlab::diag_backward")
def _diag_backward_fake(grad_hs, hs, h0, lam):
    M, T, B, N = hs.shape
    real = hs.real.dtype if hs.is_complex() else hs.dtype
    return (
        torch.empty_like(hs, memory_format=torch.contiguous_format),
        torch.empty_like(lam, memory_format=torch.contiguous_format),
        torch.empty_like(h0, memory_format=torch.contiguous_format),
        hs.new_empty(M, T, B, dtype=real),
        hs.new_empty(M, T, B, dtype=real),
    )


class DiagFunction(_PositionalFunction):
    """(hs, h_sq, s_sq) = diag(u, lam, h0, stats); the sinks receive the per-step statistics.

    h_sq, s_sq are the SPEC §8.2 F4 accumulators (not differentiable). The sinks work as in
    :class:`ElmanFunction`, with ‖δ_t‖², ‖v_t‖² of the (possibly complex) state.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(u, lam, h0, step_sink, reg_sink, stats):
        return ops.diag_forward(u, lam, h0, stats)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, lam, h0, step_sink, reg_sink, _ = inputs
        hs, h_sq, s_sq = output
        ctx.mark_non_differentiable(h_sq, s_sq)
        ctx.save_for_backward(hs, h0, lam)
        ctx.want_stats = (step_sink is not None, reg_sink is not None)

    @staticmethod
    def backward(ctx, grad_hs, _grad_h_sq, _grad_s_sq):
        hs, h0, lam = ctx.saved_tensors
        grad_u, grad_lam, grad_h0, delta_sq, v_sq = _in_backward("diag_backward", grad_hs.contiguous(), hs, h0, lam)
        return (grad_u, grad_lam, grad_h0, *_sink_grads(ctx, delta_sq, v_sq), None)


for _op in ("elman_forward", "elman_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
            "diag_forward", "diag_backward", "omega_from_norms"):
    torch.library.register_vmap(f"rnnlab::{_op}", _folded_vmap(_op))
