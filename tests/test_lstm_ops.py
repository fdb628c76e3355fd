"""The fused LSTM ops against the reference implementation, autograd, torch.func and torch.compile."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnlab
from rnnlab import reference as ref

import helpers_ops as shared

ops = torch.ops.rnnlab
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}
BACKWARD_NAMES = ["grad_xp", "grad_w", "grad_h0", "grad_c0", "delta_sq", "v_sq"]


def make(M, T, B, H, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    xp = torch.randn(M, T, B, 4 * H, dtype=dtype, generator=g)
    w = torch.randn(M, 4 * H, H, dtype=dtype, generator=g) / max(H, 1) ** 0.5
    h0 = torch.randn(M, B, H, dtype=dtype, generator=g)
    c0 = torch.randn(M, B, H, dtype=dtype, generator=g)
    return xp, w, h0, c0


# H below, at and above the vector widths (8, 16; a forward panel is one vector of units, the
# backward GEMM has 4-vector column panels), batch tails of the row blocks, M > threads.
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 7), (3, 9, 13, 37), (2, 4, 1, 64), (1, 3, 8, 100), (5, 6, 7, 16), (1, 2, 19, 130)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_grad_cs", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_reference(shape, with_grad_cs, dtype):
    xp, w, h0, c0 = make(*shape, dtype=dtype)
    out = ops.lstm_forward(xp, w, h0, c0)
    for name, a, b in zip(["hs", "cs", "gates"], out, ref.lstm_forward(xp, w, h0, c0)):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m: f"{name}: {m}")
    grad_hs = torch.randn_like(out[0])
    grad_cs = torch.randn_like(out[1]) if with_grad_cs else None
    got = ops.lstm_backward(grad_hs, grad_cs, *out, h0, c0, w)
    want = ref.lstm_backward(grad_hs, grad_cs, *out, h0, c0, w)
    for name, a, b in zip(BACKWARD_NAMES, got, want):
        shared.assert_close_scaled(a, b, name)


def test_reference_backward_is_autograd_of_reference_forward():
    """The hand-written BPTT of reference.lstm_backward is the VJP of reference.lstm_forward."""
    xp, w, h0, c0 = make(2, 5, 3, 6)
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, h0, c0))
    hs, cs, gates = ref.lstm_forward(*args)
    g_h, g_c = torch.randn_like(hs), torch.randn_like(cs)
    want = torch.autograd.grad((hs * g_h).sum() + (cs * g_c).sum(), args)
    got = ref.lstm_backward(g_h, g_c, hs.detach(), cs.detach(), gates.detach(), h0, c0, w)
    for a, b in zip(got[:4], want):
        torch.testing.assert_close(a, b)


def test_statistics_are_the_hidden_state_gradients():
    """‖δ_t‖² is the norm of ∂L/∂h_t; v_t = ∂z_t w_hh is ∂L/∂h_{t-1} minus its direct term."""
    M, T, B, H = 2, 6, 3, 5
    xp, w, h0, c0 = make(M, T, B, H)
    hs0, _, _ = ops.lstm_forward(xp, w, h0, c0)
    g = torch.randn_like(hs0)

    def step(t, state):
        hs, cs, _ = ref.lstm_forward(xp[:, t : t + 1], w, *state)
        return hs[:, 0], cs[:, 0]

    delta = shared.hidden_state_gradients(step, (h0, c0), g)
    got = ops.lstm_backward(g, None, *ops.lstm_forward(xp, w, h0, c0), h0, c0, w)
    torch.testing.assert_close(got[4], delta.square().sum(-1))
    v = delta[:, :-1] - g[:, :-1]  # v_{t+1} = δ_t − ∂⁺L/∂h_t
    torch.testing.assert_close(got[5][:, 1:], v.square().sum(-1))
    torch.testing.assert_close(got[5][:, 0], got[2].square().sum(-1))  # v_1 = ∂L/∂h_0


def test_gradcheck_through_autograd_function():
    xp, w, h0, c0 = make(2, 3, 2, 3)
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, h0, c0))
    assert torch.autograd.gradcheck(lambda *a: rnnlab.lstm(*a), args)
    # only c_T used: the cell-state output's gradient is mostly zeros
    assert torch.autograd.gradcheck(lambda *a: rnnlab.lstm(*a)[1][:, -1], args, fast_mode=True)


def test_bias_is_added_at_every_step():
    """lstm(xp, bias=b) is lstm(xp + b) (the kernel adds b as it reads xp), with b's gradient
    Σ_{t,b} ∂L/∂xp_t; the projection's reference path takes the bias too."""
    xp, w, h0, c0 = make(2, 3, 2, 3)
    b = torch.randn(2, 12, dtype=torch.float64)
    for got, want in zip(ops.lstm_forward(xp, w, h0, c0, b), ref.lstm_forward(xp + b[:, None, None], w, h0, c0)):
        torch.testing.assert_close(got, want, **TOL[torch.float64])
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, h0, c0, b))
    assert torch.autograd.gradcheck(lambda *a: rnnlab.lstm(*a[:4], bias=a[4]), args)
    w_hr = torch.randn(2, 2, 3, dtype=torch.float64)
    h0_p, w_p = h0[..., :2], w[..., :2]
    torch.testing.assert_close(rnnlab.lstm(xp, w_p, h0_p, c0, w_hr=w_hr, bias=b),
                               rnnlab.lstm(xp + b[:, None, None], w_p, h0_p, c0, w_hr=w_hr))


@pytest.mark.parametrize("op", ["lstm_forward", "lstm_backward"])
@pytest.mark.parametrize("with_grad_cs", [False, True])
def test_opcheck(op, with_grad_cs):
    xp, w, h0, c0 = make(2, 5, 3, 6, dtype=torch.float32)
    if op == "lstm_forward":
        args = (xp, w, h0, c0)
    else:
        out = ops.lstm_forward(xp, w, h0, c0)
        args = (torch.randn_like(out[0]), torch.randn_like(out[1]) if with_grad_cs else None, *out, h0, c0, w)
    torch.library.opcheck(getattr(ops, op).default, args)


def test_gradient_sink_reports_statistics_after_one_backward():
    xp, w, h0, c0 = make(2, 8, 4, 6)
    xp.requires_grad_(True)
    sink = rnnlab.GradientSink.like(xp)
    hs, cs = rnnlab.lstm(xp, w, h0, c0, sink=sink)
    g = torch.randn_like(hs)
    hs.backward(g)
    out = ops.lstm_forward(xp.detach(), w, h0, c0)
    want = ref.lstm_backward(g, None, *out, h0, c0, w)
    shared.check_sink_statistics(sink, want[4], want[5])


def test_func_grad_and_vmap_grad_fold_into_one_fused_call(kernel_calls):
    E, M, T, B, H = 4, 3, 6, 2, 5
    xp, _, h0, c0 = make(M, T, B, H)
    ws = torch.randn(E, M, 4 * H, H, dtype=torch.float64) / H**0.5

    def loss(hs, cs):
        return hs.square().sum() + cs[:, -1].sum()

    shared.check_vmap_grad_is_one_fused_call(
        kernel_calls("lstm_forward"),
        lambda w: loss(*rnnlab.lstm(xp, w, h0, c0)),
        ws,
        lambda w: loss(*ref.lstm_forward(xp, w, h0, c0)[:2]),
        fused_shape=(E * M, T, B, 4 * H),
    )


def test_torch_compile_fullgraph():
    def f(xp, w, h0, c0):
        hs, cs = rnnlab.lstm(xp, w, h0, c0)
        return hs.square().sum() + cs[:, -1].square().sum()

    shared.check_compiled_grads_match_eager(f, make(2, 5, 3, 4, dtype=torch.float32))


def test_nan_propagates_like_pytorch():
    xp, w, h0, c0 = make(1, 4, 2, 20, dtype=torch.float32)
    xp[0, 1, 0, 3] = float("nan")
    for a, b in zip(ops.lstm_forward(xp, w, h0, c0), ref.lstm_forward(xp, w, h0, c0)):
        assert torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("M,T,B,H", shared.EMPTY_SIZES)
def test_empty_sizes(M, T, B, H):
    xp, w, h0, c0 = make(M, T, B, H)
    hs, cs, gates = ops.lstm_forward(xp, w, h0, c0)
    assert hs.shape == cs.shape == (M, T, B, H) and gates.shape == (M, T, B, 4 * H)
    out = ops.lstm_backward(torch.ones_like(hs), None, hs, cs, gates, h0, c0, w)
    assert out[0].shape == (M, T, B, 4 * H) and out[4].shape == (M, T, B)
    assert torch.all(out[1] == 0)


BAD = [
    (lambda xp, w, h0, c0: (xp.float(), w, h0, c0), TypeError, "w_hh must have dtype"),
    (lambda xp, w, h0, c0: (xp.int(), w.int(), h0.int(), c0.int()), TypeError, "xp must be float32 or float64"),
    (lambda xp, w, h0, c0: (xp[0], w, h0, c0), ValueError, r"xp must have shape \[M, T, B, 4H\]"),
    (lambda xp, w, h0, c0: (xp[..., :-1], w, h0, c0), ValueError, r"xp must have shape \[M, T, B, 4H\]"),
    (lambda xp, w, h0, c0: (xp, w[:, :, :-1], h0, c0), ValueError, r"w_hh must have shape \[2, 20, 5\]"),
    (lambda xp, w, h0, c0: (xp, w, h0[:, :-1], c0), ValueError, r"h0 must have shape \[2, 3, 5\]"),
    (lambda xp, w, h0, c0: (xp, w, h0, c0[:1]), ValueError, r"c0 must have shape \[2, 3, 5\]"),
    (lambda xp, w, h0, c0: (xp, w, h0, c0.to("meta")), ValueError, "c0 must be on cpu"),
]


@pytest.mark.parametrize("mutate,exc,match", BAD)
def test_bad_inputs_name_the_argument(mutate, exc, match):
    xp, w, h0, c0 = make(2, 4, 3, 5)
    with pytest.raises(exc, match=match):
        rnnlab.lstm(*mutate(xp, w, h0, c0))


def test_bad_inputs_to_raw_ops_raise_instead_of_crashing():
    xp, w, h0, c0 = make(2, 4, 3, 5)
    with pytest.raises(ValueError, match="xp must be contiguous"):
        ops.lstm_forward(xp.transpose(1, 2), w, h0, c0)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        ops.lstm_forward(xp[..., :-2].contiguous(), w, h0, c0)
    with pytest.raises(ValueError, match="c0 must have shape"):
        ops.lstm_forward(xp, w, h0, c0[:1])
    with pytest.raises(ValueError, match=r"b must have shape \[M, 4H\]"):
        ops.lstm_forward(xp, w, h0, c0, xp[:, 0, 0, :-1].contiguous())
    with pytest.raises(ValueError, match=r"bias must have shape \[2, 20\]"):
        rnnlab.lstm(xp, w, h0, c0, bias=torch.zeros(2, 5, dtype=xp.dtype))
    hs, cs, gates = ops.lstm_forward(xp, w, h0, c0)
    with pytest.raises(ValueError, match="grad_cs must have shape"):
        ops.lstm_backward(hs, cs[:, :1], hs, cs, gates, h0, c0, w)
    with pytest.raises(TypeError, match="grad_hs must have dtype"):
        ops.lstm_backward(hs.float(), None, hs, cs, gates, h0, c0, w)
    with pytest.raises(ValueError, match="sink.step must have shape"):
        rnnlab.lstm(xp, w, h0, c0, sink=rnnlab.GradientSink.like(xp[:1]))


def test_non_contiguous_inputs_give_the_same_answer():
    shared.check_non_contiguous_inputs_give_the_same_answer(rnnlab.lstm, *make(2, 4, 3, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_strided_loss_gradients_give_the_same_answer(dtype):
    """Broadcast gradients on h and c (a sum's, a mean's) are read in place: same result as dense."""
    xp, w, h0, c0 = make(2, 5, 7, 20, dtype=dtype)
    hs, cs, gates = ops.lstm_forward(xp, w, h0, c0)
    g = torch.randn_like(hs)
    shared.check_strided_gradients_give_the_same_answer(
        lambda gh: ops.lstm_backward(gh, g, hs, cs, gates, h0, c0, w), hs.shape, dtype
    )
    shared.check_strided_gradients_give_the_same_answer(
        lambda gc: ops.lstm_backward(g, gc, hs, cs, gates, h0, c0, w), hs.shape, dtype
    )


def test_default_states_are_zero():
    xp, w, h0, c0 = make(2, 4, 3, 5)
    for a, b in zip(rnnlab.lstm(xp, w), rnnlab.lstm(xp, w, torch.zeros_like(h0), torch.zeros_like(c0))):
        assert torch.equal(a, b)


@settings(max_examples=20, deadline=None)
@given(M=st.integers(1, 4), T=st.integers(1, 10), B=st.integers(1, 9), H=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_property_any_shape_matches_reference(M, T, B, H, seed):
    xp, w, h0, c0 = make(M, T, B, H, seed=seed)
    out = ops.lstm_forward(xp, w, h0, c0)
    for a, b in zip(out, ref.lstm_forward(xp, w, h0, c0)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    g_h, g_c = torch.randn_like(out[0]), torch.randn_like(out[1])
    for a, b in zip(ops.lstm_backward(g_h, g_c, *out, h0, c0, w), ref.lstm_backward(g_h, g_c, *out, h0, c0, w)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("isa", shared.LOWER_ISAS)
def test_every_compiled_isa_matches_reference(isa):
    """The kernels compiled for the lower ISAs (forced with RNNLAB_ISA) agree with the reference."""
    shared.run_under_isa(
        isa,
        "for dt in (torch.float64, torch.float32):\n"
        "  for M, T, B, H in ((2, 7, 9, 37), (1, 3, 4, 70)):\n"
        "    xp = torch.randn(M, T, B, 4 * H, dtype=dt, generator=g); w = torch.randn(M, 4 * H, H, dtype=dt, generator=g) / 6\n"
        "    h0, c0 = (torch.randn(M, B, H, dtype=dt, generator=g) for _ in range(2))\n"
        "    b = torch.randn(M, 4 * H, dtype=dt, generator=g)\n"
        "    out = torch.ops.rnnlab.lstm_forward(xp, w, h0, c0, b)\n"
        "    for x, y in zip(out, ref.lstm_forward(xp, w, h0, c0, b)): torch.testing.assert_close(x, y)\n"
        "    gh, gc = torch.randn_like(out[0]), torch.randn_like(out[1])\n"
        "    got = torch.ops.rnnlab.lstm_backward(gh, gc, *out, h0, c0, w)\n"
        "    for x, y in zip(got, ref.lstm_backward(gh, gc, *out, h0, c0, w)):\n"
        "      torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-4 * y.abs().max().item())\n"
        "    one = torch.ones((), dtype=dt).expand_as(gh)  # a sum's gradient, read in place\n"
        "    for x, y in zip(*(torch.ops.rnnlab.lstm_backward(o, o, *out, h0, c0, w) for o in (one, one.contiguous()))):\n"
        "      assert torch.equal(x, y)\n",
    )
