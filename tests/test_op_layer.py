"""What the ops share: Ω's one implementation and bound, the reference fallbacks, the denormal
flush of every kernel entry."""
import platform

import pytest
import torch
from torch import nn

import rnnlab
from rnnlab import _ops
from rnnlab import reference as ref

ops = torch.ops.rnnlab


def norms(M, T, B, dtype, seed=0):
    """(‖δ_t‖², ‖v_t‖²) [M, T, B] with some steps below Ω's bound (masked) and one model all masked."""
    g = torch.Generator().manual_seed(seed)
    delta_sq = torch.rand(M, T, B, dtype=dtype, generator=g) + 0.1
    delta_sq[:, ::3, 0] = 0
    delta_sq[-1] = 1e-30
    return delta_sq, torch.rand(M, T, B, dtype=dtype, generator=g) * 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_omega_op_matches_reference(dtype):
    delta_sq, v_sq = norms(3, 7, 5, dtype)
    omega, n_valid = ops.omega_from_norms(delta_sq, v_sq)
    want = ref.omega_from_norms(delta_sq, v_sq)
    torch.testing.assert_close(omega, want[0])
    torch.testing.assert_close(n_valid, want[1])
    assert omega[-1] == 0 and n_valid[-1] == 0


def test_omega_op_is_the_one_in_the_elman_backward_op():
    """Every cell's Ω (the Elman backward op's outputs, the others' sinks) is one C++ function."""
    g = torch.Generator().manual_seed(0)
    xp, w, h0 = torch.randn(2, 6, 3, 4, generator=g), torch.randn(2, 4, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    out = ops.elman_backward(torch.randn_like(hs), hs, h0, w, "tanh", None)
    omega, n_valid = ops.omega_from_norms(out[3], out[4])
    assert torch.equal(omega, out[5]) and torch.equal(n_valid, out[6])


def test_omega_bound_is_the_kernels_constant():
    assert ref.OMEGA_BOUND == rnnlab._C.omega_bound == 1e-20


def test_omega_op_opcheck_and_bad_inputs():
    torch.library.opcheck(ops.omega_from_norms.default, norms(2, 4, 3, torch.float32))
    delta_sq, v_sq = norms(2, 4, 3, torch.float32)
    with pytest.raises(ValueError, match=r"v_sq must have shape \[M, T, B\] like delta_sq"):
        ops.omega_from_norms(delta_sq, v_sq[:, :-1].contiguous())
    with pytest.raises(ValueError, match=r"delta_sq must have shape \[M, T, B\]"):
        ops.omega_from_norms(delta_sq[0], v_sq[0])
    with pytest.raises(TypeError, match="delta_sq must be float32 or float64"):
        ops.omega_from_norms(delta_sq.int(), v_sq.int())


def test_fallbacks_are_listed():
    """Every op that runs its reference somewhere is registered through one mechanism and listed."""
    import rnnlab.tasks.rng  # noqa: F401  (registers the random ops' CUDA kernels)

    listed = set(_ops.fallbacks)
    assert {("gru_forward", "cuda"), ("gru_backward", "cuda"), ("lstm_forward", "proj_size")} <= listed
    for op in ("random_derive", "random_bits", "random_uniform", "random_randint", "random_normal"):
        assert (op, "cuda") in listed


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lstm_projection_runs_the_reference_counted(dtype):
    """rnnlab.lstm with w_hr (nn.LSTM's proj_size) is nn.LSTM's layer, through the counted fallback."""
    T, B, I, H, P = 5, 3, 4, 6, 2
    torch.manual_seed(0)
    peer = nn.LSTM(I, H, proj_size=P, dtype=dtype)
    x, h0, c0 = torch.randn(T, B, I, dtype=dtype), torch.randn(1, B, P, dtype=dtype), torch.randn(1, B, H, dtype=dtype)
    xp = nn.functional.linear(x, peer.weight_ih_l0, peer.bias_ih_l0 + peer.bias_hh_l0)[None]
    before = _ops.fallbacks[("lstm_forward", "proj_size")]
    hs, cs = rnnlab.lstm(xp, peer.weight_hh_l0[None], h0, c0, w_hr=peer.weight_hr_l0[None])
    assert _ops.fallbacks[("lstm_forward", "proj_size")] == before + 1
    out, (h_n, c_n) = peer(x, (h0, c0))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else {}
    torch.testing.assert_close(hs[0], out, **tol)
    torch.testing.assert_close(cs[0, -1], c_n[0], **tol)
    with pytest.raises(NotImplementedError, match="no gradient sink with a projection"):
        rnnlab.lstm(xp, peer.weight_hh_l0[None], w_hr=peer.weight_hr_l0[None], sink=rnnlab.GradientSink.like(xp))
    with pytest.raises(ValueError, match=r"w_hr must have shape \[1, 2, 6\]"):
        rnnlab.lstm(xp, peer.weight_hh_l0[None], w_hr=peer.weight_hr_l0[None, :, :-1])


SUBNORMAL = 1e-39  # below float32's smallest normal number (1.2e-38)

# (name, kernel call, reference call) on inputs that make subnormal states: xp = SUBNORMAL, no
# recurrent weights, zero initial states.
FLUSH_CASES = {
    "elman": lambda xp: (ops.elman_forward(xp, xp.new_zeros(1, 4, 4), xp.new_zeros(1, 2, 4), "identity"),
                         ref.elman_forward(xp, xp.new_zeros(1, 4, 4), xp.new_zeros(1, 2, 4), "identity")),
    "lstm": lambda xp: tuple(f(xp.repeat(1, 1, 1, 4), xp.new_zeros(1, 16, 4), xp.new_zeros(1, 2, 4),
                               xp.new_zeros(1, 2, 4))[1] for f in (ops.lstm_forward, ref.lstm_forward)),
    "gru": lambda xp: tuple(f(xp.repeat(1, 1, 1, 3), xp.new_zeros(1, 12, 4), xp.new_zeros(1, 4),
                              xp.new_zeros(1, 2, 4))[0] for f in (ops.gru_forward, ref.gru_forward)),
    "diag": lambda xp: tuple(f(xp, xp.new_full((1, 4), 0.5), xp.new_zeros(1, 2, 4), False)[0]
                             for f in (ops.diag_forward, ref.diag_forward)),
}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the flush sets x86's MXCSR")
@pytest.mark.parametrize("cell", FLUSH_CASES)
def test_every_kernel_flushes_denormals_and_restores_the_callers_mode(cell):
    """Each cell's kernels run with subnormals flushed to zero (FlushDenormalsScope, csrc/torch/
    tiles.h), where torch keeps them; the caller's own arithmetic keeps them afterwards."""
    xp = torch.full((1, 3, 2, 4), SUBNORMAL, dtype=torch.float32)
    got, want = FLUSH_CASES[cell](xp)
    assert (want != 0).all() and (want.abs() < torch.finfo(torch.float32).tiny).all(), "reference not subnormal"
    assert (got == 0).all()
    assert (xp * 1.0 != 0).all()
