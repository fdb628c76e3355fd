"""The fused Elman ops against the reference implementation, autograd, torch.func and torch.compile."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnlab
from rnnlab import reference as ref

import helpers_ops as shared

ops = torch.ops.rnnlab
ACTS = ["tanh", "relu", "sigmoid", "identity"]
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def make(M, T, B, H, dtype=torch.float64, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xp = torch.randn(M, T, B, H, dtype=dtype, generator=g)
    w = torch.randn(M, H, H, dtype=dtype, generator=g) * (scale / max(H, 1) ** 0.5)
    h0 = torch.randn(M, B, H, dtype=dtype, generator=g)
    return xp, w, h0


# Shapes chosen to hit every micro-kernel path: H below, at and above the vector widths (8, 16)
# and the 4-vector column block (64), batch tails of the 6-row block, M > threads.
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 7), (3, 17, 13, 37), (2, 4, 1, 64), (1, 3, 8, 100), (5, 6, 7, 16), (1, 2, 19, 130)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_reference(shape, act, dtype):
    xp, w, h0 = make(*shape, dtype=dtype)
    hs = ops.elman_forward(xp, w, h0, act)
    torch.testing.assert_close(hs, ref.elman_forward(xp, w, h0, act), **TOL[dtype])
    grad_hs = torch.randn_like(hs)
    reg = torch.rand(shape[0], dtype=dtype) + 0.5
    got = ops.elman_backward(grad_hs, hs, h0, w, act, reg)
    want = ref.elman_backward(grad_hs, hs, h0, w, act, reg)
    for name, a, b in zip(["grad_xp", "grad_w", "grad_h0", "delta_sq", "v_sq", "omega", "n_valid"], got, want):
        shared.assert_close_scaled(a, b, name)


def test_without_regularizer_grad_w_is_plain_bptt():
    xp, w, h0 = make(2, 9, 4, 11)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    g = torch.randn_like(hs)
    plain = ops.elman_backward(g, hs, h0, w, "tanh", None)
    torch.testing.assert_close(plain[1], ref.elman_backward(g, hs, h0, w, "tanh")[1])
    with_zero_alpha = ops.elman_backward(g, hs, h0, w, "tanh", torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(plain[1], with_zero_alpha[1])


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "identity"])
def test_omega_gradient_matches_autograd_of_definition(act):
    """SPEC §2.5: the closed form equals autograd of Ω with δ and h held constant."""
    M, T, B, H = 2, 7, 5, 6
    xp, w, h0 = make(M, T, B, H, scale=1.5)
    hs = ops.elman_forward(xp, w, h0, act)
    g = torch.randn_like(hs)
    alpha = torch.tensor([0.7, 2.0], dtype=torch.float64)
    with_reg = ops.elman_backward(g, hs, h0, w, act, alpha)
    without = ops.elman_backward(g, hs, h0, w, act, None)
    # δ_t = grad_hs_t + v_{t+1}, recovered from the kernel's own outputs
    v_next = torch.cat([torch.einsum("mtbi,mij->mtbj", with_reg[0][:, 1:], w), torch.zeros_like(hs[:, :1])], 1)
    delta = g + v_next
    w_var = w.clone().requires_grad_(True)
    omega = ref.omega_autograd(delta, hs, w_var, act)
    (d_omega,) = torch.autograd.grad(omega.sum(), w_var)
    torch.testing.assert_close(with_reg[5], omega.detach())
    torch.testing.assert_close(with_reg[1] - without[1], alpha[:, None, None] * d_omega)


def test_omega_mask_excludes_zero_gradient_steps():
    """Steps with ‖δ_t‖² < 1e-20 are masked (r = 1) and not counted in N."""
    M, T, B, H = 1, 6, 3, 5
    xp, w, h0 = make(M, T, B, H)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    g = torch.randn_like(hs)
    g[:, 3:] = 0  # δ_t = 0 for t ≥ 3: nothing flows back from there
    out = ops.elman_backward(g, hs, h0, w, "tanh", torch.ones(1, dtype=torch.float64))
    assert out[6].item() == pytest.approx(3.0)
    want = ref.elman_backward(g, hs, h0, w, "tanh", torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(out[5], want[5])
    torch.testing.assert_close(out[1], want[1])


def test_gradcheck_through_autograd_function():
    xp, w, h0 = make(2, 4, 3, 5)
    for act in ACTS:
        args = tuple(t.clone().requires_grad_(True) for t in (xp, w, h0 * 0.5))
        assert torch.autograd.gradcheck(lambda a, b, c: rnnlab.elman(a, b, c, nonlinearity=act), args)


@pytest.mark.parametrize("act", ACTS)
def test_bias_is_added_at_every_step(act):
    """elman(xp, bias=b) is elman(xp + b) (the kernel adds b as it reads xp), with b's gradient
    Σ_{t,b} ∂L/∂xp_t, also through the regularized backward and with a sink."""
    xp, w, h0 = make(2, 5, 3, 7)
    b = torch.randn(2, 7, dtype=torch.float64)
    torch.testing.assert_close(ops.elman_forward(xp, w, h0, act, b), ref.elman_forward(xp + b[:, None, None], w, h0, act),
                               **TOL[torch.float64])
    torch.testing.assert_close(ops.elman_forward(xp, w, h0, act, b), ref.elman_forward(xp, w, h0, act, b),
                               **TOL[torch.float64])
    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, h0 * 0.5, b))
    assert torch.autograd.gradcheck(lambda a, v, c, d: rnnlab.elman(a, v, c, nonlinearity=act, bias=d), args)
    sink = rnnlab.GradientSink.like(xp)
    rnnlab.elman(*args[:3], nonlinearity=act, bias=args[3], reg_weight=0.5, sink=sink).sum().backward()
    torch.testing.assert_close(args[3].grad, args[0].grad.sum((1, 2)), **TOL[torch.float64])


def test_gradcheck_backward_op_is_the_derivative_of_forward():
    """Double-check the raw backward op: its outputs are the VJP of the forward op."""
    xp, w, h0 = make(1, 3, 2, 4)

    def f(a, b, c):
        return ops.elman_forward(a, b, c, "tanh")

    args = tuple(t.clone().requires_grad_(True) for t in (xp, w, h0))
    hs = f(*args)
    g = torch.randn_like(hs)
    want = torch.autograd.grad(ref.elman_forward(*args, "tanh"), args, g)
    got = ops.elman_backward(g, hs.detach(), h0, w, "tanh", None)
    for a, b in zip((got[0], got[1], got[2]), want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("op", ["elman_forward", "elman_backward"])
def test_opcheck(op):
    xp, w, h0 = make(2, 5, 3, 6, dtype=torch.float32)
    if op == "elman_forward":
        args = (xp, w, h0, "tanh")
    else:
        hs = ops.elman_forward(xp, w, h0, "tanh")
        args = (torch.randn_like(hs), hs, h0, w, "tanh", torch.ones(2))
    torch.library.opcheck(getattr(ops, op).default, args)


def test_gradient_sink_reports_statistics_after_one_backward():
    xp, w, h0 = make(2, 8, 4, 6)
    xp.requires_grad_(True)
    sink = rnnlab.GradientSink.like(xp)
    hs = rnnlab.elman(xp, w, h0, reg_weight=0.5, sink=sink)
    g = torch.randn_like(hs)
    hs.backward(g)
    want = ref.elman_backward(g, hs.detach(), h0, w, "tanh")
    shared.check_sink_statistics(sink, want[3], want[4])
    torch.testing.assert_close(sink.delta_norm, want[3].sqrt())


def test_func_grad_and_vmap_grad_fold_into_one_fused_call(kernel_calls):
    E, M, T, B, H = 4, 3, 6, 2, 5
    xp, _, h0 = make(M, T, B, H)
    ws = torch.randn(E, M, H, H, dtype=torch.float64) / H**0.5
    shared.check_vmap_grad_is_one_fused_call(
        kernel_calls("elman_forward"),
        lambda w: rnnlab.elman(xp, w, h0).square().sum(),
        ws,
        lambda w: ref.elman_forward(xp, w, h0, "tanh").square().sum(),
        fused_shape=(E * M, T, B, H),
    )


def test_torch_compile_fullgraph():
    def f(xp, w, h0):
        return rnnlab.elman(xp, w, h0, nonlinearity="tanh", reg_weight=1.0).square().sum()

    shared.check_compiled_grads_match_eager(f, make(2, 5, 3, 4, dtype=torch.float32))


def test_nan_propagates_like_pytorch():
    xp, w, h0 = make(1, 4, 2, 20, dtype=torch.float32)
    xp[0, 1, 0, 3] = float("nan")
    for act in ACTS:
        hs = ops.elman_forward(xp, w, h0, act)
        want = ref.elman_forward(xp, w, h0, act)
        assert torch.equal(hs.isnan(), want.isnan()), act


@pytest.mark.parametrize("M,T,B,H", shared.EMPTY_SIZES)
def test_empty_sizes(M, T, B, H):
    xp, w, h0 = make(M, T, B, H)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    assert hs.shape == (M, T, B, H)
    out = ops.elman_backward(torch.ones_like(hs), hs, h0, w, "tanh", torch.ones(M, dtype=torch.float64))
    assert out[0].shape == (M, T, B, H) and out[3].shape == (M, T, B)
    assert torch.all(out[1] == 0) and torch.all(out[5] == 0)


BAD = [
    (lambda xp, w, h0: (xp.float(), w, h0), TypeError, "w_hh must have dtype"),
    (lambda xp, w, h0: (xp.int(), w.int(), h0.int()), TypeError, "xp must be float32 or float64"),
    (lambda xp, w, h0: (xp[0], w, h0), ValueError, r"xp must have shape \[M, T, B, H\]"),
    (lambda xp, w, h0: (xp, w[:, :-1], h0), ValueError, r"w_hh must have shape \[2, 5, 5\]"),
    (lambda xp, w, h0: (xp, w, h0[:, :-1]), ValueError, r"h0 must have shape \[2, 3, 5\]"),
    (lambda xp, w, h0: (xp, w, h0.to("meta")), ValueError, "h0 must be on cpu"),
]


@pytest.mark.parametrize("mutate,exc,match", BAD)
def test_bad_inputs_name_the_argument(mutate, exc, match):
    xp, w, h0 = make(2, 4, 3, 5)
    with pytest.raises(exc, match=match):
        rnnlab.elman(*mutate(xp, w, h0))


def test_bad_inputs_to_raw_ops_raise_instead_of_crashing():
    xp, w, h0 = make(2, 4, 3, 5)
    with pytest.raises(ValueError, match="xp must be contiguous"):
        ops.elman_forward(xp.transpose(2, 3), w, h0, "tanh")
    with pytest.raises(ValueError, match="h0 must have shape"):
        ops.elman_forward(xp, w, h0[:1], "tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.elman_forward(xp, w, h0, "gelu")
    with pytest.raises(ValueError, match=r"b must have shape \[M, H\]"):
        ops.elman_forward(xp, w, h0, "tanh", xp[:, 0, 0, :-1].contiguous())
    with pytest.raises(ValueError, match=r"bias must have shape \[2, 5\]"):
        rnnlab.elman(xp, w, h0, bias=torch.zeros(5, dtype=xp.dtype))
    with pytest.raises(ValueError, match=r"reg_weight must be a float or a tensor of shape \[2\]"):
        rnnlab.elman(xp, w, h0, reg_weight=torch.ones(3))


def test_non_contiguous_inputs_give_the_same_answer():
    shared.check_non_contiguous_inputs_give_the_same_answer(rnnlab.elman, *make(2, 4, 3, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 5, 7, 16), (1, 4, 3, 37)])  # dense and padded epilogue rows
def test_strided_loss_gradients_give_the_same_answer(shape, dtype):
    """A broadcast gradient (a sum's, a mean's) is read in place, not copied dense: same result."""
    xp, w, h0 = make(*shape, dtype=dtype)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    alpha = torch.full((shape[0],), 0.5, dtype=dtype)
    shared.check_strided_gradients_give_the_same_answer(
        lambda g: ops.elman_backward(g, hs, h0, w, "tanh", alpha), shape, dtype
    )


@settings(max_examples=25, deadline=None)
@given(
    M=st.integers(1, 4), T=st.integers(1, 12), B=st.integers(1, 9), H=st.integers(1, 70),
    act=st.sampled_from(ACTS), seed=st.integers(0, 2**16),
)
def test_property_any_shape_matches_reference(M, T, B, H, act, seed):
    xp, w, h0 = make(M, T, B, H, seed=seed)
    hs = ops.elman_forward(xp, w, h0, act)
    torch.testing.assert_close(hs, ref.elman_forward(xp, w, h0, act), **TOL[torch.float64])
    g = torch.randn_like(hs)
    for a, b in zip(ops.elman_backward(g, hs, h0, w, act, None), ref.elman_backward(g, hs, h0, w, act)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_float32_activations_accuracy():
    """The vectorized float32 tanh/sigmoid of activations.h on [-20, 20]: relative error below the
    bounds measured over every float there (tanh 3.6e-7, sigmoid 1.5e-7), |tanh| ≤ 1, tanh(x) = x
    for tiny x, within 1 ulp of ±1 from |x| ≥ 9 to ±inf, NaN kept."""
    x = torch.linspace(-20, 20, 64 * 6250, dtype=torch.float32)
    # With w_hh = 0 and h0 = 0 the forward op evaluates φ(xp) on every element.
    xp = x.view(1, 1, 6250, 64)
    for act, exact, bound in [("tanh", torch.tanh, 4e-7), ("sigmoid", torch.sigmoid, 3e-7)]:
        got = ops.elman_forward(xp, torch.zeros(1, 64, 64), torch.zeros(1, 6250, 64), act).flatten().double()
        want = exact(x.double())
        rel = ((got - want).abs() / want.abs().clamp_min(1e-30)).max().item()
        assert rel < bound, (act, rel)
        if act == "tanh":
            assert got.abs().max().item() <= 1.0
    special = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-8, 9.0, 9.5, 1e30, -1e30, float("inf"), float("-inf"),
                            float("nan")] + [0.0] * 4).view(1, 1, 1, 16)
    got = ops.elman_forward(special, torch.zeros(1, 16, 16), torch.zeros(1, 1, 16), "tanh").flatten()
    # exact where the rational function reduces to x (z rounds to 0: P = Q = 1) and for NaN
    want = torch.tensor([0.0, 0.0, 1e-30, -1e-30, 1e-8] + [float("nan")] * 7 + [0.0] * 4)
    keep = ~torch.isnan(want)
    torch.testing.assert_close(got[keep], want[keep], rtol=0, atol=0)
    assert torch.isnan(got[11])
    # |x| ≥ 9 is clamped to 9, so every saturated lane holds tanh(9)'s rounding: within 1 ulp of
    # ±1 (how the last ulp rounds depends on the CPU's rcp14), never beyond
    sat = got[5:11] * torch.tensor([1.0, 1.0, 1.0, -1.0, 1.0, -1.0])
    assert (sat == sat[0]).all() and 1 - 6e-8 <= sat[0].item() <= 1.0, got[5:11]


def test_openmp_really_uses_two_threads():
    if torch.get_num_threads() < 2:
        pytest.skip("needs 2 threads")
    assert rnnlab._C.parallel_threads_used() >= 2


@pytest.mark.parametrize("isa", shared.LOWER_ISAS)
def test_every_compiled_isa_matches_reference(isa):
    """The kernels compiled for the lower ISAs (forced with RNNLAB_ISA) agree with the reference:
    float64 to 1e-10; float32 within 4× the float32 reference's own error, both measured against
    the float64 reference on the same inputs (Ω's gradient divides by per-step norms, so a fixed
    float32 tolerance would be a guess)."""
    shared.run_under_isa(
        isa,
        "def close(ours, f, args):\n"
        "    if ours[0].dtype == torch.float64:\n"
        "        for x, y in zip(ours, f(*args)): torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)\n"
        "        return\n"
        "    wide = [t.double() if torch.is_tensor(t) else t for t in args]\n"
        "    for x, y, z in zip(ours, f(*args), f(*wide)):\n"
        "        own, err = (y.double() - z).abs().max().item(), (x.double() - z).abs().max().item()\n"
        "        assert err <= 4 * own + 1e-6 * z.abs().max().item(), (f.__name__, act, H, err, own)\n"
        # H = 8: dense GEMM output rows on every ISA; H = 37: padded rows on AVX2 and portable
        "for dt, act, H in itertools.product((torch.float64, torch.float32), ('tanh', 'relu', 'sigmoid'), (8, 37)):\n"
        "    xp = torch.randn(2, 7, 9, H, dtype=dt, generator=g); w = torch.randn(2, H, H, dtype=dt, generator=g) / 6\n"
        "    h0, b = torch.randn(2, 9, H, dtype=dt, generator=g), torch.randn(2, H, dtype=dt, generator=g)\n"
        "    hs = torch.ops.rnnlab.elman_forward(xp, w, h0, act, b)\n"
        "    close([hs], lambda *a: [ref.elman_forward(*a)], (xp, w, h0, act, b))\n"
        "    gh = torch.randn_like(hs); a = torch.ones(2, dtype=dt)\n"
        "    close(torch.ops.rnnlab.elman_backward(gh, hs, h0, w, act, a), ref.elman_backward, (gh, hs, h0, w, act, a))\n"
        "    one = torch.ones((), dtype=dt).expand_as(hs)  # a sum's gradient, read in place\n"
        "    for x, y in zip(*(torch.ops.rnnlab.elman_backward(o, hs, h0, w, act, a) for o in (one, one.contiguous()))):\n"
        "      assert torch.equal(x, y)\n",
    )
