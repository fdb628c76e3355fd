"""The benchmark's peers do rnnlab's job (rnnlab.bench.update_peers, dropin): from the same weights
and batches, two successive training updates of each peer — the nn loop, the torch.func ensemble
(eager), JAX — give rnnlab's parameters within float32 tolerance, and each drop-in peer rnnlab's
gradients; the peer report runs end to end. Timings are never asserted. The JAX cases skip where jax is not installed
(``pip install rnnlab[bench]``)."""
import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnlab.bench import dropin, update_peers
from rnnlab.bench.peer_cells import PEER_CELLS
from rnnlab.cells import get_cell
from rnnlab.nn.population import population_forward
from rnnlab.train.clipping import global_norm

HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="jax not installed (pip install rnnlab[bench])")
CELLS = tuple(PEER_CELLS)


def _problem(cell: str, updates: int = 1) -> update_peers.Problem:
    """A small population with non-zero biases (the inits draw them 0), so the bias mapping of
    every peer is exercised, and weights scaled so that some models' gradients are clipped and
    some not (checked)."""
    problem = update_peers.Problem.make(update_peers.Job(cell, T=7, H=6, M=4, updates=updates))
    gen = torch.Generator().manual_seed(1)
    params = {n: v + 0.3 * torch.randn(v.shape, generator=gen) if n.startswith("bias") else v.clone()
              for n, v in problem.params.items()}
    params["weight_out"][:2] *= 8  # large read-out: large gradients for models 0, 1
    return dataclasses.replace(problem, params=params)


def _first_norms(problem: update_peers.Problem) -> torch.Tensor:
    """[M] global gradient norm of each model at the first update (autograd path)."""
    leaves = {n: v.clone().requires_grad_() for n, v in problem.params.items()}
    b = problem.batches[0]
    loss = problem.task.loss(population_forward(leaves, b.x, cell=problem.job.cell), b)
    return global_norm(dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values())))))


def _assert_same_update(got: dict, want: dict, start: dict) -> None:
    """The peers' parameters and, tighter, their change from the start (lr·clipped gradient)."""
    assert list(got) == list(want)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-5, atol=1e-6, msg=lambda m: f"{n}: {m}")
        torch.testing.assert_close(got[n] - start[n], want[n] - start[n], rtol=2e-3, atol=2e-7,
                                   msg=lambda m: f"update of {n}: {m}")


def _reference(problem: update_peers.Problem) -> dict:
    """rnnlab's update: the fused step where the cell has one (it is checked against the autograd
    path in test_fused_step.py), and the autograd path always."""
    want = update_peers.rnnlab_autograd(problem)()[1]
    if get_cell(problem.job.cell).fused_step is not None:
        _assert_same_update(update_peers.rnnlab_fused(problem)()[1], want, problem.params)
    return want


@pytest.mark.parametrize("cell", CELLS)
def test_problem_clips_some_models_only(cell):
    norms = _first_norms(_problem(cell))
    assert (norms > update_peers.CLIP).any() and (norms < update_peers.CLIP).any(), norms


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("peer", ["nn loop", "torch.func", pytest.param("jax", marks=needs_jax)])
def test_peer_update_is_rnnlabs(cell, peer):
    problem = _problem(cell, updates=2)
    build = {"nn loop": update_peers.nn_loop, "torch.func": update_peers.torch_func, "jax": update_peers.jax_vmap}[peer]
    seconds, got = build(problem)()
    assert seconds > 0
    _assert_same_update(got, _reference(problem), problem.params)


def test_nn_loop_trains_a_subset_and_runs_again_from_the_start():
    problem = _problem("gru")
    run = update_peers.nn_loop(problem, models=2)
    first, again = run()[1], run()[1]
    want = _reference(problem)
    for n in want:
        torch.testing.assert_close(again[n], first[n], rtol=0, atol=0)
        torch.testing.assert_close(first[n], want[n][:2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"models must be in \[1, 4\]"):
        update_peers.nn_loop(problem, models=5)


def test_problem_rejects_a_task_read_out_at_every_step():
    with pytest.raises(ValueError, match="cross-entropy at the last step"):
        update_peers.Problem.make(update_peers.Job("elman", T=5, H=4, M=2, updates=1, task="mem5"))


def _as_torch(a) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("impl", ["rnnlab", pytest.param("jax", marks=needs_jax)])
def test_dropin_peer_gradients_are_torch_nns(cell, impl):
    case = dropin.Case.make(PEER_CELLS[cell], dropin.Size(H=7, B=3, T=9, I=5))
    want = dropin.torch_nn(case)()
    for got, ref, name in zip(dropin.BUILDERS[impl](case)(), want, ("W_ih", "W_hh", "bias")):
        torch.testing.assert_close(_as_torch(got), ref, rtol=1e-4, atol=1e-5, msg=lambda m: f"∂{name}: {m}")


def test_cli_peers_report_end_to_end():
    out = subprocess.run([sys.executable, "-m", "rnnlab", "bench", "--peers", "all", "--quick", "--no-jax", "--threads",
                          "1", "--cells", "elman"], capture_output=True, text=True, check=True, timeout=600).stdout
    assert "### Training update, 1 thread(s)" in out and "### Drop-in forward+backward, 1 thread(s)" in out
    assert "÷ 1-core sgemm" in out and "rnnlab/nn loop" in out and "rnnlab/torch.nn" in out and "CPU:" in out
