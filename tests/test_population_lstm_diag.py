"""LSTM and diagonal (LRU) populations: forward against nn.LSTM / rnnlab.LRU, per-seed inits, a
model trained inside a population equal to the same model trained alone, and config validation."""
import pytest
import torch

from rnnlab import LRU
from rnnlab.nn.population import population_forward, recurrent_radius
from rnnlab.tasks import rng
from rnnlab.train import RunConfig
from rnnlab.train.init import init_population

from helpers_population import (check_init_depends_only_on_the_seed, check_orthogonal_init_per_gate,
                                check_population_matches_torch_layers,
                                check_trained_in_population_equals_trained_alone, trained_alone_configs)

M, T, B, I, H, O = 3, 9, 4, 5, 6, 2


def test_lstm_population_matches_nn_lstm_per_model():
    check_population_matches_torch_layers("lstm", torch.nn.LSTM, I, H, O, T=T, B=B)


@pytest.mark.parametrize("parametrization", ["exp", "real"])
def test_diag_population_matches_lru_module(parametrization):
    params = init_population(rng.seed_keys([1, 2, 3]), "ring", I, H, O, dtype=torch.float64, cell="diag",
                             cell_kwargs={"parametrization": parametrization, "r_min": 0.5, "r_max": 0.99})
    lru = LRU(I, H, O, num_models=M, parametrization=parametrization, dtype=torch.float64)
    with torch.no_grad():
        for n, p in lru.named_parameters():
            p.copy_(params[n])
    x = torch.randn(M, T, B, I, dtype=torch.float64)
    y = population_forward(params, x, cell="diag", readout_steps=3, parametrization=parametrization)
    torch.testing.assert_close(y, lru(x)[0][:, -3:])
    lam = lru.lam().abs()
    assert bool(((lam >= 0.5 - 1e-12) & (lam <= 0.99 + 1e-12)).all())
    torch.testing.assert_close(recurrent_radius(params, "diag", parametrization=parametrization), lam.amax(-1))


def test_lstm_orthogonal_init_is_four_orthogonal_blocks_times_the_gain():
    _, blocks = check_orthogonal_init_per_gate("lstm", 4, I, H, O)
    assert not torch.allclose(blocks[0, 0], blocks[0, 1])


@pytest.mark.parametrize("cell,init", [("lstm", "normal"), ("diag", "ring")])
def test_lstm_and_diag_initialisation_depends_only_on_the_seed(cell, init):
    check_init_depends_only_on_the_seed(cell, init, I, H, O)


@pytest.mark.parametrize("cell,optimizer", [("lstm", "sgd"), ("lstm", "adam"), ("diag", "adam"), ("diag", "momentum")])
def test_lstm_and_diag_trained_in_population_equal_trained_alone_in_float64(cell, optimizer):
    check_trained_in_population_equals_trained_alone(trained_alone_configs(cell, optimizer=optimizer))


def test_lstm_and_diag_configs_are_validated():
    with pytest.raises(ValueError, match="nonlinearity is an Elman option"):
        RunConfig(cell="lstm", nonlinearity="relu")
    with pytest.raises(ValueError, match=r"cell_kwargs \['r_mn'\] are not options of cell='diag'"):
        RunConfig(cell="diag", cell_kwargs={"r_mn": 0.5})
    with pytest.raises(ValueError, match="parametrization must be one of"):
        RunConfig(cell="diag", cell_kwargs={"parametrization": "cartesian"})
    assert RunConfig(cell="lstm").init == "orthogonal" and RunConfig(cell="diag").init == "ring"
    assert RunConfig().init == "basic_tanh" and RunConfig().cell_kwargs == {}
