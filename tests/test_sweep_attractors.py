"""`rnnlab sweep attractors`: the latching analysis over a sweep's stored networks (records
committed per population, resumable, tasks it does not apply to skipped with the reason)."""
from __future__ import annotations

import pytest

from rnnlab.analysis import analyze_latching
from rnnlab.cli import main
from rnnlab.sweep import ResultStore, SweepSpec, run_sweep
from rnnlab.sweep.analyze import LATCHING, analyze_sweep, latching_table
from rnnlab.tasks import make_task

FAST = dict(n_sequences=40, n_random=4, n_minimize=4, n_trajectory=4, max_steps=300, autonomous_steps=50)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    spec = SweepSpec.from_dict({
        "name": "a", "fixed": {"hidden": 5, "max_updates": 20, "val_every": 10, "val_size": 50, "optimizer": "adam",
                               "lr": 0.05, "stop_at_success": False},
        "grid": {"task": [{"name": "latch", "task": "latch", "task_kwargs.n_info": 2}, {"name": "add", "task": "add"}],
                 "length": [6], "seed": [0, 1, 2]},
        "engine": {"save_params": True}})
    path = tmp_path_factory.mktemp("sweep") / "a.sqlite"
    run_sweep(spec, str(path), progress=False)
    return path


def test_records_equal_a_direct_analysis_and_resume_skips_them(db):
    out = analyze_sweep(db, learned_only=False, batch=2, progress=False, **FAST)
    assert out["analysed"] == 3 and out["already"] == 0 and out["no_params"] == 0
    assert "add T=6" in out["skipped_groups"]  # a regression task: not a latching analysis
    with ResultStore(db) as store:
        records = store.analyses(LATCHING)
        rows = store.rows("WHERE task = 'latch' ORDER BY run_id")
        ids = [r["run_id"] for r in rows]
        direct = analyze_latching(store.population_params(ids), make_task("latch", n_info=2), length=6, **FAST)
    assert sorted(records) == ids
    for rid, rec in zip(ids, direct):
        assert records[rid]["storage"] == rec.storage
        assert records[rid]["test_error"] == pytest.approx(rec.test_error)
    again = analyze_sweep(db, learned_only=False, progress=False, **FAST)
    assert again["analysed"] == 0 and again["already"] == 3


def test_table_and_command_line(db, capsys):
    analyze_sweep(db, learned_only=False, progress=False, **FAST)
    with ResultStore(db) as store:  # exactly one learned latch run: the table's one line counts it
        store.db.execute("UPDATE runs SET success = 0")
        store.db.execute("UPDATE runs SET success = 1 WHERE run_id = (SELECT MIN(run_id) FROM runs WHERE task = 'latch')")
    table = latching_table(db)
    assert "NOT stored so (headline)" in table and "| latch | 6 | 5 | 1 |" in table
    assert main(["sweep", "attractors", str(db), "--where", "WHERE task = 'latch'", "--quiet", "--sequences", "40",
                 "--max-steps", "300"]) == 0
    printed = capsys.readouterr().out
    assert "analysed 0 runs now, 1 already had a record" in printed and "| latch | 6 | 5 | 1 |" in printed
    assert main(["sweep", "attractors", str(db.with_name("missing.sqlite"))]) == 2


def test_runs_without_weights_are_counted_not_analysed(tmp_path):
    spec = SweepSpec.from_dict({"name": "b", "fixed": {"task": "latch", "length": 6, "hidden": 4, "max_updates": 5,
                                                       "val_every": 5, "val_size": 20}, "grid": {"seed": [0]}})
    run_sweep(spec, str(tmp_path / "b.sqlite"), progress=False)
    out = analyze_sweep(tmp_path / "b.sqlite", learned_only=False, progress=False, **FAST)
    assert out["analysed"] == 0 and out["no_params"] == 1


def test_bad_batch_is_a_clear_error(db):
    with pytest.raises(ValueError, match="batch must be a positive int, got 0"):
        analyze_sweep(db, batch=0, progress=False)
