"""Run filters (rnnlab.sweep.query): the condition language selects and orders the right runs,
every value is bound and every column checked, so a filter cannot change the query; bad filters
are errors naming the bad part, on the API and on the command line."""
from __future__ import annotations

import pytest

from rnnlab.cli import main
from rnnlab.sweep import ResultStore, grid
from rnnlab.sweep.query import Condition, QueryError, RunFilter


@pytest.fixture()
def db(tmp_path):
    """Six stored runs: lr 0.01 / 0.1 / 1.0 × seeds 0, 1; method label C for lr < 1, else CR."""
    path = tmp_path / "q.sqlite"
    with ResultStore(path) as store:
        for run in grid("q", task="latch", length=10, lr=[0.01, 0.1, 1.0], seed=[0, 1]).expand():
            c = run.config
            store.add({"run_id": run.run_id, "config": run.to_dict(), "labels": {"method": "C" if c.lr < 1 else "CR"},
                       "task": c.task, "length": 10, "cell": c.cell, "lr": c.lr, "seed": c.seed, "success": c.lr == 0.1,
                       "updates": 5, "updates_to_success": 5 if c.lr == 0.1 else None}, "q")
    return path


def _lr_seed(rows):
    return [(r["lr"], r["seed"]) for r in rows]


@pytest.mark.parametrize("where, params, expected", [
    ("", (), 6),
    ("lr = 0.1", (), [(0.1, 0), (0.1, 1)]),
    ("WHERE lr >= ? AND seed == 1 ORDER BY lr DESC", (0.1,), [(1.0, 1), (0.1, 1)]),
    ("lr in (0.01, 1.0) and seed = 0 order by lr", (), [(0.01, 0), (1.0, 0)]),
    ("lr NOT IN (0.01) AND updates_to_success IS NULL", (), [(1.0, 0), (1.0, 1)]),
    ("updates_to_success is not null and success = true order by seed desc", (), [(0.1, 1), (0.1, 0)]),
    ("labels.method = CR ORDER BY seed", (), [(1.0, 0), (1.0, 1)]),
    ("task = 'latch' AND labels.method <> \"C\" AND seed < 1", (), [(1.0, 0)]),
    ("ORDER BY labels.method DESC, lr, seed", (), [(1.0, 0), (1.0, 1), (0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)]),
])
def test_filters_select_and_order_the_runs(db, where, params, expected):
    with ResultStore(db) as store:
        rows = store.rows(where, params)
    assert (len(rows) if isinstance(expected, int) else _lr_seed(rows)) == expected


def test_values_are_bound_and_never_run_as_sql(db):
    with ResultStore(db) as store:
        assert store.rows("task = 'latch''; DROP TABLE runs; --'") == []  # one (odd) string value
        assert store.rows("task = ?", ("x' OR '1'='1",)) == []
        assert store.count() == 6
    clause, params = RunFilter.parse("labels.method = 'a'' OR 1=1' AND lr > 0.5").sql()
    assert clause == "WHERE json_extract(labels, ?) = ? AND lr > ?" and params == ("$.method", "a' OR 1=1", 0.5)


@pytest.mark.parametrize("where, message", [
    ("task = 'x'; DROP TABLE runs", "cannot read the filter at '; DROP TABLE runs'"),
    ("task = 'x' OR 1 = 1", "OR is not supported at 'OR'"),
    ("colour = 1", "unknown column 'colour'; a filter may name ['run_id'"),
    ("history = 1", "unknown column 'history'"),
    ("lr = 0.1 ORDER BY lr; DELETE FROM runs", "cannot read the filter"),
    ("ORDER BY sqlite_master", "unknown column 'sqlite_master'"),
    ("(lr = 0.1)", "expected a column name at '('"),
    ("lr =", "expected a value at the end"),
    ("lr = null", "NULL: write IS [NOT] NULL"),
    ("lr IN ()", "expected a value at ')'"),
    ("lr = ?", "more ? placeholders than the 0 values given"),
    ("lr ~ 1", "cannot read the filter at '~ 1'"),
])
def test_bad_filters_name_the_bad_part(db, where, message):
    with ResultStore(db) as store, pytest.raises(QueryError) as e:
        store.rows(where)
    assert message in str(e.value)


def test_filters_built_in_python_are_checked_too(db):
    with pytest.raises(QueryError, match="unknown column 'lr; --'"):
        Condition("lr; --", "=", 1)
    with pytest.raises(QueryError, match="unknown operator 'LIKE'"):
        Condition("task", "LIKE", "l%")
    with pytest.raises(QueryError, match=r"lr = NULL matches nothing: write lr IS \[NOT\] NULL"):
        Condition("lr", "=", None)
    with pytest.raises(QueryError, match="needs a non-empty list"):
        Condition("lr", "in", ())
    with pytest.raises(QueryError, match="2 values were given"):
        RunFilter.parse("lr = ?", (0.1, 0.2))
    query = RunFilter((Condition("seed", "=", 1),)).and_(RunFilter.parse("lr < 1 ORDER BY lr DESC"))
    with ResultStore(db) as store:
        assert _lr_seed(store.rows(query)) == [(0.1, 1), (0.01, 1)]
        with pytest.raises(ValueError, match="a RunFilter holds its values already"):
            store.rows(query, (1,))


def test_command_line_filters_are_errors_not_tracebacks(db, capsys):
    for command in ("report", "attractors", "export"):
        assert main(["sweep", command, str(db), "--where", "lr = 1; DROP TABLE runs"]) == 2
        assert f"rnnlab sweep {command}: --where: cannot read the filter" in capsys.readouterr().err
    with ResultStore(db) as store:
        assert store.count() == 6
