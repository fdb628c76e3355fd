"""The fused diagonal (LRU) training step (rnnlab::diag_train_step) against the trainer's autograd
path, update by update, through the cell-generic helpers of test_fused_step.py: float64 to ~1e-12
for every parametrization × gamma option × optimizer × clipping × loss (‖δ_t‖² and ‖v_t‖²
against the gradient sink's included), float32 within a derived rounding bound, the safeguard of a
cell without W_hh, population = alone and thread counts bit for bit, every compiled ISA, bad
inputs, and the trainer taking it."""
from __future__ import annotations

import itertools
import os

import pytest
import torch

from rnnlab.nn.lru import GAMMAS, PARAMETRIZATIONS
from rnnlab.train import RunConfig
from rnnlab.train.fused_step import FusedStep, unsupported

from helpers_ops import LOWER_ISAS, run_under_isa
from test_fused_step import (OPTIMIZERS, TASKS, autograd_update, batch_at, check_against_reference,
                             check_population_equals_alone, check_safeguard, check_thread_counts_agree,
                             check_trainer_matches_autograd, make_population, op_args)
from test_population_elman import float32_rounding_bound

CELL = "diag"
# The "polar" and "plain" λ are not kept inside the unit disk: from the default ring (|λ| up to 1)
# a few Adam steps of 0.15 take some out, where "fixed" γ is NaN on both paths (the safeguard's
# case). Their populations start at |λ| ≤ 0.3, which three such steps cannot leave.
VARIANTS = [{"parametrization": p, "gamma": g, **({"r_max": 0.3} if p in ("polar", "plain") else {})}
            for p, g in itertools.product(PARAMETRIZATIONS, GAMMAS)]
VARIANT_IDS = [f"{v['parametrization']}-{v['gamma']}" for v in VARIANTS]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("task,task_kwargs", TASKS, ids=[t for t, _ in TASKS])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
def test_fused_equals_autograd_float64(variant, task, task_kwargs, optimizer, clip):
    check_against_reference(task, task_kwargs, optimizer, clip, cell=CELL, cell_kwargs=variant, updates=3)


def test_every_variant_takes_the_fused_step():
    cpu = torch.device("cpu")
    for variant in VARIANTS:
        configs = [RunConfig(task="torder", hidden=4, cell=CELL, cell_kwargs=variant)]
        assert unsupported(configs, configs[0].make_task(), cpu) is None, variant


def test_clipping_fires_in_the_reference_cases():
    """The diagonal populations above clip every model (norms 1–9 against τ ≤ 0.9); a fourth
    model without clipping (τ = inf) beside clipped ones gets its own update."""
    configs, task, keys, ctx, params, state, hyper = make_population("mem5", TASKS[1][1], "sgd", True, cell=CELL, M=4)
    _, stats, _, _ = FusedStep(configs, task)(params, state, hyper, batch_at(configs, task, keys, ctx, 0, torch.float64), 0)
    assert stats.clipped.tolist() == [True, True, True, False]
    check_against_reference("mem5", TASKS[1][1], "momentum", True, cell=CELL, M=4, updates=3)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cosine_schedule(optimizer):
    check_against_reference("add", TASKS[2][1], optimizer, True, schedule="cosine", updates=6, cell=CELL)


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=[VARIANT_IDS[0], VARIANT_IDS[-1]])
def test_longer_sequences_and_wider_state(variant):
    """N = 20 (several column blocks, a partial one on every ISA) over T = 30 steps."""
    check_against_reference("torder", {"min_length": 30, "max_length": 30}, "adam", True, updates=3, cell=CELL,
                            hidden=20, cell_kwargs=variant)


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=[VARIANT_IDS[0], VARIANT_IDS[-1]])
def test_safeguard_zeroes_the_gradient_of_a_non_finite_model(variant):
    check_safeguard(CELL, readout="C_re", cell_kwargs=variant)


def check_float32_within_the_rounding_bound(optimizer: str, updates: int = 3, **overrides) -> None:
    """Fused and autograd float32 populations trained side by side stay within
    test_population_elman.float32_rounding_bound: the two sum the same products in different orders
    (the fused step projects the input inside the recurrence and sums its gradients over steps and
    rows in its own order), which is what that bound covers. SGD and momentum only: Adam divides
    each gradient entry by its own running scale, so it has no such bound."""
    configs, task, keys, ctx, params, state, hyper = make_population("mem5", TASKS[1][1], optimizer, True, torch.float32,
                                                                     cell=CELL, **overrides)
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


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=[VARIANT_IDS[0], VARIANT_IDS[-1]])
@pytest.mark.parametrize("task", [TASKS[1], TASKS[3]], ids=["mem5", "sysid"])
def test_population_equals_alone_bitwise(task, variant):
    check_population_equals_alone(task, cell=CELL, cell_kwargs=variant)


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=[VARIANT_IDS[0], VARIANT_IDS[-1]])
def test_thread_counts_agree_bitwise(variant):
    check_thread_counts_agree(cell=CELL, cell_kwargs=variant)


@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_isa(isa):
    here = os.path.dirname(os.path.abspath(__file__))
    run_under_isa(isa, f"import sys; sys.path.insert(0, {here!r}); import test_fused_step as t, test_fused_step_diag as d\n"
                       "for variant in d.VARIANTS:\n"
                       "    for (task, kw), opt in itertools.product(t.TASKS, t.OPTIMIZERS):\n"
                       "        t.check_against_reference(task, kw, opt, True, updates=2, cell='diag', cell_kwargs=variant)\n"
                       "t.check_against_reference('torder', {'min_length': 30, 'max_length': 30}, 'adam', True, updates=2,"
                       " cell='diag', hidden=20)\n"
                       "d.check_float32_within_the_rounding_bound('momentum', updates=2)\n")


def test_inputs_beyond_the_register_sums():
    """I = 11 (the backward keeps the sums of 8 inputs in registers, the others in memory): the task's
    6 inputs moved to positions 5–10 behind 5 zero inputs give the update of the 6-input call, and
    the zero inputs' columns of B and D get a zero gradient (momentum then moves them by its buffer
    only)."""
    args = op_args(CELL)
    wide = dict(args, params=[p.clone() for p in args["params"]], state=[b.clone() for b in args["state"]])
    pad = lambda t: torch.cat([torch.randn(*t.shape[:-1], 5, dtype=t.dtype), t], -1)  # noqa: E731
    wide["x"] = torch.cat([torch.zeros(*args["x"].shape[:-1], 5, dtype=args["x"].dtype), args["x"]], -1)
    with_inputs = [3, 4, 7]  # B_re, B_im, D (parametrization "exp", learned γ)
    for i in with_inputs:
        wide["params"][i], wide["state"][i] = pad(wide["params"][i]), pad(wide["state"][i])
    start = [p.clone() for p in wide["params"]]
    buffers = [b.clone() for b in wide["state"]]
    narrow_out = torch.ops.rnnlab.diag_train_step(**args)
    wide_out = torch.ops.rnnlab.diag_train_step(**wide)
    for a, b in zip(narrow_out, wide_out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    mu, lr = args["momentum"].view(-1, 1, 1), args["lr"].view(-1, 1, 1)
    for p, narrow in enumerate(args["params"]):
        got = wide["params"][p]
        if p in with_inputs:
            torch.testing.assert_close(got[..., :5], start[p][..., :5] - lr * mu * buffers[p][..., :5], rtol=1e-12,
                                       atol=1e-12)
            got = got[..., 5:]
        torch.testing.assert_close(got, narrow, rtol=1e-12, atol=1e-12)


# ---- bad inputs ------------------------------------------------------------------------------

def real_op_args():
    """op_args for the real parametrization (nu_log, gamma_log, B_re, C_re, D)."""
    configs, task, keys, ctx, params, state, hyper = make_population("torder", TASKS[0][1], "sgd", False, cell=CELL,
                                                                     cell_kwargs={"parametrization": "real"})
    batch = batch_at(configs, task, keys, ctx, 0, torch.float64)
    fused = FusedStep(configs, task)
    args = op_args(CELL)
    args.update(x=batch.x.contiguous(), target=batch.target.contiguous(), params=[params[n] for n in fused.param_names],
                state=[], optimizer="sgd", momentum=None, clip=None, **fused.cell_options)
    return args


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(x=a["x"].float()), "params\\[0\\] \\(nu_log\\) must have dtype"),
    (lambda a: a.update(x=a["x"][..., 0].contiguous()), "x must have shape"),
    (lambda a: a.update(x=a["x"][..., :2].contiguous()), "params\\[3\\] \\(B_re\\) must have shape \\[M, N, I\\]"),
    (lambda a: a.update(target=a["target"].clamp(max=0) + 99), "target: class index out of range"),
    (lambda a: a.update(readout_steps=99), "readout_steps must be in"),
    (lambda a: a.update(parametrization="cayley"), "parametrization must be one of"),
    (lambda a: a.update(gamma="sometimes"), "gamma must be one of"),
    (lambda a: a.update(params=a["params"][:7]),
     "params must be \\[nu_log, theta_log, gamma_log, B_re, B_im, C_re, C_im, D\\] for parametrization 'exp'"),
    (lambda a: a.update(gamma="none"), "params must be \\[nu_log, theta_log, B_re, B_im, C_re, C_im, D\\]"),
    (lambda a: a.update(params=[a["params"][0][:, :3].contiguous()] + a["params"][1:]),
     "params\\[1\\] \\(theta_log\\) must have shape \\[M, N\\]"),
    (lambda a: a.update(params=[a["params"][0].unsqueeze(1)] + a["params"][1:]),
     "params\\[0\\] \\(nu_log\\) must have shape \\[M, N\\]"),
    (lambda a: a.update(params=a["params"][:3] + [a["params"][3].transpose(1, 2)] + a["params"][4:]),
     "params\\[3\\] \\(B_re\\) must have shape \\[M, N, I\\]"),
    (lambda a: a.update(params=a["params"][:5] + [a["params"][5][:, :, 0]] + a["params"][6:]),
     "params\\[5\\] \\(C_re\\) must have shape \\[M, O, N\\]"),
    (lambda a: a.update(params=a["params"][:6] + [a["params"][6][:, :3].contiguous()] + a["params"][7:]),
     "params\\[6\\] \\(C_im\\) must have shape \\[M, O, N\\]"),
    (lambda a: a.update(params=a["params"][:7] + [a["params"][7].float()]), "params\\[7\\] \\(D\\) must have dtype"),
    (lambda a: a.update(params=a["params"][:2] + [a["params"][2][:, ::2]] + a["params"][3:]),
     "params\\[2\\] \\(gamma_log\\) must"),
    (lambda a: a.update(state=a["state"][:7]), "state must hold 8 tensors"),
    (lambda a: a.update(state=a["state"][:1] + [a["state"][3]] + a["state"][2:]), "state\\[1\\] must have shape \\[M, N\\]"),
    (lambda a: a.update(momentum=None), "momentum is required"),
    (lambda a: a.update(optimizer="adam", state=a["state"] * 2), "beta1 is required"),
    (lambda a: a.update(loss="squared_error"), "target must have dtype"),
])
def test_bad_inputs_name_the_argument(change, message):
    args = op_args(CELL)
    change(args)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        torch.ops.rnnlab.diag_train_step(**args)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(parametrization="exp"), "params must be \\[nu_log, theta_log, gamma_log, B_re, B_im"),
    (lambda a: a.update(params=a["params"][:3] + [a["params"][3].repeat(1, 1, 2)] + a["params"][4:]),
     "params\\[3\\] \\(C_re\\) must have shape \\[M, O, N\\]"),
])
def test_bad_inputs_of_the_real_parametrization(change, message):
    args = real_op_args()
    torch.ops.rnnlab.diag_train_step(**{**args, "params": [p.clone() for p in args["params"]]})  # valid as given
    change(args)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        torch.ops.rnnlab.diag_train_step(**args)


# ---- the trainer -----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=[VARIANT_IDS[0], VARIANT_IDS[-1]])
def test_trainer_uses_the_fused_step_and_matches_the_autograd_path(monkeypatch, variant):
    check_trainer_matches_autograd(monkeypatch, cell=CELL, cell_kwargs=variant)
