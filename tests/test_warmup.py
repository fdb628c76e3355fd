"""The VAA* warm-up (SPEC §6.1, rnnlab.train.warmup): it raises VAA*, leaves plain models and the
second cell of double layers exactly as drawn, is the same alone or inside a population, and its
options are checked."""
import pytest
import torch

from rnnlab.analysis import vaa_star
from rnnlab.sweep.spec import run_id
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, train_population
from rnnlab.train.init import init_population
from rnnlab.train.warmup import stabilization_steps, warm_up

T = 20


def configs(seeds, warm, cell="gru", steps=30, **cell_kwargs):
    return [RunConfig(task="copy", task_kwargs={"min_length": T, "max_length": T}, cell=cell, cell_kwargs=dict(cell_kwargs),
                      hidden=8, optimizer="adam", lr=1e-3, batch_size=32, dtype="float64", warmup=w, warmup_steps=steps,
                      max_updates=2, val_every=2, val_size=64, val_chunk=64, seed=s) for s, w in zip(seeds, warm)]


def population(cfgs):
    c = cfgs[0]
    task = c.make_task()
    keys = rng.seed_keys([x.seed for x in cfgs])
    params = init_population(keys, c.init, task.n_in, c.hidden, task.n_out, dtype=torch.float64, cell=c.cell,
                             cell_kwargs=c.cell_kwargs)
    return task, keys, params


def measured_vaa_star(params, cfg, task, keys):
    """VAA* per model at the warm-up's longest roll-out, on fixed draws."""
    x = task.sample(rng.derive(keys, "probe"), {}, T, 32, torch.float64).x
    prefix = rng.randint(rng.derive(keys, "probe-prefix"), T, (32,))
    layers = cfg.forward_options().get("num_layers", 1)
    inputs = [rng.normal(rng.derive(keys, "probe-u", d), (task.n_in if d == 0 else cfg.hidden,), torch.float64) for d in range(layers)]
    with torch.no_grad():
        return vaa_star(params, x, prefix, inputs, 200, cell=cfg.cell, **cfg.forward_options()).mean(1)


def test_warm_up_raises_vaa_star_and_leaves_plain_models_alone():
    cfgs = configs([0, 1], [True, False], steps=60)
    task, keys, params = population(cfgs)
    before = {n: v.clone() for n, v in params.items()}
    start = measured_vaa_star(params, cfgs[0], task, keys)
    history = warm_up(task, params, keys, {}, cfgs)
    assert list(history) == [0] and len(history[0]) == 60
    end = measured_vaa_star(params, cfgs[0], task, keys)
    assert end[0] > start[0] + 0.1, (start, end)
    for n, v in params.items():
        assert torch.equal(v[1], before[n][1]), n  # the plain model: bit for bit
        if n not in ("weight_out", "bias_out"):
            assert not torch.equal(v[0], before[n][0]), n


def test_double_layer_warms_only_its_first_cell():
    cfgs = configs([3], [True], cell="lstm", steps=5, num_layers=2, double=True)
    task, keys, params = population(cfgs)
    before = {n: v.clone() for n, v in params.items()}
    warm_up(task, params, keys, {}, cfgs)
    for n in ("weight_ih", "weight_hh", "bias", "weight_ih_l1", "weight_hh_l1", "bias_l1"):
        assert params[n].shape[:2] == (1, 2)
        assert torch.equal(params[n][:, 1], before[n][:, 1]), n
        assert not torch.equal(params[n][:, 0], before[n][:, 0]), n
    for n in ("weight_out", "bias_out"):
        assert torch.equal(params[n], before[n])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_warmed_model_alone_equals_inside_a_population(cell):
    cfgs = configs([5, 6, 7], [True, False, True], cell=cell, steps=6, num_layers=2)
    task, keys, params = population(cfgs)
    warm_up(task, params, keys, {}, cfgs)
    for m, c in enumerate(cfgs):
        _, k1, alone = population([c])
        warm_up(task, alone, k1, {}, [c])
        for n, v in alone.items():
            torch.testing.assert_close(v[0], params[n][m], rtol=1e-9, atol=1e-12)


def test_trainer_warms_up_first_and_records_vaa_star():
    cfgs = configs([0, 1], [True, False], steps=3, num_layers=2)
    warmed, plain = train_population(cfgs)
    assert len(warmed.history["warmup_vaa_star"]) == 3 and "warmup_vaa_star" not in plain.history
    # the plain run trains as it does alone (float64; batched GEMMs over other M reassociate sums)
    torch.testing.assert_close(train_population(cfgs[1:])[0].params["weight_hh"], plain.params["weight_hh"], rtol=1e-10, atol=1e-12)


def test_stabilization_steps_grow_to_200():
    assert stabilization_steps(0, 0) == 1
    assert all(1 <= stabilization_steps(3, k) <= min(1 + 10 * k, 200) for k in range(40))


def test_bad_warm_up_options_are_named():
    with pytest.raises(ValueError, match="warmup must be True or False"):
        RunConfig(warmup="yes")
    with pytest.raises(ValueError, match="warmup needs a cell with layers"):
        RunConfig(cell="diag", warmup=True)
    with pytest.raises(ValueError, match="warmup_steps"):
        RunConfig(warmup_steps=-1)
    with pytest.raises(ValueError, match="warmup_lr"):
        RunConfig(warmup_lr=0.0)
    with pytest.raises(ValueError, match="hidden_size must be even"):
        RunConfig(cell="gru", hidden=7, cell_kwargs={"double": True})


def test_run_ids_of_runs_without_warm_up_are_unchanged():
    plain = RunConfig()
    assert run_id(plain) == run_id(RunConfig(warmup=False, warmup_steps=100, warmup_lr=1e-2))
    assert run_id(RunConfig(warmup=True)) != run_id(plain)
