"""Post-training analyses of a sweep's stored networks: the latching / hyperbolic-attractor
analysis of SPEC §3.3 (:func:`rnnlab.analysis.analyze_latching`) over every learned run of a
sweep that kept its weights (``save_params``), of the cells that have an analysis system
(``Cell.system``: the Elman cell).

Runs are grouped by what the analysis must share (task and its arguments, length, hidden size,
cell and its options), each group is stacked into populations of at most ``batch`` models
(:meth:`ResultStore.population_params`) and analysed in one batched call; each run's record is
committed to the ``analyses`` table as its population finishes, so an interrupted analysis
resumes where it stopped (runs already analysed are skipped unless ``redo``).

    rnnlab sweep attractors runs/johnston/johnston.sqlite --where "task = 'latch'"
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from ..cells import get_cell, names
from ..tasks import make_task
from ..train import RunConfig
from .query import Condition, RunFilter
from .schema import NAMES
from .store import ResultStore

#: the name of the latching analysis in the ``analyses`` table.
LATCHING = "latching"


def _group_key(row: dict) -> tuple:
    config = RunConfig(**row["config"]["config"])
    return (row["task"], json.dumps(config.task_kwargs, sort_keys=True), row["length"], row["hidden"], config.cell,
            json.dumps(config.forward_options(), sort_keys=True))


def analyze_sweep(db_path: str | Path, where: str | RunFilter = "", *, learned_only: bool = True, batch: int = 64,
                  redo: bool = False, progress: bool = True, **analysis_options) -> dict:
    """Run the latching analysis on the stored runs of ``db_path`` whose cell has an analysis
    system (``Cell.system``).

    Args:
        where: a filter of the runs (:mod:`rnnlab.sweep.query`), e.g. ``"task = 'latch' AND length = 25"``;
            runs are analysed in ``run_id`` order unless it has its own ORDER BY.
        learned_only: analyse only runs that learned (SPEC §3.3 step 6 is about those).
        batch: models per analysis call (memory: ~``n_sequences``·T·H float64 values per model).
        redo: analyse runs that already have a record again.
        analysis_options: keyword arguments of :func:`rnnlab.analysis.analyze_latching` (``n_sequences``,
            ``max_steps`` …); ``length`` and the cell's options (``nonlinearity``) come from each run.
    Returns:
        ``analysed`` (runs analysed now), ``already`` (skipped: had a record), ``no_params``
        (matching runs without saved weights), ``skipped_groups`` (group -> why, e.g. a task
        that is not a last-step classification).
    """
    from ..analysis import analyze_latching, check_latching_task

    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    required = [Condition("cell", "in", names(lambda c: c.system is not None))]
    required += [Condition("success", "=", 1)] if learned_only else []
    query = (where if isinstance(where, RunFilter) else RunFilter.parse(where)).and_(
        RunFilter(tuple(required), (("run_id", False),)))
    with ResultStore(db_path) as store:
        rows = store.rows(query)
        have = store.params_ids()
        done = set() if redo else store.analysis_ids(LATCHING)
        todo = [r for r in rows if r["run_id"] in have and r["run_id"] not in done]
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in todo:
            groups[_group_key(r)].append(r)
        out = {"analysed": 0, "already": sum(r["run_id"] in done for r in rows),
               "no_params": sum(r["run_id"] not in have for r in rows), "skipped_groups": {}}
        for key, group in groups.items():
            task_name, task_kwargs, length, _, cell, options = key
            task = make_task(task_name, **json.loads(task_kwargs))
            try:
                check_latching_task(task)
            except ValueError as e:
                out["skipped_groups"][f"{task_name} T={length}"] = str(e)
                continue
            for i in range(0, len(group), batch):
                ids = [r["run_id"] for r in group[i:i + batch]]
                system = get_cell(cell).system.from_params(store.population_params(ids), cell=cell, **json.loads(options))
                records = analyze_latching(system, task, length=length, **analysis_options)
                store.add_analyses(LATCHING, {rid: rec.to_dict() for rid, rec in zip(ids, records)})
                out["analysed"] += len(ids)
                if progress:
                    print(f"[attractors] {task_name} T={length} H={key[3]}: {min(i + batch, len(group))}/{len(group)} "
                          f"({out['analysed']}/{len(todo)} in all)", file=sys.stderr, flush=True)
        return out


def _median(values: list[float]) -> float:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else math.nan


def latching_table(db_path: str | Path, by: tuple[str, ...] = ("task", "length", "hidden")) -> str:
    """A markdown table of the stored latching records of learned runs, one line per value of
    ``by`` (columns of the runs table): networks analysed, how many store the class in distinct
    hyperbolic attracting fixed points, the headline fraction NOT stored that way (SPEC §3.3 step
    6), the storage labels (:data:`rnnlab.analysis.STORAGE`), median σ_max(J_t) and Lyapunov
    exponent along the trajectories."""
    from ..analysis import STORAGE

    unknown = [c for c in by if c not in NAMES]
    if unknown:
        raise ValueError(f"by names unknown columns {unknown}; the runs table has {list(NAMES)}")
    with ResultStore(db_path) as store:
        records = store.analyses(LATCHING)
        rows = [r for r in store.rows("WHERE success = 1") if r["run_id"] in records]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[c] for c in by)].append(records[r["run_id"]])
    head = [*by, "learned, analysed", "stored in hyperbolic fixed points", "NOT stored so (headline)",
            *STORAGE, "median σ_max(J_t)", "median Lyapunov"]

    def line(label: list[str], recs: list[dict]) -> str:
        stored = sum(r["stored_in_hyperbolic_attractors"] for r in recs)
        cells = [*label, str(len(recs)), str(stored), f"{(len(recs) - stored) / len(recs):.0%}",
                 *(str(sum(r["storage"] == s for r in recs)) for s in STORAGE),
                 f"{_median([r['sigma_max_median'] for r in recs]):.3g}", f"{_median([r['lyapunov'] for r in recs]):.3g}"]
        return "| " + " | ".join(cells) + " |"

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [line([str(v) for v in key], groups[key]) for key in sorted(groups, key=lambda k: tuple((v is None, v) for v in k))]
    if len(groups) > 1:
        lines.append(line(["all"] + [""] * (len(by) - 1), [r for recs in groups.values() for r in recs]))
    return "\n".join(lines)
