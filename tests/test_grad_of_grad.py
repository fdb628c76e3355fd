"""Gradients of gradients through every op: the backward ops are differentiable (_ops.py), their
derivative is the vjp of the reference backward, and first-order gradients still run the kernels."""
import pytest
import torch
from torch.autograd import gradgradcheck

import rnnlab
from rnnlab import reference as ref

ACTS = ["tanh", "relu", "sigmoid", "identity"]


def randn(*shape, dtype=torch.float64, seed=0, scale=1.0):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed)) * scale


# Each case: (inputs, the rnnlab op with a sink attached, the same recurrence in reference ops).
# Inputs are tiny (M = 2 models, T = 3 steps, B = 2 rows) and include the initial states.
def elman_case(act, alpha):
    M, T, B, H = 2, 3, 2, 3
    inputs = (randn(M, T, B, H, seed=1), randn(M, H, H, seed=2, scale=0.6), randn(M, B, H, seed=3))

    def op(xp, w, h0):
        return rnnlab.elman(xp, w, h0, nonlinearity=act, reg_weight=alpha, sink=rnnlab.GradientSink.like(xp))

    return inputs, op, lambda xp, w, h0: ref.elman_forward(xp, w, h0, act)


def lstm_case():
    M, T, B, H = 2, 3, 2, 3
    inputs = (randn(M, T, B, 4 * H, seed=1), randn(M, 4 * H, H, seed=2, scale=0.6), randn(M, B, H, seed=3),
              randn(M, B, H, seed=4))

    def op(xp, w, h0, c0):
        return rnnlab.lstm(xp, w, h0, c0, sink=rnnlab.GradientSink.like(xp))

    return inputs, op, lambda *a: ref.lstm_forward(*a)[:2]


def gru_case():
    M, T, B, H = 2, 3, 2, 3
    inputs = (randn(M, T, B, 3 * H, seed=1), randn(M, 3 * H, H, seed=2, scale=0.6), randn(M, H, seed=3),
              randn(M, B, H, seed=4))

    def op(xp, w, b_hn, h0):
        return rnnlab.gru(xp, w, b_hn, h0, sink=rnnlab.GradientSink.like(xp))

    return inputs, op, lambda *a: ref.gru_forward(*a)[0]


def diag_case(dtype):
    M, T, B, N = 2, 3, 2, 3
    inputs = (randn(M, T, B, N, dtype=dtype, seed=1), randn(M, N, dtype=dtype, seed=2, scale=0.5),
              randn(M, B, N, dtype=dtype, seed=3))

    def op(u, lam, h0):
        return rnnlab.diag_recurrence(u, lam, h0, sink=rnnlab.GradientSink.like(u))

    return inputs, op, lambda u, lam, h0: ref.diag_forward(u, lam, h0)[0]


CASES = {
    **{f"elman-{act}": (elman_case, (act, None)) for act in ACTS},
    **{f"elman-{act}-alpha": (elman_case, (act, 0.7)) for act in ACTS},
    "lstm": (lstm_case, ()),
    "gru": (gru_case, ()),
    "diag-real": (diag_case, (torch.float64,)),
    "diag-complex": (diag_case, (torch.complex128,)),
}


def make_case(name):
    make, args = CASES[name]
    return make(*args)


def scalar(outputs):
    """A nonlinear real scalar of an op's output(s), so that second derivatives are not trivial."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return sum((o.abs() if o.is_complex() else o).sin().sum() for o in outputs)


@pytest.mark.parametrize("name", CASES)
def test_gradgradcheck(name):
    """The second derivative (with every input, the initial states included, and sinks attached)
    is the numerical derivative of the first, which runs the kernel."""
    inputs, op, _ = make_case(name)
    assert gradgradcheck(op, tuple(t.clone().requires_grad_(True) for t in inputs))


@pytest.mark.parametrize("name", [n for n in CASES if "alpha" not in n])
def test_hessian_vector_product_matches_the_reference(name):
    """torch.func.grad of a torch.func.grad: Hv of a scalar loss in the weights equals that of the
    same recurrence written in reference ops (α ≠ 0 has no reference forward: its gradient is not
    a loss's; gradgradcheck covers it)."""
    inputs, op, reference_op = make_case(name)
    v = randn(*inputs[1].shape, dtype=inputs[1].dtype, seed=9)

    def hvp(f):
        def loss(w):
            return scalar(f(inputs[0], w, *inputs[2:]))

        def directional(w):
            g = torch.func.grad(loss)(w)
            return (g.conj() * v).real.sum()  # <∇L, v>, real for complex λ too

        return torch.func.grad(directional)(inputs[1])

    torch.testing.assert_close(hvp(op), hvp(reference_op))


def test_third_derivative_matches_the_reference():
    """The vjp of the reference backward is itself differentiable: third derivatives are right."""
    inputs, op, reference_op = make_case("elman-tanh")
    v = randn(*inputs[1].shape, seed=9)

    def third(f):
        w = inputs[1].clone().requires_grad_(True)
        loss = scalar(f(inputs[0], w, inputs[2]))
        for order in range(3):
            (g,) = torch.autograd.grad(loss, w, create_graph=order < 2)
            loss = (g * v).sum()
        return g

    torch.testing.assert_close(third(op), third(reference_op))


@pytest.mark.parametrize("op_name,name", [("elman_backward", "elman-tanh"), ("elman_backward", "elman-tanh-alpha"),
                                          ("lstm_backward", "lstm"), ("gru_backward", "gru"),
                                          ("diag_backward", "diag-complex")])
def test_first_order_gradients_run_the_kernel_once(kernel_calls, op_name, name):
    """loss.backward(), autograd.grad with create_graph=True and torch.func.grad each run the
    backward kernel once per call (the reference only runs when a gradient is differentiated)."""
    inputs, op, _ = make_case(name)
    calls = kernel_calls(op_name)
    args = [t.clone().requires_grad_(True) for t in inputs]
    scalar(op(*args)).backward()
    torch.autograd.grad(scalar(op(*args)), args, create_graph=True)
    torch.func.grad(lambda w: scalar(op(inputs[0], w, *inputs[2:])))(inputs[1])
    assert len(calls) == 3, calls


def test_differentiating_a_raw_op_raises():
    """The raw torch.ops.rnnlab ops have no derivative of their own (the Functions in _ops.py
    provide it): differentiating one is an error, never a silent zero."""
    xp, w, h0 = (t.requires_grad_(True) for t in make_case("elman-tanh")[0])
    hs = torch.ops.rnnlab.elman_forward(xp, w, h0, "tanh")
    with pytest.raises(RuntimeError, match="rnnlab::elman_forward"):
        hs.sum().backward()
