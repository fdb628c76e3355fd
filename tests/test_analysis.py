"""rnnlab.analysis on hand-built Elman networks whose fixed points, orbits, exponents and VAA are
known in closed form (SPEC §3.3, §6.1)."""
import json
import math

import pytest
import torch

import rnnlab.analysis as A
from rnnlab.nn.population import param_shapes
from rnnlab.tasks import make_task
from rnnlab.train.init import init_population
from rnnlab.tasks import rng

LATCH = dict(min_length=10, max_length=10, n_info=3, noise=0.2)


def elman(w_hh, w_ih=None, bias=None, readout_sign=1.0):
    """A one-model population (float64) with recurrence ``w_hh`` [H, H], input weights ``w_ih``
    [H, 1] (default ones) and a 2-class read-out that compares the sign of Σ h."""
    w_hh = torch.as_tensor(w_hh, dtype=torch.float64)
    H = w_hh.shape[0]
    w_ih = torch.ones(H, 1, dtype=torch.float64) if w_ih is None else torch.as_tensor(w_ih, dtype=torch.float64)
    row = torch.full((H,), readout_sign, dtype=torch.float64)
    return {"weight_hh": w_hh[None], "weight_ih": w_ih[None], "bias": torch.zeros(1, H, dtype=torch.float64) if bias is None else bias[None],
            "weight_out": torch.stack([-row, row])[None], "bias_out": torch.zeros(1, 2, dtype=torch.float64)}


def stack(*populations):
    return {n: torch.cat([p[n] for p in populations]) for n in populations[0]}


def tanh_fixed_point(a):
    """s > 0 with s = tanh(a s), for a > 1."""
    s = 1.0
    for _ in range(200):
        s = math.tanh(a * s)
    return s


def test_jacobian_matches_autograd():
    torch.manual_seed(0)
    M, N, H, I = 2, 3, 5, 2
    shapes = param_shapes(M, I, H, 2)
    params = {n: torch.randn(s, dtype=torch.float64) for n, s in shapes.items()}
    for nonlinearity in A.NONLINEARITIES:
        system = A.ElmanSystem.from_params(params, nonlinearity)
        h, drive = torch.randn(M, N, H, dtype=torch.float64), system.drive(torch.randn(M, I))
        J = system.jacobian(h, drive)
        for m in range(M):
            for n in range(N):
                auto = torch.autograd.functional.jacobian(lambda v: system.map(v[None, None].expand(M, 1, H), drive)[m, 0], h[m, n])
                torch.testing.assert_close(J[m, n], auto, msg=f"{nonlinearity}, model {m}, state {n}")


def test_bistable_network_stores_the_class_in_two_hyperbolic_attractors():
    a = 2.0
    s = tanh_fixed_point(a)
    rec = A.analyze_latching(elman(a * torch.eye(2)), make_task("latch", **LATCH), n_sequences=200)[0]
    assert rec.test_error == 0.0
    assert rec.storage == "hyperbolic_fixed_points" and rec.stored_in_hyperbolic_attractors
    assert rec.reached_by_class == [1, 1] and rec.hyperbolic_reached_by_class == [1, 1]
    assert rec.hyperbolic_accuracy == 1.0 and rec.unsettled_fraction == 0.0
    for point in rec.reached:  # ±s(1, 1); J* = a(1 − s²) I
        assert point["kind"] == "attractor" and point["period"] == 1
        assert point["max_abs_eig"] == pytest.approx(a * (1 - s * s), rel=1e-9)
    # σ_max(J_t) = a·max_i(1 − h_{t,i}²): 2(1 − tanh(1)²) ≈ 0.84 at the first step, ≈ 0.17 once latched
    assert rec.sigma_max_max == pytest.approx(a * (1 - math.tanh(1.0) ** 2), rel=1e-9) and rec.contracting_fraction == 1.0
    json.dumps(rec.to_dict(), allow_nan=False)


def test_fixed_point_search_finds_saddles_and_the_repeller():
    # W = 2I on two units: 4 attractors (±s, ±s), 4 saddles (±s, 0), (0, ±s), the origin a repeller.
    system = A.ElmanSystem.from_params(elman(2 * torch.eye(2)))
    grid = torch.tensor([[u, v] for u in (-0.9, -0.05, 0.05, 0.9) for v in (-0.9, -0.05, 0.05, 0.9)], dtype=torch.float64)
    fp = A.find_fixed_points(system, system.drive(), grid[None], minimize_from=torch.tensor([[[0.01, -0.02], [0.9, 0.01], [0.01, -0.9]]], dtype=torch.float64))
    kinds = sorted(A.KINDS[k] for k in fp.kind[0][fp.valid[0]].tolist())
    assert kinds.count("attractor") == 4 and kinds.count("repeller") == 1 and kinds.count("saddle") >= 2
    assert bool((fp.residual[fp.valid] < 1e-8).all())
    origin = fp.points[0][fp.kind[0] == A.KINDS.index("repeller")][0]
    assert origin.abs().max() < 1e-12


def test_identity_recurrence_is_a_plane_of_non_hyperbolic_fixed_points():
    params = elman(torch.eye(2))
    rec = A.analyze_latching(params, make_task("latch", **LATCH), nonlinearity="identity", n_sequences=100)[0]
    assert rec.kinds["non_hyperbolic"] == rec.n_fixed_points and rec.n_fixed_points >= 100  # every final state is fixed
    assert rec.attractor_accuracy == 1.0 and rec.hyperbolic_accuracy == 0.0
    assert rec.storage == "non_hyperbolic" and not rec.stored_in_hyperbolic_attractors
    assert A.headline([rec])["fraction_not_stored"] == 1.0


def test_contracting_network_has_one_attractor_shared_by_both_classes():
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    rec = A.analyze_latching(elman(0.5 * q), make_task("latch", **LATCH), n_sequences=100)[0]
    assert rec.n_fixed_points == 1 and rec.kinds["attractor"] == 1
    assert rec.reached_by_class == [1, 1] and rec.storage == "shared"
    assert rec.reached[0]["max_abs_eig"] == pytest.approx(0.5, rel=1e-6)  # J* = W at the origin
    assert rec.hyperbolic_accuracy == pytest.approx(max(rec.class_counts) / 100)


def test_period_two_orbit_stores_the_class_in_its_phase():
    # F(h) = tanh(−2h): the origin is a repeller (slope −2), ±s a period-2 orbit with multiplier (2(1 − s²))².
    s = tanh_fixed_point(2.0)
    task = make_task("latch", **LATCH)
    rec = A.analyze_latching(elman(-2 * torch.eye(1), readout_sign=1.0), task, n_sequences=100)[0]
    assert rec.orbit_periods == [2] and rec.n_attracting_orbits == 1 and rec.orbit_fraction == 1.0
    assert rec.reached[0]["max_abs_eig"] == pytest.approx((2 * (1 - s * s)) ** 2, rel=1e-9)
    assert rec.attractor_accuracy < 0.9 and rec.phase_accuracy == 1.0 and rec.storage == "orbit_phase"


def test_rotation_keeps_the_classes_apart_on_an_orbit_that_never_settles():
    # W = 1.3·R(1 rad): the origin repels (|λ| = 1.3), tanh bounds the state on an invariant closed
    # curve that it goes round quasi-periodically (largest exponent 0); F is odd, so the two
    # classes, pushed to ±x by the input, stay on opposite phases.
    rotation = torch.tensor([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]])
    rec = A.analyze_latching(elman(1.3 * rotation, w_ih=[[1.0], [0.0]]), make_task("latch", **LATCH), n_sequences=100, max_steps=3000)[0]
    assert rec.storage == "unsettled" and rec.unsettled_fraction == 1.0 and rec.orbit_periods == []
    assert rec.unsettled_centroid_accuracy == 1.0
    assert abs(rec.autonomous_lyapunov) < 3e-3
    assert rec.kinds["repeller"] == 1 and rec.n_fixed_points == 1


def test_iterate_map_stops_fixed_points_and_orbits():
    system = A.ElmanSystem.from_params(stack(elman(0.5 * torch.eye(1)), elman(-2 * torch.eye(1))))
    out = A.iterate_map(system, torch.full((2, 3, 1), 0.3, dtype=torch.float64), system.drive(), max_steps=500)
    assert out.period[0].tolist() == [1, 1, 1] and out.period[1].tolist() == [2, 2, 2]
    assert bool((out.steps < 500).all())
    never = A.iterate_map(system, torch.full((2, 1, 1), 0.3, dtype=torch.float64), system.drive(), max_steps=3)
    assert never.period.tolist() == [[0], [0]] and never.steps.tolist() == [[3], [3]]


def test_largest_lyapunov_exponent_of_a_linear_map_is_log_rho():
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    for rho in (0.9, 1.1):
        w = q @ torch.diag(torch.tensor([rho, 0.6, -0.4, 0.1], dtype=torch.float64)) @ q.T
        system = A.ElmanSystem.from_params(elman(w), "identity")
        x = torch.zeros(1, 400, 3, 1, dtype=torch.float64)
        assert A.lyapunov_exponents(system, x).mean().item() == pytest.approx(math.log(rho), abs=5e-3)
        sigma = A.max_singular_values(system, x[:, :5])
        torch.testing.assert_close(sigma, torch.full_like(sigma, torch.linalg.matrix_norm(w, ord=2).item()))


def test_classify_kinds():
    eig = torch.tensor([[0.5, 0.2], [0.9995, 0.1], [1.2, 0.3], [1.5, 1.2], [0.995, 0.1]], dtype=torch.complex128)
    assert [A.KINDS[k] for k in A.classify(eig).tolist()] == ["attractor", "non_hyperbolic", "saddle", "repeller", "attractor"]
    assert A.KINDS[A.classify(eig[4:], margin=0.01)[0]] == "marginal_attractor"


def test_deduplicate_groups_close_points():
    points = torch.tensor([[[0.0], [1.0], [1e-6], [2.0], [1.0 + 5e-5]]])
    labels, reps = A.deduplicate(points, torch.tensor([[True, True, True, False, True]]), tol=1e-4)
    assert labels.tolist() == [[0, 1, 0, -1, 1]] and reps.tolist() == [[0, 1]]


def test_vaa_extremes():
    task = make_task("latch", **LATCH)
    one_point = A.vaa(elman(0.5 * torch.eye(3)), task)  # contracting: every state to one point
    assert one_point.item() == pytest.approx(1 / 32)
    # F(h) = h + u W_ih keeps distances; Gaussian inputs from the first step make every prefix state distinct
    all_apart = A.vaa(elman(torch.eye(3)), make_task("copy", min_length=10, max_length=10), nonlinearity="identity")
    assert all_apart.item() == pytest.approx(1.0)
    bistable = A.vaa(elman(3 * torch.eye(1), w_ih=[[0.1]]), task)  # both attractors reached
    assert bistable.item() == pytest.approx(2 / 32)


def test_bad_inputs_raise_value_errors():
    task = make_task("latch", **LATCH)
    lstm = {n: torch.zeros(s) for n, s in param_shapes(1, 1, 4, 2, "lstm").items()}
    with pytest.raises(ValueError, match="LSTM"):
        A.analyze_latching(lstm, task)
    diag = {n: torch.zeros(s) for n, s in param_shapes(1, 1, 4, 2, "diag").items()}
    with pytest.raises(ValueError, match="diag"):
        A.vaa(diag, task)
    with pytest.raises(ValueError, match="cell='elman' only"):
        A.ElmanSystem.from_params(elman(torch.eye(2)), cell="lstm")
    bad = dict(elman(torch.eye(2)), bias=torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"params\['bias'\] must have shape"):
        A.analyze_latching(bad, task)
    with pytest.raises(ValueError, match="nonlinearity"):
        A.analyze_latching(elman(torch.eye(2)), task, nonlinearity="gelu")
    system = A.ElmanSystem.from_params(elman(torch.eye(2)))
    with pytest.raises(ValueError, match="states h must have shape"):
        system.map(torch.zeros(1, 4, 3), system.drive())
    with pytest.raises(TypeError, match="expected an ElmanSystem"):
        A.iterate_map(elman(torch.eye(2)), torch.zeros(1, 4, 2), system.drive())
    with pytest.raises(ValueError, match="classification task"):
        A.analyze_latching(elman(torch.eye(2)), make_task("add", min_length=10, max_length=10))
    with pytest.raises(ValueError, match="pass length"):
        A.analyze_latching(elman(torch.eye(2)), make_task("latch", min_length=10, max_length=20))
    with pytest.raises(ValueError, match="1 inputs and 2 outputs"):
        A.analyze_latching(elman(torch.eye(2), w_ih=torch.ones(2, 3)), task)


def test_population_results_equal_per_model_results():
    random_net = init_population(rng.seed_keys([3]), "normal", 1, 6, 2, gains=1.5, dtype=torch.float64)
    pad = lambda p: {  # noqa: E731  — embed a 2-unit hand-built net into 6 units (the others silent)
        n: torch.nn.functional.pad(v, {"weight_hh": (0, 4, 0, 4), "weight_ih": (0, 0, 0, 4), "bias": (0, 4),
                                       "weight_out": (0, 4), "bias_out": (0, 0)}[n]) for n, v in p.items()}
    models = [pad(elman(2 * torch.eye(2))), pad(elman(0.5 * torch.eye(2))), random_net]
    task = make_task("latch", **LATCH)
    kw = dict(n_sequences=60, n_random=8, n_minimize=8, n_trajectory=8, max_steps=2000)
    together = A.analyze_latching(stack(*models), task, **kw)
    vaa_together = A.vaa(stack(*models), task, n_estimates=2, steps=300)
    for m, p in enumerate(models):
        alone = A.analyze_latching(p, task, **kw)[0].to_dict()
        got = together[m].to_dict()
        reached, reached_alone = got.pop("reached"), alone.pop("reached")
        assert got.keys() == alone.keys()
        for k, v in alone.items():
            assert got[k] == (pytest.approx(v, rel=1e-9, abs=1e-12) if isinstance(v, float) else v), k
        assert [(r["period"], r["kind"], r["visits"]) for r in reached] == [(r["period"], r["kind"], r["visits"]) for r in reached_alone]
        assert [r["max_abs_eig"] for r in reached] == pytest.approx([r["max_abs_eig"] for r in reached_alone], rel=1e-9)
        assert vaa_together[m].item() == pytest.approx(A.vaa(p, task, n_estimates=2, steps=300).item())
