"""Elman populations: the forward and its gradients against nn.RNN and the reference, the
population module, and training: a model trained in a population against the same model trained
alone (DESIGN.md §5: a model's run does not depend on its population; float64 to ~1e-12, float32
within a derived rounding bound), and finished models freezing without disturbing the others."""
import pytest
import torch

from rnnlab import reference
from rnnlab.nn.population import PopulationModel, population_forward
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, train_population
from rnnlab.train.init import init_population

from helpers_population import torch_layer_of_model

M, T, B, I, H, O = 3, 9, 4, 5, 7, 2


def random_params(dtype=torch.float64):
    torch.manual_seed(1)
    p = init_population(rng.seed_keys([4, 5, 6]), "normal", I, H, O, gains=[0.8, 1.0, 1.4], dtype=dtype)
    p["bias"] = 0.2 * torch.randn(M, H, dtype=dtype)
    p["bias_out"] = 0.2 * torch.randn(M, O, dtype=dtype)
    return p


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_elman_population_forward_and_gradients_match_nn_rnn_per_model(nonlinearity):
    params = {n: v.requires_grad_(True) for n, v in random_params().items()}
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    y = population_forward(params, x, nonlinearity=nonlinearity, readout_steps=3)
    assert y.shape == (M, 3, B, O)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    for m in range(M):
        rnn = torch_layer_of_model(torch.nn.RNN, params, m, nonlinearity=nonlinearity)
        out = torch.nn.Linear(H, O, dtype=torch.float64)
        with torch.no_grad():
            out.weight.copy_(params["weight_out"][m])
            out.bias.copy_(params["bias_out"][m])
        hs, _ = rnn(x[m])
        ym = out(hs[-3:])
        assert torch.allclose(y[m], ym, atol=1e-12)
        (ym * weights[m]).sum().backward()
        assert torch.allclose(params["weight_hh"].grad[m], rnn.weight_hh_l0.grad, atol=1e-10)
        assert torch.allclose(params["weight_ih"].grad[m], rnn.weight_ih_l0.grad, atol=1e-10)
        assert torch.allclose(params["bias"].grad[m], rnn.bias_ih_l0.grad, atol=1e-10)
        assert torch.allclose(params["weight_out"].grad[m], out.weight.grad, atol=1e-10)


@pytest.mark.parametrize("nonlinearity", ["sigmoid", "identity"])
def test_elman_population_forward_matches_the_reference(nonlinearity):
    params = random_params()
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    xp = torch.einsum("mtbi,mhi->mtbh", x, params["weight_ih"]) + params["bias"][:, None, None]
    hs = reference.elman_forward(xp, params["weight_hh"], torch.zeros(M, B, H, dtype=torch.float64), nonlinearity)
    expected = torch.einsum("mbh,moh->mbo", hs[:, -1], params["weight_out"]) + params["bias_out"][:, None]
    y = population_forward(params, x, nonlinearity=nonlinearity)
    assert torch.allclose(y[:, 0], expected, atol=1e-12)


def test_elman_population_module_selects_models_and_rejects_bad_shapes():
    params = random_params(torch.float32)
    model = PopulationModel.from_params(params, "elman", nonlinearity="tanh")
    assert model.num_models == M and "hidden_size=7" in repr(model)
    x = torch.randn(M, T, B, I)
    y = model(x, readout_steps=2)
    assert torch.equal(y, population_forward(params, x, readout_steps=2))
    sub = model.select([2, 0])
    assert torch.allclose(sub(x[[2, 0]]), model(x)[[2, 0]])
    assert len(list(model.parameters())) == 5
    with pytest.raises(ValueError, match=r"x must have shape \[M=3, T, B, I=5\]"):
        model(torch.randn(2, T, B, I))
    with pytest.raises(ValueError, match="readout_steps"):
        model(x, readout_steps=T + 1)
    with pytest.raises(ValueError, match="weight_hh"):
        model.load_params({**params, "weight_hh": torch.zeros(M, H + 1, H + 1)})
    with pytest.raises(ValueError, match="hidden_size"):
        PopulationModel(2, 3, 0, 1)


def _configs(**shared):
    base = dict(task="torder", task_kwargs=dict(min_length=8, max_length=12), hidden=12, max_updates=60, val_every=20,
                val_size=300, val_chunk=150)
    base.update(shared)
    return [
        RunConfig(seed=3, lr=0.05, clip=1.0, alpha=2.0, **base),
        RunConfig(seed=4, lr=0.1, clip=None, alpha=0.0, init="smart_tanh", **base),
        RunConfig(seed=5, lr=0.02, clip=0.5, alpha=1.0, alpha_decay=10.0, init="orthogonal", init_gain=1.2, **base),
    ]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_elman_trained_in_population_equals_trained_alone_in_float64(optimizer):
    """Population ≡ alone, in float64: after 60 updates (clipping, Ω, Adam's cosine schedule) a
    model ends with the weights, validation errors and gradient norms it has when trained alone,
    to ~1e-12. The batched GEMMs of a population and the single-model ones of a model alone may
    sum in different orders (they do on AMD CPUs), so only float64 makes the rounding small
    enough for 60 updates of training to keep it near 1e-12 on every CPU; float32 has the bound
    of the next test."""
    configs = _configs(optimizer=optimizer, lr_schedule="cosine" if optimizer == "adam" else "constant",
                       stop_at_success=False, dtype="float64")
    together = train_population(configs)
    for m in (0, 2):
        alone = train_population([configs[m]])[0]
        for n, v in alone.params.items():
            torch.testing.assert_close(together[m].params[n], v, rtol=1e-10, atol=1e-12, msg=n)
        assert together[m].history["val_error"] == pytest.approx(alone.history["val_error"], abs=1e-3)
        assert together[m].grad_norm_mean == pytest.approx(alone.grad_norm_mean, rel=1e-10)


#: float32's unit round-off.
FLOAT32_U = 2.0**-24


def float32_rounding_bound(config: RunConfig, updates: int, n_sum: int, weight_max: float) -> float:
    """How far float32 weights of one run may drift between two GEMM summation orders in
    ``updates`` clipped SGD / momentum updates (a first-order rounding estimate):

    * a float32 sum of n terms differs between two orders by ≤ 2·n·u of its terms' size
      (Higham's γ_n); a gradient entry is such a sum over the n = T·B steps and samples, so the
      two gradients differ by ≤ 2·n·u·τ after clipping to norm τ, and one update's step by
      lr times that;
    * momentum carries that difference into later steps: update i moves Σ_{j<i} μ^j of it;
    * each update rounds the weights once more (u·|θ|);
    * a factor 2 for earlier differences fed back through the next gradients, which stays small
      only while updates ≪ 1/(lr·L) (L the gradient's Lipschitz constant): a few updates.
    """
    mu = config.momentum if config.optimizer == "momentum" else 0.0
    carried = sum(mu**j for i in range(1, updates + 1) for j in range(i))
    return 2 * (carried * 2 * n_sum * FLOAT32_U * config.lr * config.clip + updates * FLOAT32_U * weight_max)


def _gemm_in_float64(original):
    """torch.baddbmm that forms float32 products in float64 and rounds once: a legal float32
    GEMM that rounds differently from the BLAS, as another CPU's BLAS would."""
    def baddbmm(input, batch1, batch2, **kwargs):
        if input.dtype != torch.float32:
            return original(input, batch1, batch2, **kwargs)
        return original(input.double(), batch1.double(), batch2.double(), **kwargs).float()
    return baddbmm


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_elman_trained_in_population_and_alone_agree_in_float32_within_the_rounding_bound(optimizer, monkeypatch):
    """What float32 guarantees: for a few clipped SGD or momentum updates, a model in a
    population and alone stay within :func:`float32_rounding_bound` (not bit for bit: the
    batched and single-model GEMMs may round differently). The model alone runs its projection
    and read-out GEMMs through :func:`_gemm_in_float64`, so the bound is exercised on every CPU,
    not only on those whose BLAS rounds the two shapes differently. Adam has no such bound: it
    divides each gradient entry by its own running scale, so an entry at rounding level can move
    by up to lr in either direction."""
    updates = 3
    configs = [RunConfig(**{**vars(c), "max_updates": updates, "val_every": updates, "clip": c.clip or 1.0,
                            "alpha": 0.0, "alpha_decay": None})
               for c in _configs(optimizer=optimizer, stop_at_success=False)]
    together = train_population(configs)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "baddbmm", _gemm_in_float64(torch.baddbmm))
        alone = [train_population([c])[0] for c in configs]
    for m, c in enumerate(configs):
        weight_max = max(v.abs().max().item() for v in alone[m].params.values())
        bound = float32_rounding_bound(c, updates, c.make_task().max_length * c.batch_size, weight_max)
        for n, v in alone[m].params.items():
            torch.testing.assert_close(together[m].params[n], v, rtol=0, atol=bound, msg=f"model {m} {n}")


def test_finished_models_freeze_and_the_models_still_training_are_unaffected():
    """Adam at lr 0.05 solves temporal order at these lengths within a few validations, at
    different updates for different seeds: the population shrinks while it trains, and the model
    still training ends as it does alone (float64: see the test above for why)."""
    configs = [RunConfig(task="torder", task_kwargs=dict(min_length=8, max_length=12), hidden=16, optimizer="adam", lr=lr,
                         clip=None, seed=s, max_updates=400, val_every=40, val_size=1000, val_chunk=500, dtype="float64")
               for s, lr in ((0, 0.05), (1, 0.002), (2, 0.05))]
    together = train_population(configs)
    assert together[0].success and together[0].updates == together[0].updates_to_success
    assert together[0].updates < together[1].updates
    alone = train_population([configs[1]])[0]
    assert alone.updates == together[1].updates and alone.success == together[1].success
    for n, v in alone.params.items():
        torch.testing.assert_close(together[1].params[n], v, rtol=1e-10, atol=1e-12, msg=n)
