"""LSTM and diagonal (LRU) populations: forward against nn.LSTM / rnnlab.LRU, per-seed inits, a
model trained inside a population equal to the same model trained alone, and the per-update
VEG counter against its definition (SPEC §3.3)."""
import math

import pytest
import torch

from rnnlab import LRU
from rnnlab.nn.population import PopulationModel, population_forward, recurrent_radius
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, train_population
from rnnlab.train.init import init_population
from rnnlab.train.veg import VegCounter, VegRule

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
def test_initialisation_depends_only_on_the_seed(cell, init):
    check_init_depends_only_on_the_seed(cell, init, I, H, O)


def test_population_module_for_every_cell():
    x = torch.randn(M, T, B, I)
    for cell, options in (("elman", {"nonlinearity": "relu"}), ("lstm", {}), ("diag", {"gamma": "none"})):
        model = PopulationModel(M, I, H, O, cell, **options)
        assert model(x, readout_steps=2).shape == (M, 2, B, O)
        sub = model.select([2, 0])
        assert sub.num_models == 2 and sub.cell == cell and sub.options == model.options
        torch.testing.assert_close(sub(x[[2, 0]]), model(x)[[2, 0]])
    with pytest.raises(ValueError, match="cell must be one of"):
        PopulationModel(M, I, H, O, "rwkv")
    with pytest.raises(ValueError, match="cell 'lstm' takes the options"):
        PopulationModel(M, I, H, O, "lstm", nonlinearity="relu")
    with pytest.raises(ValueError, match="reg_weight .* cell='elman' only"):
        population_forward(PopulationModel(M, I, H, O, "lstm").params(), x, cell="lstm", reg_weight=1.0)


@pytest.mark.parametrize("cell,optimizer", [("lstm", "sgd"), ("lstm", "adam"), ("diag", "adam"), ("diag", "momentum")])
def test_model_trained_in_population_equals_model_trained_alone(cell, optimizer):
    check_trained_in_population_equals_trained_alone(trained_alone_configs(cell, optimizer=optimizer))


def test_cell_configs_are_validated():
    with pytest.raises(ValueError, match="nonlinearity is an Elman option"):
        RunConfig(cell="lstm", nonlinearity="relu")
    with pytest.raises(ValueError, match=r"cell_kwargs \['r_mn'\] are not options of cell='diag'"):
        RunConfig(cell="diag", cell_kwargs={"r_mn": 0.5})
    with pytest.raises(ValueError, match="parametrization must be one of"):
        RunConfig(cell="diag", cell_kwargs={"parametrization": "cartesian"})
    assert RunConfig(cell="lstm").init == "orthogonal" and RunConfig(cell="diag").init == "ring"
    assert RunConfig().init == "basic_tanh" and RunConfig().cell_kwargs == {}


def test_veg_counter_follows_its_definition():
    rule = VegRule(eps_vanish=1e-3, eps_explode=1e3, jump=10.0, window=4, refresh=1)
    counter = VegCounter(2, rule, "cpu")
    idx = torch.tensor([0, 1])
    # model 0: median_b R_1 = 1e-4 (vanishing); model 1: one sample with R_1 = 1e4 (exploding)
    d = torch.ones(2, 5, 3, dtype=torch.float64)
    d[0, 0] = torch.tensor([1e-8, 1e-8, 1.0])
    d[1, 0] = torch.tensor([1.0, 1.0, 1e8])
    counter.add(idx, d, torch.tensor([1.0, 1.0]), 0)
    assert counter.vanishing.tolist() == [1, 0] and counter.exploding.tolist() == [0, 1]
    # a norm 11x the running median of the earlier norms is a jump; R_1 = 1 is no flag
    flat = torch.ones(2, 5, 3, dtype=torch.float64)
    counter.add(idx, flat, torch.tensor([11.0, 9.0]), 1)
    assert counter.exploding.tolist() == [1, 1] and counter.steps.tolist() == [2, 2]
    # only the models of idx are touched; ‖δ_T‖ = 0 gives no ratio (left out), ‖δ_1‖ = 0 vanishes
    zero_last = flat[:1].clone()
    zero_last[0, -1, :2] = 0
    zero_last[0, 0, 2] = 0
    counter.add(torch.tensor([1]), zero_last, torch.tensor([math.inf]), 2)
    assert counter.steps.tolist() == [2, 3] and counter.vanishing.tolist() == [1, 1]
    assert counter.exploding.tolist() == [1, 1]  # a non-finite norm is the safeguard's business


def test_vanishing_flags_fire_for_a_contracting_network():
    # sigmoid init (W_hh ~ N(0, 0.01²)) over 60 steps: ‖δ_1‖/‖δ_T‖ is far below 1e-6 at every update
    cfg = RunConfig(task="torder", task_kwargs={"min_length": 60, "max_length": 60}, init="sigmoid", hidden=8,
                    max_updates=5, val_every=5, val_size=100, val_chunk=100)
    r = train_population([cfg])[0]
    assert r.veg_steps == 5 and r.vanishing_steps == 5 and r.exploding_steps == 0


def test_a_sweep_over_cells_stores_one_row_per_run(tmp_path):
    from rnnlab.sweep import ResultStore, SweepSpec, run_sweep

    spec = SweepSpec.from_dict({"name": "cells", "fixed": {"task": "torder", "length": 6, "hidden": 6, "optimizer": "adam",
                                                           "max_updates": 20, "val_every": 10, "val_size": 100},
                                "grid": {"model": [{"name": "rnn", "cell": "elman"}, {"name": "lstm", "cell": "lstm"},
                                                   {"name": "lru", "cell": "diag", "cell_kwargs.r_min": 0.5}],
                                         "seed": [0, 1]}})
    run_sweep(spec, tmp_path / "s.sqlite", threads=1)
    rows = ResultStore(tmp_path / "s.sqlite").rows("ORDER BY cell, seed")
    assert [(r["cell"], r["labels"]["model"]) for r in rows] == [("diag", "lru")] * 2 + [("elman", "rnn")] * 2 + [("lstm", "lstm")] * 2
    assert all(r["updates"] == 20 and r["veg_steps"] == 20 for r in rows)
    assert [r["rho_final"] is None for r in rows] == [False, False, False, False, True, True]  # NaN -> NULL for the LSTM
    assert rows[0]["config"]["config"]["cell_kwargs"] == {"r_min": 0.5}
