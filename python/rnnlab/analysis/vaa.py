"""Lambrechts et al.'s variability amongst attractors, VAA (SPEC §6.1), for Elman populations.

One estimate, per model:

1. N = 32 training sequences; sequence i is run for a random prefix of c_i ~ U{1 … T} steps and
   its state there is h0_i (a reachable state);
2. one constant input u ~ N(0, I), shared by all N states and all steps, drives F for K = 10,000
   steps from every h0_i, giving h_i;
3. VAA = (1/N) Σ_i 1 / |{j : ‖h_i − h_j‖₂ < ε}| with ε = 10⁻⁴, so N·VAA counts the distinct
   attractors reached (1/N: all states fall into one; 1: all N end apart).

:func:`vaa` averages 10 such estimates, each with new sequences, prefixes and u. Every model sees
the same draws (:mod:`rnnlab.analysis.data`). A state that is not finite after the K steps (an
unbounded φ) counts as distinct from every other.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..tasks import Task, rng
from .data import task_keys, task_length, task_sequences
from .system import ElmanSystem, as_system, require_system

#: check every this many steps whether the states are exactly fixed (then further steps cannot
#: change them, and the roll-out ends early with the same result).
_FIXED_CHECK_EVERY = 100


@torch.no_grad()
def stabilize(system: ElmanSystem, h: Tensor, drive: Tensor, steps: int) -> Tensor:
    """[M, N, H] the states ``h`` [M, N, H] after ``steps`` applications of F under ``drive``
    ([M, H] or [M, N, H])."""
    require_system(system)
    for k in range(steps):
        new = system.map(h, drive)
        if k % _FIXED_CHECK_EVERY == 0 and torch.equal(new, h):
            break
        h = new
    return h


def variability_amongst_attractors(states: Tensor, eps: float = 1e-4) -> Tensor:
    """[...] VAA of groups of N states [..., N, H] (step 3 of the module docstring)."""
    d = torch.cdist(states, states)
    close = (d < eps) | torch.eye(states.shape[-2], dtype=torch.bool, device=states.device)
    return (1.0 / close.sum(-1).to(states.dtype)).mean(-1)


@torch.no_grad()
def vaa(
    params: Mapping[str, Tensor] | ElmanSystem,
    task: Task,
    *,
    length: int | None = None,
    nonlinearity: str | None = None,
    n_states: int = 32,
    steps: int = 10_000,
    eps: float = 1e-4,
    n_estimates: int = 10,
    seed: int = 0,
) -> Tensor:
    """[M] VAA of each model of an Elman population (module docstring; SPEC §6.1's defaults).

    Args:
        params: the population's parameters (:func:`rnnlab.nn.population.param_shapes`,
            ``cell="elman"``) or an :class:`ElmanSystem`.
        task: the task whose training sequences give the reachable states; ``length`` its T
            (default: the task's fixed length).
        n_states, steps, eps, n_estimates: N, K, ε and the number of averaged estimates.
        seed: seed of the sequences, prefixes and inputs.
    """
    system = as_system(params, nonlinearity)
    for name, v in (("n_states", n_states), ("n_estimates", n_estimates)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if steps < 0 or eps <= 0:
        raise ValueError(f"need steps >= 0 and eps > 0, got steps={steps}, eps={eps}")
    T = task_length(task, length)
    M, H, dev = system.num_models, system.hidden_size, system.device
    starts, drives = [], []
    for e in range(n_estimates):
        batch = task_sequences(task, M, T, n_states, seed, "vaa", e, dtype=system.dtype, device=dev)
        prefix = rng.randint(task_keys(M, seed, "vaa-prefix", e, device=dev), T, (n_states,))  # c_i − 1
        states = system.run(batch.x)  # [M, T, N, H]
        starts.append(states.gather(1, prefix[:, None, :, None].expand(-1, 1, -1, H))[:, 0])
        u = rng.normal(task_keys(M, seed, "vaa-input", e, device=dev), (system.input_size,), system.dtype)
        drives.append(system.drive(u)[:, None].expand(-1, n_states, -1))
    final = stabilize(system, torch.cat(starts, 1), torch.cat(drives, 1), steps)
    final = torch.where(final.isfinite().all(-1, keepdim=True), final, torch.nan)
    return variability_amongst_attractors(final.view(M, n_estimates, n_states, H), eps).mean(-1)
