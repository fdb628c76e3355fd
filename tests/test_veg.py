"""The per-update VEG flags (SPEC §3.3, rnnlab.train.veg): the counter against its definition on
hand-made ‖δ_t‖² profiles, and the vanishing flag of a contracting network in training."""
import math

import pytest
import torch

from rnnlab.train import RunConfig, train_population
from rnnlab.train.veg import VegCounter, VegRule


@pytest.mark.parametrize("method", ["add", "add_in_torch"])  # the CPU op, and the torch ops that define it
def test_veg_counter_follows_its_definition(method):
    rule = VegRule(eps_vanish=1e-3, eps_explode=1e3, jump=10.0, window=4, refresh=1)
    counter = VegCounter(2, rule, "cpu")
    add = getattr(counter, method)
    idx = torch.tensor([0, 1])
    # model 0: median_b R_1 = 1e-4 (vanishing); model 1: one sample with R_1 = 1e4 (exploding)
    d = torch.ones(2, 5, 3, dtype=torch.float64)
    d[0, 0] = torch.tensor([1e-8, 1e-8, 1.0])
    d[1, 0] = torch.tensor([1.0, 1.0, 1e8])
    add(idx, d, torch.tensor([1.0, 1.0]), 0)
    assert counter.vanishing.tolist() == [1, 0] and counter.exploding.tolist() == [0, 1]
    # a norm 11x the running median of the earlier norms is a jump; R_1 = 1 is no flag
    flat = torch.ones(2, 5, 3, dtype=torch.float64)
    add(idx, flat, torch.tensor([11.0, 9.0]), 1)
    assert counter.exploding.tolist() == [1, 1] and counter.steps.tolist() == [2, 2]
    # only the models of idx are touched; ‖δ_T‖ = 0 gives no ratio (left out), ‖δ_1‖ = 0 vanishes
    zero_last = flat[:1].clone()
    zero_last[0, -1, :2] = 0
    zero_last[0, 0, 2] = 0
    add(torch.tensor([1]), zero_last, torch.tensor([math.inf]), 2)
    assert counter.steps.tolist() == [2, 3] and counter.vanishing.tolist() == [1, 1]
    assert counter.exploding.tolist() == [1, 1]  # a non-finite norm is the safeguard's business


def test_vanishing_flags_fire_for_a_contracting_network():
    # sigmoid init (W_hh ~ N(0, 0.01²)) over 60 steps: ‖δ_1‖/‖δ_T‖ is far below 1e-6 at every update
    cfg = RunConfig(task="torder", task_kwargs={"min_length": 60, "max_length": 60}, init="sigmoid", hidden=8,
                    max_updates=5, val_every=5, val_size=100, val_chunk=100)
    r = train_population([cfg])[0]
    assert r.veg_steps == 5 and r.vanishing_steps == 5 and r.exploding_steps == 0
