"""The fused LSTM training step (rnnlab::lstm_train_step) against the trainer's autograd path,
update by update, with the helpers of test_fused_step.py; population = alone and thread counts bit
for bit; every compiled ISA; bad inputs; the trainer taking it for an LSTM population."""
from __future__ import annotations

import math
import os

import pytest
import torch

import rnnlab
from rnnlab.nn.population import make_sink, population_forward
from rnnlab.tasks.base import Batch
from rnnlab.train import RunConfig
from rnnlab.train.fused_step import FusedStep, unsupported

from helpers_ops import LOWER_ISAS, run_under_isa
from test_fused_step import (OPTIMIZERS, TASKS, _run_fused, autograd_update, batch_at, check_against_reference,
                             check_trainer_matches_autograd, make_population, op_args,
                             row_layout)  # noqa: F401 (autouse: these tests run the row layout at every H)

LSTM = dict(cell="lstm")


@pytest.mark.parametrize("task,task_kwargs", TASKS, ids=[t for t, _ in TASKS])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
def test_fused_equals_autograd_float64(task, task_kwargs, optimizer, clip):
    check_against_reference(task, task_kwargs, optimizer, clip, **LSTM)


def test_reports_the_sinks_delta_sq_and_v_sq():
    """‖δ_t‖² and ‖v_t‖² [M, T, B] of the op are what the autograd path's GradientSink receives
    (v_t the hidden-state path of ∂L/∂h_{t−1} only), at every step, row and model."""
    args = op_args("lstm")  # the population below, at update 0
    configs, task, keys, ctx, params, _, _ = make_population("torder", TASKS[0][1], "momentum", True, **LSTM)
    batch = batch_at(configs, task, keys, ctx, 0, torch.float64)
    T = batch.length
    sink = make_sink(len(configs), T, configs[0].batch_size, torch.float64, "cpu")
    p = {n: v.requires_grad_(True) for n, v in params.items()}
    task.loss(population_forward(p, batch.x, readout_steps=task.readout_steps(T), sink=sink, cell="lstm"), batch).sum().backward()
    *_, delta_sq, v_sq, _ = torch.ops.rnnlab.lstm_train_step(**args)
    for name, fused, ref in (("delta_sq", delta_sq, sink.delta_sq), ("v_sq", v_sq, sink.v_sq)):
        assert bool((ref > 0).all()), name
        torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12 * float(ref.max()), msg=lambda m: f"{name}: {m}")


def test_clipping_fires_in_the_reference_cases():
    configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "sgd", True, **LSTM)
    _, stats, _, _ = FusedStep(configs, task)(params, state, hyper, batch_at(configs, task, keys, ctx, 0, torch.float64), 0)
    assert stats.clipped.any() and not stats.clipped.all()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cosine_schedule(optimizer):
    check_against_reference("add", TASKS[2][1], optimizer, True, schedule="cosine", updates=6, **LSTM)


# H = 1; 20 and 33 span several panels of W units (W = 16 / 8 in float32 / float64 on AVX-512,
# 8 / 4 on AVX2), the last one partial; T = 1 has no ∂W_hh term (h_0 = 0)
@pytest.mark.parametrize("hidden,task", [(1, TASKS[1]), (20, TASKS[0]), (33, TASKS[3]),
                                         (5, ("torder", {"min_length": 1, "max_length": 1}))],
                         ids=["H1", "H20", "H33", "T1"])
def test_sizes(hidden, task):
    check_against_reference(task[0], task[1], "adam", True, updates=3, hidden=hidden, **LSTM)


def _float32_errors(task, task_kwargs, optimizer, updates=3):
    """Per update, {name: (fused float32 error, autograd float32 error)} against the autograd path
    in float64 run from the same float32 start on the same data (max abs errors, the largest true
    magnitude last)."""
    configs, task_obj, keys, ctx, params, state, hyper = make_population(task, task_kwargs, optimizer, True,
                                                                         torch.float32, **LSTM)
    fused = FusedStep(configs, task_obj)
    ref = ({n: v.clone() for n, v in params.items()}, {n: v.clone() for n, v in state.items()})
    truth = ({n: v.double() for n, v in params.items()}, {n: v.double() for n, v in state.items()})
    hyper64 = {n: v.double() for n, v in hyper.items()}
    errors = []
    for k in range(updates):
        batch = batch_at(configs, task_obj, keys, ctx, k, torch.float32)
        batch64 = Batch(batch.x.double(), batch.target if batch.target.dtype == torch.int64 else batch.target.double())
        loss, stats, delta_sq, _ = fused(params, state, hyper, batch, k)
        ref_loss, ref_stats, ref_delta_sq, *_ = autograd_update(configs, task_obj, *ref, hyper, batch, k)
        true_loss, true_stats, true_delta_sq, *_ = autograd_update(configs, task_obj, *truth, hyper64, batch64, k)
        pairs = {"loss": (loss, ref_loss, true_loss), "norm": (stats.norm, ref_stats.norm, true_stats.norm),
                 "delta_sq": (delta_sq, ref_delta_sq, true_delta_sq)}
        pairs.update({n: (params[n], ref[0][n], truth[0][n]) for n in params})
        pairs.update({n: (state[n], ref[1][n], truth[1][n]) for n in state})
        errors.append({n: (float((a.double() - c).abs().max()), float((b.double() - c).abs().max()), float(c.abs().max()))
                       for n, (a, b, c) in pairs.items()})
    return errors


@pytest.mark.parametrize("task,optimizer", [(TASKS[1], "adam"), (TASKS[2], "momentum"), (TASKS[0], "sgd")],
                         ids=["mem5-adam", "add-momentum", "torder-sgd"])
def test_float32_as_accurate_as_the_autograd_path(task, optimizer):
    # The tolerance is derived from the autograd path's own float32 error against float64 (both
    # round in another order, so within a small factor), with a floor of a few float32 ulps of
    # the true magnitude for entries where the autograd path happens to round exactly.
    eps = torch.finfo(torch.float32).eps
    for k, errors in enumerate(_float32_errors(task[0], task[1], optimizer)):
        for name, (fused, ref, scale) in errors.items():
            assert fused <= 4 * ref + 16 * eps * scale, (k, name, fused, ref, scale)


def test_safeguard_decays_w_hh_of_a_non_finite_model():
    configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "momentum", True, **LSTM)
    params["weight_out"][1, 0, 0] = math.nan
    ref_params = {n: v.clone() for n, v in params.items()}
    ref_state = {n: v.clone() for n, v in state.items()}
    batch = batch_at(configs, task, keys, ctx, 0, torch.float64)
    _, stats, _, _ = FusedStep(configs, task)(params, state, hyper, batch, 0)
    _, ref_stats, *_ = autograd_update(configs, task, ref_params, ref_state, hyper, batch, 0)
    assert stats.fallback.tolist() == [False, True, False] == ref_stats.fallback.tolist()
    for n in params:
        torch.testing.assert_close(params[n], ref_params[n], rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("task", [TASKS[1], TASKS[3]], ids=["mem5", "sysid"])
def test_population_equals_alone_bitwise(task):
    seeds = [4, 9, 2, 7]
    params, state, outs = _run_fused(seeds, task=task, **LSTM)
    for j, seed in enumerate(seeds):
        alone_params, alone_state, alone_outs = _run_fused(seeds, task=task, pick=[j], **LSTM)
        for n in params:
            assert torch.equal(params[n][j], alone_params[n][0]), (seed, n)
        for n in state:
            assert torch.equal(state[n][j], alone_state[n][0]), (seed, n)
        for out, alone in zip(outs, alone_outs):
            for a, b in zip(out, alone):
                assert torch.equal(a[j], b[0]), seed
    # another packing, models 0 and 2 in the other order, after a larger model on the same thread
    # (its workspace is reused, not cleared)
    _run_fused([1], task=task, hidden=20, **LSTM)
    other, _, _ = _run_fused(seeds, task=task, pick=[2, 0], **LSTM)
    assert all(torch.equal(other[n][1], params[n][0]) and torch.equal(other[n][0], params[n][2]) for n in params)


def test_thread_counts_agree_bitwise():
    # big enough (> 2^20 multiply-adds per call) that the op opens a parallel region (tiles.h)
    kw = dict(task=("torder", {"min_length": 40, "max_length": 40}), hidden=32, **LSTM)
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


@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_isa(isa):
    here = os.path.dirname(os.path.abspath(__file__))
    run_under_isa(isa, f"import sys; sys.path.insert(0, {here!r}); import test_fused_step as t, test_fused_step_lstm as l\n"
                       "for task, kw in t.TASKS[:3]:\n"
                       "    for opt, clip in itertools.product(t.OPTIMIZERS, (True, False)):\n"
                       "        t.check_against_reference(task, kw, opt, clip, updates=2, cell='lstm')\n"
                       "t.check_against_reference('torder', t.TASKS[0][1], 'adam', True, updates=2, hidden=20, cell='lstm')\n"
                       "l.test_float32_as_accurate_as_the_autograd_path(t.TASKS[1], 'adam')\n")


def test_fallback_reasons():
    cpu = torch.device("cpu")
    base = dict(task="torder", hidden=4, cell="lstm")
    task = RunConfig(**base).make_task()
    assert unsupported([RunConfig(**base)], task, cpu) is None
    assert "layers" in unsupported([RunConfig(**base, cell_kwargs={"num_layers": 2})], task, cpu)
    assert "layers" in unsupported([RunConfig(**base, cell_kwargs={"double": True})], task, cpu)
    assert "CPU" in unsupported([RunConfig(**base)], task, torch.device("meta"))


# ---- bad inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(x=a["x"].float()), "params\\[0\\] \\(weight_ih\\) must have dtype"),
    (lambda a: a.update(x=a["x"][..., :2].contiguous()), "params\\[0\\] \\(weight_ih\\) must have shape \\[M, 4H, I\\]"),
    (lambda a: a.update(target=a["target"].clamp(max=0) + 99), "target: class index out of range"),
    (lambda a: a.update(readout_steps=0), "readout_steps must be in"),
    (lambda a: a.update(params=a["params"][:4]), "params must be \\[weight_ih, weight_hh, bias, weight_out, bias_out\\]"),
    (lambda a: a.update(params=[a["params"][0], a["params"][1][:, :-1]] + a["params"][2:]),
     "params\\[1\\] \\(weight_hh\\) must have shape \\[M, 4H, H\\]"),
    (lambda a: a.update(params=[a["params"][0], a["params"][1][..., 0]] + a["params"][2:]),
     "params\\[1\\] \\(weight_hh\\) must have shape \\[M, 4H, H\\]"),
    (lambda a: a.update(params=a["params"][:2] + [a["params"][2][:, :-4].contiguous()] + a["params"][3:]),
     "params\\[2\\] \\(bias\\) must have shape \\[M, 4H\\]"),
    (lambda a: a.update(params=a["params"][:3] + [a["params"][3].transpose(1, 2)] + a["params"][4:]),
     "params\\[3\\] \\(weight_out\\) must have shape \\[M, O, H\\]"),
    (lambda a: a.update(state=a["state"][:3]), "state must hold 5 tensors"),
    (lambda a: a.update(state=[s[:, :4] for s in a["state"]]), "state\\[0\\] must have shape \\[M, 4H, I\\]"),
    (lambda a: a.update(momentum=None), "momentum is required"),
    (lambda a: a.update(lr=a["lr"][:2]), "lr must have shape"),
    (lambda a: a.update(optimizer="rmsprop"), "optimizer must be one of"),
    (lambda a: a.update(loss="hinge"), "loss must be"),
    (lambda a: a.update(step=0), "step must be >= 1"),
])
def test_bad_inputs_name_the_argument(change, message):
    args = op_args("lstm")
    change(args)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        torch.ops.rnnlab.lstm_train_step(**args)


def test_the_op_has_no_derivative():
    args = op_args("lstm")
    args["x"] = args["x"].requires_grad_(True)
    loss = torch.ops.rnnlab.lstm_train_step(**args)[0]
    with pytest.raises(RuntimeError, match="rnnlab::lstm_train_step"):
        loss.sum().backward()


# ---- the trainer -----------------------------------------------------------------------------

def test_trainer_uses_the_fused_step_and_matches_the_autograd_path(monkeypatch):
    check_trainer_matches_autograd(monkeypatch, **LSTM)
