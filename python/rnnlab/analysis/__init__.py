"""Dynamics of trained Elman populations: fixed points, hyperbolic attractors, Jacobians along
trajectories, Lyapunov exponents (Johnston et al., SPEC §3.3) and the VAA and VAA* of every cell with layers (Lambrechts et al.,
SPEC §6.1).

Everything is population-first and runs all M models of an Elman population batched, in
float64, on the parameters' device. The entry points :func:`analyze_latching` and :func:`vaa`
take the parameter dict of M Elman RNNs (:func:`rnnlab.nn.population.param_shapes`,
``cell="elman"``: weight_ih [M, H, I], weight_hh [M, H, H], bias [M, H], weight_out [M, O, H],
bias_out [M, O]; e.g. :func:`stack_params` of the ``RunResult.params`` of
``train_population(..., keep_params=True)``) and a ``nonlinearity``; the building blocks take an
:class:`ElmanSystem`, the same parameters checked and converted once
(``ElmanSystem.from_params(params, nonlinearity)``).

    records = analyze_latching(stack_params([r.params for r in results if r.success]), task)
    headline(records)["fraction_not_stored"]   # SPEC §3.3 step 6

============================== ==============================================================
module                         job
============================== ==============================================================
:mod:`.system`                 the map F(h) = φ(W_hh h + W_ih x + b), its Jacobian, driven runs
:mod:`.fixed_points`           roll-outs of F, q-minimisation, deduplication, the search
:mod:`.orbits`                 periodic orbits met by the roll-outs: canonical point, period
:mod:`.stability`              spectra at fixed points and their classification
:mod:`.trajectory`             σ_max(J_t) along trajectories, the largest Lyapunov exponent
:mod:`.latching`               per-network records and the headline statistic (SPEC §3.3)
:mod:`.vaa`                    variability amongst attractors (SPEC §6.1)
:mod:`.data`                   seeded test sequences from a task generator
============================== ==============================================================
"""
from .fixed_points import MAX_PERIOD, FixedPoints, Rollout, deduplicate, find_fixed_points, iterate_map, minimize_speed
from .latching import STORAGE, LatchingRecord, analyze_latching, check_latching_task, headline
from .orbits import canonical_orbit_points
from .stability import KINDS, classify, spectra
from .system import NONLINEARITIES, ElmanSystem, as_system, require_system, stack_params
from .trajectory import lyapunov_exponents, max_singular_values
from .vaa import reachable_states, soft_vaa, stabilize, vaa, vaa_star, variability_amongst_attractors

__all__ = [
    "ElmanSystem", "as_system", "require_system", "NONLINEARITIES", "stack_params",
    "MAX_PERIOD", "Rollout", "iterate_map", "canonical_orbit_points", "minimize_speed", "deduplicate", "FixedPoints", "find_fixed_points",
    "KINDS", "classify", "spectra", "max_singular_values", "lyapunov_exponents",
    "LatchingRecord", "STORAGE", "analyze_latching", "check_latching_task", "headline",
    "reachable_states", "stabilize", "variability_amongst_attractors", "vaa", "soft_vaa", "vaa_star",
]
