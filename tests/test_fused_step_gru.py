"""The fused GRU training step (rnnlab::gru_train_step) against the trainer's autograd path,
update by update, through the cell-generic helpers of test_fused_step.py: float64 to ~1e-12 for
every optimizer x clipping x loss, float32 within a derived rounding bound, population = alone and
thread counts bit for bit, every compiled ISA, bad inputs, and the trainer taking it."""
from __future__ import annotations

import os

import pytest
import torch

from rnnlab.train.fused_step import FusedStep

from helpers_ops import LOWER_ISAS, run_under_isa
from test_fused_step import (OPTIMIZERS, TASKS, autograd_update, batch_at, check_against_reference,
                             check_population_equals_alone, check_safeguard, check_thread_counts_agree,
                             check_trainer_matches_autograd, make_population, op_args,
                             row_layout)  # noqa: F401 (autouse: these tests run the row layout at every H)
from test_population_elman import float32_rounding_bound

CELL = "gru"


@pytest.mark.parametrize("task,task_kwargs", TASKS, ids=[t for t, _ in TASKS])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
def test_fused_equals_autograd_float64(task, task_kwargs, optimizer, clip):
    check_against_reference(task, task_kwargs, optimizer, clip, cell=CELL)


def test_clipping_fires_in_the_reference_cases():
    # mem5 and sysid clip some models and not others at the first update; torder and add clip all
    configs, task, keys, ctx, params, state, hyper = make_population("mem5", TASKS[1][1], "sgd", True, cell=CELL)
    _, stats, _, _ = FusedStep(configs, task)(params, state, hyper, batch_at(configs, task, keys, ctx, 0, torch.float64), 0)
    assert stats.clipped.any() and not stats.clipped.all()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cosine_schedule(optimizer):
    check_against_reference("add", TASKS[2][1], optimizer, True, schedule="cosine", updates=6, cell=CELL)


def test_longer_sequences_and_wider_state():
    """H = 20 (a partial vector on every ISA) over T = 30 steps."""
    check_against_reference("torder", {"min_length": 30, "max_length": 30}, "adam", True, updates=3, cell=CELL)


def test_safeguard_decays_w_hh_of_a_non_finite_model():
    check_safeguard(CELL)


def check_float32_within_the_rounding_bound(optimizer: str, updates: int = 3) -> None:
    """Fused and autograd float32 populations trained side by side stay within
    test_population_elman.float32_rounding_bound: the two sum the same products in different orders
    (the fused step projects the input inside the recurrence, sums weight gradients by its own
    GEMMs), which is what that bound covers. SGD and momentum only: Adam divides each gradient entry
    by its own running scale, so it has no such bound."""
    configs, task, keys, ctx, params, state, hyper = make_population("mem5", TASKS[1][1], optimizer, True, torch.float32,
                                                                     cell=CELL)
    fused = FusedStep(configs, task)
    ref_params = {n: v.clone() for n, v in params.items()}
    ref_state = {n: v.clone() for n, v in state.items()}
    for k in range(updates):
        batch = batch_at(configs, task, keys, ctx, k, torch.float32)
        fused(params, state, hyper, batch, k)
        autograd_update(configs, task, ref_params, ref_state, hyper, batch, k)
    for m, c in enumerate(configs):
        weight_max = max(v[m].abs().max().item() for v in ref_params.values())
        bound = float32_rounding_bound(c, updates, task.max_length * c.batch_size, weight_max)
        for n, v in ref_params.items():
            torch.testing.assert_close(params[n][m], v[m], rtol=0, atol=bound, msg=lambda msg: f"model {m} {n}: {msg}")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_float32_within_the_rounding_bound(optimizer):
    check_float32_within_the_rounding_bound(optimizer)


@pytest.mark.parametrize("task", [TASKS[1], TASKS[3]], ids=["mem5", "sysid"])
def test_population_equals_alone_bitwise(task):
    check_population_equals_alone(task, cell=CELL)


def test_thread_counts_agree_bitwise():
    check_thread_counts_agree(cell=CELL)


@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_isa(isa):
    here = os.path.dirname(os.path.abspath(__file__))
    run_under_isa(isa, f"import sys; sys.path.insert(0, {here!r}); import test_fused_step as t, test_fused_step_gru as g\n"
                       "for task, kw in t.TASKS:\n"
                       "    for opt, clip in itertools.product(t.OPTIMIZERS, (True, False)):\n"
                       "        t.check_against_reference(task, kw, opt, clip, updates=2, cell='gru')\n"
                       "t.check_against_reference('torder', {'min_length': 30, 'max_length': 30}, 'adam', True, updates=2,"
                       " cell='gru')\n"
                       "g.check_float32_within_the_rounding_bound('momentum', updates=2)\n")


# ---- bad inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(x=a["x"].float()), "params\\[0\\] \\(weight_ih\\) must have dtype"),
    (lambda a: a.update(x=a["x"][..., 0].contiguous()), "x must have shape"),
    (lambda a: a.update(target=a["target"].clamp(max=0) + 99), "target: class index out of range"),
    (lambda a: a.update(readout_steps=99), "readout_steps must be in"),
    (lambda a: a.update(params=a["params"][:5]), "params must be \\[weight_ih, weight_hh, bias, bias_hn,"),
    (lambda a: a.update(params=[a["params"][0].transpose(1, 2)] + a["params"][1:]),
     "params\\[0\\] \\(weight_ih\\) must have shape \\[M, 3H, I\\]"),
    (lambda a: a.update(params=a["params"][:1] + [a["params"][1].transpose(1, 2)] + a["params"][2:]),
     "params\\[1\\] \\(weight_hh\\) must have shape \\[M, 3H, H\\]"),
    (lambda a: a.update(params=a["params"][:1] + [a["params"][1][0]] + a["params"][2:]),
     "params\\[1\\] \\(weight_hh\\) must have shape \\[M, 3H, H\\]"),
    (lambda a: a.update(params=a["params"][:2] + [a["params"][2][:, :7]] + a["params"][3:]),
     "params\\[2\\] \\(bias\\) must have shape \\[M, 3H\\]"),
    (lambda a: a.update(params=a["params"][:3] + [a["params"][2][:, :8].contiguous()] + a["params"][4:]),
     "params\\[3\\] \\(bias_hn\\) must have shape \\[M, H\\]"),
    (lambda a: a.update(params=a["params"][:5] + [a["params"][5].float()]), "params\\[5\\] \\(bias_out\\) must have dtype"),
    (lambda a: a.update(state=a["state"][:5]), "state must hold 6 tensors"),
    (lambda a: a.update(state=a["state"][:3] + [a["state"][2]] + a["state"][4:]), "state\\[3\\] must have shape \\[M, H\\]"),
    (lambda a: a.update(momentum=None), "momentum is required"),
    (lambda a: a.update(optimizer="adam", state=a["state"] * 2), "beta1 is required"),
    (lambda a: a.update(loss="squared_error"), "target must have dtype"),
])
def test_bad_inputs_name_the_argument(change, message):
    args = op_args(CELL)
    change(args)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        torch.ops.rnnlab.gru_train_step(**args)


# ---- the trainer -----------------------------------------------------------------------------

def test_trainer_uses_the_fused_step_and_matches_the_autograd_path(monkeypatch):
    check_trainer_matches_autograd(monkeypatch, cell=CELL)
