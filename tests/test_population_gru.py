"""GRU populations: forward and gradients against nn.GRU per model, the per-gate orthogonal init,
per-seed inits, and a model trained inside a population equal to the same model trained alone."""
import pytest
import torch

from rnnlab.nn.population import PopulationModel, recurrent_radius
from rnnlab.train import RunConfig

from helpers_population import (check_init_depends_only_on_the_seed, check_orthogonal_init_per_gate,
                                check_population_matches_torch_layers,
                                check_trained_in_population_equals_trained_alone, trained_alone_configs)

M, T, B, I, H, O = 3, 9, 4, 5, 6, 2


def test_gru_population_matches_nn_gru_per_model():
    params = check_population_matches_torch_layers("gru", torch.nn.GRU, I, H, O, T=T, B=B)
    assert bool(recurrent_radius(params, "gru").isnan().all())


def test_gru_orthogonal_init_is_three_orthogonal_blocks_times_the_gain():
    p, _ = check_orthogonal_init_per_gate("gru", 3, I, H, O)
    assert not p["bias_hn"].any() and not p["bias"].any()
    check_init_depends_only_on_the_seed("gru", "normal", I, H, O)


def test_gru_population_module_and_config_validation():
    x = torch.randn(M, T, B, I)
    model = PopulationModel(M, I, H, O, "gru")
    assert model(x, readout_steps=2).shape == (M, 2, B, O)
    torch.testing.assert_close(model.select([2, 0])(x[[2, 0]]), model(x)[[2, 0]])
    assert RunConfig(cell="gru").init == "orthogonal"
    with pytest.raises(ValueError, match="nonlinearity is an Elman option"):
        RunConfig(cell="gru", nonlinearity="relu")
    with pytest.raises(ValueError, match="alpha"):
        RunConfig(cell="gru", alpha=1.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gru_trained_in_population_equals_trained_alone_in_float64(optimizer):
    check_trained_in_population_equals_trained_alone(trained_alone_configs("gru", optimizer=optimizer))
