"""Lambrechts et al.'s variability amongst attractors, VAA, and its differentiable VAA* (SPEC §6.1),
for populations of every cell with a layer map (``Cell.layer``: Elman, LSTM, GRU; stacked and
double layers included).

One VAA estimate, per model:

1. N = 32 training sequences; sequence i is run for a random prefix of c_i ~ U{1 … T} steps and
   the states of every layer there (h, and c for an LSTM) are h0_i (a reachable state);
2. one constant input u ~ N(0, I), shared by all N states and all steps, drives the whole stack
   for K = 10,000 steps from every h0_i; all layers' final states, concatenated, are h_i;
3. VAA = (1/N) Σ_i 1 / |{j : ‖h_i − h_j‖₂ < ε}| with ε = 10⁻⁴, so N·VAA counts the distinct
   attractors reached (1/N: all states fall into one; 1: all N end apart).

:func:`vaa` averages 10 such estimates, each with new sequences, prefixes and u. Every model sees
the same draws (:mod:`rnnlab.analysis.data`). A state that is not finite after the K steps (an
unbounded φ) counts as distinct from every other. The roll-outs are the cells' fused kernels, in
chunks of steps; they stop early once every state is exactly fixed (further steps cannot change it).

VAA* (:func:`vaa_star`) is per layer: the layer alone runs K' steps from its own reachable state
under a constant input of its own input size, and the count is soft on z = tanh(h) (:func:`soft_vaa`),
differentiable through the roll-out and the reachable states (the warm-up's objective,
:mod:`rnnlab.train.warmup`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..cells.base import Cell
from ..tasks import Task, rng
from .data import task_keys, task_length, task_sequences
from .system import ElmanSystem

#: the soft count's guard against 0/0 (SPEC §6.1: d_ij + 1e-6).
SOFT_COUNT_GUARD = 1e-6
#: values held per chunk of a stabilisation roll-out (the chunk's length follows from it).
_CHUNK_ELEMENTS = 1 << 23

States = list[tuple[Tensor, ...]]  # per layer, one [M, N, H] per state name


def _distances(states: Tensor) -> Tensor:
    """[..., N, N] ‖s_i − s_j‖ of states [..., N, D], from the differences: cdist's
    matrix-product shortcut (its default above 25 states) errs by more than ε = 1e-4 in float32."""
    return torch.cdist(states, states, compute_mode="donot_use_mm_for_euclid_dist")


def variability_amongst_attractors(states: Tensor, eps: float = 1e-4) -> Tensor:
    """[...] VAA of groups of N states [..., N, D] (step 3 of the module docstring)."""
    d = _distances(states)
    close = (d < eps) | torch.eye(states.shape[-2], dtype=torch.bool, device=states.device)
    return (1.0 / close.sum(-1).to(states.dtype)).mean(-1)


def soft_vaa(states: Tensor, eps: float = 1e-4) -> Tensor:
    """[...] VAA* of groups of N states [..., N, D] (SPEC §6.1): on z = tanh(h), with
    d_ij = ‖z_i − z_j‖, C_ij = 1 − ReLU(d_ij − ε)/(d_ij + 1e-6), VAA* = (1/N) Σ_i 1/Σ_j C_ij.
    C_ij is exactly 1 for d_ij ≤ ε, so VAA* = VAA when every pair is within ε or far apart."""
    z = torch.tanh(states)
    d = _distances(z)  # its backward is 0 at d = 0, where C is flat anyway
    close = 1 - torch.relu(d - eps) / (d + SOFT_COUNT_GUARD)
    return (1.0 / close.sum(-1)).mean(-1)


def _record(params: Mapping[str, Tensor], cell: str | None) -> Cell:
    from ..cells import cell_of, get_cell  # at call time: the registry imports this package (ElmanSystem)

    record = get_cell(cell) if cell is not None else cell_of(params)
    if record is None:
        raise ValueError(f"params are no cell's parameters (names and shapes); got {sorted(params)}")
    if record.layer is None:
        raise ValueError(f"the VAA needs a cell with a layer map (Elman, LSTM, GRU), got cell={record.name!r} ({record.title})")
    return record


def _checked(record: Cell, params: Mapping[str, Tensor], options: Mapping, dtype: torch.dtype) -> dict[str, Tensor]:
    """``params`` checked against the record's shapes under ``options`` and cast to ``dtype``."""
    M, I, H, O = record.sizes(params)
    expected = record.shapes(M, I, H, O, options)
    for name, shape in expected.items():
        if name not in params:
            raise ValueError(f"params is missing {name!r}; a cell={record.name!r} population with {dict(options)} has "
                             f"{list(expected)}")
        if tuple(params[name].shape) != shape:
            raise ValueError(f"params[{name!r}] must have shape {list(shape)}, got {list(params[name].shape)}")
    return {n: params[n].to(dtype) for n in expected}


def reachable_states(record: Cell, params: Mapping[str, Tensor], x: Tensor, prefix: Tensor, options: Mapping) -> States:
    """Per layer, the states (one [M, N, H] per state name) after ``prefix[m, i] + 1`` steps of the
    sequences x [M, T, N, I] (prefix [M, N] int64 in [0, T)); differentiable."""
    index = prefix[:, None, :, None]
    return [tuple(s.gather(1, index.expand(-1, 1, -1, s.shape[-1]))[:, 0] for s in seqs)
            for seqs in record.run_layers(params, x, options)]


@torch.no_grad()
def stabilize(record: Cell, params: Mapping[str, Tensor], states: States, u: Tensor, steps: int,
              options: Mapping) -> States:
    """The stack's states after ``steps`` steps under the constant inputs u [M, N, I] (one per
    state), from ``states`` (per layer, one [M, N, H] per state name)."""
    M, N, I = u.shape
    H = states[0][0].shape[-1]
    per_step = M * N * (I + len(states) * (record.gates + 2 * len(record.state_names)) * H)
    chunk = max(2, min(steps, _CHUNK_ELEMENTS // per_step))
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        seqs = record.run_layers(params, u[:, None].expand(M, n, N, I), options, states)
        states = [tuple(s[:, -1] for s in layer) for layer in seqs]
        done += n
        if n > 1 and all(torch.equal(s[:, -1], s[:, -2]) for layer in seqs for s in layer):
            break  # exactly fixed: every later step gives the same states
    return states


def _concat(states: States) -> Tensor:
    return torch.cat([s for layer in states for s in layer], -1)


@torch.no_grad()
def vaa(
    params: Mapping[str, Tensor] | ElmanSystem,
    task: Task,
    *,
    cell: str | None = None,
    length: int | None = None,
    n_states: int = 32,
    steps: int = 10_000,
    eps: float = 1e-4,
    n_estimates: int = 10,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    **options,
) -> Tensor:
    """[M] VAA of each model of a population (module docstring; SPEC §6.1's defaults).

    Args:
        params: the population's parameters (:func:`rnnlab.nn.population.param_shapes`) or an
            :class:`ElmanSystem`.
        task: the task whose training sequences give the reachable states; ``length`` its T
            (default: the task's fixed length).
        cell: the cell's name (default: the one whose parameters ``params`` are).
        n_states, steps, eps, n_estimates: N, K, ε and the number of averaged estimates.
        seed: seed of the sequences, prefixes and inputs.
        dtype: the roll-outs' dtype.
        options: the cell's options (``nonlinearity``, ``num_layers``, ``double``).
    """
    if isinstance(params, ElmanSystem):
        options = {"nonlinearity": params.nonlinearity, **options}
        params, cell = {n: getattr(params, n) for n in ("weight_ih", "weight_hh", "bias", "weight_out", "bias_out")}, "elman"
    record = _record(params, cell)
    options = record.complete_options(options)
    for name, v in (("n_states", n_states), ("n_estimates", n_estimates)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not isinstance(steps, int) or steps < 0 or not eps > 0:
        raise ValueError(f"need an int steps >= 0 and eps > 0, got steps={steps!r}, eps={eps!r}")
    params = _checked(record, params, options, dtype)
    M, I, _, _ = record.sizes(params)
    T, dev = task_length(task, length), params["weight_out"].device
    starts, inputs = [], []
    for e in range(n_estimates):
        batch = task_sequences(task, M, T, n_states, seed, "vaa", e, dtype=dtype, device=dev)
        prefix = rng.randint(task_keys(M, seed, "vaa-prefix", e, device=dev), T, (n_states,))  # c_i − 1
        starts.append(reachable_states(record, params, batch.x, prefix, options))
        u = rng.normal(task_keys(M, seed, "vaa-input", e, device=dev), (I,), dtype)
        inputs.append(u[:, None].expand(-1, n_states, -1))
    states = [tuple(torch.cat([s[depth][k] for s in starts], 1) for k in range(len(record.state_names)))
              for depth in range(len(starts[0]))]
    final = _concat(stabilize(record, params, states, torch.cat(inputs, 1), steps, options))
    final = torch.where(final.isfinite().all(-1, keepdim=True), final, torch.nan)
    return variability_amongst_attractors(final.view(M, n_estimates, n_states, -1), eps).mean(-1)


def vaa_star(
    params: Mapping[str, Tensor],
    x: Tensor,
    prefix: Tensor,
    inputs: Sequence[Tensor],
    steps: int,
    *,
    cell: str,
    eps: float = 1e-4,
    first_half: bool = False,
    **options,
) -> Tensor:
    """[M, L] VAA* of every layer of every model (SPEC §6.1), differentiable through the roll-outs
    and the reachable states.

    Args:
        params: the population's parameters (every model's, [M, ...]).
        x: [M, T, N, I] input sequences; prefix: [M, N] int64 in [0, T), c_i − 1 of each.
        inputs: per layer, the constant input u [M, I_l] (I_0 = I, then H).
        steps: K', the steps of the per-layer roll-outs (≥ 1).
        first_half: count on the first half of each layer's state only (the warmed cell of a
            double layer; an LSTM's h and c halves both).
        options: the cell's options (``num_layers``, ``double``, ``nonlinearity``).
    """
    record = _record(params, cell)
    options = record.complete_options(options)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps (K') must be a positive int, got {steps!r}")
    starts = reachable_states(record, params, x, prefix, options)
    if len(inputs) != len(starts):
        raise ValueError(f"inputs must hold one constant input per layer ({len(starts)}), got {len(inputs)}")
    M, N = prefix.shape
    per_layer = []
    for depth, (h0, u) in enumerate(zip(starts, inputs)):
        final = [s[:, -1] for s in record.layer(params, depth, u[:, None, None].expand(M, steps, N, -1), h0, options)]
        if first_half:
            final = [s[..., : s.shape[-1] // 2] for s in final]
        per_layer.append(soft_vaa(torch.cat(final, -1), eps))
    return torch.stack(per_layer, 1)
