"""VAA and VAA* (SPEC §6.1) on hand-built systems whose attractor counts are known, for every cell
with layers: a bistable unit, a rotation, a stack; VAA* against VAA where the soft count is exact;
bad arguments named."""
import math

import pytest
import torch

import rnnlab.analysis as A
from rnnlab.nn.population import param_shapes
from rnnlab.tasks import make_task, rng
from rnnlab.train.init import init_population

N = 32
COPY = make_task("copy", min_length=20, max_length=20)


def elman(w_hh, w_ih, layers=1):
    """One Elman model (float64): layer 0 with recurrence ``w_hh`` and input weights ``w_ih``;
    layers l > 0 contracting (W_hh = I/2) and driven by the layer below through W_ih = I, so each
    has one attractor per state of the layer below."""
    w_hh = torch.as_tensor(w_hh, dtype=torch.float64)
    H = w_hh.shape[0]
    p = {}
    for layer in range(layers):
        sfx = "" if layer == 0 else f"_l{layer}"
        p["weight_ih" + sfx] = torch.as_tensor(w_ih, dtype=torch.float64)[None] if layer == 0 else torch.eye(H, dtype=torch.float64)[None]
        p["weight_hh" + sfx] = (w_hh if layer == 0 else 0.5 * torch.eye(H, dtype=torch.float64))[None]
        p["bias" + sfx] = torch.zeros(1, H, dtype=torch.float64)
    return {**p, "weight_out": torch.ones(1, 1, H, dtype=torch.float64), "bias_out": torch.zeros(1, 1, dtype=torch.float64)}


def test_bistable_unit_reaches_both_attractors():
    # h = tanh(3h + 0.1u): the copy task's Gaussian prefixes end on either side, u is too weak to flip them
    assert A.vaa(elman([[3.0]], [[0.1]]), COPY, n_estimates=3).item() == pytest.approx(2 / N)


def test_rotation_keeps_every_state_apart():
    # F(h) = R h + W_ih u is an isometry: the N distinct reachable states never meet
    c, s = math.cos(0.3), math.sin(0.3)
    assert A.vaa(elman([[c, -s], [s, c]], [[1.0], [0.5]]), COPY, nonlinearity="identity", n_estimates=2).item() == pytest.approx(1.0)


def test_contracting_unit_is_monostable():
    assert A.vaa(elman([[0.5]], [[1.0]]), COPY, n_estimates=2).item() == pytest.approx(1 / N)


def test_stack_counts_joint_attractors():
    # layer 1 follows layer 0's attractor: still two attractors of the stack
    params = elman([[3.0]], [[0.1]], layers=2)
    assert A.vaa(params, COPY, num_layers=2, n_estimates=2).item() == pytest.approx(2 / N)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_at_init_are_few_attractors_and_population_equals_alone(cell):
    params = init_population(rng.seed_keys([0, 1]), "orthogonal", 1, 8, 1, cell=cell, dtype=torch.float64,
                             cell_kwargs={"num_layers": 2})
    together = A.vaa(params, COPY, num_layers=2, n_estimates=1, steps=500)
    assert ((together >= 1 / N) & (together <= 1)).all()
    alone = A.vaa({n: v[1:] for n, v in params.items()}, COPY, num_layers=2, n_estimates=1, steps=500)
    assert alone.item() == pytest.approx(together[1].item(), abs=1e-12)


def test_soft_vaa_is_exact_for_one_cluster_and_bounded_for_far_clusters():
    one = 1e-6 * torch.randn(3, N, 4, dtype=torch.float64)  # every pair within ε
    torch.testing.assert_close(A.soft_vaa(one), A.variability_amongst_attractors(torch.tanh(one)))
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    states = centres.repeat_interleave(torch.tensor([10, 12, 10]), 0) + 1e-7 * torch.randn(N, 2, dtype=torch.float64)
    z = torch.tanh(states)
    exact = A.variability_amongst_attractors(z)
    assert exact.item() == pytest.approx(3 / N)
    # far pairs add C = (ε + 1e-6)/(d + 1e-6) each: at most N·(ε + 1e-6)/(d_min + 1e-6) to a count n ≥ 10
    far = torch.cdist(z, z)[torch.cdist(z, z) > 1e-3].min().item()
    extra = N * (1e-4 + 1e-6) / (far + 1e-6)
    assert exact.item() - A.soft_vaa(states).item() <= exact.item() * extra / 10 + 1e-15
    assert A.soft_vaa(states).item() <= exact.item()


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("double", [False, True])
def test_vaa_star_is_differentiable_per_layer(cell, double):
    M, I, H, T = 2, 1, 6, 15
    kw = {"num_layers": 2, "double": double}
    keys = rng.seed_keys([0, 1])
    params = {n: v.requires_grad_() for n, v in
              init_population(keys, "normal", I, H, 1, cell=cell, dtype=torch.float64, cell_kwargs=kw).items()}
    x = torch.randn(M, T, N, I, dtype=torch.float64)
    prefix = rng.randint(keys, T, (N,))
    inputs = [torch.randn(M, I, dtype=torch.float64), torch.randn(M, H, dtype=torch.float64)]
    v = A.vaa_star(params, x, prefix, inputs, 5, cell=cell, first_half=double, **kw)
    assert v.shape == (M, 2) and ((v >= 1 / N - 1e-12) & (v <= 1 + 1e-12)).all()
    v.sum().backward()
    assert all(params[n].grad is not None and params[n].grad.isfinite().all() for n in ("weight_hh", "weight_hh_l1"))
    assert params["weight_ih"].grad.abs().sum() > 0  # through the reachable states of both layers


def test_bad_arguments_are_named():
    diag = {n: torch.zeros(s) for n, s in param_shapes(1, 1, 4, 1, "diag").items()}
    with pytest.raises(ValueError, match="layer map.*diag"):
        A.vaa(diag, COPY)
    params = elman([[3.0]], [[0.1]])
    with pytest.raises(ValueError, match="n_states"):
        A.vaa(params, COPY, n_states=0)
    with pytest.raises(ValueError, match="steps"):
        A.vaa(params, COPY, steps=-1)
    with pytest.raises(ValueError, match="missing 'weight_ih_l1'"):
        A.vaa(params, COPY, num_layers=2)
    with pytest.raises(ValueError, match=r"steps \(K'\)"):
        A.vaa_star(params, torch.zeros(1, 3, N, 1, dtype=torch.float64), torch.zeros(1, N, dtype=torch.int64),
                   [torch.zeros(1, 1, dtype=torch.float64)], 0, cell="elman")
    with pytest.raises(ValueError, match="one constant input per layer"):
        A.vaa_star(params, torch.zeros(1, 3, N, 1, dtype=torch.float64), torch.zeros(1, N, dtype=torch.int64), [], 1, cell="elman")
