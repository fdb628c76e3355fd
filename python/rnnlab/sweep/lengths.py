"""How far the stored networks of a sweep carry beyond their training length: each run's error on
fresh sequences of other lengths (a net trained on temporal order at T = 200, tested at T = 1,000).

A run's test sequences are drawn from its own key (its seed), its task's per-model constants
(:meth:`rnnlab.tasks.base.Task.setup`) are the ones it trained with, and each chunk of ``chunk``
sequences at length L is the stream ``("lengths", L, chunk index)``: a run's record depends on its
own weights and seed only, never on the runs evaluated beside it, and two runs of one seed see
the same sequences. Records are committed to the ``analyses`` table (name :data:`LENGTHS`) per
group of runs, merged with the lengths a run already has, so a long evaluation resumes where it
stopped and later calls can add lengths.

    rnnlab sweep lengths runs/pascanu2013_long/pascanu2013_long.sqlite --lengths 200,500,1000
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from ..tasks import rng
from ..train import RunConfig
from ..train.trainer import _DTYPES, validation_outputs
from .query import Condition, RunFilter
from .schema import NAMES
from .store import ResultStore

#: the name of these records in the ``analyses`` table.
LENGTHS = "lengths"

#: the most input values one forward call takes (models × T × sequences × inputs); a group of runs
#: is evaluated in blocks of models under it.
BLOCK_VALUES = 8 << 20


def _group_key(config: RunConfig) -> str:
    """What runs evaluated in one call must share: the task and its arguments, the cell, its
    options and sizes, the dtype."""
    return json.dumps([config.task, config.task_kwargs, config.cell, config.forward_options(), config.hidden,
                       config.dtype], sort_keys=True)


@torch.no_grad()
def length_errors(store: ResultStore, configs: Sequence[RunConfig], run_ids: Sequence[str], length: int,
                  sequences: int, chunk: int) -> list[dict]:
    """The error rate (fraction of wrong sequences, the task's rule) and mean loss of each run on
    ``sequences`` fresh sequences of nominal length ``length``; the runs share a :func:`_group_key`.

    Returns:
        one ``{"error", "loss", "sequences", "steps"}`` per run, in order (``steps``: T of the
        sequences, the task's jitter or padding included).
    """
    config = configs[0]
    task = config.make_task()
    params = store.population_params(list(run_ids))
    dtype = _DTYPES[config.dtype]
    params = {n: v.to(dtype) for n, v in params.items()}
    keys = rng.seed_keys([c.seed for c in configs])
    ctx = task.setup(keys)
    M = len(configs)
    wrong = torch.zeros(M, dtype=torch.float64)
    loss_sum = torch.zeros(M, dtype=torch.float64)
    steps = set()
    for c in range(math.ceil(sequences / chunk)):
        n = min(chunk, sequences - c * chunk)
        T = task.sequence_length(length, rng.scalar_uniform(0, "lengths-jitter", length, c))
        steps.add(T)
        block = max(1, BLOCK_VALUES // (T * n * task.n_in))
        for m0 in range(0, M, block):
            m = slice(m0, m0 + block)
            batch = task.sample(rng.derive(keys[m], LENGTHS, length, c), {k: v[m] for k, v in ctx.items()}, T, n, dtype)
            y = validation_outputs({k: v[m] for k, v in params.items()}, batch.x, config, task.readout_steps(T))
            wrong[m] += task.sequence_errors(y, batch).sum(1).double()
            loss_sum[m] += task.loss(y, batch).double() * n
    return [{"error": float(wrong[i] / sequences), "loss": float(loss_sum[i] / sequences), "sequences": sequences,
             "steps": sorted(steps)} for i in range(M)]


def evaluate_lengths(db_path: str | Path, lengths: Sequence[int], where: str | RunFilter = "", *,
                     learned_only: bool = True, sequences: int = 2000, chunk: int = 100, batch: int = 64,
                     redo: bool = False, progress: bool = True) -> dict:
    """Evaluate the stored runs of ``db_path`` (those with saved weights, ``save_params``) at each
    of ``lengths`` and store the records.

    Args:
        lengths: nominal sequence lengths (the task's T before its own jitter or padding).
        where: a filter of the runs (:mod:`rnnlab.sweep.query`), e.g. ``"sweep = 'pascanu2013_long'"``.
        learned_only: only runs that learned.
        sequences: fresh sequences per run and length.
        chunk: sequences per draw (part of what defines the test set: keep it to compare records).
        batch: runs per group call (their weights are stacked).
        redo: evaluate lengths a run already has a record for again.
    Returns:
        ``evaluated`` (run-lengths evaluated now), ``already`` (run-lengths with a record, skipped),
        ``no_params`` (matching runs without saved weights).
    """
    lengths = list(lengths)
    if not lengths or not all(isinstance(L, int) and not isinstance(L, bool) and L >= 1 for L in lengths):
        raise ValueError(f"lengths must be one or more ints >= 1, got {lengths!r}")
    for name, v in (("sequences", sequences), ("chunk", chunk), ("batch", batch)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    required = (Condition("success", "=", 1),) if learned_only else ()
    query = (where if isinstance(where, RunFilter) else RunFilter.parse(where)).and_(
        RunFilter(required, (("run_id", False),)))
    with ResultStore(db_path) as store:
        rows = store.rows(query)
        have = store.params_ids()
        records = store.analyses(LENGTHS)
        out = {"evaluated": 0, "already": 0, "no_params": sum(r["run_id"] not in have for r in rows)}
        todo: dict[tuple[str, int], list[tuple[str, RunConfig]]] = defaultdict(list)
        for r in rows:
            if r["run_id"] not in have:
                continue
            config = RunConfig(**r["config"]["config"])
            for L in lengths:
                if not redo and str(L) in records.get(r["run_id"], {}):
                    out["already"] += 1
                else:
                    todo[(_group_key(config), L)].append((r["run_id"], config))
        total = sum(len(v) for v in todo.values())
        for (_, L), runs in todo.items():
            for i in range(0, len(runs), batch):
                part = runs[i:i + batch]
                ids, configs = [rid for rid, _ in part], [c for _, c in part]
                results = length_errors(store, configs, ids, L, sequences, chunk)
                for rid, rec in zip(ids, results):  # merged into the records read above, kept current here
                    records[rid] = {**records.get(rid, {}), str(L): rec}
                store.add_analyses(LENGTHS, {rid: records[rid] for rid in ids})
                out["evaluated"] += len(ids)
                if progress:
                    print(f"[lengths] {configs[0].task} at L={L}: {out['evaluated']}/{total}", file=sys.stderr, flush=True)
    return out


def lengths_table(db_path: str | Path, lengths: Sequence[int] | None = None, where: str | RunFilter = "",
                  by: tuple[str, ...] = ("task", "length", "hidden")) -> str:
    """A markdown table of the stored length records: one line per value of ``by`` (columns of the
    runs table), one column per test length — runs under the task's success error at that
    length out of those evaluated, and their median error. ``lengths``: the columns (default:
    every length with a record)."""
    records, rows = _records(db_path, where, by)
    threshold = {r["run_id"]: _success_error(r) for r in rows}
    if lengths is None:
        lengths = sorted({int(L) for r in rows for L in records[r["run_id"]]})
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[c] for c in by)].append(r)

    def cell(group: list[dict], L: int) -> str:
        found = [(r, records[r["run_id"]].get(str(L))) for r in group]
        found = [(r, rec) for r, rec in found if rec is not None]
        if not found:
            return "—"
        passed = sum(rec["error"] < threshold[r["run_id"]] for r, rec in found)
        return f"{passed}/{len(found)} ({statistics.median(rec['error'] for _, rec in found):.1%})"

    head = [*by, "runs", *(f"L = {L}" for L in lengths)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(groups, key=lambda k: tuple((v is None, v) for v in k)):
        lines.append("| " + " | ".join([*(str(v) for v in key), str(len(groups[key])),
                                        *(cell(groups[key], L) for L in lengths)]) + " |")
    return "\n".join(lines)


def plot_lengths(db_path: str | Path, path: str | Path, where: str | RunFilter = "",
                 by: tuple[str, ...] = ("task", "hidden")) -> None:
    """A PNG of the stored length records: one panel per training length (or range of lengths), the
    error (%) against the test length of each run (faint) and the median of each group of ``by``
    values (bold); a dashed line marks the training length (a band the range its batches drew
    from), a dotted one the success error."""
    from ..plotting import pyplot

    records, rows = _records(db_path, where, by)
    if not rows:
        raise ValueError("no stored length records match: run evaluate_lengths (rnnlab sweep lengths) first")
    plt = pyplot()
    trained = sorted({_trained(r) for r in rows}, key=lambda t: (t[1] is None, t))
    groups = sorted({tuple(str(r[c]) for c in by) for r in rows})
    colors = {g: plt.cm.tab10(i % 10) for i, g in enumerate(groups)}
    fig, axes = plt.subplots(1, len(trained), figsize=(4 * len(trained), 3.4), squeeze=False, sharey=True)
    for ax, (T0, T) in zip(axes[0], trained):
        panel = [r for r in rows if _trained(r) == (T0, T)]
        for g in groups:
            curves = [{int(L): rec["error"] for L, rec in records[r["run_id"]].items()}
                      for r in panel if tuple(str(r[c]) for c in by) == g]
            for curve in curves:  # each run faint, the group's median bold
                ax.plot(sorted(curve), [100 * curve[L] for L in sorted(curve)], color=colors[g], lw=0.6, alpha=0.25)
            lengths = sorted({L for curve in curves for L in curve})
            median = [100 * statistics.median(c[L] for c in curves if L in c) for L in lengths]
            ax.plot(lengths, median, color=colors[g], marker=".", ms=3, lw=1.2)
        if T0 != T:
            ax.axvspan(T0, T - 1, color="k", alpha=0.08, lw=0)
        elif T is not None:
            ax.axvline(T, color="k", ls="--", lw=0.8)
        ax.axhline(100 * _success_error(panel[0]), color="k", ls=":", lw=0.8)
        lengths = [int(L) for r in panel for L in records[r["run_id"]]]
        if max(lengths) > 4 * min(lengths):
            ax.set_xscale("log")
        title = "trained at length " if T0 == T else "trained at lengths "
        ax.set(title=title + training_lengths(T0, T), xlabel="test length", ylim=(-2, 102))
    axes[0][0].set_ylabel("error (%)")
    for g in groups:
        axes[0][-1].plot([], [], color=colors[g], label=", ".join(f"{c}={v}" for c, v in zip(by, g)))
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _records(db_path: str | Path, where: str | RunFilter, by: tuple[str, ...]) -> tuple[dict[str, dict], list[dict]]:
    """The stored length records (run_id -> record) and the rows of the runs ``where`` selects
    that have one; ValueError if ``by`` names a column the runs table lacks."""
    unknown = [c for c in by if c not in NAMES]
    if unknown:
        raise ValueError(f"by names unknown columns {unknown}; the runs table has {list(NAMES)}")
    with ResultStore(db_path) as store:
        records = store.analyses(LENGTHS)
        return records, [r for r in store.rows(where) if r["run_id"] in records]


def training_lengths(min_length: int | None, max_length: int | None) -> str:
    """How a run's training lengths read: ``"T"`` for one length, ``"a–b"`` for the lengths
    a = min_length … b = max_length − 1 that its batches draw from (Task.base_length).

    Raises:
        ValueError: unequal lengths that are not a range (one missing, or min_length > max_length).
    """
    if min_length != max_length and (min_length is None or max_length is None or min_length > max_length):
        raise ValueError(f"need min_length <= max_length, got min_length={min_length}, max_length={max_length}")
    return str(max_length) if min_length == max_length else f"{min_length}–{max_length - 1}"


def _trained(row: dict) -> tuple[int | None, int | None]:
    """(min_length, length) of a run's training batches: lengths min_length … length − 1 drawn per
    batch (Task.base_length), or (T, T) for one length (None where the task's defaults gave them)."""
    T = row["length"]
    return (T if row["min_length"] is None else row["min_length"]), T


def _success_error(row: dict) -> float:
    config = RunConfig(**row["config"]["config"])
    return config.make_task().success_error if config.success_error is None else config.success_error
