"""Emami et al. as derived in SPEC §5.2–5.3: the tap-NTK formula against an autograd Jacobian,
taps against the RNN's own outputs, the wide limit, the teachers and the Toeplitz design."""
import math

import pytest
import torch

from rnnlab import reference
from rnnlab.reproduce import tap_ntk

f64 = torch.float64


@pytest.mark.parametrize("n,J", [(5, 6), (9, 12)])
def test_gram_formula_equals_the_autograd_jacobian(n, J):
    params = tap_ntk.init_students(n, torch.tensor([0.5, 0.95, 1.3]), [0, 1, 2], sigma_c=0.7, sigma_f=1.2)
    formula, autograd = tap_ntk.tap_ntk(params, J), tap_ntk.tap_ntk_autograd(params, J)
    # the W term is a convolution done by FFT: its rounding is relative to Θ's largest entry
    assert (formula - autograd).abs().max() < 1e-12 * autograd.abs().max()


def test_taps_are_the_impulse_response_of_the_rnn_on_any_sequence():
    n, T = 7, 15
    params = tap_ntk.init_students(n, torch.tensor([0.9, 1.0]), [4, 5])
    x = torch.randn(2, T, 3, dtype=f64)
    xp = (x.unsqueeze(-1) * params["F"].view(2, 1, 1, n)).contiguous()
    hs = reference.elman_forward(xp, params["W"] / math.sqrt(n), torch.zeros(2, 3, n, dtype=f64), "identity")
    y = (hs @ params["C"].transpose(1, 2).unsqueeze(1))[..., 0] / math.sqrt(n) + x * params["D"].view(2, 1, 1)
    L = tap_ntk.taps(params, T)
    conv = torch.stack([sum(L[:, j].view(2, 1) * x[:, t - j] for j in range(t + 1)) for t in range(T)], 1)
    torch.testing.assert_close(y, conv)


def test_wide_diagonal_approaches_beta_and_off_diagonals_shrink():
    sw = torch.tensor([0.5, 0.9], dtype=f64)
    beta = tap_ntk.wide_limit(4, sw)
    assert beta[0, 0] == 3 and math.isclose(beta[1, 1], 0.81 * 2 + 1) and math.isclose(beta[1, 3], 0.81**2 * (0.81 * 2 + 3))
    theta = tap_ntk.tap_ntk(tap_ntk.init_students(1500, sw, [0, 1]), 4)
    torch.testing.assert_close(theta.diagonal(dim1=1, dim2=2), beta, rtol=0.15, atol=0)
    off = theta - torch.diag_embed(theta.diagonal(dim1=1, dim2=2))
    assert off.abs().max() < 0.25 * beta.max()


def test_teachers_and_toeplitz_moments():
    torch.testing.assert_close(tap_ntk.teacher_taps("exp", 0.5, 4), torch.tensor([1, 0.5, 0.25, 0.125], dtype=f64))
    assert tap_ntk.teacher_taps("spike", 3, 6).tolist() == [0, 0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="teacher kind"):
        tap_ntk.teacher_taps("sine", 1, 3)
    T = 20
    sigma = tap_ntk.toeplitz_moments(4000, T, seed=0)
    # x_{t−j} is zero for t < j: only (T − j)/T of the steps see lag j
    torch.testing.assert_close(sigma.diagonal(), (T - torch.arange(T, dtype=f64)) / T, rtol=0.03, atol=0)
    assert (sigma - torch.diag_embed(sigma.diagonal())).abs().max() < 0.02


def test_linearised_prediction_with_diagonal_kernel_has_the_closed_form_fraction():
    J, steps = 5, 40
    beta = torch.tensor([[3.0, 1.0, 0.3, 0.1, 0.01]], dtype=f64)
    sigma_x = torch.diag(torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6], dtype=f64))
    L0, target, lr = torch.zeros(1, J, dtype=f64), torch.ones(1, J, dtype=f64), torch.tensor([0.2], dtype=f64)
    L = tap_ntk.predict_taps(L0, target, torch.diag_embed(beta), sigma_x, lr, steps)
    expected = 1 - (1 - 0.2 * beta * sigma_x.diagonal()) ** steps  # ≈ 1 − exp(−η τ β_j λ_x)
    torch.testing.assert_close(L, expected)
