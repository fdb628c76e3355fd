"""Initialisations (SPEC §2.1), per-model optimizers against torch.optim, one trainer update
against its definition (SPEC §2.3–2.5), an end-to-end run that learns, and `rnnlab train`."""
import json
import math

import pytest
import torch

from rnnlab.cli import main as cli_main
from rnnlab.nn.population import population_forward
from rnnlab.tasks import rng
from rnnlab.train import RunConfig, check_compatible, population_key, train, train_population
from rnnlab.train.clipping import global_norm
from rnnlab.train.init import init_population, spectral_radius
from rnnlab.train.optim import init_state, update_
from rnnlab.train.schedules import cosine_lr


# ---- initialisations --------------------------------------------------------------------------
def test_pascanu_initialisations():
    keys = rng.seed_keys(range(4))
    for init, std in (("sigmoid", 0.01), ("basic_tanh", 0.1)):
        p = init_population(keys, init, 30, 60, 20, dtype=torch.float64)
        for n in ("weight_ih", "weight_hh", "weight_out"):
            assert p[n].std().item() == pytest.approx(std, rel=0.05), (init, n)
            assert abs(p[n].mean().item()) < std * 0.05
        assert (p["bias"] == 0).all() and (p["bias_out"] == 0).all()
    p = init_population(keys, "smart_tanh", 6, 50, 4, dtype=torch.float64)
    assert ((p["weight_hh"] != 0).sum(2) == 15).all()  # 15 incoming connections per unit
    assert torch.allclose(spectral_radius(p["weight_hh"]), torch.full((4,), 0.95, dtype=torch.float64))
    assert p["weight_ih"].std().item() == pytest.approx(0.01, rel=0.1)


def test_orthogonal_and_normal_initialisations_with_gain():
    keys = rng.seed_keys(range(3))
    p = init_population(keys, "orthogonal", 4, 40, 2, gains=[0.5, 1.0, 1.5], dtype=torch.float64)
    gram = p["weight_hh"] @ p["weight_hh"].transpose(1, 2)
    eye = torch.eye(40, dtype=torch.float64)
    for m, g in enumerate((0.5, 1.0, 1.5)):
        assert torch.allclose(gram[m], g * g * eye, atol=1e-10)
    p = init_population(rng.seed_keys(range(20)), "normal", 4, 64, 2, gains=2.0, dtype=torch.float64)
    assert p["weight_hh"].std().item() == pytest.approx(2 / 8, rel=0.03)
    assert p["weight_ih"].std().item() == pytest.approx(1 / 2, rel=0.05)


def test_initialisation_depends_only_on_the_seed():
    together = init_population(rng.seed_keys([7, 8, 9]), ["basic_tanh", "smart_tanh", "orthogonal"], 3, 20, 2, gains=[1, 1, 1.3])
    alone = init_population(rng.seed_keys([9]), "orthogonal", 3, 20, 2, gains=1.3)
    assert all(torch.equal(together[n][2], alone[n][0]) for n in alone)
    other = init_population(rng.seed_keys([8]), "smart_tanh", 3, 20, 2)
    assert all(torch.equal(together[n][1], other[n][0]) for n in other)
    with pytest.raises(ValueError, match="init .xavier. is not defined for cell=.elman."):
        init_population(rng.seed_keys([1]), "xavier", 3, 4, 2)


# ---- optimizers -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_vectorized_optimizers_match_torch_optim(kind):
    torch.manual_seed(0)
    M = 3
    lr = torch.tensor([0.1, 0.01, 0.05], dtype=torch.float64)
    mom = torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64)
    b1 = torch.tensor([0.9, 0.8, 0.95], dtype=torch.float64)
    b2 = torch.tensor([0.999, 0.99, 0.9], dtype=torch.float64)
    params = {"w": torch.randn(M, 4, 3, dtype=torch.float64), "b": torch.randn(M, 4, dtype=torch.float64)}
    grads_seq = [{n: torch.randn_like(v) for n, v in params.items()} for _ in range(5)]
    ours = {n: v.clone() for n, v in params.items()}
    state = init_state(kind, ours)
    for k, g in enumerate(grads_seq):
        update_(kind, ours, g, state, lr, momentum=mom, beta1=b1, beta2=b2, eps=1e-8, step=k + 1)
    for m in range(M):
        ref = [params["w"][m].clone().requires_grad_(True), params["b"][m].clone().requires_grad_(True)]
        if kind == "sgd":
            opt = torch.optim.SGD(ref, lr=float(lr[m]))
        elif kind == "momentum":
            opt = torch.optim.SGD(ref, lr=float(lr[m]), momentum=float(mom[m]))
        else:
            opt = torch.optim.Adam(ref, lr=float(lr[m]), betas=(float(b1[m]), float(b2[m])), eps=1e-8)
        for g in grads_seq:
            ref[0].grad, ref[1].grad = g["w"][m].clone(), g["b"][m].clone()
            opt.step()
        assert torch.allclose(ours["w"][m], ref[0].detach(), atol=1e-12)
        assert torch.allclose(ours["b"][m], ref[1].detach(), atol=1e-12)


def test_cosine_schedule():
    lr, lo = torch.tensor([1.0, 0.1]), torch.tensor([0.0, 0.01])
    assert torch.allclose(cosine_lr(lr, lo, 0, 100), lr)
    assert torch.allclose(cosine_lr(lr, lo, 50, 100), (lr + lo) / 2)
    assert torch.allclose(cosine_lr(lr, lo, 100, 100), lo)


# ---- one update against its definition ---------------------------------------------------------
def test_one_update_follows_the_definition():
    """Loss, α·∂⁺Ω in gW_hh, one global norm per model, strict clipping, plain SGD (SPEC §2.3–2.5)."""
    configs = [RunConfig(task="add", task_kwargs=dict(min_length=20, max_length=30), hidden=10, lr=lr, clip=clip, alpha=alpha,
                         seed=seed, max_updates=1, val_every=1, val_size=10, val_chunk=10, dtype="float64")
               for seed, lr, clip, alpha in ((1, 0.1, 0.05, 3.0), (2, 0.5, None, 0.0), (3, 0.2, 1e6, 1.0))]
    results = train_population(configs)

    task = configs[0].make_task()
    keys = rng.seed_keys([1, 2, 3])
    params = init_population(keys, "basic_tanh", 2, 10, 1, dtype=torch.float64)
    T = task.train_length(0, 0)
    batch = task.sample(rng.derive(keys, "train", 0), {}, T, 20, torch.float64)
    p = {n: v.clone().requires_grad_(True) for n, v in params.items()}
    y = population_forward(p, batch.x, reg_weight=torch.tensor([3.0, 0.0, 1.0], dtype=torch.float64))
    ((y - batch.target) ** 2).mean((1, 2, 3)).sum().backward()
    g = {n: v.grad for n, v in p.items()}
    norm = global_norm(g)
    for m, (lr, clip) in enumerate(((0.1, 0.05), (0.5, None), (0.2, 1e6))):
        factor = clip / norm[m] if clip is not None and norm[m] > clip else 1.0
        for n in params:
            expected = params[n][m] - lr * factor * g[n][m]
            assert torch.allclose(results[m].params[n], expected, atol=1e-12), (m, n)
    assert results[0].clip_fraction == 1.0 and results[2].clip_fraction == 0.0
    assert results[0].grad_norm_mean == pytest.approx(float(norm[0]))


# ---- end to end -------------------------------------------------------------------------------
def test_learns_temporal_order_at_short_length():
    config = RunConfig(task="torder", task_kwargs=dict(min_length=10, max_length=15), hidden=24, optimizer="adam",
                       lr=0.02, clip=1.0, max_updates=1500, val_every=10, val_size=2000, val_chunk=1000, seed=1)
    r = train(config)
    assert r.success, r.history["val_error"]
    assert r.final_error < 0.01 and r.updates == r.updates_to_success <= 1500
    assert len(r.grad_profiles) == len(r.history["val_error"])
    assert all(len(p["delta_norm"]) == p["length"] for p in r.grad_profiles)
    assert r.history["val_error"][0] > 0.1  # it started from chance
    assert math.isfinite(r.rho_final) and r.fallbacks == 0


def test_time_limit_stops_and_validates():
    r = train(RunConfig(task="add", task_kwargs=dict(min_length=10, max_length=12), hidden=8, max_updates=10**6,
                        val_every=10**5, val_size=100, val_chunk=100), time_limit_s=0.0)
    assert r.updates == 1 and len(r.history["val_error"]) == 1 and not r.success


def test_a_models_validation_does_not_depend_on_the_models_beside_it():
    """A model that cannot succeed stops counting validation chunks where it can no longer
    succeed, whether or not a learning model beside it keeps the chunks going: its whole
    record is the one it gets alone (here a model with lr = 1e-6, which stays at chance)."""
    base = dict(task="torder", task_kwargs={"min_length": 8, "max_length": 12}, hidden=8, max_updates=120,
                val_every=40, val_size=200, val_chunk=50, optimizer="adam", lr=0.02, dtype="float64", seed=1)
    configs = [RunConfig(**base), RunConfig(**{**base, "lr": 1e-6})]
    together = train_population(configs)
    assert together[0].history["val_error"][-1] < 0.25 <= together[1].history["val_error"][-1]  # one learns
    for config, result in zip(configs, together):
        alone = train_population([config])[0].to_dict()
        alone.pop("wall_time_s")
        assert {k: v for k, v in result.to_dict().items() if k != "wall_time_s"} == alone


def test_configs_and_population_compatibility():
    a, b = RunConfig(seed=1, lr=0.1), RunConfig(seed=2, lr=0.01, clip=None, alpha=2.0)
    check_compatible([a, b])
    assert population_key(a) == population_key(b)
    c = RunConfig(seed=3, hidden=20)
    assert population_key(a) != population_key(c)
    with pytest.raises(ValueError, match="'hidden'"):
        check_compatible([a, c])
    assert RunConfig(init="sigmoid").nonlinearity == "sigmoid"
    for bad in (dict(init="x"), dict(optimizer="rmsprop"), dict(lr=0), dict(clip=0), dict(alpha=-1), dict(hidden=0),
                dict(dtype="float16"), dict(lr_schedule="step")):
        with pytest.raises(ValueError):
            RunConfig(**bad)
    json.dumps(a.to_dict())


def test_cli_train_writes_record_and_plots(tmp_path):
    out = tmp_path / "run"
    rc = cli_main(["train", "--task", "torder", "--min-length", "8", "--max-length", "10", "--hidden", "8",
                   "--method", "msgd", "msgd-c", "msgd-cr", "--alpha", "2", "--seeds", "0-1", "--max-updates", "40",
                   "--val-every", "20", "--val-size", "200", "--val-chunk", "100", "--out", str(out), "--quiet"])
    assert rc == 0
    record = json.loads((out / "run.json").read_text())
    assert len(record["runs"]) == 6
    labels = [r["label"] for r in record["runs"]]
    assert labels == ["msgd"] * 2 + ["msgd-c"] * 2 + ["msgd-cr"] * 2
    cfgs = [r["config"] for r in record["runs"]]
    assert [c["clip"] for c in cfgs] == [None, None, 1.0, 1.0, 1.0, 1.0]
    assert [c["alpha"] for c in cfgs] == [0.0, 0.0, 0.0, 0.0, 2.0, 2.0]
    assert record["runs"][0]["history"]["update"] == [20, 40]
    pytest.importorskip("matplotlib")
    assert (out / "curves.png").stat().st_size > 0 and (out / "grad_profile.png").stat().st_size > 0


def test_cli_train_other_cells(tmp_path, capsys):
    out = tmp_path / "lru"
    rc = cli_main(["train", "--task", "sysid", "--cell", "diag", "--cell-arg", "r_min=0.9", "--hidden", "6",
                   "--optimizer", "adam", "--max-updates", "20", "--val-every", "10", "--val-size", "50", "--out", str(out),
                   "--quiet"])
    assert rc == 0
    config = json.loads((out / "run.json").read_text())["runs"][0]["config"]
    assert (config["cell"], config["init"], config["cell_kwargs"]) == ("diag", "ring", {"r_min": 0.9})
    assert cli_main(["train", "--cell", "lstm", "--init", "sigmoid", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "init 'sigmoid' is not defined for cell='lstm'" in capsys.readouterr().err


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru", "diag"])
def test_validation_in_blocks_of_models_equals_one_call(cell, monkeypatch):
    """A validation chunk too big for VALIDATION_BLOCK_BYTES is evaluated in blocks of models: the
    same outputs as one call (each model's are its own; float64, so BLAS rounding stays far below
    the tolerance), for blocks of one and of several models, the last one partial."""
    from rnnlab.train import trainer

    M, T, B = 7, 9, 11
    cfg = RunConfig(task="latch", task_kwargs={"n_info": 3, "noise": 0.2, "min_length": T, "max_length": T}, cell=cell,
                    hidden=5, dtype="float64")
    task = cfg.make_task()
    keys = rng.seed_keys(list(range(M)), "cpu")
    params = init_population(keys, [cfg.init] * M, task.n_in, cfg.hidden, task.n_out, [1.0] * M, torch.float64, cell, {})
    x = torch.randn(M, T, B, task.n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    whole = population_forward(params, x, cell=cell, readout_steps=2)
    per_model = T * B * trainer.get_cell(cell).state_width * cfg.hidden * 8
    for models in (1, 3):
        monkeypatch.setattr(trainer, "VALIDATION_BLOCK_BYTES", models * per_model)
        torch.testing.assert_close(trainer._blocked_forward(params, x, cfg, 2), whole, rtol=1e-12, atol=1e-12)
