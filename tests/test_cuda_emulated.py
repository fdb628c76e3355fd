"""The CUDA kernels executed on the CPU under a host-thread emulator (tests/cuda_emu).

The CUDA sources cannot run without a GPU, but their indexing, tiling, barriers, shuffles and
cp.async ring can: tests/cuda_emu/cuda_runtime.h stands in for the CUDA runtime (one OS thread per
CUDA thread, real barriers, shared memory poisoned with NaN, cp.async copies landing as late as the
hardware allows), g++ compiles csrc/kernels/cuda/*.cu as C++ against it, and these tests compare
the kernels' outputs with ``rnnlab.reference`` on random inputs. What this cannot show — speed,
the hardware memory model, register/shared-memory limits — is left to tests/test_cuda.py on a GPU.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rnnlab import reference

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "cuda_emu"
ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}
ONCHIP, STEPS = 0, 1


def _sources() -> list[Path]:
    return sorted((ROOT / "csrc" / "kernels" / "cuda").glob("*.cu")) + [EMU / "emu_api.cpp"]


def _build() -> Path:
    """Compiles the kernels and the C ABI into a shared library, cached by source hash."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"{cxx} not found")
    if not sys.platform.startswith("linux"):
        pytest.skip("the emulator is built and run on Linux only (C++20 <barrier>, one OS thread per CUDA thread)")
    headers = sorted((ROOT / "csrc" / "kernels").rglob("*.h")) + sorted((ROOT / "csrc" / "kernels").rglob("*.cuh"))
    digest = hashlib.sha256()
    for p in _sources() + headers + [EMU / "cuda_runtime.h"]:
        digest.update(p.read_bytes())
    out_dir = Path(tempfile.gettempdir()) / f"rnnlab-cuda-emu-{digest.hexdigest()[:16]}"
    lib = out_dir / "libemu.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = ["-std=c++20", "-O1", "-fPIC", "-pthread", "-DRNNLAB_CUDA_EMULATION", f"-I{EMU}", f"-I{ROOT / 'csrc'}"]

    def compile_one(src: Path) -> Path:
        obj = out_dir / (src.name + ".o")
        subprocess.run([cxx, *flags, "-x", "c++", "-c", str(src), "-o", str(obj)], check=True, capture_output=True, text=True)
        return obj

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            objects = list(pool.map(compile_one, _sources()))
        tmp = out_dir / f"libemu.{os.getpid()}.so"
        subprocess.run([cxx, "-shared", "-pthread", *map(str, objects), "-o", str(tmp)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"building the emulated CUDA kernels failed:\n{e.stderr}")
    os.replace(tmp, lib)
    return lib


@pytest.fixture(scope="module")
def emu():
    return ctypes.CDLL(str(_build()))


def _ptr(t: torch.Tensor | None):
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


def _dtype_code(dtype: torch.dtype) -> int:
    return {torch.float32: 0, torch.float64: 1}[dtype]


def emu_elman_forward(emu, path, xp, w_hh, h0, act):
    M, T, B, H = xp.shape
    hs = torch.full_like(xp, float("nan"))  # poisoned: every element must be written
    err = emu.emu_elman_forward(_dtype_code(xp.dtype), path, ctypes.c_int64(M), ctypes.c_int64(T), ctypes.c_int64(B),
                                ctypes.c_int64(H), ACTIVATIONS[act], _ptr(xp), _ptr(w_hh), _ptr(h0), _ptr(hs))
    assert err == 0, f"cudaError {err}"
    return hs


def emu_elman_backward(emu, path, grad_hs, hs, w_hh, act, with_reg):
    M, T, B, H = hs.shape
    nan = float("nan")
    grad_xp, grad_h0 = torch.full_like(hs, nan), torch.full((M, B, H), nan, dtype=hs.dtype)
    delta_sq, v_sq = torch.full((M, T, B), nan, dtype=hs.dtype), torch.full((M, T, B), nan, dtype=hs.dtype)
    reg_v = torch.full_like(hs, nan) if with_reg else None
    err = emu.emu_elman_backward(_dtype_code(hs.dtype), path, ctypes.c_int64(M), ctypes.c_int64(T), ctypes.c_int64(B),
                                 ctypes.c_int64(H), ACTIVATIONS[act], _ptr(grad_hs), _ptr(hs), _ptr(w_hh), _ptr(grad_xp),
                                 _ptr(grad_h0), _ptr(delta_sq), _ptr(v_sq), _ptr(reg_v))
    assert err == 0, f"cudaError {err}"
    return grad_xp, grad_h0, delta_sq, v_sq, reg_v


def _close(name, got, want, rtol):
    assert torch.isfinite(got).all(), f"{name}: non-finite values (unwritten or poisoned shared memory)"
    err = (got - want).norm() / want.norm().clamp_min(1e-30)
    assert err <= rtol, f"{name}: relative error {err:.2e} > {rtol:.0e}"


def _elman_inputs(M, T, B, H, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    xp = torch.randn(M, T, B, H, generator=g, dtype=dtype)
    w = torch.randn(M, H, H, generator=g, dtype=dtype) * (1.2 / H**0.5)
    h0 = torch.randn(M, B, H, generator=g, dtype=dtype) * 0.5
    grad_hs = torch.randn(M, T, B, H, generator=g, dtype=dtype)
    return xp, w, h0, grad_hs


# (M, T, B, H): shapes chosen so that, with the emulator's 4 one-block multiprocessors, the
# launcher picks tiles of 1, 2, 4 and 8 rows, partial last tiles, and every padded size.
ELMAN_ONCHIP_CASES = [
    (1, 5, 3, 7),  # 1 row per tile, H padded to 32
    (1, 6, 7, 32),  # 2 rows, one partial tile
    (2, 4, 5, 40),  # 4 rows, H padded to 64
    (3, 7, 9, 64),  # 8 rows (the GPU is "full"), partial tiles
    (1, 3, 2, 100),  # H padded to 128 (float32 only)
    (2, 9, 11, 128),
]


def _rtol(dtype):
    return 2e-5 if dtype == torch.float32 else 1e-12


def _check_elman(emu, path, case, dtype, act, seed):
    xp, w, h0, grad_hs = _elman_inputs(*case, dtype, seed=seed)
    hs = emu_elman_forward(emu, path, xp, w, h0, act)
    _close(f"{act} hs", hs, reference.elman_forward(xp, w, h0, act), _rtol(dtype))
    _check_backward(emu, path, grad_hs, hs, h0, w, act, _rtol(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", range(len(ELMAN_ONCHIP_CASES)))
def test_elman_onchip_matches_reference(emu, index, dtype):
    case = ELMAN_ONCHIP_CASES[index]
    if dtype == torch.float64 and case[3] > 64:
        pytest.skip("float64 on chip holds H <= 64")
    act = list(ACTIVATIONS)[index % len(ACTIVATIONS)]  # every activation over the cases
    _check_elman(emu, ONCHIP, case, dtype, act, seed=index)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_elman_onchip_every_activation(emu, act):
    _check_elman(emu, ONCHIP, (2, 6, 3, 20), torch.float32, act, seed=11)


def _check_backward(emu, path, grad_hs, hs, h0, w, act, rtol):
    grad_xp, grad_h0, delta_sq, v_sq, reg_v = emu_elman_backward(emu, path, grad_hs, hs, w, act, with_reg=True)
    r_xp, _, r_h0, r_dsq, r_vsq, _, _ = reference.elman_backward(grad_hs, hs, h0, w, act)
    _close(f"{act} grad_xp", grad_xp, r_xp, rtol)
    _close(f"{act} grad_h0", grad_h0, r_h0, rtol)
    _close(f"{act} delta_sq", delta_sq, r_dsq, rtol)
    _close(f"{act} v_sq", v_sq, r_vsq, rtol)
    kappa = reference.omega_from_norms(r_dsq, r_vsq)[2]
    v = torch.einsum("mtbi,mij->mtbj", r_xp, w)
    _close(f"{act} reg_v", reg_v, kappa.unsqueeze(-1) * v, rtol * 10)  # κ = (r − 1)/c amplifies rounding


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_elman_steps_match_reference(emu, act, dtype):
    case = {"tanh": (1, 4, 3, 5), "relu": (2, 5, 4, 33), "sigmoid": (1, 3, 2, 150), "identity": (2, 3, 3, 9)}[act]
    _check_elman(emu, STEPS, case, dtype, act, seed=1000)


def test_elman_onchip_eager_copies(emu, monkeypatch):
    """The same kernels with cp.async copies landing at issue instead of at the wait."""
    monkeypatch.setenv("RNNLAB_EMU_EAGER_COPIES", "1")
    M, T, B, H = 2, 8, 5, 40
    xp, w, h0, grad_hs = _elman_inputs(M, T, B, H, torch.float64, seed=7)
    hs = emu_elman_forward(emu, ONCHIP, xp, w, h0, "tanh")
    _close("hs", hs, reference.elman_forward(xp, w, h0, "tanh"), 1e-12)
    _check_backward(emu, ONCHIP, grad_hs, hs, h0, w, "tanh", 1e-12)


def test_elman_nan_propagates(emu):
    """A NaN input reaches the outputs that depend on it, as in torch (relu/tanh must not eat it)."""
    for act in ("tanh", "relu", "sigmoid"):
        xp, w, h0, _ = _elman_inputs(1, 3, 2, 8, torch.float32, seed=3)
        xp[0, 1, 0, 2] = float("nan")
        hs = emu_elman_forward(emu, ONCHIP, xp, w, h0, act)
        want = reference.elman_forward(xp, w, h0, act)
        assert torch.equal(hs.isnan(), want.isnan()), act


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------
def _i64(*xs):
    return [ctypes.c_int64(x) for x in xs]


def emu_lstm_forward(emu, path, xp, w_hh, h0, c0):
    M, T, B, H4 = xp.shape
    H = H4 // 4
    hs, cs = torch.full((M, T, B, H), float("nan"), dtype=xp.dtype), torch.full((M, T, B, H), float("nan"), dtype=xp.dtype)
    gates = torch.full_like(xp, float("nan"))
    err = emu.emu_lstm_forward(_dtype_code(xp.dtype), path, *_i64(M, T, B, H), _ptr(xp), _ptr(w_hh), _ptr(h0), _ptr(c0),
                               _ptr(hs), _ptr(cs), _ptr(gates))
    assert err == 0, f"cudaError {err}"
    return hs, cs, gates


def emu_lstm_backward(emu, path, grad_hs, grad_cs, cs, gates, c0, w_hh):
    M, T, B, H = cs.shape
    nan, dt = float("nan"), cs.dtype
    grad_xp = torch.full_like(gates, nan)
    grad_h0, grad_c0 = torch.full((M, B, H), nan, dtype=dt), torch.full((M, B, H), nan, dtype=dt)
    delta_sq, v_sq = torch.full((M, T, B), nan, dtype=dt), torch.full((M, T, B), nan, dtype=dt)
    err = emu.emu_lstm_backward(_dtype_code(dt), path, *_i64(M, T, B, H), _ptr(grad_hs), _ptr(grad_cs), _ptr(cs),
                                _ptr(gates), _ptr(c0), _ptr(w_hh), _ptr(grad_xp), _ptr(grad_h0), _ptr(grad_c0),
                                _ptr(delta_sq), _ptr(v_sq))
    assert err == 0, f"cudaError {err}"
    return grad_xp, grad_h0, grad_c0, delta_sq, v_sq


def _check_lstm(emu, path, case, dtype, with_grad_cs, seed):
    M, T, B, H = case
    g = torch.Generator().manual_seed(seed)
    xp = torch.randn(M, T, B, 4 * H, generator=g, dtype=dtype)
    w = torch.randn(M, 4 * H, H, generator=g, dtype=dtype) * (1.0 / H**0.5)
    h0, c0 = torch.randn(M, B, H, generator=g, dtype=dtype) * 0.5, torch.randn(M, B, H, generator=g, dtype=dtype)
    grad_hs = torch.randn(M, T, B, H, generator=g, dtype=dtype)
    grad_cs = torch.randn(M, T, B, H, generator=g, dtype=dtype) if with_grad_cs else None
    rtol = _rtol(dtype)
    hs, cs, gates = emu_lstm_forward(emu, path, xp, w, h0, c0)
    r_hs, r_cs, r_gates = reference.lstm_forward(xp, w, h0, c0)
    _close("hs", hs, r_hs, rtol)
    _close("cs", cs, r_cs, rtol)
    _close("gates", gates, r_gates, rtol)
    got = emu_lstm_backward(emu, path, grad_hs, grad_cs, cs, gates, c0, w)
    r_xp, _, r_h0, r_c0, r_dsq, r_vsq = reference.lstm_backward(grad_hs, grad_cs, hs, cs, gates, h0, c0, w)
    for name, a, b in zip(("grad_xp", "grad_h0", "grad_c0", "delta_sq", "v_sq"), got, (r_xp, r_h0, r_c0, r_dsq, r_vsq)):
        _close(name, a, b, rtol)


# (M, T, B, H): tiles of 1, 2, 4 and 8 rows (emulated GPU: 4 one-block multiprocessors), partial
# tiles, H padded to 32 and 64.
LSTM_ONCHIP_CASES = [(1, 5, 3, 7), (1, 4, 7, 32), (2, 4, 5, 40), (3, 6, 9, 64)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", range(len(LSTM_ONCHIP_CASES)))
def test_lstm_onchip_matches_reference(emu, index, dtype):
    case = LSTM_ONCHIP_CASES[index]
    if dtype == torch.float64 and case[3] > 32:
        pytest.skip("float64 on chip holds H <= 32")
    _check_lstm(emu, ONCHIP, case, dtype, with_grad_cs=index % 2 == 0, seed=index)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [(1, 4, 3, 5), (2, 3, 4, 70)])
def test_lstm_steps_match_reference(emu, case, dtype):
    _check_lstm(emu, STEPS, case, dtype, with_grad_cs=case[0] == 2, seed=5)


# ---------------------------------------------------------------------------------------------
# Diagonal recurrence
# ---------------------------------------------------------------------------------------------
def _real_dtype(dtype):
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def _diag_args(u, aligned):
    M, T, B, N = u.shape
    Nr = N * (2 if u.is_complex() else 1)
    return [_dtype_code(_real_dtype(u.dtype)), *_i64(M, T, B, Nr), int(u.is_complex()), int(aligned)]


def _diag_plan(emu, u, aligned):
    out = (ctypes.c_int64 * 3)()
    emu.emu_diag_plan(*_diag_args(u, aligned), out)
    return tuple(out)


def _mean_abs_sq(part, complex_, B):
    total = part.sum(0)
    if complex_:
        total = total.unflatten(-1, (total.shape[-1] // 2, 2)).sum(-1)
    return total / B


def emu_diag(emu, u, lam, h0, grad_hs, aligned):
    """Forward with statistics, then backward, reduced as csrc/torch/cuda/diag_cuda.cpp does."""
    M, T, B, N = u.shape
    real, cplx, nan = _real_dtype(u.dtype), u.is_complex(), float("nan")
    Nr = N * (2 if cplx else 1)
    _, R, C = _diag_plan(emu, u, aligned)
    hs = torch.full_like(u, nan)
    h_part, s_part = torch.full((R, M, T, Nr), nan, dtype=real), torch.full((R, M, T, Nr), nan, dtype=real)
    assert emu.emu_diag_forward(*_diag_args(u, aligned), _ptr(u), _ptr(lam), _ptr(h0), _ptr(hs), _ptr(h_part), _ptr(s_part)) == 0
    grad_u, grad_h0 = torch.full_like(u, nan), torch.full_like(h0, nan)
    lam_p, lam_q = torch.full((R, M, Nr), nan, dtype=real), torch.full((R if cplx else 0, M, Nr), nan, dtype=real)
    dsq, vsq = torch.full((C, M, T, B), nan, dtype=real), torch.full((C, M, T, B), nan, dtype=real)
    assert emu.emu_diag_backward(*_diag_args(u, aligned), _ptr(grad_hs), _ptr(hs), _ptr(h0), _ptr(lam), _ptr(grad_u),
                                 _ptr(grad_h0), _ptr(lam_p), _ptr(lam_q if cplx else None), _ptr(dsq), _ptr(vsq)) == 0
    grad_lam = lam_p.sum(0)
    if cplx:
        p, q = grad_lam.unflatten(-1, (N, 2)), lam_q.sum(0).unflatten(-1, (N, 2))
        grad_lam = torch.complex(p[..., 0] + p[..., 1], q[..., 0] - q[..., 1])
    stats = (_mean_abs_sq(h_part, cplx, B), _mean_abs_sq(s_part, cplx, B))
    return hs, stats, (grad_u, grad_lam, grad_h0, dsq.sum(0), vsq.sum(0))


# (M, T, B, N): row segments of 1 … 32 lanes and rows spanning several warps (C > 1), partial
# row tiles (B not a multiple of 4), wide and narrow lanes.
DIAG_CASES = [(1, 5, 3, 3), (2, 6, 5, 16), (1, 4, 9, 50), (2, 3, 4, 160), (1, 3, 1, 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
@pytest.mark.parametrize("index", range(len(DIAG_CASES)))
def test_diag_matches_reference(emu, index, dtype):
    M, T, B, N = DIAG_CASES[index]
    g = torch.Generator().manual_seed(index)
    real = _real_dtype(dtype)
    def rnd(*shape):
        x = torch.randn(*shape, 2 if dtype.is_complex else 1, generator=g, dtype=real)
        return torch.view_as_complex(x) if dtype.is_complex else x[..., 0]
    u, h0, grad_hs = rnd(M, T, B, N), rnd(M, B, N), rnd(M, T, B, N)
    lam = rnd(M, N)
    lam = lam / lam.abs() * torch.rand(M, N, generator=g, dtype=real).mul(0.3).add(0.65)  # 0.65 ≤ |λ| ≤ 0.95
    rtol = 2e-5 if real == torch.float32 else 1e-12
    for aligned in (True, False):  # wide 16-byte lanes where the shape allows, and the narrow ones
        hs, (h_sq, s_sq), back = emu_diag(emu, u, lam, h0, grad_hs, aligned)
        r_hs, r_hsq, r_ssq = reference.diag_forward(u, lam, h0, stats=True)
        _close("hs", torch.view_as_real(hs) if dtype.is_complex else hs, torch.view_as_real(r_hs) if dtype.is_complex else r_hs, rtol)
        _close("h_sq", h_sq, r_hsq, rtol)
        _close("s_sq", s_sq, r_ssq, rtol)
        ref = reference.diag_backward(grad_hs, r_hs, h0, lam)
        for name, a, b in zip(("grad_u", "grad_lam", "grad_h0", "delta_sq", "v_sq"), back, ref):
            if a.is_complex():
                a, b = torch.view_as_real(a), torch.view_as_real(b)
            _close(f"{name} (aligned={aligned})", a, b, rtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_diag_forward_without_statistics(emu, dtype):
    g = torch.Generator().manual_seed(3)
    real = _real_dtype(dtype)
    u, lam, h0 = (torch.randn(*shape, dtype=dtype, generator=g) * 0.5 for shape in ((2, 7, 6, 40), (2, 40), (2, 6, 40)))
    hs = torch.full_like(u, float("nan"))
    assert emu.emu_diag_forward(*_diag_args(u, True), _ptr(u), _ptr(lam), _ptr(h0), _ptr(hs), _ptr(None), _ptr(None)) == 0
    want = reference.diag_forward(u, lam, h0)[0]
    _close("hs", torch.view_as_real(hs) if dtype.is_complex else hs, torch.view_as_real(want) if dtype.is_complex else want,
           2e-5 if real == torch.float32 else 1e-12)
