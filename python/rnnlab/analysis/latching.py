"""Per-network latching analysis after training (SPEC §3.3 steps 1–6): is the class stored in
distinct hyperbolic attractors?

For each model of an Elman population and a classification task read out at its last step
(``latch``, ``parity``, …):

1. ``n_sequences`` test sequences of the trained length T (the same for every model, seeded) are
   run in float64 from h_0 = 0; their final states h_T carry the class.
2. Input regime: the constant input x (default 0, which is also the noise mean of ``latch`` and
   ``parity``), drive d = W_ih x + b.
3. Limit sets (:func:`rnnlab.analysis.fixed_points.find_fixed_points`): F is iterated from every
   final state and from ``n_random`` random states (uniform in the box of the states the
   trajectories visit) until it settles on a fixed point or a periodic orbit (period ≤ 64), for at
   most ``max_steps``; q(h) is minimised from ``n_minimize`` states sampled along the
   trajectories; points are merged within ``dedup_tol`` and classified by their spectra (for an
   orbit, by its Floquet multipliers).
4. Each final state belongs to the limit set its autonomous roll-out settled on (or to none).
   Each limit set is labelled with the majority class of the final states it received. For a
   family S of limit sets, the *accuracy through S* is the fraction of final states that settled
   in S on a set labelled with their own class. Four families, from strict to loose:
   hyperbolic attracting fixed points (SPEC §3.3's test), plus hyperbolic attracting orbits,
   plus fixed points and orbits of any kind, and the last once more with each orbit split by
   phase: a state on an orbit of period p is also labelled by where on the orbit it would be
   at a time common to all states (F^max_steps of its final state), since a network can tell the
   classes apart by the phase of one shared oscillation at the read-out time T.
5. A family *separates* the classes when its accuracy is ≥ 1 − ``success_error`` (the task's
   success rule, 99 %: the bar the network's read-out had to pass). The class is *stored in
   distinct hyperbolic attractors* (SPEC §3.3 step 5) when the hyperbolic fixed points separate.
6. Along the first ``n_trajectory`` test trajectories: σ_max(J_t) (max, median, fraction < 1) and
   the finite-time largest Lyapunov exponent (``n_probes`` tangent probes); and the exponent of
   the autonomous map from where their roll-outs stopped.

``storage`` names the strictest family that separates the classes (:data:`STORAGE`):
``hyperbolic_fixed_points``; ``hyperbolic_orbits`` (needs attracting periodic orbits);
``non_hyperbolic`` (needs fixed points or orbits with a multiplier within ``nonhyperbolic_tol``
of the unit circle, or marginal ones); ``orbit_phase`` (the classes share an orbit and differ
in its phase); ``unsettled`` (none separates and more than
``success_error`` of the roll-outs settled on nothing within ``max_steps``: slow, quasi-periodic
or chaotic dynamics); ``shared`` (none separates although the roll-outs settle: the classes
share limit sets, and the class lives only in the transient).
``rollout_readout_accuracy``, the network's own read-out applied where the roll-outs stopped, is
a rougher, family-free check of whether the class survives the autonomous dynamics.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from ..tasks import Task, rng
from .data import task_keys, task_length, task_sequences
from .fixed_points import MAX_PERIOD, find_fixed_points
from .stability import ATTRACTOR, KINDS
from .system import ElmanSystem, as_system
from .trajectory import lyapunov_exponents, max_singular_values

STORAGE = ("hyperbolic_fixed_points", "hyperbolic_orbits", "non_hyperbolic", "orbit_phase", "unsettled", "shared")


@dataclass
class LatchingRecord:
    """One network's latching analysis (module docstring); JSON-ready through :meth:`to_dict`.

    Attributes:
        test_error: read-out error rate on the analysis' test sequences.
        class_counts: test sequences per class.
        n_fixed_points, kinds: distinct fixed points found, and how many of each kind of
            :data:`rnnlab.analysis.stability.KINDS`; n_slow_points: distinct slow points.
        orbit_periods: the minimal period of each distinct periodic orbit found (sorted);
            n_attracting_orbits: how many of them are hyperbolic attractors.
        fixed_fraction, orbit_fraction, unsettled_fraction: final states whose roll-out settled
            on a fixed point, on a periodic orbit, on neither.
        reached_by_class: per class, the distinct fixed points its final states reached;
            hyperbolic_reached_by_class: the same, hyperbolic attractors only;
            orbits_reached_by_class: the distinct periodic orbits reached.
        hyperbolic_accuracy, hyperbolic_orbit_accuracy, attractor_accuracy, phase_accuracy:
            accuracies through hyperbolic attracting fixed points; those and attracting orbits;
            all limit sets; all limit sets told apart by phase (module docstring).
        stored_in_hyperbolic_attractors: hyperbolic_accuracy ≥ 1 − success_error (SPEC §3.3).
        separates_by_attractor: attractor_accuracy ≥ 1 − success_error.
        storage: one of :data:`STORAGE`.
        rollout_readout_accuracy: read-out accuracy at the roll-outs' end states.
        unsettled_centroid_accuracy: among the final states whose roll-out settled nowhere (all
            then at time max_steps), the accuracy of assigning each to the nearer class centroid:
            ≈ 1 when the classes stay apart on an attractor that never settles (e.g. opposite
            phases of a quasi-periodic oscillation); NaN when every roll-out settled.
        sigma_max_max, sigma_max_median, contracting_fraction: σ_max(J_t) over all steps t and
            trajectories: its maximum, median, and the fraction of steps where it is < 1.
        lyapunov: mean finite-time largest Lyapunov exponent of the trajectories.
        autonomous_lyapunov: the same for the autonomous map over ``autonomous_steps`` steps
            from where those trajectories' roll-outs stopped (≈ log of the slowest contraction
            on an attractor, > 0 on a chaotic one, ≈ 0 on a non-hyperbolic or quasi-periodic one).
        reached: the reached limit sets, most visited first (at most ``max_listed``): ``period``,
            ``kind``, ``visits`` per class, ``max_abs_eig`` and ``eigenvalues`` as [re, im] pairs.
    """

    test_error: float
    class_counts: list[int]
    n_fixed_points: int
    kinds: dict[str, int]
    n_slow_points: int
    orbit_periods: list[int]
    n_attracting_orbits: int
    fixed_fraction: float
    orbit_fraction: float
    unsettled_fraction: float
    reached_by_class: list[int]
    hyperbolic_reached_by_class: list[int]
    orbits_reached_by_class: list[int]
    hyperbolic_accuracy: float
    hyperbolic_orbit_accuracy: float
    attractor_accuracy: float
    phase_accuracy: float
    stored_in_hyperbolic_attractors: bool
    separates_by_attractor: bool
    storage: str
    rollout_readout_accuracy: float
    unsettled_centroid_accuracy: float
    sigma_max_max: float
    sigma_max_median: float
    contracting_fraction: float
    lyapunov: float
    autonomous_lyapunov: float
    reached: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The fields as plain JSON values (a non-finite float, e.g. the NaN of an undefined
        accuracy, becomes None)."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}


def check_latching_task(task: Task) -> None:
    """Raise ValueError unless the latching analysis applies to ``task``: a classification read
    out at its last step (latch, parity, temporal order …)."""
    if not isinstance(task, Task):
        raise ValueError(f"task must be an rnnlab.tasks.Task (e.g. make_task('latch', ...)), got {type(task).__name__}")
    if not task.classification or task.readout_steps(task.max_length) != 1:
        raise ValueError(f"the latching analysis needs a classification task read out at its last step "
                         f"(latch, parity, torder, …), got {task.name!r}")


def _random_states(states: Tensor, n: int, seed: int) -> Tensor:
    """[M, n, H] uniform in each model's box [min, max]^H of the visited ``states`` [M, T, B, H]."""
    M, H = states.shape[0], states.shape[-1]
    flat = states.reshape(M, -1, H)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    u = rng.uniform(task_keys(M, seed, "random-states", device=states.device), (n, H), states.dtype)
    return lo + u * (hi - lo)


def _trajectory_sample(states: Tensor, n: int, seed: int) -> Tensor:
    """[M, n, H] states at random (t, b) of the trajectories ``states`` [M, T, B, H]."""
    M, T, B, H = states.shape
    pick = rng.randint(task_keys(M, seed, "minimize-starts", device=states.device), T * B, (n,))
    return states.reshape(M, T * B, H).gather(1, pick[..., None].expand(-1, -1, H))


def _class_visits(labels: Tensor, ends_at: Tensor, P: int, n_classes: int) -> Tensor:
    """[M, P, C] the number of final states of each class (``labels`` [M, B]) whose roll-out
    ended at each point (``ends_at`` [M, B], −1: nowhere)."""
    M = labels.shape[0]
    visits = torch.zeros(M, P + 1, n_classes, dtype=torch.int64, device=labels.device)
    point = torch.where(ends_at >= 0, ends_at, P)  # settled nowhere -> the extra slot P
    visits.index_put_((torch.arange(M, device=labels.device)[:, None].expand_as(labels), point, labels),
                      torch.ones_like(labels), accumulate=True)
    return visits[:, :P]


def _centroid_accuracy(states: Tensor, labels: Tensor, mask: Tensor, n_classes: int) -> Tensor:
    """[M] the fraction of the ``mask``ed states [M, B, H] nearer to their own class centroid (of
    the masked states) than to any other; NaN where nothing is masked."""
    M, B, H = states.shape
    w = mask.to(states.dtype)
    onehot = torch.nn.functional.one_hot(labels, n_classes).to(states.dtype) * w[..., None]  # [M, B, C]
    count = onehot.sum(1)  # [M, C]
    centroids = (onehot.transpose(1, 2) @ states) / count.clamp(min=1)[..., None]  # [M, C, H]
    dist = torch.cdist(states, centroids).masked_fill(count[:, None, :] == 0, float("inf"))
    correct = ((dist.argmin(-1) == labels).to(states.dtype) * w).sum(1)
    return correct / w.sum(1)  # 0/0 = NaN where no state is masked


def _storage(separating: list[bool], unsettled: float, success_error: float) -> str:
    """The strictest separating family (``separating`` in :data:`STORAGE` order), else why none."""
    for name, ok in zip(STORAGE, separating):
        if ok:
            return name
    return "unsettled" if unsettled > success_error else "shared"


@torch.no_grad()
def analyze_latching(
    params: Mapping[str, Tensor] | ElmanSystem,
    task: Task,
    *,
    length: int | None = None,
    nonlinearity: str | None = None,
    x: float | Tensor | None = None,
    n_sequences: int = 1000,
    n_random: int = 64,
    n_minimize: int = 64,
    n_trajectory: int = 64,
    n_probes: int = 4,
    autonomous_steps: int = 1000,
    max_steps: int = 10_000,
    tol: float = 1e-8,
    dedup_tol: float = 1e-4,
    margin: float = 1e-3,
    nonhyperbolic_tol: float = 1e-3,
    success_error: float | None = None,
    max_listed: int = 8,
    seed: int = 0,
) -> list[LatchingRecord]:
    """The latching analysis of every model of an Elman population (module docstring).

    Args:
        params: the population's parameters (:func:`rnnlab.nn.population.param_shapes` with
            ``cell="elman"``: weight_ih [M, H, I], weight_hh [M, H, H], bias [M, H], weight_out
            [M, O, H], bias_out [M, O]) on any device, or an :class:`ElmanSystem`.
        task: the trained task (a classification read out at the last step); ``length`` its T
            (default: the task's fixed length).
        nonlinearity: φ (default tanh).
        x: the input regime of the autonomous map (None: 0).
        n_sequences, n_random, n_minimize, n_trajectory, n_probes: test sequences, random
            starts, q-minimisation starts, trajectories for σ_max and Lyapunov, tangent probes.
        autonomous_steps: steps of the autonomous Lyapunov estimate.
        max_steps, tol, dedup_tol: the roll-out budget, the fixed-point criterion
            ‖F(h) − h‖ < tol and the distance under which points are merged.
        margin, nonhyperbolic_tol: :func:`rnnlab.analysis.stability.classify`.
        success_error: the separation bar (default: the task's success error, 1 %).
        max_listed: reached points listed with their spectra per network.
        seed: seed of every draw (sequences, random states, starts, probes).
    Returns:
        one :class:`LatchingRecord` per model, in order.
    """
    system = as_system(params, nonlinearity)
    check_latching_task(task)
    if system.input_size != task.n_in or system.weight_out.shape[1] != task.n_out:
        raise ValueError(f"task {task.name!r} has {task.n_in} inputs and {task.n_out} outputs; the population has "
                         f"{system.input_size} and {system.weight_out.shape[1]}")
    for name, v in (("n_sequences", n_sequences), ("n_trajectory", n_trajectory), ("autonomous_steps", autonomous_steps)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    success_error = task.success_error if success_error is None else success_error
    T, M, C = task_length(task, length), system.num_models, task.n_out

    batch = task_sequences(task, M, T, n_sequences, seed, "attractor-analysis", dtype=system.dtype, device=system.device)
    labels = batch.target[:, -1]  # [M, B]
    states = system.run(batch.x)  # [M, T, B, H]
    final = states[:, -1]
    test_error = (system.readout(final).argmax(-1) != labels).to(system.dtype).mean(1)

    drive = system.drive(x)
    starts = torch.cat([final, _random_states(states, n_random, seed)], 1)
    fp = find_fixed_points(system, drive, starts, _trajectory_sample(states, n_minimize, seed), max_steps=max_steps,
                           tol=tol, dedup_tol=dedup_tol, margin=margin, nonhyperbolic_tol=nonhyperbolic_tol)
    ends_at = fp.labels[:, :n_sequences]  # the final states' roll-outs only
    P = fp.valid.shape[1]
    visits = _class_visits(labels, ends_at, P, C)  # [M, P, C]
    settled = ends_at >= 0
    at = ends_at.clamp(min=0)
    period_at, kind_at = fp.period.gather(1, at), fp.kind.gather(1, at)
    attracting = kind_at == ATTRACTOR
    own_class = settled & (visits.argmax(-1).gather(1, at) == labels)
    accuracy = lambda family: (own_class & family).to(system.dtype).mean(1)  # noqa: E731
    hyperbolic_acc = accuracy(attracting & (period_at == 1))
    orbit_acc = accuracy(attracting)
    attractor_acc = accuracy(settled)
    # (limit set, phase at a common time): the class can sit on different phases of one orbit
    phased = torch.where(settled, ends_at * MAX_PERIOD + fp.phase[:, :n_sequences], -1)
    phase_visits = _class_visits(labels, phased, P * MAX_PERIOD, C)
    phase_acc = (settled & (phase_visits.argmax(-1).gather(1, phased.clamp(min=0)) == labels)).to(system.dtype).mean(1)
    fixed_frac = (settled & (period_at == 1)).to(system.dtype).mean(1)
    orbit_frac = (settled & (period_at > 1)).to(system.dtype).mean(1)
    unsettled = (~settled).to(system.dtype).mean(1)
    ends = fp.ends[:, :n_sequences]
    rollout_acc = (system.readout(ends).argmax(-1) == labels).to(system.dtype).mean(1)
    apart = _centroid_accuracy(ends, labels, ~settled, C)

    traj_x = batch.x[:, :, :n_trajectory]
    sigma = max_singular_values(system, traj_x).flatten(1)  # [M, T·b]
    lyap = lyapunov_exponents(system, traj_x, n_probes, seed).mean(1)
    b = traj_x.shape[2]
    regime = system.constant_input(x)[:, None, None].expand(M, autonomous_steps, b, system.input_size)
    auto_lyap = lyapunov_exponents(system, regime, n_probes, seed, h0=fp.ends[:, :b]).mean(1)

    bar = 1 - success_error
    records = []
    for m in range(M):
        v, valid, period, kind = visits[m], fp.valid[m], fp.period[m], fp.kind[m]
        is_fixed, is_orbit = valid & (period == 1), valid & (period > 1)
        reached = (v > 0)
        total = v.sum(-1)
        listed = [p for p in total.argsort(descending=True, stable=True).tolist() if total[p] > 0][:max_listed]
        eig = fp.eigenvalues[m]
        separating = [bool(a[m] >= bar) for a in (hyperbolic_acc, orbit_acc, attractor_acc, phase_acc)]
        records.append(LatchingRecord(
            test_error=float(test_error[m]),
            class_counts=torch.bincount(labels[m], minlength=C).tolist(),
            n_fixed_points=int(is_fixed.sum()),
            kinds={k: int((kind[is_fixed] == i).sum()) for i, k in enumerate(KINDS)},
            n_slow_points=int(fp.n_slow[m]),
            orbit_periods=sorted(period[is_orbit].tolist()),
            n_attracting_orbits=int((is_orbit & (kind == ATTRACTOR)).sum()),
            fixed_fraction=float(fixed_frac[m]),
            orbit_fraction=float(orbit_frac[m]),
            unsettled_fraction=float(unsettled[m]),
            reached_by_class=(reached & is_fixed[:, None]).sum(0).tolist(),
            hyperbolic_reached_by_class=(reached & (is_fixed & (kind == ATTRACTOR))[:, None]).sum(0).tolist(),
            orbits_reached_by_class=(reached & is_orbit[:, None]).sum(0).tolist(),
            hyperbolic_accuracy=float(hyperbolic_acc[m]),
            hyperbolic_orbit_accuracy=float(orbit_acc[m]),
            attractor_accuracy=float(attractor_acc[m]),
            phase_accuracy=float(phase_acc[m]),
            stored_in_hyperbolic_attractors=separating[0],
            separates_by_attractor=separating[2],
            storage=_storage(separating, float(unsettled[m]), success_error),
            rollout_readout_accuracy=float(rollout_acc[m]),
            unsettled_centroid_accuracy=float(apart[m]),
            sigma_max_max=float(sigma[m].max()),
            sigma_max_median=float(sigma[m].median()),
            contracting_fraction=float((sigma[m] < 1).to(system.dtype).mean()),
            lyapunov=float(lyap[m]),
            autonomous_lyapunov=float(auto_lyap[m]),
            reached=[{"period": int(period[p]), "kind": KINDS[int(kind[p])], "visits": v[p].tolist(),
                      "max_abs_eig": float(eig[p].abs().max()),
                      "eigenvalues": [[float(z.real), float(z.imag)] for z in eig[p]]} for p in listed],
        ))
    return records


def headline(records: Sequence[LatchingRecord], learned: Sequence[bool] | None = None,
             success_error: float = 0.01) -> dict:
    """SPEC §3.3 step 6: among the networks that learned, the fraction whose class is **not**
    stored in distinct hyperbolic attractors.

    Args:
        records: :func:`analyze_latching` records.
        learned: per record, whether that network learned (e.g. ``RunResult.success``); default:
            its ``test_error`` < ``success_error``.
    Returns:
        ``n_networks``, ``n_learned``, ``n_stored_hyperbolic``, ``fraction_not_stored`` (NaN when
        none learned) and ``storage``: the number of learned networks per :data:`STORAGE` label.
    """
    if learned is None:
        learned = [r.test_error < success_error for r in records]
    if len(learned) != len(records):
        raise ValueError(f"learned must have one entry per record ({len(records)}), got {len(learned)}")
    ok = [r for r, l in zip(records, learned) if l]
    stored = sum(r.stored_in_hyperbolic_attractors for r in ok)
    return {"n_networks": len(records), "n_learned": len(ok), "n_stored_hyperbolic": stored,
            "fraction_not_stored": (len(ok) - stored) / len(ok) if ok else math.nan,
            "storage": {s: sum(r.storage == s for r in ok) for s in STORAGE}}
