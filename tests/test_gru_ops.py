"""The fused GRU ops against the reference implementation, torch.nn.GRU, autograd, torch.func and torch.compile."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rnnlab
from rnnlab import reference as ref

import helpers_ops as shared

ops = torch.ops.rnnlab
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}
BACKWARD_NAMES = ["grad_xp", "grad_w", "grad_b_hn", "grad_h0", "delta_sq", "v_sq"]


def make(M, T, B, H, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    xp = torch.randn(M, T, B, 3 * H, dtype=dtype, generator=g)
    w = torch.randn(M, 3 * H, H, dtype=dtype, generator=g) / max(H, 1) ** 0.5
    b_hn = torch.randn(M, H, dtype=dtype, generator=g)
    h0 = torch.randn(M, B, H, dtype=dtype, generator=g)
    return xp, w, b_hn, h0


# H below, at and above the vector widths (8, 16; a forward panel is one vector of units, the
# backward GEMM has 4-vector column panels), batch tails of the row blocks, M > threads.
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 7), (3, 9, 13, 37), (2, 4, 1, 64), (1, 3, 8, 100), (5, 6, 7, 16), (1, 2, 19, 130)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_reference(shape, dtype):
    xp, w, b_hn, h0 = make(*shape, dtype=dtype)
    out = ops.gru_forward(xp, w, b_hn, h0)
    for name, a, b in zip(["hs", "gates"], out, ref.gru_forward(xp, w, b_hn, h0)):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m: f"{name}: {m}")
    grad_hs = torch.randn_like(out[0])
    got = ops.gru_backward(grad_hs, *out, h0, w)
    want = ref.gru_backward(grad_hs, *out, h0, w)
    for name, a, b in zip(BACKWARD_NAMES, got, want):
        shared.assert_close_scaled(a, b, name)


def test_reference_backward_is_autograd_of_reference_forward():
    """The hand-written BPTT of reference.gru_backward is the VJP of reference.gru_forward."""
    xp, w, b_hn, h0 = make(2, 5, 3, 6)
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, b_hn, h0))
    hs, gates = ref.gru_forward(*args)
    g = torch.randn_like(hs)
    want = torch.autograd.grad((hs * g).sum(), args)
    got = ref.gru_backward(g, hs.detach(), gates.detach(), h0, w)
    for a, b in zip(got[:4], want):
        torch.testing.assert_close(a, b)


def gru_params_to_op(peer: nn.GRU, x: torch.Tensor):
    """(xp [1, T, B, 3H], w_hh [1, 3H, H], b_hn [1, H]) of a one-layer nn.GRU, differentiable in its parameters."""
    H = peer.hidden_size
    b_hh = peer.bias_hh_l0
    folded = torch.cat([b_hh[: 2 * H], torch.zeros_like(b_hh[2 * H :])])  # b_hr, b_hz fold into xp
    xp = torch.nn.functional.linear(x, peer.weight_ih_l0, peer.bias_ih_l0 + folded)
    return xp.unsqueeze(0), peer.weight_hh_l0.unsqueeze(0), b_hh[2 * H :].unsqueeze(0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_torch_nn_gru_per_model(dtype):
    """Each model of a population is an nn.GRU: outputs and every parameter gradient agree."""
    M, T, B, I, H = 3, 7, 4, 5, 21
    torch.manual_seed(0)
    peers = [nn.GRU(I, H, dtype=dtype) for _ in range(M)]
    x = torch.randn(T, B, I, dtype=dtype)
    h0 = torch.randn(M, B, H, dtype=dtype)
    g = torch.randn(M, T, B, H, dtype=dtype)
    parts = [gru_params_to_op(p, x) for p in peers]
    xp, w, b_hn = (torch.cat(t) for t in zip(*parts))
    hs = rnnlab.gru(xp, w, b_hn, h0)
    (hs * g).sum().backward()
    ours = [[p.grad.clone() for p in peer.parameters()] for peer in peers]
    tol = TOL[dtype]
    for m, peer in enumerate(peers):
        peer.zero_grad()
        out, h_n = peer(x, h0[m : m + 1])
        torch.testing.assert_close(hs[m], out, **tol)
        torch.testing.assert_close(hs[m, -1], h_n[0], **tol)
        (out * g[m]).sum().backward()
        for (name, p), mine in zip(peer.named_parameters(), ours[m]):
            shared.assert_close_scaled(mine, p.grad, f"model {m} {name}")


def test_statistics_are_the_hidden_state_gradients():
    """‖δ_t‖² is the norm of ∂L/∂h_t (autograd); v_t = J_tᵀ δ_t, the skip path z ⊙ δ_t included."""
    M, T, B, H = 2, 6, 3, 5
    xp, w, b_hn, h0 = make(M, T, B, H)
    g = torch.randn(M, T, B, H, dtype=torch.float64)

    def step(t, h_prev):
        return ref.gru_forward(xp[:, t : t + 1], w, b_hn, h_prev)[0][:, 0]

    delta = shared.hidden_state_gradients(lambda t, state: (step(t, state[0]),), (h0,), g)
    h_prev = torch.cat([h0[:, None], ref.gru_forward(xp, w, b_hn, h0)[0][:, :-1]], 1)  # [:, t]: step t's h_{t-1}

    sink = rnnlab.GradientSink.like(xp)
    hs = rnnlab.gru(xp, w, b_hn, h0, sink=sink)
    hs.backward(g)
    torch.testing.assert_close(sink.delta_sq, delta.square().sum(-1))
    for t in range(T):  # v_t = J_tᵀ δ_t with J_t = ∂h_t/∂h_{t-1}
        _, v_t = torch.func.vjp(lambda h: step(t, h), h_prev[:, t])
        torch.testing.assert_close(sink.v_sq[:, t], v_t(delta[:, t])[0].square().sum(-1))
    torch.testing.assert_close(sink.v_sq[:, 1:], (delta[:, :-1] - g[:, :-1]).square().sum(-1))  # δ_{t-1} = g + v_t


def test_gradcheck_through_autograd_function():
    xp, w, b_hn, h0 = make(2, 3, 2, 3)
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, b_hn, h0))
    assert torch.autograd.gradcheck(lambda *a: rnnlab.gru(*a), args)
    assert torch.autograd.gradcheck(lambda *a: rnnlab.gru(*a)[:, -1], args, fast_mode=True)


def test_bias_is_added_at_every_step():
    """gru(xp, bias=b) is gru(xp + b) (the kernel adds b as it reads xp), with b's gradient
    Σ_{t,b} ∂L/∂xp_t."""
    xp, w, b_hn, h0 = make(2, 3, 2, 3)
    b = torch.randn(2, 9, dtype=torch.float64)
    for got, want in zip(ops.gru_forward(xp, w, b_hn, h0, b), ref.gru_forward(xp + b[:, None, None], w, b_hn, h0)):
        torch.testing.assert_close(got, want, **TOL[torch.float64])
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, b_hn, h0, b))
    assert torch.autograd.gradcheck(lambda *a: rnnlab.gru(*a[:4], bias=a[4]), args)


@pytest.mark.parametrize("op", ["gru_forward", "gru_backward"])
def test_opcheck(op):
    xp, w, b_hn, h0 = make(2, 5, 3, 6, dtype=torch.float32)
    if op == "gru_forward":
        args = (xp, w, b_hn, h0)
    else:
        hs, gates = ops.gru_forward(xp, w, b_hn, h0)
        args = (torch.randn_like(hs), hs, gates, h0, w)
    torch.library.opcheck(getattr(ops, op).default, args)


def test_gradient_sink_reports_statistics_after_one_backward():
    xp, w, b_hn, h0 = make(2, 8, 4, 6)
    xp.requires_grad_(True)
    sink = rnnlab.GradientSink.like(xp)
    hs = rnnlab.gru(xp, w, b_hn, h0, sink=sink)
    g = torch.randn_like(hs)
    hs.backward(g)
    want = ref.gru_backward(g, *ref.gru_forward(xp.detach(), w, b_hn, h0), h0, w)
    shared.check_sink_statistics(sink, want[4], want[5])


def test_func_grad_and_vmap_grad_fold_into_one_fused_call(kernel_calls):
    E, M, T, B, H = 4, 3, 6, 2, 5
    xp, _, b_hn, h0 = make(M, T, B, H)
    ws = torch.randn(E, M, 3 * H, H, dtype=torch.float64) / H**0.5

    def loss(hs):
        return hs.square().sum() + hs[:, -1].sum()

    shared.check_vmap_grad_is_one_fused_call(
        kernel_calls("gru_forward"),
        lambda w: loss(rnnlab.gru(xp, w, b_hn, h0)),
        ws,
        lambda w: loss(ref.gru_forward(xp, w, b_hn, h0)[0]),
        fused_shape=(E * M, T, B, 3 * H),
    )


def test_vmap_over_b_hn_and_h0():
    """in_dims on the other arguments (w_hh shared): the vmap rule expands it before folding."""
    E, M, T, B, H = 3, 2, 5, 2, 4
    xp, w, b_hn, h0 = make(M, T, B, H)
    bs, h0s = torch.randn(E, M, H, dtype=torch.float64), torch.randn(E, M, B, H, dtype=torch.float64)
    got = torch.func.vmap(lambda b, h: rnnlab.gru(xp, w, b, h))(bs, h0s)
    for e in range(E):
        torch.testing.assert_close(got[e], ref.gru_forward(xp, w, bs[e], h0s[e])[0])


def test_torch_compile_fullgraph():
    def f(xp, w, b_hn, h0):
        hs = rnnlab.gru(xp, w, b_hn, h0)
        return hs.square().sum() + hs[:, -1].sum()

    shared.check_compiled_grads_match_eager(f, make(2, 5, 3, 4, dtype=torch.float32))


def test_nan_propagates_like_pytorch():
    xp, w, b_hn, h0 = make(1, 4, 2, 20, dtype=torch.float32)
    xp[0, 1, 0, 3] = float("nan")
    for a, b in zip(ops.gru_forward(xp, w, b_hn, h0), ref.gru_forward(xp, w, b_hn, h0)):
        assert torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("M,T,B,H", shared.EMPTY_SIZES)
def test_empty_sizes(M, T, B, H):
    xp, w, b_hn, h0 = make(M, T, B, H)
    hs, gates = ops.gru_forward(xp, w, b_hn, h0)
    assert hs.shape == (M, T, B, H) and gates.shape == (M, T, B, 4 * H)
    out = ops.gru_backward(torch.ones_like(hs), hs, gates, h0, w)
    assert out[0].shape == (M, T, B, 3 * H) and out[2].shape == (M, H) and out[4].shape == (M, T, B)
    assert torch.all(out[1] == 0) and torch.all(out[2] == 0)


def test_default_state_and_bias_are_zero():
    xp, w, b_hn, h0 = make(2, 4, 3, 5)
    zeros = torch.zeros_like(b_hn), torch.zeros_like(h0)
    assert torch.equal(rnnlab.gru(xp, w, None), rnnlab.gru(xp, w, *zeros))
    assert torch.equal(rnnlab.gru(xp, w, b_hn), rnnlab.gru(xp, w, b_hn, zeros[1]))


BAD = [
    (lambda xp, w, b, h0: (xp.float(), w, b, h0), TypeError, "w_hh must have dtype"),
    (lambda xp, w, b, h0: (xp, w, b.float(), h0), TypeError, "b_hn must have dtype"),
    (lambda xp, w, b, h0: (xp.int(), w.int(), b.int(), h0.int()), TypeError, "xp must be float32 or float64"),
    (lambda xp, w, b, h0: (xp[0], w, b, h0), ValueError, r"xp must have shape \[M, T, B, 3H\]"),
    (lambda xp, w, b, h0: (xp[..., :-1], w, b, h0), ValueError, r"xp must have shape \[M, T, B, 3H\]"),
    (lambda xp, w, b, h0: (xp, w[:, :, :-1], b, h0), ValueError, r"w_hh must have shape \[2, 15, 5\]"),
    (lambda xp, w, b, h0: (xp, w, b[:, :-1], h0), ValueError, r"b_hn must have shape \[2, 5\]"),
    (lambda xp, w, b, h0: (xp, w, b, h0[:, :-1]), ValueError, r"h0 must have shape \[2, 3, 5\]"),
    (lambda xp, w, b, h0: (xp, w, b, h0.to("meta")), ValueError, "h0 must be on cpu"),
    (lambda xp, w, b, h0: (xp, w.tolist(), b, h0), TypeError, "w_hh must be a Tensor, got list"),
    (lambda xp, w, b, h0: (xp.numpy(), w, b, h0), TypeError, "xp must be a Tensor, got ndarray"),
]


@pytest.mark.parametrize("mutate,exc,match", BAD)
def test_bad_inputs_name_the_argument(mutate, exc, match):
    xp, w, b_hn, h0 = make(2, 4, 3, 5)
    with pytest.raises(exc, match=match):
        rnnlab.gru(*mutate(xp, w, b_hn, h0))


def test_bad_inputs_to_raw_ops_raise_instead_of_crashing():
    xp, w, b_hn, h0 = make(2, 4, 3, 5)
    with pytest.raises(ValueError, match="xp must be contiguous"):
        ops.gru_forward(xp.transpose(1, 2), w, b_hn, h0)
    with pytest.raises(ValueError, match="not a multiple of 3"):
        ops.gru_forward(xp[..., :-2].contiguous(), w, b_hn, h0)
    with pytest.raises(ValueError, match="b_hn must have shape"):
        ops.gru_forward(xp, w, b_hn[:1], h0)
    with pytest.raises(ValueError, match=r"b must have shape \[M, 3H\]"):
        ops.gru_forward(xp, w, b_hn, h0, xp[:, 0, 0, :-1].contiguous())
    with pytest.raises(ValueError, match=r"bias must have shape \[2, 15\]"):
        rnnlab.gru(xp, w, b_hn, h0, bias=torch.zeros(2, 5, dtype=xp.dtype))
    hs, gates = ops.gru_forward(xp, w, b_hn, h0)
    with pytest.raises(ValueError, match="gates must have shape"):
        ops.gru_backward(hs, hs, gates[..., :-1].contiguous(), h0, w)
    with pytest.raises(TypeError, match="grad_hs must have dtype"):
        ops.gru_backward(hs.float(), hs, gates, h0, w)
    with pytest.raises(ValueError, match="sink.step must have shape"):
        rnnlab.gru(xp, w, b_hn, h0, sink=rnnlab.GradientSink.like(xp[:1]))


def test_non_contiguous_inputs_give_the_same_answer():
    shared.check_non_contiguous_inputs_give_the_same_answer(rnnlab.gru, *make(2, 4, 3, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_strided_loss_gradients_give_the_same_answer(dtype):
    """A broadcast gradient (a sum's, a mean's) is read in place: same result as dense."""
    xp, w, b_hn, h0 = make(2, 5, 7, 20, dtype=dtype)
    hs, gates = ops.gru_forward(xp, w, b_hn, h0)
    shared.check_strided_gradients_give_the_same_answer(lambda g: ops.gru_backward(g, hs, gates, h0, w), hs.shape, dtype)


@settings(max_examples=25, deadline=None)
@given(M=st.integers(1, 4), T=st.integers(1, 10), B=st.integers(1, 9), H=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_property_any_shape_matches_reference(M, T, B, H, seed):
    xp, w, b_hn, h0 = make(M, T, B, H, seed=seed)
    out = ops.gru_forward(xp, w, b_hn, h0)
    for a, b in zip(out, ref.gru_forward(xp, w, b_hn, h0)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    g = torch.randn_like(out[0])
    for name, a, b in zip(BACKWARD_NAMES, ops.gru_backward(g, *out, h0, w), ref.gru_backward(g, *out, h0, w)):
        shared.assert_close_scaled(a, b, name)


@pytest.mark.parametrize("isa", shared.LOWER_ISAS)
def test_every_compiled_isa_matches_reference(isa):
    """The kernels compiled for the lower ISAs (forced with RNNLAB_ISA) agree with the reference."""
    shared.run_under_isa(
        isa,
        "for dt in (torch.float64, torch.float32):\n"
        "  for M, T, B, H in ((2, 7, 9, 37), (1, 3, 4, 70), (2, 3, 5, 8)):\n"
        "    xp = torch.randn(M, T, B, 3 * H, dtype=dt, generator=g); w = torch.randn(M, 3 * H, H, dtype=dt, generator=g) / 6\n"
        "    b_hn, h0 = torch.randn(M, H, dtype=dt, generator=g), torch.randn(M, B, H, dtype=dt, generator=g)\n"
        "    b = torch.randn(M, 3 * H, dtype=dt, generator=g)\n"
        "    out = torch.ops.rnnlab.gru_forward(xp, w, b_hn, h0, b)\n"
        "    for x, y in zip(out, ref.gru_forward(xp, w, b_hn, h0, b)): torch.testing.assert_close(x, y)\n"
        "    gh = torch.randn_like(out[0])\n"
        "    got = torch.ops.rnnlab.gru_backward(gh, *out, h0, w)\n"
        "    for x, y in zip(got, ref.gru_backward(gh, *out, h0, w)):\n"
        "      torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-4 * y.abs().max().item())\n"
        "    one = torch.ones((), dtype=dt).expand_as(gh)  # a sum's gradient, read in place\n"
        "    for x, y in zip(*(torch.ops.rnnlab.gru_backward(o, *out, h0, w) for o in (one, one.contiguous()))):\n"
        "      assert torch.equal(x, y)\n",
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_the_reference_with_sinks():
    """No CUDA GRU kernel: CUDA tensors take the reference path, with the same results and statistics."""
    xp, w, b_hn, h0 = make(2, 5, 3, 6)
    cpu_args = [t.clone().requires_grad_(True) for t in (xp, w, b_hn, h0)]
    cuda_args = [t.cuda().requires_grad_(True) for t in (xp, w, b_hn, h0)]
    sinks = [rnnlab.GradientSink.like(a[0]) for a in (cpu_args, cuda_args)]
    counted = [rnnlab._ops.fallbacks[(op, "cuda")] for op in ("gru_forward", "gru_backward")]
    for args, sink in zip((cpu_args, cuda_args), sinks):
        rnnlab.gru(*args, sink=sink).square().sum().backward()
    for a, b in zip(cpu_args, cuda_args):
        torch.testing.assert_close(b.grad.cpu(), a.grad)
    torch.testing.assert_close(sinks[1].v_sq.cpu(), sinks[0].v_sq)
    assert [rnnlab._ops.fallbacks[(op, "cuda")] for op in ("gru_forward", "gru_backward")] == [n + 1 for n in counted]
