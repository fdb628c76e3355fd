"""Zucchet & Orvieto (SPEC §4): the 1-D closed forms against Monte-Carlo through the fused
recurrence, the loss landscape, the teacher generator's statistics and the students' layouts."""
import math

import pytest
import torch

from rnnlab.reproduce import curse_of_memory as com
from rnnlab.reproduce import linear_students as ls
from rnnlab.tasks import rng
from rnnlab.tasks.system_id import SystemIdentification

f64 = torch.float64


def test_closed_forms_match_the_simulation_from_the_f4_accumulators():
    """SPEC §4.1, the same check as test_diag's, here through the reproduction's simulator (AR(1)
    inputs from the op, per-λ horizons, the normalised system run on γx)."""
    lams, rhos = torch.tensor([0.5, 0.9, 0.97], dtype=f64), torch.tensor([0.0, 0.9], dtype=f64)
    sim = com.simulate(lams, rhos, samples=200_000, min_batch=64, seed=1)
    exact = com.closed_forms(lams.view(1, -1), rhos.view(-1, 1))
    for key in exact:
        torch.testing.assert_close(sim[key], exact[key], rtol=0.12, atol=0)


def test_normalised_exp_sensitivity_stays_bounded_while_the_plain_one_explodes():
    lams = 1 - torch.logspace(-6, -1, 20, dtype=f64)
    forms = com.closed_forms(lams, torch.tensor(0.0, dtype=f64))
    assert forms["s2"][0] > 1e17  # ≈ 1/(4(1 − λ)³)
    torch.testing.assert_close(forms["s2"][0] * 4 * (1 - lams[0]) ** 3, torch.tensor(1.0, dtype=f64), rtol=1e-4, atol=0)
    assert forms["s2_exp_normalized"].max() < 1  # ρ = 0: → 1/2 as λ → 1
    torch.testing.assert_close(forms["s2_exp_normalized"][0], torch.tensor(0.5, dtype=f64), rtol=1e-4, atol=0)


def test_teacher_student_loss_closed_form_against_simulation():
    lams = torch.tensor([0.3, 0.8, 0.95], dtype=f64)
    sim = com.simulate_teacher_student_loss(lams, 0.9, T=1200, B=800, burn_in=400)
    torch.testing.assert_close(sim, com.teacher_student_loss(lams, torch.tensor(0.9, dtype=f64)), rtol=0.05, atol=0)


def test_loss_landscape_vanishes_at_the_teacher_and_the_normalised_one_is_bounded():
    lam_star = torch.tensor(0.7 * math.e ** 0.3j, dtype=torch.complex128)
    for normalized in (False, True):
        assert abs(com.teacher_student_loss(lam_star, lam_star, mu=0.5, normalized=normalized)) < 1e-12
    lams = 1 - torch.logspace(-5, 0, 50, dtype=f64)[:-1]
    assert com.teacher_student_loss(lams, torch.tensor(0.99, dtype=f64), normalized=True).max() <= 1 + 1e-12


@pytest.mark.parametrize("nu0", [0.32, 0.99])
def test_teacher_eigenvalues_lie_in_the_spec_ring_and_inputs_are_standard_normal(nu0):
    """SPEC §4.2: the remapped eigenvalues lie in [ν0, ν0 + 0.76(1 − ν0)] (tanh|l| ≤ tanh 2
    for this seed range), inputs are N(0, 1), and the target is the teacher's output."""
    task = SystemIdentification(300, 300, nu0=nu0)
    keys = rng.seed_keys(range(20))
    ctx = task.setup(keys)
    radii = torch.linalg.eigvals(ctx["A"]).abs()
    assert radii.min() >= nu0 - 1e-9 and radii.max() <= nu0 + math.tanh(2.2) * (1 - nu0)
    batch = task.sample(rng.derive(keys, "train", 0), ctx, 300, 64, torch.float64)
    assert abs(batch.x.mean()) < 0.02 and abs(batch.x.var() - 1) < 0.02
    h = torch.zeros(20, 64, 10, dtype=f64)
    for t in range(5):  # the first steps of y_t = C h_t + D x_t, h_t = A h_{t−1} + B x_t
        h = h @ ctx["A"].transpose(1, 2) + batch.x[:, t] @ ctx["B"].transpose(1, 2)
        y = h @ ctx["C"].transpose(1, 2) + batch.x[:, t] @ ctx["D"].transpose(1, 2)
        torch.testing.assert_close(batch.target[:, t], y)


def test_student_rnn_init_remaps_eigenvalues_inside_the_unit_disk():
    A = ls.rnn_recurrent_init(rng.seed_keys(range(4)), heads=3, k=8)
    radii = torch.linalg.eigvals(A).abs()
    assert A.shape == (4, 3, 8, 8) and radii.max() < 1 and radii.min() > 0


def test_block_diagonal_layouts_agree():
    student = ls.Student("bd", "rnn", hidden=12, heads=6)
    params = ls.init_params(student, rng.seed_keys([3, 4]), nu0=0.0)
    x = torch.randn(2, 7, 5, 1)
    dense, heads = (ls.predict(student, params, x, layout) for layout in ls.BLOCK_LAYOUTS)
    torch.testing.assert_close(dense, heads, rtol=1e-5, atol=1e-5)
    W = ls.block_diagonal(params["A"])
    torch.testing.assert_close(W[1, 2:4, 2:4], params["A"][1, 1])
    assert W[1, :2, 2:].abs().max() == 0


def test_population_students_learn_and_best_lr_skips_diverged_points():
    result = ls.train_students(ls.Student("LRU", "lru"), 0.5, [0.03, 1e3], [0], steps=15, batch=4, length=40)
    assert result["final_loss"][0] < result["curve"][0][0]
    assert math.isnan(result["final_loss"][1]) or result["final_loss"][1] > result["final_loss"][0]
    summary = ls.best_lr({"lr": [0.1, 0.1, 0.01, 0.01], "final_loss": [math.nan, 1.0, 3.0, 5.0]})
    assert summary["best_lr"] == 0.01 and summary["loss"] == 4.0
