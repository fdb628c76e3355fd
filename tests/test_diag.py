"""The fused diagonal linear recurrence ops: reference, autograd (real and complex), the SPEC §8.2
F4 sensitivity accumulators, the closed forms of SPEC §4.1, torch.func and torch.compile."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnlab
from rnnlab import reference as ref

import helpers_ops as shared

ops = torch.ops.rnnlab
DTYPES = [torch.float64, torch.float32, torch.complex128, torch.complex64]
BACKWARD_NAMES = ["grad_u", "grad_lam", "grad_h0", "delta_sq", "v_sq"]
#: shared.assert_close_scaled's tolerance, by real dtype (grad_λ sums T·B terms that may cancel)
REL = {torch.float64: 1e-12, torch.float32: 2e-6}


def make(M, T, B, N, dtype=torch.float64, seed=0, radius=(0.5, 0.99)):
    """Random inputs and λ on the ring radius[0] ≤ |λ| ≤ radius[1] (a random sign when real)."""
    g = torch.Generator().manual_seed(seed)
    real = torch.empty(0, dtype=dtype).real.dtype
    u = torch.randn(M, T, B, N, dtype=dtype, generator=g)
    h0 = torch.randn(M, B, N, dtype=dtype, generator=g)
    r = radius[0] + (radius[1] - radius[0]) * torch.rand(M, N, dtype=real, generator=g)
    if dtype.is_complex:
        lam = torch.polar(r, 2 * torch.pi * torch.rand(M, N, dtype=real, generator=g))
    else:
        lam = r * torch.where(torch.rand(M, N, generator=g) < 0.8, 1.0, -1.0).to(real)
    return u, lam, h0


# Shapes that hit every tiling path on 2 threads: rows split (B > 1, M = 1), columns split
# (B = 1, wide N), M ≥ threads, odd N (complex pairs and vector tails), N below one vector.
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 7), (3, 9, 13, 37), (1, 4, 1, 300), (1, 6, 64, 16), (5, 6, 7, 3), (2, 3, 2, 130)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_reference(shape, dtype):
    u, lam, h0 = make(*shape, dtype=dtype)
    out = ops.diag_forward(u, lam, h0, True)
    for name, a, b in zip(["hs", "h_sq", "s_sq"], out, ref.diag_forward(u, lam, h0, True)):
        shared.assert_close_scaled(a, b, name, rel=REL)
    g = torch.randn_like(out[0])
    got = ops.diag_backward(g, out[0], h0, lam)
    for name, a, b in zip(BACKWARD_NAMES, got, ref.diag_backward(g, out[0], h0, lam)):
        assert a.dtype == b.dtype, name
        shared.assert_close_scaled(a, b, name, rel=REL)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_reference_backward_is_autograd_of_reference_forward(dtype):
    u, lam, h0 = make(2, 6, 3, 5, dtype=dtype)
    args = tuple(t.clone().requires_grad_(True) for t in (u, lam, h0))
    hs = ref.diag_forward(*args)[0]
    g = torch.randn_like(hs)
    want = torch.autograd.grad((hs * g.conj()).real.sum(), args)  # ∂/∂hs = g in PyTorch's convention
    got = ref.diag_backward(g, hs.detach(), h0, lam)
    for a, b in zip(got[:3], want):
        torch.testing.assert_close(a, b)


def test_statistics_off_returns_empty_and_same_states():
    u, lam, h0 = make(2, 5, 3, 4, dtype=torch.complex64)
    hs, h_sq, s_sq = ops.diag_forward(u, lam, h0, False)
    assert h_sq.shape == s_sq.shape == (2, 0, 4) and h_sq.dtype == torch.float32
    assert torch.equal(hs, ops.diag_forward(u, lam, h0, True)[0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck(dtype):
    u, lam, h0 = make(2, 3, 2, 3, dtype=dtype)
    args = tuple(t.clone().requires_grad_(True) for t in (u, lam, h0))
    assert torch.autograd.gradcheck(rnnlab.diag_recurrence, args)


@pytest.mark.parametrize("op", ["diag_forward", "diag_backward"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_opcheck(op, dtype):
    u, lam, h0 = make(2, 5, 3, 6, dtype=dtype)
    if op == "diag_forward":
        args = (u, lam, h0, True)
    else:
        hs = ops.diag_forward(u, lam, h0, False)[0]
        args = (torch.randn_like(hs), hs, h0, lam)
    torch.library.opcheck(getattr(ops, op).default, args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_sensitivity_accumulators_are_dh_dlambda(dtype):
    """F4: s_sq is mean_b |∂h_t/∂λ|², with ∂h_t/∂λ from forward-mode autograd of the reference
    (channels are independent, so a tangent of ones on λ gives every ∂h_t[b, n]/∂λ_n at once;
    for complex λ the recurrence is holomorphic and the JVP is the complex derivative)."""
    u, lam, h0 = make(2, 30, 4, 6, dtype=dtype)
    _, dh = torch.func.jvp(lambda lam: ref.diag_forward(u, lam, h0)[0], (lam,), (torch.ones_like(lam),))
    _, h_sq, s_sq = rnnlab.diag_recurrence(u, lam, h0, return_stats=True)
    hs = rnnlab.diag_recurrence(u, lam, h0)
    torch.testing.assert_close(s_sq, dh.abs().square().mean(2))
    torch.testing.assert_close(h_sq, hs.abs().square().mean(2))


def test_closed_forms_of_the_curse_of_memory_by_monte_carlo():
    """SPEC §4.1: h_t = λ h_{t-1} + x_t with stationary AR(1) inputs (unit variance, E[x_t x_t'] =
    ρ^|t−t'|) has E[h²] = (1 + ρλ)/((1 − ρλ)(1 − λ²)) and E[(∂_λ h)²] = [(1 + λ²)(1 − λ²ρ²) +
    2(1 − λ²)λρ] / [(1 − λ²)³ (1 − λρ)²] as t → ∞. The AR(1) inputs are themselves generated by
    the op (λ = ρ, h0 ~ N(0, 1)); one model per ρ, one channel per λ."""
    rho = torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64)
    lam = torch.tensor([0.5, 0.9, 0.95], dtype=torch.float64)
    M, N, T, B, burn_in = len(rho), len(lam), 400, 4000, 300
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(M, T, B, N, dtype=torch.float64, generator=g) * (1 - rho**2).sqrt().view(M, 1, 1, 1)
    x = rnnlab.diag_recurrence(eps, rho.view(M, 1).expand(M, N), torch.randn(M, B, N, dtype=torch.float64, generator=g))
    _, h_sq, s_sq = rnnlab.diag_recurrence(x, lam.expand(M, N), return_stats=True)
    r, l = rho.view(M, 1), lam.view(1, N)
    e_h2 = (1 + r * l) / ((1 - r * l) * (1 - l**2))
    e_s2 = ((1 + l**2) * (1 - l**2 * r**2) + 2 * (1 - l**2) * l * r) / ((1 - l**2) ** 3 * (1 - l * r) ** 2)
    torch.testing.assert_close(h_sq[:, burn_in:].mean(1), e_h2, rtol=0.05, atol=0)
    torch.testing.assert_close(s_sq[:, burn_in:].mean(1), e_s2, rtol=0.1, atol=0)


def test_gradient_sink_reports_statistics_after_one_backward():
    u, lam, h0 = make(2, 8, 4, 6, dtype=torch.complex128)
    u.requires_grad_(True)
    sink = rnnlab.GradientSink.like(u.real)
    hs = rnnlab.diag_recurrence(u, lam, h0, sink=sink)
    g = torch.randn_like(hs)
    (hs * g.conj()).real.sum().backward()
    want = ref.diag_backward(g, hs.detach(), h0, lam)
    shared.check_sink_statistics(sink, want[3], want[4])


def test_real_lambda_is_promoted_for_complex_inputs():
    u, lam, h0 = make(2, 5, 3, 4, dtype=torch.complex128)
    lam_real = lam.abs().requires_grad_(True)
    hs = rnnlab.diag_recurrence(u, lam_real, h0)
    torch.testing.assert_close(hs, ref.diag_forward(u, lam_real.detach().to(u.dtype), h0)[0])
    hs.abs().square().sum().backward()
    assert lam_real.grad.dtype == torch.float64


def test_func_grad_and_vmap_grad_fold_into_one_fused_call(kernel_calls):
    E, M, T, B, N = 4, 3, 6, 2, 5
    u, _, h0 = make(M, T, B, N, dtype=torch.complex128)
    lams = torch.stack([make(M, T, B, N, dtype=torch.complex128, seed=e)[1] for e in range(E)])
    shared.check_vmap_grad_is_one_fused_call(
        kernel_calls("diag_forward"),
        lambda lam: rnnlab.diag_recurrence(u, lam, h0).abs().square().sum(),
        lams,
        lambda lam: ref.diag_forward(u, lam, h0)[0].abs().square().sum(),
        fused_shape=(E * M, T, B, N),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_torch_compile_fullgraph(dtype):
    def f(u, lam, h0):
        hs, h_sq, _ = rnnlab.diag_recurrence(u, lam, h0, return_stats=True)
        return hs.abs().square().sum() + h_sq.sum().detach()

    shared.check_compiled_grads_match_eager(f, make(2, 5, 3, 4, dtype=dtype))


def test_nan_propagates_like_pytorch():
    u, lam, h0 = make(1, 4, 2, 20, dtype=torch.complex64)
    u[0, 1, 0, 3] = complex(float("nan"), 0)
    assert torch.equal(ops.diag_forward(u, lam, h0, False)[0].isnan(), ref.diag_forward(u, lam, h0)[0].isnan())


@pytest.mark.parametrize("M,T,B,N", shared.EMPTY_SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex128])
def test_empty_sizes(M, T, B, N, dtype):
    u, lam, h0 = make(M, T, B, N, dtype=dtype)
    hs, h_sq, _ = ops.diag_forward(u, lam, h0, True)
    assert hs.shape == (M, T, B, N) and h_sq.shape == (M, T, N)
    out = ops.diag_backward(torch.ones_like(hs), hs, h0, lam)
    assert out[0].shape == (M, T, B, N) and out[3].shape == (M, T, B)
    assert torch.all(out[1] == 0) and torch.all(out[2] == 0)


BAD = [
    (lambda u, lam, h0: (u.to(torch.complex64), lam, h0), TypeError, "lam must have dtype"),
    (lambda u, lam, h0: (u.abs().int(), lam, h0), TypeError, "u must be float32, float64, complex64 or complex128"),
    (lambda u, lam, h0: (u[0], lam, h0), ValueError, r"u must have shape \[M, T, B, N\]"),
    (lambda u, lam, h0: (u, lam[:, :-1], h0), ValueError, r"lam must have shape \[2, 5\]"),
    (lambda u, lam, h0: (u, lam, h0[:, :-1]), ValueError, r"h0 must have shape \[2, 3, 5\]"),
    (lambda u, lam, h0: (u, lam, h0.to("meta")), ValueError, "h0 must be on cpu"),
]


@pytest.mark.parametrize("mutate,exc,match", BAD)
def test_bad_inputs_name_the_argument(mutate, exc, match):
    u, lam, h0 = make(2, 4, 3, 5, dtype=torch.complex128)
    with pytest.raises(exc, match=match):
        rnnlab.diag_recurrence(*mutate(u, lam, h0))


def test_bad_inputs_to_raw_ops_raise_instead_of_crashing():
    u, lam, h0 = make(2, 4, 3, 5, dtype=torch.complex64)
    with pytest.raises(ValueError, match="u must be contiguous"):
        ops.diag_forward(u.transpose(1, 2), lam, h0, False)
    with pytest.raises(TypeError, match="u must be float32, float64, complex64 or complex128"):
        ops.diag_forward(u.abs().half(), lam.abs().half(), h0.abs().half(), False)
    with pytest.raises(TypeError, match="lam must have dtype"):
        ops.diag_forward(u, lam.abs(), h0, False)
    hs = ops.diag_forward(u, lam, h0, False)[0]
    with pytest.raises(ValueError, match="grad_hs must have shape"):
        ops.diag_backward(hs[:, :1].contiguous(), hs, h0, lam)
    with pytest.raises(ValueError, match="sink.step must have shape"):
        rnnlab.diag_recurrence(u, lam, h0, sink=rnnlab.GradientSink.like(u.real[:1]))
    with pytest.raises(TypeError, match="sink.step must have dtype"):
        rnnlab.diag_recurrence(u, lam, h0, sink=rnnlab.GradientSink.like(u.real.double()))


@settings(max_examples=20, deadline=None)
@given(
    M=st.integers(1, 3), T=st.integers(1, 10), B=st.integers(1, 9), N=st.integers(1, 70),
    dtype=st.sampled_from([torch.float64, torch.complex128]), seed=st.integers(0, 2**16),
)
def test_property_any_shape_matches_reference(M, T, B, N, dtype, seed):
    u, lam, h0 = make(M, T, B, N, dtype=dtype, seed=seed)
    out = ops.diag_forward(u, lam, h0, True)
    for a, b in zip(out, ref.diag_forward(u, lam, h0, True)):
        shared.assert_close_scaled(a, b, rel=REL)
    g = torch.randn_like(out[0])
    for a, b in zip(ops.diag_backward(g, out[0], h0, lam), ref.diag_backward(g, out[0], h0, lam)):
        shared.assert_close_scaled(a, b, rel=REL)


@pytest.mark.parametrize("isa", shared.LOWER_ISAS)
def test_every_compiled_isa_matches_reference(isa):
    """The kernels compiled for the lower ISAs (forced with RNNLAB_ISA) agree with the reference."""
    shared.run_under_isa(
        isa,
        "for dt in (torch.float64, torch.float32, torch.complex128, torch.complex64):\n"
        "  for M, T, B, N in ((2, 7, 9, 37), (1, 3, 1, 300)):\n"
        "    u = torch.randn(M, T, B, N, dtype=dt, generator=g); h0 = torch.randn(M, B, N, dtype=dt, generator=g)\n"
        "    lam = torch.randn(M, N, dtype=dt, generator=g); lam = lam / (1 + lam.abs())  # |λ| < 1\n"
        "    out = torch.ops.rnnlab.diag_forward(u, lam, h0, True)\n"
        "    for x, y in zip(out, ref.diag_forward(u, lam, h0, True)): torch.testing.assert_close(x, y)\n"
        "    gh = torch.randn_like(out[0])\n"
        "    for x, y in zip(torch.ops.rnnlab.diag_backward(gh, out[0], h0, lam), ref.diag_backward(gh, out[0], h0, lam)):\n"
        "      torch.testing.assert_close(x, y)\n",
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_sink_like_u_is_real_and_accepted(dtype):
    """GradientSink.like(u) gives the real sink the op requires, for complex u too; a sink of
    the wrong dtype is refused with a message naming the tensor to match (u.real, not xp)."""
    u, lam, h0 = make(2, 5, 3, 4, dtype=dtype)
    sink = rnnlab.GradientSink.like(u)
    assert sink.step.dtype == sink.reg.dtype == u.real.dtype
    rnnlab.diag_recurrence(u.requires_grad_(True), lam, h0, sink=sink).abs().sum().backward()
    assert sink.delta_sq.shape == (2, 5, 3)
    wrong = torch.float32 if u.real.dtype == torch.float64 else torch.float64
    with pytest.raises(TypeError, match=r"sink.step must have dtype .* \(like u.real\)"):
        rnnlab.diag_recurrence(u, lam, h0, sink=rnnlab.GradientSink.like(u.real.to(wrong)))
