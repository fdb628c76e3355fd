"""A sweep's runs in researchers' tools: ResultStore.to_pandas, CSV (no pandas needed) and Parquet
exports from the API and `rnnlab sweep export`, each run one row with its label columns; the
store's progress summary behind `rnnlab sweep status`; clear errors when pandas or pyarrow is
missing."""
from __future__ import annotations

import csv
import io
import json
import math
import sys

import pytest

from rnnlab.cli import main
from rnnlab.sweep import ResultStore, grid
from rnnlab.sweep.export import write_csv


@pytest.fixture()
def db(tmp_path):
    """Four runs of sweep "e" (lr 0.1 / 1.0 × seeds 0, 1; method label by lr), one more planned."""
    path = tmp_path / "e.sqlite"
    runs = grid("e", task="latch", length=10, lr=[0.1, 1.0], seed=[0, 1]).expand()
    not_yet = grid("e", task="latch", length=10, lr=0.1, seed=2).expand()
    with ResultStore(path) as store:
        store.add_plan("e", runs + not_yet)
        for i, run in enumerate(runs):
            c = run.config
            store.add({"run_id": run.run_id, "config": run.to_dict(), "labels": {"method": "C" if c.lr < 1 else "CR"},
                       "task": c.task, "length": 10, "lr": c.lr, "seed": c.seed, "success": c.lr < 1, "updates": 10 + i,
                       "final_loss": math.nan, "history": {"val_error": [0.5, 0.1]},
                       "finished_at": f"2025-01-01T00:0{i}:00+0000"}, "e")
    return path


def _no_module(monkeypatch, name):
    """Make ``import name`` fail as if it were not installed."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, name, None)


def test_to_pandas_gives_one_row_per_run_with_label_columns(db):
    pd = pytest.importorskip("pandas")
    with ResultStore(db) as store:
        frame = store.to_pandas("lr = 0.1 ORDER BY seed")
        everything = store.to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2 and len(everything) == 4
    assert list(frame["seed"]) == [0, 1] and str(frame["seed"].dtype) == "Int64"
    assert list(frame["labels.method"]) == ["C", "C"] and frame["history"][0] == {"val_error": [0.5, 0.1]}
    assert math.isnan(frame["final_loss"][0]) and frame["updates_to_success"].isna().all()
    assert everything.groupby("labels.method")["success"].mean().to_dict() == {"C": 1.0, "CR": 0.0}


def test_to_pandas_without_pandas_names_the_install(db, monkeypatch):
    _no_module(monkeypatch, "pandas")
    with ResultStore(db) as store, pytest.raises(ImportError, match="pip install pandas"):
        store.to_pandas()


def test_csv_export_needs_no_pandas_and_round_trips(db, tmp_path, monkeypatch, capsys):
    _no_module(monkeypatch, "pandas")
    out = tmp_path / "runs.csv"
    assert main(["sweep", "export", str(db), "--out", str(out), "--where", "seed >= 1 ORDER BY lr"]) == 0
    assert "2 runs written to" in capsys.readouterr().err
    with open(out, newline="") as f:
        records = list(csv.DictReader(f))
    assert [(r["lr"], r["seed"], r["labels.method"]) for r in records] == [("0.1", "1", "C"), ("1.0", "1", "CR")]
    assert json.loads(records[0]["history"]) == {"val_error": [0.5, 0.1]} and records[0]["final_loss"] == ""
    assert json.loads(records[0]["config"])["config"]["lr"] == 0.1
    # default path next to the database; '-' is standard output
    assert main(["sweep", "export", str(db)]) == 0
    assert len(list(csv.DictReader(open(db.with_suffix(".csv"), newline="")))) == 4
    assert main(["sweep", "export", str(db), "--out", "-", "--where", "lr = 1.0"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 2


def test_parquet_export_types_the_columns(db, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "runs.parquet"
    assert main(["sweep", "export", str(db), "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 4 and str(table.schema.field("seed").type) == "int64"
    assert str(table.schema.field("lr").type) == "double" and str(table.schema.field("labels.method").type) == "string"
    assert sorted(table.column("labels.method").to_pylist()) == ["C", "C", "CR", "CR"]
    assert table.column("final_loss").to_pylist() == [None] * 4


def test_parquet_without_pyarrow_and_other_bad_exports_are_clear_errors(db, tmp_path, monkeypatch, capsys):
    _no_module(monkeypatch, "pyarrow")
    assert main(["sweep", "export", str(db), "--format", "parquet"]) == 2
    assert "Parquet export needs pyarrow: pip install pyarrow" in capsys.readouterr().err
    assert main(["sweep", "export", str(tmp_path / "none.sqlite")]) == 2
    assert "rnnlab sweep export: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "export", str(db), "--format", "xlsx"])
    with pytest.raises(ValueError, match="format must be one of"):
        from rnnlab.sweep.export import write
        write([], tmp_path / "x", "xlsx")
    write_csv([], tmp_path / "empty.csv")  # no runs: a header only
    assert (tmp_path / "empty.csv").read_text().startswith("run_id,sweep,config,labels,")


def test_progress_sums_up_each_sweep_and_status_prints_it(db, capsys):
    with ResultStore(db) as store:
        (p,) = store.progress()
    assert (p.sweep, p.planned, p.done, p.learned, p.model_updates) == ("e", 5, 4, 2, 46)
    assert (p.first_finished, p.last_finished) == ("2025-01-01T00:00:00+0000", "2025-01-01T00:03:00+0000")
    assert main(["sweep", "status", str(db)]) == 0
    assert "e: 4/5 runs done (80.0%), 2 learned, 46 model-updates" in capsys.readouterr().out
