"""The lanes layout of the fused training steps (one model per vector lane,
csrc/kernels/cpu/train_step_lanes.h and each cell's <cell>_train_step_lanes_impl.h) of every cell
against the trainer's autograd path and against the row layout; a model's bits alone = in any
group, at any position, population size and thread count; a non-finite model beside others;
every compiled ISA; the layout chosen by shape. The helpers are test_fused_step.py's (whose own
tests, and the cells' test_fused_step_<cell>.py, run the row layout)."""
from __future__ import annotations

import ctypes
import math
import os
import subprocess
import sys

import pytest
import torch

import rnnlab
import test_fused_step as base
from helpers_ops import LOWER_ISAS, run_under_isa
from rnnlab.train.fused_step import FusedStep

LAYOUT = "RNNLAB_TRAIN_LAYOUT"
CELLS = ["elman", "gru", "lstm"]
cells = pytest.mark.parametrize("cell", CELLS)


def op(cell):
    return getattr(torch.ops.rnnlab, f"{cell}_train_step")


@pytest.fixture(autouse=True)
def lanes_layout(monkeypatch):
    monkeypatch.setenv(LAYOUT, "lanes")


@cells
@pytest.mark.parametrize("task,task_kwargs", base.TASKS, ids=[t for t, _ in base.TASKS])
@pytest.mark.parametrize("optimizer", base.OPTIMIZERS)
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
def test_lanes_equal_autograd_float64(cell, task, task_kwargs, optimizer, clip):
    base.check_against_reference(task, task_kwargs, optimizer, clip, cell=cell)


@cells
@pytest.mark.parametrize("hidden,M", [(1, 2), (16, 11), (33, 9)])
def test_lanes_equal_autograd_other_sizes(cell, hidden, M):
    # H = 1 (all but one column padding), H = 16 (no padding), H = 33 (several register blocks, a
    # padded one); M > 8 fills one group of float64 lanes and part of another
    base.check_against_reference("mem5", base.TASKS[1][1], "momentum", True, updates=2, hidden=hidden, M=M, cell=cell)


@cells
@pytest.mark.parametrize("optimizer", base.OPTIMIZERS)
def test_cosine_schedule(cell, optimizer):
    base.check_against_reference("add", base.TASKS[2][1], optimizer, True, schedule="cosine", updates=5, cell=cell)


@cells
@pytest.mark.parametrize("task", base.TASKS, ids=[t for t, _ in base.TASKS])
def test_lanes_equal_rows_float64(monkeypatch, cell, task):
    """Both layouts compute the same update (they sum in other orders): every parameter, slot
    and output agrees to float64 rounding, over 10 models (a partial group) and 3 updates."""
    runs = {}
    for layout in ("rows", "lanes"):
        monkeypatch.setenv(LAYOUT, layout)
        runs[layout] = base._run_fused(list(range(10)), task=task, cell=cell, hidden=9)
    (params, state, outs), (l_params, l_state, l_outs) = runs["rows"], runs["lanes"]
    for d, o in ((params, l_params), (state, l_state)):
        for n in d:
            torch.testing.assert_close(o[n], d[n], rtol=1e-12, atol=1e-12, msg=lambda m: f"{n}: {m}")
    for out, l_out in zip(outs, l_outs):
        for a, b in zip(out, l_out):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12 * float(a.abs().max()))


@pytest.mark.parametrize("nonlinearity", ["relu", "sigmoid", "identity"])
def test_other_activations(nonlinearity):  # Elman's φ
    base.check_against_reference("torder", base.TASKS[0][1], "momentum", True, nonlinearity=nonlinearity, updates=3)


@cells
@pytest.mark.parametrize("task", [base.TASKS[1], base.TASKS[3]], ids=["mem5", "sysid"])
def test_float32_close_to_autograd(cell, task):
    base.check_against_reference(*task, "adam", True, dtype=torch.float32, updates=3, tol=2e-5, cell=cell)


def _equal(run, j, other, i):
    """Model j of the run ``run`` and model i of ``other`` (base._run_fused results) have the same
    bits: parameters, optimizer state and every output of every update."""
    (params, state, outs), (o_params, o_state, o_outs) = run, other
    for d, o in ((params, o_params), (state, o_state)):
        for n in d:
            assert torch.equal(d[n][j], o[n][i]), n
    for out, o_out in zip(outs, o_outs):
        for a, b in zip(out, o_out):
            assert torch.equal(a[j], b[i])


@cells
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_population_equals_alone_bitwise(cell, dtype):
    # 21 models: more than one group of lanes whatever the ISA and dtype (W = 4 … 16), the last
    # one partly empty; each model alone, and inside groups of other sizes at other positions
    seeds = list(range(3, 24))
    kw = dict(task=base.TASKS[1], dtype=dtype, cell=cell)
    run = base._run_fused(seeds, **kw)
    for j in range(len(seeds)):
        _equal(run, j, base._run_fused(seeds, pick=[j], **kw), 0)
    for pick in ([20, 3, 11], list(range(20, 2, -1)), [5, 0, 9, 16, 1, 2, 17, 8, 12, 13]):
        other = base._run_fused(seeds, pick=pick, **kw)
        for i, j in enumerate(pick):
            _equal(run, j, other, i)


@cells
def test_thread_counts_agree_bitwise(cell):
    # above the op's parallel threshold (tiles.h), with 3 groups of float64 lanes on AVX-512
    kw = dict(task=("torder", {"min_length": 40, "max_length": 40}), hidden=16, cell=cell)
    seeds = list(range(21))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = base._run_fused(seeds, **kw)
        torch.set_num_threads(2)
        assert rnnlab._C.parallel_threads_used() == 2
        two = base._run_fused(seeds, **kw)
    finally:
        torch.set_num_threads(threads)
    for j in range(len(seeds)):
        _equal(one, j, two, j)
    _equal(two, 13, base._run_fused(seeds, pick=[13], **kw), 0)


@cells
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_a_non_finite_model_leaves_the_others_alone(cell, dtype):
    """Model 1's gradient is NaN and model 3's huge (> 1e10): the safeguard fires for them as on
    the autograd path, and the models beside them in their group get the bits they get without
    them."""
    configs, task, keys, ctx, params, state, hyper = base.make_population("torder", base.TASKS[0][1], "momentum", True,
                                                                          dtype, M=5, cell=cell)
    bad = {n: v.clone() for n, v in params.items()}
    bad["weight_out"][1, 0, 0] = math.nan
    bad["weight_out"][3] *= 1e12
    bad_state, ref_params, ref_state = ({n: v.clone() for n, v in d.items()} for d in (state, bad, state))
    batch = base.batch_at(configs, task, keys, ctx, 0, dtype)
    step = FusedStep(configs, task)
    out = step(params, state, hyper, batch, 0)
    bad_out = step(bad, bad_state, hyper, batch, 0)
    _, ref_stats, *_ = base.autograd_update(configs, task, ref_params, ref_state, hyper, batch, 0)
    assert bad_out[1].fallback.tolist() == [False, True, False, True, False] == ref_stats.fallback.tolist()
    for j in (0, 2, 4):
        for n in params:
            assert torch.equal(bad[n][j], params[n][j]), n
        assert torch.equal(bad_out[0][j], out[0][j]) and torch.equal(bad_out[2][j], out[2][j])
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for n in params:
        torch.testing.assert_close(bad[n], ref_params[n], rtol=tol, atol=tol, equal_nan=True)


def _has_feenableexcept() -> bool:
    try:
        return hasattr(ctypes.CDLL("libm.so.6"), "feenableexcept")
    except OSError:
        return False


@pytest.mark.skipif(not _has_feenableexcept(), reason="needs glibc's feenableexcept")
@cells
@pytest.mark.parametrize("task", [base.TASKS[0], base.TASKS[2]], ids=["torder", "add"])
def test_empty_lanes_raise_no_floating_point_exception(cell, task):
    """3 models leave most lanes of their group empty; with invalid, divide-by-zero and overflow
    trapping (SIGFPE) the update still runs: the empty lanes compute on zeros."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys, ctypes, torch; sys.path.insert(0, {here!r}); import test_fused_step as t\n"
            "from rnnlab.train.fused_step import FusedStep\n"
            "traps = 1 | 4 | 8  # FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW\n"
            "libm = ctypes.CDLL('libm.so.6')\n"
            "for dtype in (torch.float32, torch.float64):\n"
            f"    c, task, keys, ctx, p, s, h = t.make_population({task[0]!r}, {task[1]!r}, 'adam', True, dtype, M=3,"
            f" cell={cell!r})\n"
            "    batch = t.batch_at(c, task, keys, ctx, 0, dtype)\n"
            "    step = FusedStep(c, task)\n"
            "    libm.feenableexcept(traps)\n"
            "    step(p, s, h, batch, 0)\n"
            "    libm.fedisableexcept(traps)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@cells
def test_class_out_of_range_raises(cell):
    args = base.op_args(cell)
    args["target"] = args["target"].clamp(max=0) + 99
    with pytest.raises(ValueError, match="target: class index out of range"):
        op(cell)(**args)


@cells
def test_trainer_with_the_lanes_layout(monkeypatch, cell):
    base.check_trainer_matches_autograd(monkeypatch, cell=cell)


@cells
@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_isa(cell, isa):
    # the layout is forced through the environment, which the subprocess inherits
    here = os.path.dirname(os.path.abspath(__file__))
    run_under_isa(isa, f"import sys; sys.path.insert(0, {here!r}); import test_fused_step as t\n"
                       "assert __import__('os').environ['RNNLAB_TRAIN_LAYOUT'] == 'lanes'\n"
                       f"cell = {cell!r}\n"
                       "for task, kw in t.TASKS:\n"
                       "    for opt, clip in itertools.product(t.OPTIMIZERS, (True, False)):\n"
                       "        t.check_against_reference(task, kw, opt, clip, updates=2, cell=cell)\n"
                       "t.check_against_reference('mem5', t.TASKS[1][1], 'sgd', True, updates=2, hidden=9, M=11, cell=cell)\n"
                       "t.check_against_reference('mem5', t.TASKS[1][1], 'sgd', True, dtype=torch.float32, updates=2, tol=2e-5,\n"
                       "                          cell=cell)\n"
                       "for dtype in (torch.float64, torch.float32):\n"
                       "    seeds = list(range(11))\n"
                       "    run = t._run_fused(seeds, dtype=dtype, cell=cell)\n"
                       "    for j in (0, 5, 10):\n"
                       "        alone = t._run_fused(seeds, pick=[j], dtype=dtype, cell=cell)\n"
                       "        assert all(torch.equal(run[0][n][j], alone[0][n][0]) for n in run[0])\n")


# ---- the choice of layout ---------------------------------------------------------------------

def _params_after(layout, monkeypatch, hidden, cell):
    if layout is None:
        monkeypatch.delenv(LAYOUT)
    else:
        monkeypatch.setenv(LAYOUT, layout)
    # float32: the gated cells take the row layout in float64 on AVX-512 and AVX2 at every H
    return base._run_fused([1, 2], updates=2, hidden=hidden, cell=cell, dtype=torch.float32)[0]


@cells
@pytest.mark.parametrize("hidden,layout", [(4, "lanes"), (80, "rows")])
def test_the_op_picks_the_layout_by_hidden_size(monkeypatch, cell, hidden, layout):
    auto = _params_after(None, monkeypatch, hidden, cell)
    picked = _params_after(layout, monkeypatch, hidden, cell)
    other = _params_after({"lanes": "rows", "rows": "lanes"}[layout], monkeypatch, hidden, cell)
    assert all(torch.equal(auto[n], picked[n]) for n in auto)
    assert not all(torch.equal(auto[n], other[n]) for n in auto)  # the two layouts round differently


@cells
def test_a_bad_layout_name_raises(monkeypatch, cell):
    monkeypatch.setenv(LAYOUT, "columns")
    with pytest.raises(ValueError, match="RNNLAB_TRAIN_LAYOUT must be 'rows' or 'lanes'"):
        op(cell)(**base.op_args(cell))


def test_mixed_alpha_population_equals_alone_bitwise(monkeypatch):
    """With the layout the op picks (lanes at this H for α = 0, rows for α > 0: the lanes have no
    Ω), a population mixing α = 0 and α > 0 runs updates each model as it is updated alone, and
    the α > 0 models match the autograd path."""
    monkeypatch.delenv(LAYOUT)
    seeds = list(range(3, 24))  # α = 0, 1.5, 4 by seed (base.omega_fields)
    run = base._run_fused(seeds, task=base.TASKS[1], omega=True)
    for j in range(len(seeds)):
        _equal(run, j, base._run_fused(seeds, task=base.TASKS[1], omega=True, pick=[j]), 0)
    base.check_against_reference("torder", base.TASKS[0][1], "momentum", True, omega=True, M=6)
