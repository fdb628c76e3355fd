"""The fused Elman training step (rnnlab.train.fused_step, rnnlab::elman_train_step) against the
trainer's autograd path, update by update, with and without Pascanu's Ω (α > 0, mixed with α = 0
models); population = alone and thread counts bit for bit; every compiled ISA; bad inputs. The
helpers take the cell (``cell=``), so that other cells' fused steps (test_fused_step_gru.py) are
checked by the same code."""
from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

import rnnlab
from rnnlab import cells
from rnnlab.cells import get_cell
from rnnlab.nn.population import make_sink, population_forward
from rnnlab.tasks import rng
from rnnlab.tasks.base import Batch
from rnnlab.train import RunConfig
from rnnlab.train.clipping import clip_gradients_
from rnnlab.train.fused_step import FusedStep, unsupported
from rnnlab.train.init import init_population
from rnnlab.train.optim import init_state, update_
from rnnlab.train.schedules import cosine_lr, decayed_alpha

from helpers_ops import LOWER_ISAS, run_under_isa

# (task, task_kwargs): cross-entropy at the last step, cross-entropy at every step, MSE at the
# last step, ½·MSE at every step
TASKS = [("torder", {"min_length": 8, "max_length": 14}), ("mem5", {"min_length": 4, "max_length": 7}),
         ("add", {"min_length": 8, "max_length": 14}), ("sysid", {"min_length": 9, "max_length": 9})]
OPTIMIZERS = ["sgd", "momentum", "adam"]
HYPER = ("lr", "lr_min", "momentum", "beta1", "beta2", "clip", "alpha", "alpha_decay")


def omega_fields(s: int) -> dict:
    """The regularizer of seed s in the Ω populations: α = 0, 1.5 or 4 (every population of three
    or more consecutive seeds mixes α = 0 with α > 0), α decaying as 1/(1 + t/2) for odd seeds."""
    return dict(alpha=(0.0, 1.5, 4.0)[s % 3], alpha_decay=2.0 if s % 2 else None)


@pytest.fixture(autouse=True)
def row_layout(monkeypatch):
    """These tests run the row layout (each model vectorized over H) at every H; the lanes layout
    that the op picks for small H has its own, tests/test_fused_step_lanes.py."""
    monkeypatch.setenv("RNNLAB_TRAIN_LAYOUT", "rows")


def make_population(task: str, task_kwargs: dict, optimizer: str, clip: bool, dtype=torch.float64, M: int = 3,
                    hidden: int = 7, seeds=None, cell: str = "elman", omega: bool = False, **overrides):
    """Configs, task, params, optimizer state and [M] hyper-parameters as the trainer builds them;
    ``omega``: with the regularizers of :func:`omega_fields`."""
    seeds = list(range(M)) if seeds is None else seeds
    configs = [RunConfig(task=task, task_kwargs=task_kwargs, cell=cell, hidden=hidden, optimizer=optimizer, batch_size=5,
                         lr=0.05 * (1 + s % 3), lr_min=0.001 * s, momentum=0.5 + 0.1 * (s % 3), beta1=0.8 + 0.05 * (s % 3),
                         clip=(0.3 * (1 + s % 3) if s % 4 != 3 else None) if clip else None, seed=s,
                         dtype={torch.float32: "float32", torch.float64: "float64"}[dtype], max_updates=6,
                         **(omega_fields(s) if omega else {}), **overrides)
               for s in seeds]
    task_obj = configs[0].make_task()
    keys = rng.seed_keys([c.seed for c in configs], "cpu")
    ctx = task_obj.setup(keys)
    params = init_population(keys, [c.init for c in configs], task_obj.n_in, hidden, task_obj.n_out,
                             [c.init_gain for c in configs], dtype, cell, configs[0].cell_kwargs)
    state = init_state(optimizer, params)
    hyper = {n: torch.tensor([math.inf if getattr(c, n) is None else float(getattr(c, n)) for c in configs], dtype=dtype)
             for n in HYPER}
    return configs, task_obj, keys, ctx, params, state, hyper


def autograd_update(configs, task, params, state, hyper, batch, k):
    """The trainer's autograd path for one update (trainer.train_population's loop body): the
    loss, the clipping statistics and the sink's ‖δ_t‖², Ω and ‖v_t‖²."""
    cfg = configs[0]
    T = batch.length
    recurrent = get_cell(cfg.cell).recurrent_weight
    p = {n: v.detach().requires_grad_(True) for n, v in params.items()}
    sink = make_sink(len(configs), T, cfg.batch_size, batch.x.dtype, "cpu")
    alpha = decayed_alpha(hyper["alpha"], hyper["alpha_decay"], k)
    y = population_forward(p, batch.x, readout_steps=task.readout_steps(T), sink=sink, cell=cfg.cell,
                           reg_weight=alpha if bool((alpha > 0).any()) else None, **cfg.forward_options())
    loss = task.loss(y, batch)
    loss.sum().backward()
    grads = {n: v.grad for n, v in p.items()}
    any_clip = any(c.clip is not None for c in configs)
    stats = clip_gradients_(grads, params[recurrent] if recurrent else None, hyper["clip"] if any_clip else None,
                            cfg.safeguard, weight_hh_name=recurrent)
    lr = hyper["lr"] if cfg.lr_schedule == "constant" else cosine_lr(hyper["lr"], hyper["lr_min"], k, cfg.max_updates)
    update_(cfg.optimizer, params, grads, state, lr, momentum=hyper["momentum"], beta1=hyper["beta1"],
            beta2=hyper["beta2"], eps=cfg.eps, step=k + 1)
    return loss.detach(), stats, sink.delta_sq.detach(), sink.omega.detach(), sink.v_sq.detach()


def batch_at(configs, task, keys, ctx, k, dtype):
    T = task.train_length(configs[0].length_seed, k)
    return task.sample(rng.derive(keys, "train", k), ctx, T, configs[0].batch_size, dtype)


def check_against_reference(task, task_kwargs, optimizer, clip, schedule="constant", dtype=torch.float64,
                            updates=4, tol=1e-12, nonlinearity=None, cell="elman", omega=False, steps=None, **overrides):
    """Fused and autograd populations trained side by side agree after every update; ``steps``:
    the batches cut to their first ``steps`` steps; ``overrides``: of :func:`make_population`."""
    configs, task_obj, keys, ctx, params, state, hyper = make_population(task, task_kwargs, optimizer, clip, dtype,
                                                                         lr_schedule=schedule, nonlinearity=nonlinearity,
                                                                         cell=cell, omega=omega, **overrides)
    assert unsupported(configs, task_obj, torch.device("cpu")) is None
    fused = FusedStep(configs, task_obj)
    ref_params = {n: v.clone() for n, v in params.items()}
    ref_state = {n: v.clone() for n, v in state.items()}
    close = dict(rtol=tol, atol=tol)
    for k in range(updates):
        batch = batch_at(configs, task_obj, keys, ctx, k, dtype)
        if steps is not None:
            batch = Batch(batch.x[:, :steps].contiguous(), batch.target)
        loss, stats, delta_sq, omega = fused(params, state, hyper, batch, k)
        ref_loss, ref_stats, ref_delta_sq, ref_omega, ref_v_sq = autograd_update(configs, task_obj, ref_params, ref_state,
                                                                                 hyper, batch, k)
        torch.testing.assert_close(loss, ref_loss, **close, msg=lambda m: f"loss at update {k}: {m}")
        torch.testing.assert_close(stats.norm, ref_stats.norm, **close, msg=lambda m: f"norm at update {k}: {m}")
        assert torch.equal(stats.clipped, ref_stats.clipped) and torch.equal(stats.fallback, ref_stats.fallback)
        torch.testing.assert_close(delta_sq, ref_delta_sq, rtol=tol, atol=tol * float(ref_delta_sq.abs().max()))
        torch.testing.assert_close(fused.v_sq, ref_v_sq, rtol=tol, atol=tol * float(ref_v_sq.abs().max()),
                                   msg=lambda m: f"v_sq at update {k}: {m}")
        torch.testing.assert_close(omega, ref_omega, **close, msg=lambda m: f"omega at update {k}: {m}")
        for n in params:
            torch.testing.assert_close(params[n], ref_params[n], **close, msg=lambda m: f"{n} at update {k}: {m}")
        for n in state:
            torch.testing.assert_close(state[n], ref_state[n], **close, msg=lambda m: f"{n} at update {k}: {m}")
    return params


@pytest.mark.parametrize("task,task_kwargs", TASKS, ids=[t for t, _ in TASKS])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
@pytest.mark.parametrize("omega", [False, True], ids=["alpha0", "omega"])
def test_fused_equals_autograd_float64(task, task_kwargs, optimizer, clip, omega):
    check_against_reference(task, task_kwargs, optimizer, clip, omega=omega)


def test_omega_moves_w_hh_only_and_alpha0_models_take_the_plain_update():
    """The Ω populations above test something: α > 0 changes W_hh (and nothing else, for one
    update) well above the 1e-12 tolerance, and the α = 0 model beside them gets the update of a
    population without any α, bit for bit."""
    runs = {}
    for omega in (False, True):
        configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "sgd", False, omega=omega)
        FusedStep(configs, task)(params, state, hyper, batch_at(configs, task, keys, ctx, 0, torch.float64), 0)
        runs[omega] = params
    assert [c.alpha for c in configs] == [0.0, 1.5, 4.0]
    for n in runs[True]:
        assert torch.equal(runs[True][n][0], runs[False][n][0]), n
        assert torch.equal(runs[True][n][1:], runs[False][n][1:]) == (n != "weight_hh"), n
    assert float((runs[True]["weight_hh"][1:] - runs[False]["weight_hh"][1:]).abs().amax()) > 1e-5


def test_omega_at_one_step():
    # T = 1: Ω has the step t = 0 only (v_0 = u_0 W_hh) and ∂W_hh nothing else
    check_against_reference("torder", TASKS[0][1], "adam", True, omega=True, updates=2, steps=1)


def test_omega_without_valid_steps():
    """A model whose ‖δ_t‖² is below the bound at every step (W_out = 0: δ_t = 0) has N = 0 and no
    Ω gradient, as on the autograd path."""
    configs, task, keys, ctx, params, state, hyper = make_population("add", TASKS[2][1], "momentum", True, omega=True)
    params["weight_out"][2].zero_()
    ref_params = {n: v.clone() for n, v in params.items()}
    ref_state = {n: v.clone() for n, v in state.items()}
    batch = batch_at(configs, task, keys, ctx, 0, torch.float64)
    _, _, delta_sq, omega = FusedStep(configs, task)(params, state, hyper, batch, 0)
    autograd_update(configs, task, ref_params, ref_state, hyper, batch, 0)
    assert float(delta_sq[2].amax()) == 0.0 and float(omega[2]) == 0.0
    for n in params:
        torch.testing.assert_close(params[n], ref_params[n], rtol=1e-12, atol=1e-12)


def test_clipping_fires_in_the_reference_cases():
    configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "sgd", True)
    _, stats, _, _ = FusedStep(configs, task)(params, state, hyper, batch_at(configs, task, keys, ctx, 0, torch.float64), 0)
    assert stats.clipped.any() and not stats.clipped.all()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cosine_schedule(optimizer):
    check_against_reference("add", TASKS[2][1], optimizer, True, schedule="cosine", updates=6)


@pytest.mark.parametrize("nonlinearity", ["relu", "sigmoid", "identity"])
def test_other_activations(nonlinearity):
    check_against_reference("torder", TASKS[0][1], "momentum", True, nonlinearity=nonlinearity, updates=3, omega=True)


@pytest.mark.parametrize("omega", [False, True], ids=["alpha0", "omega"])
def test_float32_close_to_autograd(omega):
    check_against_reference("mem5", TASKS[1][1], "adam", True, dtype=torch.float32, updates=3, tol=2e-5, omega=omega)


def check_safeguard(cell="elman", readout="weight_out", **overrides):
    """A model whose gradient is not finite gets the safeguard's update (W_hh decayed, or for a
    cell without W_hh a zero gradient), the others their update; ``readout``: a read-out weight
    of the cell, poisoned with a NaN."""
    configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "momentum", True, cell=cell,
                                                                     **overrides)
    params[readout][1, 0, 0] = math.nan
    ref_params = {n: v.clone() for n, v in params.items()}
    ref_state = {n: v.clone() for n, v in state.items()}
    batch = batch_at(configs, task, keys, ctx, 0, torch.float64)
    _, stats, _, _ = FusedStep(configs, task)(params, state, hyper, batch, 0)
    _, ref_stats, _, _, _ = autograd_update(configs, task, ref_params, ref_state, hyper, batch, 0)
    assert stats.fallback.tolist() == [False, True, False] == ref_stats.fallback.tolist()
    for n in params:
        torch.testing.assert_close(params[n], ref_params[n], rtol=1e-12, atol=1e-12, equal_nan=True)


def test_safeguard_decays_w_hh_of_a_non_finite_model():
    check_safeguard()


def _run_fused(seeds, updates=3, task=TASKS[0], optimizer="adam", pick=None, hidden=7, cell="elman", omega=False,
               dtype=torch.float64, **overrides):
    """Params, state and per-update outputs of the fused step on the models ``seeds``; with
    ``pick``, only the models at those positions, on their slices of the same batches (a task's
    data generator need not be bitwise the same across population sizes, the kernel must)."""
    configs, task_obj, keys, ctx, params, state, hyper = make_population(task[0], task[1], optimizer, True, dtype,
                                                                         seeds=seeds, M=len(seeds), hidden=hidden,
                                                                         cell=cell, omega=omega, **overrides)
    batches = [batch_at(configs, task_obj, keys, ctx, k, dtype) for k in range(updates)]
    if pick is not None:
        configs = [configs[j] for j in pick]
        params, state, hyper = ({n: v[pick].contiguous() for n, v in d.items()} for d in (params, state, hyper))
        batches = [Batch(b.x[pick].contiguous(), b.target[pick].contiguous()) for b in batches]
    fused = FusedStep(configs, task_obj)
    outs = []
    for k, batch in enumerate(batches):
        loss, stats, delta_sq, omega = fused(params, state, hyper, batch, k)
        outs.append((loss, stats.norm, delta_sq, omega))
    return params, state, outs


def check_population_equals_alone(task, cell="elman", omega=False, **overrides):
    """Each model of a population updates bitwise as it does alone or packed otherwise."""
    seeds = [4, 9, 2, 7]  # with omega: α = 1.5, 0, 4, 1.5
    params, state, outs = _run_fused(seeds, task=task, cell=cell, omega=omega, **overrides)
    for j, seed in enumerate(seeds):
        alone_params, alone_state, alone_outs = _run_fused(seeds, task=task, pick=[j], cell=cell, omega=omega,
                                                           **overrides)
        for n in params:
            assert torch.equal(params[n][j], alone_params[n][0]), (seed, n)
        for n in state:
            assert torch.equal(state[n][j], alone_state[n][0]), (seed, n)
        for out, alone in zip(outs, alone_outs):
            for a, b in zip(out, alone):
                assert torch.equal(a[j], b[0]), seed
    # another packing: models 0 and 2 in the other order, without the others
    other, _, _ = _run_fused(seeds, task=task, pick=[2, 0], cell=cell, omega=omega, **overrides)
    assert all(torch.equal(other[n][1], params[n][0]) and torch.equal(other[n][0], params[n][2]) for n in params)


@pytest.mark.parametrize("task", [TASKS[1], TASKS[3]], ids=["mem5", "sysid"])
@pytest.mark.parametrize("omega", [False, True], ids=["alpha0", "omega"])
def test_population_equals_alone_bitwise(task, omega):
    check_population_equals_alone(task, omega=omega)


def check_thread_counts_agree(cell="elman", omega=False, **overrides):
    """One and two threads give bitwise the same updates."""
    # big enough (> 2^20 multiply-adds per call) that the op opens a parallel region (tiles.h)
    kw = dict(task=("torder", {"min_length": 40, "max_length": 40}), hidden=32, cell=cell, omega=omega, **overrides)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run_fused([0, 1, 2, 3, 5], **kw)
        torch.set_num_threads(2)
        assert rnnlab._C.parallel_threads_used() == 2
        two = _run_fused([0, 1, 2, 3, 5], **kw)
    finally:
        torch.set_num_threads(threads)
    for n in one[0]:
        assert torch.equal(one[0][n], two[0][n]), n
    for a, b in zip(one[2], two[2]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_thread_counts_agree_bitwise():
    check_thread_counts_agree(omega=True)


@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_isa(isa):
    here = os.path.dirname(os.path.abspath(__file__))
    run_under_isa(isa, f"import sys; sys.path.insert(0, {here!r}); import test_fused_step as t\n"
                       "for task, kw in t.TASKS[:3]:\n"
                       "    for opt, clip, omega in itertools.product(t.OPTIMIZERS, (True, False), (False, True)):\n"
                       "        t.check_against_reference(task, kw, opt, clip, updates=2, omega=omega)\n"
                       "for omega in (False, True):\n"
                       "    t.check_against_reference('mem5', t.TASKS[1][1], 'sgd', True, dtype=torch.float32, updates=2,\n"
                       "                              tol=2e-5, omega=omega)\n")


def test_fallback_reasons(monkeypatch):
    cpu = torch.device("cpu")
    base = dict(task="torder", hidden=4)
    task = RunConfig(**base).make_task()
    assert unsupported([RunConfig(**base)], task, cpu) is None
    monkeypatch.setitem(cells.REGISTRY, "gru", dataclasses.replace(cells.REGISTRY["gru"], fused_step=None))
    assert "cell" in unsupported([RunConfig(**base, cell="gru")], task, cpu)
    assert "layers" in unsupported([RunConfig(**base, cell_kwargs={"num_layers": 2})], task, cpu)
    assert unsupported([RunConfig(**base), RunConfig(**base, alpha=0.5, alpha_decay=10.0)], task, cpu) is None
    assert "CPU" in unsupported([RunConfig(**base)], task, torch.device("meta"))


# ---- bad inputs ------------------------------------------------------------------------------

def op_args(cell="elman"):
    """Valid keyword arguments of ``cell``'s fused op (momentum, cross-entropy at the last step)."""
    configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "momentum", True, cell=cell)
    batch = batch_at(configs, task, keys, ctx, 0, torch.float64)
    fused = FusedStep(configs, task)
    return dict(x=batch.x.contiguous(), target=batch.target.contiguous(), params=[params[n] for n in fused.param_names],
                state=[state[f"buf.{n}"] for n in fused.param_names], lr=hyper["lr"], lr_min=None, cosine_factor=0.0,
                momentum=hyper["momentum"], beta1=None, beta2=None, clip=hyper["clip"], loss="cross_entropy",
                loss_scale=1.0, optimizer="momentum", safeguard=True, eps=1e-8, step=1, readout_steps=1,
                **fused.cell_options)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(x=a["x"].float()), "params\\[0\\] \\(weight_ih\\) must have dtype"),
    (lambda a: a.update(x=a["x"][..., 0].contiguous()), "x must have shape"),
    (lambda a: a.update(target=a["target"].double()), "target must be int64"),
    (lambda a: a.update(target=a["target"].clamp(max=0) + 99), "target: class index out of range"),
    (lambda a: a.update(readout_steps=0), "readout_steps must be in"),
    (lambda a: a.update(params=a["params"][:4]), "params must be"),
    (lambda a: a.update(params=[a["params"][0].transpose(1, 2)] + a["params"][1:]), "params\\[0\\] \\(weight_ih\\) must have shape"),
    (lambda a: a.update(state=a["state"][:3]), "state must hold 5 tensors"),
    (lambda a: a.update(momentum=None), "momentum is required"),
    (lambda a: a.update(optimizer="adam", state=a["state"] * 2), "beta1 is required"),
    (lambda a: a.update(lr=a["lr"][:2]), "lr must have shape"),
    (lambda a: a.update(clip=a["clip"].float()), "clip must have dtype"),
    (lambda a: a.update(optimizer="rmsprop"), "optimizer must be one of"),
    (lambda a: a.update(loss="hinge"), "loss must be"),
    (lambda a: a.update(nonlinearity="gelu"), "activation must be one of"),
    (lambda a: a.update(step=0), "step must be >= 1"),
    (lambda a: a.update(reg_weight=a["lr"][:2].clone()), "reg_weight must have shape \\[M\\]"),
    (lambda a: a.update(reg_weight=a["lr"].float()), "reg_weight must have dtype"),
    (lambda a: a.update(reg_weight=a["lr"].repeat_interleave(2)[::2]), "reg_weight must be contiguous"),
    (lambda a: a.update(reg_weight=a["lr"].view(3, 1)), "reg_weight must have shape"),
])
def test_bad_inputs_name_the_argument(change, message):
    args = op_args()
    change(args)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        torch.ops.rnnlab.elman_train_step(**args)


# ---- the trainer -----------------------------------------------------------------------------

def _trainer_configs(omega: bool = False, **overrides):
    fields = dict(task="torder", task_kwargs={"min_length": 8, "max_length": 12}, hidden=6, batch_size=4, optimizer="adam",
                  lr_schedule="cosine", lr_min=0.001, dtype="float64", max_updates=12, val_every=4, val_size=20,
                  val_chunk=20, stop_at_success=False)
    return [RunConfig(**{**fields, **overrides}, lr=0.01 * (s + 1), clip=0.5 if s != 1 else None, seed=s,
                      **(omega_fields(s) if omega else {})) for s in range(3)]


def check_trainer_matches_autograd(monkeypatch, omega=False, **overrides):
    """train_population takes the fused step on every update and ends as on its autograd path."""
    from rnnlab.train import train_population, trainer

    calls = []

    class Spy(FusedStep):
        def __call__(self, *args):
            calls.append(args[-1])
            return super().__call__(*args)

    monkeypatch.setattr(trainer, "FusedStep", Spy)
    fused = train_population(_trainer_configs(omega, **overrides))
    assert calls == list(range(12))
    monkeypatch.setattr(trainer, "unsupported", lambda *args: "the autograd path, forced by the test")
    ref = train_population(_trainer_configs(omega, **overrides))
    assert len(calls) == 12
    for a, b in zip(fused, ref):
        for n in a.params:
            torch.testing.assert_close(a.params[n], b.params[n], rtol=1e-10, atol=1e-12)
        for key in ("train_loss", "grad_norm", "omega", "val_loss"):
            torch.testing.assert_close(torch.tensor(a.history[key]), torch.tensor(b.history[key]), rtol=1e-10, atol=1e-12)
        assert (a.veg_steps, a.vanishing_steps, a.exploding_steps) == (b.veg_steps, b.vanishing_steps, b.exploding_steps)
        assert a.clip_fraction == b.clip_fraction and a.fallbacks == b.fallbacks


@pytest.mark.parametrize("omega", [False, True], ids=["alpha0", "omega"])
def test_trainer_uses_the_fused_step_and_matches_the_autograd_path(monkeypatch, omega):
    check_trainer_matches_autograd(monkeypatch, omega)


def test_trainer_fused_compact_population_matches_the_autograd_path(monkeypatch):
    """Models frozen at success leave a compact population whose updates are written back."""
    from rnnlab.train import train_population, trainer

    configs = [RunConfig(task="torder", task_kwargs={"min_length": 8, "max_length": 10}, hidden=5, batch_size=4,
                         optimizer="momentum", lr=0.05, dtype="float64", max_updates=8, val_every=1, val_size=20,
                         val_chunk=20, success_error=0.7, seed=s) for s in range(6)]
    fused = train_population(configs)
    monkeypatch.setattr(trainer, "unsupported", lambda *args: "the autograd path, forced by the test")
    ref = train_population(configs)
    assert len({r.updates for r in fused}) > 1  # some models froze before others
    for a, b in zip(fused, ref):
        assert a.updates == b.updates
        for n in a.params:
            torch.testing.assert_close(a.params[n], b.params[n], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru", "diag"])
@pytest.mark.parametrize("layout", ["rows", "lanes"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_the_ops_omega_is_omega_from_norms_bitwise(cell, layout, dtype, monkeypatch):
    """Each fused step reports Ω [M] computed in its own parallel region: bit for bit what the
    omega_from_norms op (the autograd path's) makes of the ‖δ_t‖² and ‖v_t‖² it returns, in both
    layouts and for a population mixing α = 0 with α > 0 (two calls, joined)."""
    monkeypatch.setenv("RNNLAB_TRAIN_LAYOUT", layout)
    seeds = range(19)  # more than one group of lanes, the last one partly empty
    alphas = [0.0, 2.0] if get_cell(cell).omega else [0.0]
    configs = [RunConfig(task="torder", task_kwargs={"min_length": 9, "max_length": 9}, cell=cell, hidden=8,
                         clip=1.0, dtype=str(dtype).split(".")[1], seed=s, alpha=alphas[s % len(alphas)]) for s in seeds]
    task = configs[0].make_task()
    keys = rng.seed_keys(list(seeds))
    params = init_population(keys, [c.init for c in configs], task.n_in, 8, task.n_out, [1.0] * len(seeds), dtype, cell,
                             configs[0].cell_kwargs)
    state = init_state("sgd", params)
    hyper = {n: torch.tensor([float(getattr(c, n) or 0.0) for c in configs], dtype=dtype) for n in HYPER}
    step = FusedStep(configs, task)
    batch = task.sample(rng.derive(keys, "train", 0), task.setup(keys), 9, 5, dtype)
    loss, stats, delta_sq, omega = step(params, state, hyper, batch, 0)
    want, _ = torch.ops.rnnlab.omega_from_norms(delta_sq, step.v_sq)
    assert omega.dtype == dtype and torch.equal(omega, want)
    assert bool((want > 0).any())  # Ω is not trivially zero here
