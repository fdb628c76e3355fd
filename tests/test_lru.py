"""rnnlab.LRU: the parametrizations and initialization of SPEC §4.1–4.2, against a plain loop."""
import math

import pytest
import torch

import rnnlab
from rnnlab.nn import LRU
from rnnlab.nn.lru import GAMMAS, PARAMETRIZATIONS

F64 = torch.float64


def loop_reference(m: LRU, x: torch.Tensor, h0=None) -> tuple[torch.Tensor, torch.Tensor]:
    """y_t = Re(C h_t) + D x_t, h_t = λ h_{t-1} + γ (B x_t), step by step from the parameters.

    x: [M, T, B, I] time-major. Written independently of LRU.forward's fused GEMM layout.
    """
    p = m.parametrization
    if p == "exp":
        lam = torch.exp(-torch.exp(m.nu_log)) * torch.exp(1j * torch.exp(m.theta_log))
    elif p == "polar":
        lam = m.nu * torch.exp(1j * m.theta)
    elif p == "plain":
        lam = m.lam_re + 1j * m.lam_im
    else:
        lam = torch.exp(-torch.exp(m.nu_log))
    gamma = {"learned": lambda: torch.exp(m.gamma_log), "none": lambda: torch.ones_like(lam.real),
             "fixed": lambda: torch.sqrt(1 - lam.abs() ** 2 + 1e-6)}[m.gamma]()
    B = m.B_re + 1j * m.B_im if m.is_complex else m.B_re
    C = m.C_re + 1j * m.C_im if m.is_complex else m.C_re
    M, T, Bsz, _ = x.shape
    h = torch.zeros(M, Bsz, m.hidden_size, dtype=B.dtype) if h0 is None else h0
    ys = []
    for t in range(T):
        h = lam[:, None] * h + gamma[:, None] * torch.einsum("mni,mbi->mbn", B, x[:, t].to(B.dtype))
        ys.append(torch.einsum("mon,mbn->mbo", C, h).real + torch.einsum("moi,mbi->mbo", m.D, x[:, t]))
    return torch.stack(ys, 1), h


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_forward_and_gradients_match_a_plain_loop(parametrization, gamma):
    torch.manual_seed(0)
    m = LRU(3, 6, 2, num_models=3, parametrization=parametrization, gamma=gamma, r_min=0.4, r_max=0.95,
            max_phase=1.0, dtype=F64)
    x = torch.randn(3, 9, 4, 3, dtype=F64)
    y, h_n = m(x)
    y_ref, h_ref = loop_reference(m, x)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h_n, h_ref)
    g = torch.randn_like(y)
    params = list(m.parameters())
    got = torch.autograd.grad((y * g).sum(), params)
    want = torch.autograd.grad((loop_reference(m, x)[0] * g).sum(), params)
    for (name, _), a, b in zip(m.named_parameters(), got, want):
        torch.testing.assert_close(a, b, msg=lambda s: f"{name}: {s}")


def test_shared_input_batch_first_initial_state_and_squeezed_model_axis():
    torch.manual_seed(1)
    m = LRU(2, 5, num_models=2, batch_first=True, dtype=F64)
    x = torch.randn(4, 7, 2, dtype=F64)  # [B, T, I], the same input for both models
    h0 = torch.randn(2, 4, 5, dtype=torch.complex128)
    y, h_n = m(x, h0)
    y_ref, h_ref = loop_reference(m, x.transpose(0, 1).expand(2, 7, 4, 2), h0)
    torch.testing.assert_close(y, y_ref.transpose(1, 2))
    torch.testing.assert_close(h_n, h_ref)
    single = LRU(2, 5, dtype=F64)
    y1, h1 = single(x.transpose(0, 1))
    assert y1.shape == (7, 4, 2) and h1.shape == (4, 5)
    torch.testing.assert_close(y1, loop_reference(single, x.transpose(0, 1)[None])[0][0])


def test_models_are_independent():
    """Model m of a population gives what a one-model LRU with model m's parameters gives."""
    torch.manual_seed(2)
    pop = LRU(3, 4, num_models=3, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    y, _ = pop(x)
    for i in range(3):
        one = LRU(3, 4, dtype=F64)
        one.load_state_dict({k: v[i : i + 1] for k, v in pop.state_dict().items()})
        torch.testing.assert_close(one(x)[0], y[i])


@pytest.mark.parametrize("parametrization", ["exp", "polar", "plain"])
def test_ring_initialization(parametrization):
    """|λ|² uniform on [r_min², r_max²], phase uniform on [−max_phase, max_phase] mod 2π, and a
    learned γ starting at sqrt(1 − |λ|²)."""
    torch.manual_seed(3)
    r_min, r_max, max_phase = 0.6, 0.9, 0.3
    m = LRU(1, 20000, parametrization=parametrization, r_min=r_min, r_max=r_max, max_phase=max_phase, dtype=F64)
    lam = m.lam().detach()
    r2 = lam.abs().square()
    assert r2.min() >= r_min**2 - 1e-12 and r2.max() <= r_max**2 + 1e-12
    assert abs(r2.mean().item() - (r_min**2 + r_max**2) / 2) < 0.01
    phase = lam.angle()  # in (−π, π]: the mod-2π range maps back to [−max_phase, max_phase]
    assert phase.abs().max() <= max_phase + 1e-12
    assert abs(phase.mean().item()) < 0.01 and abs(phase.abs().mean().item() - max_phase / 2) < 0.01
    torch.testing.assert_close(m.gamma_log.exp(), (1 - r2).sqrt())


def test_exp_parametrization_stores_log_minus_log_nu_and_log_theta():
    torch.manual_seed(4)
    m = LRU(1, 50, parametrization="exp", r_min=0.5, r_max=0.99, max_phase=math.pi, dtype=F64)
    lam = m.lam().detach()
    torch.testing.assert_close(m.nu_log, (-lam.abs().log()).log())
    torch.testing.assert_close(m.theta_log.exp(), torch.remainder(lam.angle(), 2 * math.pi))
    real = LRU(1, 50, parametrization="real", r_min=0.5, r_max=0.99, dtype=F64)
    assert not real.lam().is_complex() and (real.lam() > 0).all()


def test_matrices_are_normal_over_sqrt_fan_in():
    torch.manual_seed(5)
    m = LRU(50, 200, 40, dtype=F64)
    for name, fan_in in (("B_re", 50), ("B_im", 50), ("C_re", 200), ("C_im", 200), ("D", 50)):
        std = getattr(m, name).std().item()
        assert abs(std * math.sqrt(fan_in) - 1) < 0.05, name


def test_sensitivity_statistics_are_returned():
    torch.manual_seed(6)
    m = LRU(2, 4, num_models=2, dtype=F64)
    x = torch.randn(5, 3, 2, dtype=F64)
    y, h_n, (h_sq, s_sq) = m(x, return_stats=True)
    assert h_sq.shape == s_sq.shape == (2, 5, 4) and h_sq.dtype == F64
    torch.testing.assert_close(y, m(x)[0])
    torch.testing.assert_close(h_sq[:, -1], h_n.abs().square().mean(1))


def test_gradcheck_through_the_layer():
    torch.manual_seed(7)
    m = LRU(2, 3, 2, num_models=2, r_min=0.5, r_max=0.9, dtype=F64)
    names = [n for n, _ in m.named_parameters()]
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)

    def f(x, *params):
        return torch.func.functional_call(m, dict(zip(names, params)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *(p.detach().clone().requires_grad_() for p in m.parameters())))


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(8)
    m = LRU(3, 8, num_models=2)
    x = torch.randn(10, 4, 3)
    loss = m(x)[0].square().mean()
    grads = torch.autograd.grad(loss, list(m.parameters()))
    compiled = torch.compile(lambda x: m(x)[0].square().mean(), fullgraph=True, backend="aot_eager")
    loss_c = compiled(x)
    for a, b in zip(torch.autograd.grad(loss_c, list(m.parameters())), grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(parametrization="cartesian"), "parametrization must be one of"),
        (dict(gamma="L1"), "gamma must be one of"),
        (dict(r_min=0.9, r_max=0.5), "r_min < r_max"),
        (dict(num_models=0), "num_models must be a positive int"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRU(3, 4, **kwargs)


def test_bad_inputs_name_the_argument():
    m = LRU(3, 4, num_models=2)
    with pytest.raises(ValueError, match=r"x must have shape \[T, B, 3\]"):
        m(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="num_models = 2"):
        m(torch.randn(3, 5, 2, 3))
    with pytest.raises(TypeError, match="x must have dtype torch.float32"):
        m(torch.randn(5, 2, 3, dtype=F64))
    with pytest.raises(ValueError, match="h0 must have shape"):
        m(torch.randn(5, 2, 3), torch.zeros(2, 3, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="at least one time step"):
        m(torch.randn(0, 2, 3))


def test_exported_from_package():
    assert rnnlab.LRU is LRU and rnnlab.nn.LRU is LRU
