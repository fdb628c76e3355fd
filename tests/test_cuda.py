"""The CUDA kernels on a GPU: against the CPU kernels, the reference, cuDNN and torch.func.

Skipped without a CUDA device and a CUDA build of rnnlab. Both CUDA paths are covered: the on-chip
kernel (w_hh in registers, one launch per call) where it fits, and the per-step path (batched
cuBLAS GEMM + one fused kernel per step), forced on small sizes with RNNLAB_CUDA_PATH=steps.
TF32 is switched off for every test so that cuBLAS and cuDNN compute in full float32.
Run on a GPU machine with ``bash benchmarks/gpu_suite.sh`` (which also builds the package).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnlab
from rnnlab import _C
from rnnlab import reference as ref

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and getattr(_C, "with_cuda", False)),
    reason="needs a CUDA device and rnnlab built with CUDA",
)

ops = torch.ops.rnnlab
ACTS = ["tanh", "relu", "sigmoid", "identity"]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(params=["auto", "steps"])
def path(request, monkeypatch):
    """Which CUDA path runs: "auto" (on chip where it fits) or "steps" (per-step everywhere)."""
    monkeypatch.setenv("RNNLAB_CUDA_PATH", request.param)
    return request.param


def close(name, got, want, dtype):
    """‖got − want‖ / ‖want‖ small, and no NaN where the reference has none."""
    got, want = got.detach().cpu(), want.detach().cpu()
    if got.is_complex():
        got, want = torch.view_as_real(got), torch.view_as_real(want)
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert torch.equal(got.isnan(), want.isnan()), f"{name}: NaN pattern differs"
    g, w = got.nan_to_num(), want.nan_to_num()
    err = ((g - w).norm() / w.norm().clamp_min(1e-30)).item()
    assert err <= (1e-11 if dtype == torch.float64 else 3e-5), f"{name}: relative error {err:.2e}"


def rand(*shape, dtype, g, scale=1.0):
    return torch.randn(*shape, dtype=dtype, generator=g) * scale


# ---------------------------------------------------------------------------------------------
# Elman: CUDA op == CPU op == reference, every output, both paths.
# H spans the on-chip sizes (padded to 32, 64, 128) and the per-step sizes beyond (float64 on
# chip stops at 64); B covers tiles of 1 … 8 rows and partial tiles.
# ---------------------------------------------------------------------------------------------
ELMAN_SHAPES = [(1, 1, 1, 1), (1, 7, 3, 7), (3, 17, 13, 37), (2, 9, 1, 64), (1, 6, 33, 100), (2, 5, 9, 128),
                (1, 4, 5, 129), (2, 3, 17, 300)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", ELMAN_SHAPES)
def test_elman_cuda_matches_cpu_and_reference(shape, dtype, path):
    M, T, B, H = shape
    g = torch.Generator().manual_seed(hash(shape) % 2**31)
    for act in ACTS:
        xp, h0 = rand(M, T, B, H, dtype=dtype, g=g), rand(M, B, H, dtype=dtype, g=g, scale=0.5)
        w = rand(M, H, H, dtype=dtype, g=g, scale=1.1 / H**0.5)
        grad_hs, reg = rand(M, T, B, H, dtype=dtype, g=g), torch.rand(M, dtype=dtype, generator=g) + 0.5
        hs = ops.elman_forward(xp.to(CUDA), w.to(CUDA), h0.to(CUDA), act)
        hs_cpu = ops.elman_forward(xp, w, h0, act)
        close(f"{act} hs vs cpu", hs, hs_cpu, dtype)
        close(f"{act} hs vs reference", hs, ref.elman_forward(xp, w, h0, act), dtype)
        got = ops.elman_backward(grad_hs.to(CUDA), hs, h0.to(CUDA), w.to(CUDA), act, reg.to(CUDA))
        cpu = ops.elman_backward(grad_hs, hs_cpu, h0, w, act, reg)
        want = ref.elman_backward(grad_hs, hs_cpu, h0, w, act, reg)
        for name, a, b, c in zip(["grad_xp", "grad_w", "grad_h0", "delta_sq", "v_sq", "omega", "n_valid"], got, cpu, want):
            close(f"{act} {name} vs cpu", a, b, dtype)
            close(f"{act} {name} vs reference", a, c, dtype)


@pytest.mark.parametrize("H", [96, 200])
def test_elman_cuda_is_deterministic(H, path):
    """The same call three times gives bitwise the same outputs (the kernels use no atomics):
    a result that moves between runs means a race."""
    g = torch.Generator().manual_seed(1)
    M, T, B = 5, 40, 21
    xp, w, h0 = rand(M, T, B, H, dtype=torch.float32, g=g), rand(M, H, H, dtype=torch.float32, g=g, scale=0.1), rand(M, B, H, dtype=torch.float32, g=g)
    xp, w, h0 = xp.to(CUDA), w.to(CUDA), h0.to(CUDA)
    grad_hs, reg = torch.randn_like(xp), torch.rand(M, device=CUDA)
    runs = []
    for _ in range(3):
        hs = ops.elman_forward(xp, w, h0, "tanh")
        runs.append((hs, *ops.elman_backward(grad_hs, hs, h0, w, "tanh", reg)))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("M,T,B,H", [(2, 0, 3, 4), (2, 5, 0, 4), (0, 5, 3, 4), (1, 3, 2, 0)])
def test_elman_cuda_empty_sizes(M, T, B, H):
    xp = torch.randn(M, T, B, H, device=CUDA, requires_grad=True)
    w = torch.randn(M, H, H, device=CUDA, requires_grad=True)
    hs = rnnlab.elman(xp, w)
    assert hs.shape == (M, T, B, H)
    hs.sum().backward()
    assert xp.grad.shape == xp.shape and w.grad.shape == w.shape


def test_elman_cuda_rejects_mixed_devices():
    xp = torch.randn(1, 3, 2, 4, device=CUDA)
    with pytest.raises((ValueError, RuntimeError), match="w_hh"):
        ops.elman_forward(xp, torch.randn(1, 4, 4), torch.randn(1, 2, 4, device=CUDA), "tanh")


def test_elman_cuda_gradcheck_float64(path):
    g = torch.Generator().manual_seed(2)
    xp = rand(2, 4, 3, 5, dtype=torch.float64, g=g).to(CUDA).requires_grad_()
    w = rand(2, 5, 5, dtype=torch.float64, g=g, scale=0.4).to(CUDA).requires_grad_()
    h0 = rand(2, 3, 5, dtype=torch.float64, g=g).to(CUDA).requires_grad_()
    torch.autograd.gradcheck(lambda a, b, c: rnnlab.elman(a, b, c), (xp, w, h0))


def test_elman_cuda_vmap_grad_matches_a_loop():
    """torch.func.vmap(grad) over an ensemble folds into one fused CUDA call; same result as a loop."""
    g = torch.Generator().manual_seed(3)
    E, T, B, H = 4, 12, 6, 48
    xp = rand(E, 1, T, B, H, dtype=torch.float32, g=g).to(CUDA)
    w = rand(E, 1, H, H, dtype=torch.float32, g=g, scale=0.15).to(CUDA)
    target = torch.randn(E, 1, T, B, H, generator=g).to(CUDA)

    def loss(w1, x1, y1):
        return ((rnnlab.elman(x1, w1) - y1) ** 2).mean()

    batched = torch.func.vmap(torch.func.grad(loss))(w, xp, target)
    looped = torch.stack([torch.func.grad(loss)(w[e], xp[e], target[e]) for e in range(E)])
    close("vmap(grad)", batched, looped, torch.float32)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("H", [32, 128, 256])
def test_rnn_dropin_matches_cudnn(nonlinearity, H):
    """rnnlab.RNN on CUDA against nn.RNN (cuDNN) with the same weights, TF32 off."""
    torch.manual_seed(0)
    ref_rnn = nn.RNN(16, H, num_layers=2, nonlinearity=nonlinearity, batch_first=True).to(CUDA)
    ours = rnnlab.RNN(16, H, num_layers=2, nonlinearity=nonlinearity, batch_first=True).to(CUDA)
    ours.load_state_dict(ref_rnn.state_dict())
    x = torch.randn(9, 50, 16, device=CUDA)
    out_r, h_r = ref_rnn(x)
    out_o, h_o = ours(x)
    close("output", out_o, out_r, torch.float32)
    close("h_n", h_o, h_r, torch.float32)
    (out_r.square().mean() + h_r.sum()).backward()
    (out_o.square().mean() + h_o.sum()).backward()
    for (name, p_r), p_o in zip(ref_rnn.named_parameters(), ours.parameters()):
        close(f"grad {name}", p_o.grad, p_r.grad, torch.float32)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------
LSTM_SHAPES = [(1, 1, 1, 1), (1, 7, 3, 7), (3, 11, 13, 32), (2, 6, 9, 64), (1, 5, 4, 65), (2, 4, 17, 130)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_grad_cs", [False, True])
@pytest.mark.parametrize("shape", LSTM_SHAPES)
def test_lstm_cuda_matches_cpu_and_reference(shape, with_grad_cs, dtype, path):
    M, T, B, H = shape
    g = torch.Generator().manual_seed(hash(shape) % 2**31)
    xp, w = rand(M, T, B, 4 * H, dtype=dtype, g=g), rand(M, 4 * H, H, dtype=dtype, g=g, scale=1 / H**0.5)
    h0, c0 = rand(M, B, H, dtype=dtype, g=g, scale=0.5), rand(M, B, H, dtype=dtype, g=g)
    grad_hs = rand(M, T, B, H, dtype=dtype, g=g)
    grad_cs = rand(M, T, B, H, dtype=dtype, g=g) if with_grad_cs else None
    fwd = ops.lstm_forward(xp.to(CUDA), w.to(CUDA), h0.to(CUDA), c0.to(CUDA))
    fwd_cpu = ops.lstm_forward(xp, w, h0, c0)
    for name, a, b, c in zip(["hs", "cs", "gates"], fwd, fwd_cpu, ref.lstm_forward(xp, w, h0, c0)):
        close(f"{name} vs cpu", a, b, dtype)
        close(f"{name} vs reference", a, c, dtype)
    hs, cs, gates = fwd
    cuda = lambda t: None if t is None else t.to(CUDA)  # noqa: E731
    got = ops.lstm_backward(cuda(grad_hs), cuda(grad_cs), hs, cs, gates, cuda(h0), cuda(c0), cuda(w))
    want = ref.lstm_backward(grad_hs, grad_cs, *fwd_cpu, h0, c0, w)
    cpu = ops.lstm_backward(grad_hs, grad_cs, *fwd_cpu, h0, c0, w)
    for name, a, b, c in zip(["grad_xp", "grad_w", "grad_h0", "grad_c0", "delta_sq", "v_sq"], got, cpu, want):
        close(f"{name} vs cpu", a, b, dtype)
        close(f"{name} vs reference", a, c, dtype)


@pytest.mark.parametrize("H", [32, 64, 200])
def test_lstm_dropin_matches_cudnn(H):
    torch.manual_seed(0)
    ref_lstm = nn.LSTM(12, H, num_layers=2, batch_first=True).to(CUDA)
    ours = rnnlab.LSTM(12, H, num_layers=2, batch_first=True).to(CUDA)
    ours.load_state_dict(ref_lstm.state_dict())
    x = torch.randn(7, 40, 12, device=CUDA)
    out_r, (h_r, c_r) = ref_lstm(x)
    out_o, (h_o, c_o) = ours(x)
    for name, a, b in [("output", out_o, out_r), ("h_n", h_o, h_r), ("c_n", c_o, c_r)]:
        close(name, a, b, torch.float32)
    (out_r.square().mean() + c_r.sum()).backward()
    (out_o.square().mean() + c_o.sum()).backward()
    for (name, p_r), p_o in zip(ref_lstm.named_parameters(), ours.parameters()):
        close(f"grad {name}", p_o.grad, p_r.grad, torch.float32)


def test_lstm_cuda_gradcheck_float64(path):
    g = torch.Generator().manual_seed(4)
    xp = rand(2, 4, 3, 12, dtype=torch.float64, g=g).to(CUDA).requires_grad_()
    w = rand(2, 12, 3, dtype=torch.float64, g=g, scale=0.5).to(CUDA).requires_grad_()
    torch.autograd.gradcheck(lambda a, b: rnnlab.lstm(a, b)[0], (xp, w))


# ---------------------------------------------------------------------------------------------
# Diagonal recurrence
# ---------------------------------------------------------------------------------------------
def _diag_inputs(M, T, B, N, dtype, g):
    real = torch.empty(0, dtype=dtype).real.dtype

    def r(*shape):
        x = torch.randn(*shape, 2 if dtype.is_complex else 1, dtype=real, generator=g)
        return torch.view_as_complex(x) if dtype.is_complex else x[..., 0]

    lam = r(M, N)
    lam = lam / lam.abs() * (0.65 + 0.3 * torch.rand(M, N, dtype=real, generator=g))
    return r(M, T, B, N), lam, r(M, B, N), r(M, T, B, N)


def _misaligned(t: torch.Tensor) -> torch.Tensor:
    """The same values in storage that starts one element past a 16-byte boundary."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    out = buf[1:].view(t.shape)
    out.copy_(t)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 9, 5, 16), (1, 6, 9, 50), (3, 4, 4, 160), (1, 200, 3, 8)])
@pytest.mark.parametrize("aligned", [True, False])
def test_diag_cuda_matches_cpu_and_reference(shape, dtype, aligned):
    g = torch.Generator().manual_seed(hash(shape) % 2**31)
    u, lam, h0, grad_hs = _diag_inputs(*shape, dtype, g)
    dev = (lambda t: t.to(CUDA)) if aligned else (lambda t: _misaligned(t.to(CUDA)))
    fwd = ops.diag_forward(dev(u), dev(lam), dev(h0), True)
    fwd_cpu = ops.diag_forward(u, lam, h0, True)
    for name, a, b, c in zip(["hs", "h_sq", "s_sq"], fwd, fwd_cpu, ref.diag_forward(u, lam, h0, stats=True)):
        close(f"{name} vs cpu", a, b, dtype)
        close(f"{name} vs reference", a, c, dtype)
    got = ops.diag_backward(dev(grad_hs), dev(fwd_cpu[0]), dev(h0), dev(lam))
    cpu = ops.diag_backward(grad_hs, fwd_cpu[0], h0, lam)
    for name, a, b, c in zip(["grad_u", "grad_lam", "grad_h0", "delta_sq", "v_sq"], got, cpu,
                             ref.diag_backward(grad_hs, fwd_cpu[0], h0, lam)):
        close(f"{name} vs cpu", a, b, dtype)
        close(f"{name} vs reference", a, c, dtype)


def test_diag_cuda_forward_without_statistics():
    g = torch.Generator().manual_seed(5)
    u, lam, h0, _ = _diag_inputs(2, 30, 6, 40, torch.complex64, g)
    hs, h_sq, s_sq = ops.diag_forward(u.to(CUDA), lam.to(CUDA), h0.to(CUDA), False)
    close("hs", hs, ref.diag_forward(u, lam, h0)[0], torch.float32)
    assert h_sq.shape == (2, 0, 40) and s_sq.shape == (2, 0, 40)


@pytest.mark.parametrize("M,T,B,N", [(2, 0, 3, 4), (2, 5, 0, 4), (0, 5, 3, 4), (1, 3, 2, 0)])
def test_diag_cuda_empty_sizes(M, T, B, N):
    u, lam, h0 = torch.randn(M, T, B, N, device=CUDA), torch.rand(M, N, device=CUDA), torch.randn(M, B, N, device=CUDA)
    for stats in (False, True):
        cpu = ops.diag_forward(u.cpu(), lam.cpu(), h0.cpu(), stats)
        for a, b in zip(ops.diag_forward(u, lam, h0, stats), cpu):
            assert a.shape == b.shape
    for a, b in zip(ops.diag_backward(u, u, h0, lam), ops.diag_backward(u.cpu(), u.cpu(), h0.cpu(), lam.cpu())):
        assert a.shape == b.shape
