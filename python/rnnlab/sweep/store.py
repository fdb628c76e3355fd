"""SQLite result store: one row per finished run, committed as soon as the row is added.

Tables:

* ``runs``: one row per finished run; ``run_id`` (a hash of the run's config, see
  :func:`rnnlab.sweep.spec.run_id`) is the primary key, so a run can never be stored twice. The
  full config is kept as JSON, the factors and outcomes as indexed columns (:data:`COLUMNS`).
* ``plan``: every run a sweep asked for (run_id, sweep name, config JSON), so ``status`` can say
  what is left without the spec file.
* ``meta``: key -> JSON value (specs, VEG thresholds, rnnlab version).
* ``params``: a run's trained weights (run_id, one ``.npz`` blob of name -> array), written only
  when the sweep asks for them (``save_params``), in the same transaction as the run's row: a
  stored row with saved weights never lacks them. Read them back with :meth:`ResultStore.params`
  or :meth:`ResultStore.population_params` (for the post-training analyses of
  :mod:`rnnlab.analysis`); the blob is plain numpy (``numpy.load(io.BytesIO(blob))``).
* ``analyses``: (name, run_id) -> a JSON record of a post-training analysis of that run (e.g.
  ``"latching"``: :class:`rnnlab.analysis.LatchingRecord`), see :mod:`rnnlab.sweep.analyze`.

Runs are read back with :meth:`ResultStore.rows` (dicts), :meth:`ResultStore.to_pandas` (a
DataFrame) or exported as CSV / Parquet (:mod:`rnnlab.sweep.export`), filtered by the condition
language of :mod:`rnnlab.sweep.query` (checked columns, bound values);
:meth:`ResultStore.progress` sums up each sweep of the file.

Populations still training are checkpointed into a folder beside the file,
``<stem>_checkpoints/<population id>.pt`` (+ ``.json`` summary, :mod:`rnnlab.train.checkpoint`),
not into a table: a checkpoint is rewritten every few minutes and can be megabytes, which would
bloat the file and its WAL, and on Ray it is written by the worker training the population while
the driver stays the file's only writer. :attr:`ResultStore.checkpoint_dir` and
:meth:`ResultStore.checkpoints` find them; the runner deletes one once all its rows are stored.

The database is in WAL mode: a row is durable once :meth:`ResultStore.add` returns, readers
(``rnnlab sweep status`` while a sweep runs) never block the writer, and a process killed at any
point leaves every committed row intact and no partial one. Resuming a sweep = skipping the ids in
:meth:`ResultStore.done_ids`; finished runs are neither lost nor repeated.
"""
from __future__ import annotations

import io
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..train import checkpoint as ckpt
from . import export
from .query import RunFilter
from .schema import COLUMNS, JSON_COLUMNS, NAMES

_INDEXED = ("task", "length", "cell", "hidden", "init", "optimizer", "lr", "seed", "success", "veg")
#: the key of a row dict that carries the run's trained weights (name -> tensor) to the store;
#: it is not a column: :meth:`ResultStore.add` writes it to the ``params`` table.
PARAMS_KEY = "params"


def _json_default(v):
    raise TypeError(f"not JSON-serializable: {type(v).__name__}")


def _pack_params(params: Mapping[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{n: v.detach().cpu().numpy() for n, v in params.items()})
    return buf.getvalue()


def _unpack_params(blob: bytes) -> dict[str, torch.Tensor]:
    with np.load(io.BytesIO(blob)) as z:
        return {n: torch.from_numpy(z[n].copy()) for n in z.files}


def _encode(v):
    """Python value -> a SQLite value (JSON text for dicts/lists; NaN -> NULL)."""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=_json_default, allow_nan=True)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


@dataclass(frozen=True)
class SweepProgress:
    """Where one sweep of a file stands: runs ``planned`` and ``done`` (rows), how many
    ``learned``, the ``model_updates`` they took, and the ``first_finished`` / ``last_finished``
    row times (ISO 8601, None without rows)."""

    sweep: str
    planned: int
    done: int
    learned: int
    model_updates: int
    first_finished: str | None
    last_finished: str | None


class ResultStore:
    """The SQLite file of a sweep (created if missing). Use as a context manager or ``close()``.

    Args:
        path: the database file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, with explicit transactions where several statements
        # must land together.
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives the process being killed (only a power
        # loss can drop the last commits), at a fraction of FULL's fsyncs.
        self.db.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{c} {t}" for c, t in COLUMNS)
        self.db.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
        # A file written by an older rnnlab lacks the newer columns: add them (NULL in old rows).
        have = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        for c, t in COLUMNS:
            if c not in have:
                self.db.execute(f"ALTER TABLE runs ADD COLUMN {c} {t}")
        self.db.execute("CREATE TABLE IF NOT EXISTS plan (run_id TEXT PRIMARY KEY, sweep TEXT, config JSON)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value JSON)")
        self.db.execute("CREATE TABLE IF NOT EXISTS params (run_id TEXT PRIMARY KEY, tensors BLOB)")
        self.db.execute("CREATE TABLE IF NOT EXISTS analyses (name TEXT, run_id TEXT, record JSON, PRIMARY KEY (name, run_id))")
        for c in _INDEXED:
            self.db.execute(f"CREATE INDEX IF NOT EXISTS runs_{c} ON runs ({c})")

    # ---- meta and plan ------------------------------------------------------------------------
    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def add_plan(self, sweep: str, runs: Iterable) -> None:
        """Record the runs (:class:`rnnlab.sweep.spec.Run`) a sweep will train (idempotent)."""
        rows = [(r.run_id, sweep, json.dumps(r.to_dict())) for r in runs]
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO plan VALUES (?, ?, ?) ON CONFLICT(run_id) DO NOTHING", rows)
        self.db.execute("COMMIT")

    def planned(self, sweep: str | None = None) -> int:
        if sweep is None:
            return self.db.execute("SELECT COUNT(*) FROM plan").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM plan WHERE sweep = ?", (sweep,)).fetchone()[0]

    # ---- runs -----------------------------------------------------------------------------------
    def done_ids(self) -> set[str]:
        """The ids of every stored run."""
        return {r[0] for r in self.db.execute("SELECT run_id FROM runs")}

    def add(self, row: dict, sweep: str = "") -> bool:
        """Store one finished run and commit. Returns False (and stores nothing) if a run with
        this ``run_id`` is already stored. Unknown keys raise KeyError naming them. A row's
        :data:`PARAMS_KEY` entry (name -> tensor), if any, goes to the ``params`` table in the
        same transaction."""
        params = row.get(PARAMS_KEY)
        extra = set(row) - set(NAMES) - {PARAMS_KEY}
        if extra:
            raise KeyError(f"row has unknown columns {sorted(extra)}; expected a subset of {list(NAMES)}")
        values = {**row, "sweep": row.get("sweep", sweep)}
        names = [c for c in NAMES if c in values]
        sql = f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) ON CONFLICT(run_id) DO NOTHING"
        if params is None:
            return self.db.execute(sql, [_encode(values[c]) for c in names]).rowcount == 1
        blob = _pack_params(params)
        self.db.execute("BEGIN")
        try:
            added = self.db.execute(sql, [_encode(values[c]) for c in names]).rowcount == 1
            if added:
                self.db.execute("INSERT OR REPLACE INTO params VALUES (?, ?)", (row["run_id"], blob))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return added

    def params(self, run_id: str) -> dict[str, torch.Tensor] | None:
        """The trained weights of one run (name -> tensor, without the model dim; the shapes of
        :func:`rnnlab.nn.population.param_shapes` at M = 1, squeezed), or None if not saved."""
        row = self.db.execute("SELECT tensors FROM params WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _unpack_params(row[0])

    def population_params(self, run_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        """The weights of several runs stacked along a leading model dim M (in ``run_ids``
        order), ready for :func:`rnnlab.nn.population.population_forward`. The runs must have
        saved weights of equal shapes (same cell, sizes); else ValueError naming the first bad one."""
        if not run_ids:
            raise ValueError("run_ids must name at least one run")
        per_run = []
        for rid in run_ids:
            p = self.params(rid)
            if p is None:
                raise ValueError(f"run {rid!r} has no saved weights (run the sweep with save_params)")
            if per_run and {n: v.shape for n, v in p.items()} != {n: v.shape for n, v in per_run[0].items()}:
                raise ValueError(f"run {rid!r} has weights of other names or shapes than run {run_ids[0]!r}")
            per_run.append(p)
        return {n: torch.stack([p[n] for p in per_run]) for n in per_run[0]}

    def params_count(self) -> int:
        """How many runs have saved weights."""
        return self.db.execute("SELECT COUNT(*) FROM params").fetchone()[0]

    def params_ids(self) -> set[str]:
        """The ids of the runs with saved weights."""
        return {r[0] for r in self.db.execute("SELECT run_id FROM params")}

    # ---- checkpoints of populations still training -----------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        """The folder of this file's population checkpoints (``<stem>_checkpoints`` beside it)."""
        return self.path.with_name(f"{self.path.stem}_checkpoints")

    def checkpoints(self) -> list[tuple[Path, dict]]:
        """(state file, summary) of every population checkpoint beside this file, by population id."""
        found = ((p, ckpt.read_summary(p)) for p in sorted(self.checkpoint_dir.glob("*.pt")))
        return [(p, summary) for p, summary in found if summary is not None]

    def files_without_state(self) -> list[tuple[Path, str]]:
        """(file, population id) of every file beside this file's checkpoints whose population
        has no state file (``<id>.pt``): the summary or the temporary file of a save that a kill
        interrupted before its population's first state file was in place."""
        states = {p.stem for p in self.checkpoint_dir.glob("*.pt")}
        found = ((p, p.name.split(".")[0]) for p in sorted(self.checkpoint_dir.glob("*")) if p.suffix != ".pt")
        return [(p, population) for p, population in found if population not in states]

    # ---- post-training analyses -------------------------------------------------------------------
    def add_analyses(self, name: str, records: Mapping[str, dict]) -> None:
        """Store (or replace) the ``name`` analysis of several runs (run_id -> JSON-ready
        record) in one transaction."""
        rows = [(name, rid, json.dumps(rec, default=_json_default, allow_nan=True)) for rid, rec in records.items()]
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO analyses VALUES (?, ?, ?)", rows)
        self.db.execute("COMMIT")

    def analysis_ids(self, name: str) -> set[str]:
        """The ids of the runs with a stored ``name`` analysis."""
        return {r[0] for r in self.db.execute("SELECT run_id FROM analyses WHERE name = ?", (name,))}

    def analyses(self, name: str) -> dict[str, dict]:
        """run_id -> record of every stored ``name`` analysis."""
        return {rid: json.loads(rec) for rid, rec in
                self.db.execute("SELECT run_id, record FROM analyses WHERE name = ?", (name,))}

    def count(self, sweep: str | None = None) -> int:
        if sweep is None:
            return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM runs WHERE sweep = ?", (sweep,)).fetchone()[0]

    def progress(self) -> list[SweepProgress]:
        """One :class:`SweepProgress` per sweep of the file (planned or with rows), by name."""
        planned = dict(self.db.execute("SELECT sweep, COUNT(*) FROM plan GROUP BY sweep"))
        done = {sweep: rest for sweep, *rest in self.db.execute(
            "SELECT sweep, COUNT(*), SUM(success), SUM(updates), MIN(finished_at), MAX(finished_at) FROM runs GROUP BY sweep")}
        out = []
        for sweep in sorted(set(planned) | set(done)):
            n, learned, updates, first, last = done.get(sweep, (0, 0, 0, None, None))
            out.append(SweepProgress(sweep, planned.get(sweep, n), n, learned or 0, updates or 0, first, last))
        return out

    def rows(self, where: str | RunFilter = "", params: Sequence = ()) -> list[dict]:
        """Stored runs as dicts (JSON columns decoded, NULL as None), filtered and ordered by
        ``where``: a :class:`rnnlab.sweep.query.RunFilter` or its text, e.g.
        ``"task = 'latch' AND length >= 25 ORDER BY lr"`` or ``("WHERE lr = ?", (0.2,))``.
        Column names are checked against the table and values bound (never pasted into SQL);
        a bad filter raises :class:`rnnlab.sweep.query.QueryError` naming what is wrong."""
        if isinstance(where, RunFilter):
            if params:
                raise ValueError("params bind the ? of a filter string; a RunFilter holds its values already")
            query = where
        else:
            query = RunFilter.parse(where, params)
        clause, bound = query.sql()
        cur = self.db.execute(f"SELECT * FROM runs {clause}", bound)
        names = [d[0] for d in cur.description]
        out = []
        for values in cur:
            row = dict(zip(names, values))
            for c in JSON_COLUMNS & row.keys():
                if row[c] is not None:
                    row[c] = json.loads(row[c])
            out.append(row)
        return out

    def to_pandas(self, where: str | RunFilter = "", params: Sequence = ()):
        """The runs of :meth:`rows` as a pandas DataFrame, one row per run: every column of the
        runs table (JSON columns decoded; integers as nullable Int64, NULL as NA / NaN), then
        ``labels.<factor>`` per bundle factor. Needs pandas (ImportError naming
        ``pip install pandas`` otherwise)."""
        return export.to_pandas(self.rows(where, params))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
