"""GRU populations: forward and gradients against nn.GRU per model, the per-gate orthogonal init,
per-seed inits, and a model trained inside a population equal to the same model trained alone."""
import pytest
import torch

from rnnlab.nn.population import Population, param_shapes, population_forward, recurrent_radius
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, train_population
from rnnlab.train.init import init_population

M, T, B, I, H, O = 3, 9, 4, 5, 6, 2


def test_gru_population_matches_nn_gru_per_model():
    torch.manual_seed(0)
    params = init_population(rng.seed_keys([1, 2, 3]), ["orthogonal", "normal", "basic_tanh"], I, H, O,
                             gains=[0.9, 1.0, 1.2], dtype=torch.float64, cell="gru")
    params["bias"] = 0.3 * torch.randn(M, 3 * H, dtype=torch.float64)
    params["bias_hn"] = 0.3 * torch.randn(M, H, dtype=torch.float64)
    params = {n: v.requires_grad_(True) for n, v in params.items()}
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    y = population_forward(params, x, cell="gru", readout_steps=2)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    for m in range(M):
        ref = torch.nn.GRU(I, H, dtype=torch.float64)
        with torch.no_grad():
            ref.weight_ih_l0.copy_(params["weight_ih"][m])
            ref.weight_hh_l0.copy_(params["weight_hh"][m])
            ref.bias_ih_l0.copy_(params["bias"][m])
            ref.bias_hh_l0.zero_()
            ref.bias_hh_l0[2 * H:].copy_(params["bias_hn"][m])
        out = torch.nn.functional.linear(ref(x[m])[0][-2:], params["weight_out"][m], params["bias_out"][m])
        torch.testing.assert_close(y[m], out, rtol=1e-12, atol=1e-12)
        (out * w[m]).sum().backward()
        torch.testing.assert_close(params["weight_hh"].grad[m], ref.weight_hh_l0.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(params["bias_hn"].grad[m], ref.bias_hh_l0.grad[2 * H:], rtol=1e-10, atol=1e-12)
    assert bool(recurrent_radius(params, "gru").isnan().all())


def test_gru_orthogonal_init_is_three_orthogonal_blocks_times_the_gain():
    p = init_population(rng.seed_keys([5, 6]), "orthogonal", I, H, O, gains=[0.5, 1.5], dtype=torch.float64, cell="gru")
    assert {n: tuple(v.shape) for n, v in p.items()} == param_shapes(2, I, H, O, "gru")
    assert not p["bias_hn"].any() and not p["bias"].any()
    blocks = p["weight_hh"].view(2, 3, H, H)
    eye = torch.eye(H, dtype=torch.float64)
    for m, g in enumerate((0.5, 1.5)):
        for k in range(3):
            torch.testing.assert_close(blocks[m, k] @ blocks[m, k].T, g * g * eye)
    together = init_population(rng.seed_keys([7, 8, 9]), "normal", I, H, O, cell="gru")
    alone = init_population(rng.seed_keys([9]), "normal", I, H, O, cell="gru")
    assert all(torch.equal(together[n][2], alone[n][0]) for n in alone)


def test_gru_population_module():
    x = torch.randn(M, T, B, I)
    model = Population(M, I, H, O, "gru")
    assert model(x, readout_steps=2).shape == (M, 2, B, O)
    torch.testing.assert_close(model.select([2, 0])(x[[2, 0]]), model(x)[[2, 0]])
    assert RunConfig(cell="gru").init == "orthogonal"
    with pytest.raises(ValueError, match="nonlinearity is an Elman option"):
        RunConfig(cell="gru", nonlinearity="relu")
    with pytest.raises(ValueError, match="alpha"):
        RunConfig(cell="gru", alpha=1.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gru_trained_in_population_equals_trained_alone(optimizer):
    base = dict(task="torder", task_kwargs={"min_length": 6, "max_length": 9}, cell="gru", hidden=8, max_updates=30,
                val_every=10, val_size=200, val_chunk=200, dtype="float64", stop_at_success=False, optimizer=optimizer)
    configs = [RunConfig(seed=1, lr=0.05, clip=1.0, **base), RunConfig(seed=2, lr=0.01, clip=None, **base),
               RunConfig(seed=3, lr=0.02, clip=0.3, **base)]
    together = train_population(configs)
    for m in (0, 2):
        alone = train_population([configs[m]])[0]
        for n, v in alone.params.items():
            torch.testing.assert_close(together[m].params[n], v, rtol=1e-9, atol=1e-10, msg=n)
        assert together[m].history["val_loss"] == pytest.approx(alone.history["val_loss"], rel=1e-9)
        assert together[m].veg_steps == alone.veg_steps == 30
