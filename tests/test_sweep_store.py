"""The SQLite result store: one row per run id, JSON and NaN round trips, WAL mode, plan/meta."""
from __future__ import annotations

import math
import sqlite3

import pytest

from rnnlab.sweep import ResultStore, grid


def _row(run, **kw):
    return {"run_id": run.run_id, "config": run.to_dict(), "labels": {"m": "x"}, "task": run.config.task,
            "lr": run.config.lr, "success": True, "updates": 10, "final_loss": math.nan,
            "history": {"update": [10], "val_error": [0.0]}, "profile_last": [-1.0, math.nan, 0.0], **kw}


def test_rows_round_trip_and_a_run_is_stored_once(tmp_path):
    runs = grid("s", task="torder", length=10, lr=[0.1, 0.2]).expand()
    with ResultStore(tmp_path / "s.sqlite") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.add_plan("s", runs)
        store.add_plan("s", runs)  # idempotent
        assert store.planned() == 2 and store.planned("s") == 2
        assert store.add(_row(runs[0]), "s") is True
        assert store.add(_row(runs[0], updates=99), "s") is False  # never a second row
        assert store.count() == 1 and store.done_ids() == {runs[0].run_id}
        row = store.rows()[0]
        assert row["sweep"] == "s" and row["success"] == 1 and row["updates"] == 10
        assert row["final_loss"] is None  # NaN is stored as NULL
        assert row["labels"] == {"m": "x"} and row["history"]["val_error"] == [0.0]
        assert row["profile_last"][0] == -1.0 and math.isnan(row["profile_last"][1])
        assert row["config"]["config"]["lr"] == 0.1
        assert store.rows("WHERE lr = ?", (0.2,)) == []
        store.set_meta("k", {"a": 1})
        store.set_meta("k", {"a": 2})
        assert store.meta("k") == {"a": 2} and store.meta("missing", 5) == 5
        with pytest.raises(KeyError, match="unknown columns \\['colour'\\]"):
            store.add({"run_id": "z", "colour": 1})
    # committed rows are visible to another connection at once
    assert sqlite3.connect(tmp_path / "s.sqlite").execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
