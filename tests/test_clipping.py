"""Clipping (SPEC §2.4) and the regularizer Ω through the fused kernel path (SPEC §2.5), against
their definitions; Ω and its gradient against rnnlab.reference."""
import pytest
import torch

from rnnlab import reference
from rnnlab.nn.population import make_sink, population_forward
from rnnlab.tasks import rng
from rnnlab.train.clipping import DECAY_FACTOR, clip_gradients_, global_norm
from rnnlab.train.init import init_population
from rnnlab.train.schedules import decayed_alpha

torch.manual_seed(0)


def random_grads(M=4, H=5, I=3, O=2, scale=1.0):
    shapes = {"weight_ih": (M, H, I), "weight_hh": (M, H, H), "bias": (M, H), "weight_out": (M, O, H), "bias_out": (M, O)}
    return {n: scale * torch.randn(s, dtype=torch.float64) for n, s in shapes.items()}


def test_global_norm_is_one_norm_per_model_over_all_parameters():
    g = random_grads()
    expected = torch.stack([torch.cat([v[m].flatten() for v in g.values()]).norm() for m in range(4)])
    assert torch.allclose(global_norm(g), expected)


def test_clipping_rescales_to_tau_only_above_it():
    g = random_grads()
    norm = global_norm(g)
    # model 0 above τ, model 1 exactly at τ (strict > : unchanged), model 2 below, model 3 no clipping
    tau = torch.stack([norm[0] / 2, norm[1], norm[2] * 2, torch.tensor(float("inf"), dtype=torch.float64)])
    w_hh = torch.randn(4, 5, 5, dtype=torch.float64)
    clipped = {n: v.clone() for n, v in g.items()}
    stats = clip_gradients_(clipped, w_hh, tau)
    assert torch.equal(stats.norm, norm)
    assert stats.clipped.tolist() == [True, False, False, False]
    assert not stats.fallback.any()
    assert torch.allclose(global_norm(clipped)[0], tau[0])
    for n in g:
        assert torch.allclose(clipped[n][0], g[n][0] * tau[0] / norm[0])  # direction kept
        assert torch.equal(clipped[n][1:], g[n][1:])


def test_no_threshold_leaves_gradients_alone():
    g = random_grads(scale=100.0)
    clipped = {n: v.clone() for n, v in g.items()}
    stats = clip_gradients_(clipped, torch.randn(4, 5, 5, dtype=torch.float64), None)
    assert not stats.clipped.any()
    assert all(torch.equal(clipped[n], g[n]) for n in g)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e11])
def test_safeguard(bad):
    g = random_grads()
    g["bias"][1, 0] = bad  # model 1's norm is NaN / Inf / > 1e10
    w_hh = torch.randn(4, 5, 5, dtype=torch.float64)
    clipped = {n: v.clone() for n, v in g.items()}
    stats = clip_gradients_(clipped, w_hh, torch.full((4,), 1e20, dtype=torch.float64))
    assert stats.fallback.tolist() == [False, True, False, False]
    assert torch.equal(clipped["weight_hh"][1], DECAY_FACTOR * w_hh[1])
    for n in g:
        if n != "weight_hh":
            assert (clipped[n][1] == 0).all()
        assert torch.equal(clipped[n][[0, 2, 3]], g[n][[0, 2, 3]])


def test_safeguard_boundary_and_off_switch():
    g = random_grads()
    g["bias"][0] = 0
    g["weight_ih"][0] = 0
    g["weight_out"][0] = 0
    g["bias_out"][0] = 0
    g["weight_hh"][0] = 0
    g["weight_hh"][0, 0, 0] = 1e10  # exactly 1e10 is allowed (the test is > 1e10)
    g["bias"][2, 0] = float("nan")
    clipped = {n: v.clone() for n, v in g.items()}
    stats = clip_gradients_(clipped, torch.randn(4, 5, 5, dtype=torch.float64), None, safeguard=False)
    assert not stats.fallback.any()
    assert torch.isnan(clipped["bias"][2, 0])
    stats = clip_gradients_({n: v.clone() for n, v in g.items()}, torch.randn(4, 5, 5, dtype=torch.float64), None)
    assert stats.fallback.tolist() == [False, False, True, False]


def test_bad_threshold_shape():
    with pytest.raises(ValueError, match="threshold"):
        clip_gradients_(random_grads(), torch.randn(4, 5, 5, dtype=torch.float64), torch.ones(3, dtype=torch.float64))


def _deltas_by_autograd(params, x, activation):
    """δ_t = ∂L/∂h_t (total) for L = Σ_m Σ ŷ_T·c, computed by plain autograd (independent of the kernels)."""
    w_ih, w_hh, b = params["weight_ih"], params["weight_hh"], params["bias"]
    M, T, B, _ = x.shape
    h = torch.zeros(M, B, w_hh.shape[1], dtype=x.dtype)
    hs = []
    for t in range(T):
        h = reference.activation(activation, x[:, t] @ w_ih.transpose(1, 2) + b[:, None] + h @ w_hh.transpose(1, 2))
        h.retain_grad()
        hs.append(h)
    y = hs[-1] @ params["weight_out"].transpose(1, 2) + params["bias_out"][:, None]
    return hs, y


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_omega_and_its_gradient_through_the_kernel(activation):
    M, T, B, I, H, O = 3, 12, 4, 3, 6, 2
    keys = rng.seed_keys([1, 2, 3])
    params = init_population(keys, "orthogonal", I, H, O, gains=[0.9, 1.1, 1.3], dtype=torch.float64)
    params["bias"] = 0.1 * torch.randn(M, H, dtype=torch.float64)
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    c = torch.randn(M, 1, B, O, dtype=torch.float64)
    alpha = torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64)

    def grads(reg):
        p = {n: v.clone().requires_grad_(True) for n, v in params.items()}
        sink = make_sink(M, T, B, torch.float64, "cpu")
        y = population_forward(p, x, nonlinearity=activation, reg_weight=reg, sink=sink)
        (y * c).sum().backward()
        return {n: v.grad for n, v in p.items()}, sink

    plain, sink = grads(None)
    reg, _ = grads(alpha)

    # Ω from its definition, with δ_t by plain autograd and held constant.
    hs, y = _deltas_by_autograd({n: v.clone().requires_grad_(True) for n, v in params.items()}, x, activation)
    (y[:, None] * c).sum().backward()
    delta = torch.stack([h.grad for h in hs], 1).detach()
    h_all = torch.stack([h.detach() for h in hs], 1)
    w = params["weight_hh"].clone().requires_grad_(True)
    omega = reference.omega_autograd(delta, h_all, w, activation)
    assert torch.allclose(sink.omega, omega.detach(), rtol=1e-8, atol=1e-12)
    assert torch.allclose(sink.delta_sq, (delta**2).sum(-1), rtol=1e-8, atol=1e-14)
    (d_omega,) = torch.autograd.grad(omega.sum(), w)

    expected = plain["weight_hh"] + alpha[:, None, None] * d_omega
    assert torch.allclose(reg["weight_hh"], expected, rtol=1e-7, atol=1e-12)
    for n in ("weight_ih", "bias", "weight_out", "bias_out"):  # Ω touches W_hh only
        assert torch.allclose(reg[n], plain[n], rtol=1e-10, atol=1e-14)


def test_alpha_decay():
    alpha = torch.tensor([4.0, 2.0])
    decay = torch.tensor([100.0, float("inf")])
    assert torch.allclose(decayed_alpha(alpha, decay, 0), alpha)
    assert torch.allclose(decayed_alpha(alpha, decay, 300), torch.tensor([1.0, 2.0]))
