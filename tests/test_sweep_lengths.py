"""`rnnlab sweep lengths`: stored networks evaluated at other lengths than they trained at (records
equal to a direct evaluation, independent of the runs beside them, merged across calls)."""
from __future__ import annotations

import math

import pytest
import torch

from rnnlab.cli import main
from rnnlab.nn.population import population_forward
from rnnlab.sweep import ResultStore, SweepSpec, run_sweep
from rnnlab.sweep.lengths import LENGTHS, _trained, evaluate_lengths, lengths_table, plot_lengths, training_lengths
from rnnlab.tasks import rng
from rnnlab.train import RunConfig


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    # float64 so that the direct evaluation below (population_forward) and the evaluate op agree on
    # every argmax; a classification and a regression task, two cells
    spec = SweepSpec.from_dict({
        "name": "g", "fixed": {"hidden": 5, "max_updates": 20, "val_every": 10, "val_size": 50, "optimizer": "adam",
                               "lr": 0.05, "stop_at_success": False, "dtype": "float64"},
        "grid": {"task": [{"name": "torder", "task": "torder"}, {"name": "add", "task": "add"}],
                 "cell": ["elman", "lstm"], "length": [8], "seed": [0, 1, 2]},
        "engine": {"save_params": True}})
    path = tmp_path_factory.mktemp("sweep") / "g.sqlite"
    run_sweep(spec, str(path), progress=False)
    return path


def _direct(store: ResultStore, row: dict, length: int, sequences: int, chunk: int) -> tuple[float, float]:
    """(error, loss) of one run from population_forward on the documented stream."""
    config = RunConfig(**row["config"]["config"])
    task = config.make_task()
    params = store.population_params([row["run_id"]])
    keys = rng.seed_keys([config.seed])
    ctx = task.setup(keys)
    wrong = loss = 0.0
    for c in range(math.ceil(sequences / chunk)):
        n = min(chunk, sequences - c * chunk)
        batch = task.sample(rng.derive(keys, "lengths", length, c), ctx, length, n, torch.float64)
        y = population_forward(params, batch.x, cell=config.cell, readout_steps=task.readout_steps(length),
                               **config.forward_options())
        wrong += float(task.sequence_errors(y, batch).sum())
        loss += float(task.loss(y, batch)) * n
    return wrong / sequences, loss / sequences


def test_records_equal_a_direct_evaluation_of_each_run(db):
    out = evaluate_lengths(db, [8, 13], learned_only=False, sequences=30, chunk=20, batch=64, progress=False)
    assert out == {"evaluated": 24, "already": 0, "no_params": 0}
    with ResultStore(db) as store:
        records = store.analyses(LENGTHS)
        rows = store.rows()
        assert len(rows) == 12 and sorted(records) == sorted(r["run_id"] for r in rows)
        for row in rows:
            for L in (8, 13):
                rec = records[row["run_id"]][str(L)]
                error, loss = _direct(store, row, L, 30, 20)
                assert rec["error"] == error and rec["sequences"] == 30 and rec["steps"] == [L]
                assert rec["loss"] == pytest.approx(loss, rel=1e-9)


def test_a_run_alone_gets_the_record_it_gets_in_its_group(db):
    evaluate_lengths(db, [11], learned_only=False, sequences=25, chunk=10, batch=64, progress=False)
    with ResultStore(db) as store:
        grouped = {rid: rec["11"] for rid, rec in store.analyses(LENGTHS).items()}
    evaluate_lengths(db, [11], learned_only=False, sequences=25, chunk=10, batch=1, redo=True, progress=False)
    with ResultStore(db) as store:
        alone = {rid: rec["11"] for rid, rec in store.analyses(LENGTHS).items()}
    assert alone == grouped


def test_later_calls_add_lengths_and_skip_those_done(db):
    evaluate_lengths(db, [9], learned_only=False, sequences=10, progress=False)
    out = evaluate_lengths(db, [9, 10], learned_only=False, sequences=10, progress=False)
    assert out["evaluated"] == 12 and out["already"] == 12
    with ResultStore(db) as store:
        assert all({"9", "10"} <= set(rec) for rec in store.analyses(LENGTHS).values())


def test_table_and_command_line(db, capsys):
    evaluate_lengths(db, [8], learned_only=False, sequences=10, progress=False)
    table = lengths_table(db, [8, 99], by=("task", "cell"))
    assert table.splitlines()[0] == "| task | cell | runs | L = 8 | L = 99 |"
    assert "| torder | lstm | 3 | " in table and table.splitlines()[2].endswith("| — |")
    assert main(["sweep", "lengths", str(db), "--lengths", "8", "--all", "--sequences", "10", "--quiet",
                 "--where", "task = 'add'", "--by", "task,length"]) == 0
    printed = capsys.readouterr().out
    assert "evaluated 0 run-lengths now, 6 already had a record" in printed and "| add | 8 | 6 | " in printed
    assert main(["sweep", "lengths", str(db.with_name("missing.sqlite")), "--lengths", "8"]) == 2


def test_plot_draws_every_record(db, tmp_path):
    pytest.importorskip("matplotlib")
    evaluate_lengths(db, [8, 12], learned_only=False, sequences=10, progress=False)
    plot_lengths(db, tmp_path / "l.png", by=("task", "cell"))
    assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sweep", "lengths", str(db), "--lengths", "8", "--all", "--quiet", "--plot", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no stored length records match"):
        plot_lengths(db, tmp_path / "none.png", where="task = 'latch'")
    with pytest.raises(ValueError, match="by names unknown columns \\['colour'\\]"):
        plot_lengths(db, tmp_path / "none.png", by=("colour",))


@pytest.mark.parametrize("kwargs, message", [
    ({"lengths": []}, "lengths must be one or more ints >= 1"),
    ({"lengths": [0]}, "lengths must be one or more ints >= 1, got \\[0\\]"),
    ({"lengths": [8.5]}, "lengths must be one or more ints"),
    ({"lengths": [8], "sequences": 0}, "sequences must be a positive int, got 0"),
    ({"lengths": [8], "chunk": -1}, "chunk must be a positive int, got -1"),
    ({"lengths": [8], "batch": True}, "batch must be a positive int, got True"),
])
def test_bad_arguments_are_clear_errors(db, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_lengths(db, progress=False, **kwargs)


def test_bad_lengths_on_the_command_line(db, capsys):
    assert main(["sweep", "lengths", str(db), "--lengths", "8,x"]) == 2
    assert "--lengths must be comma-separated ints" in capsys.readouterr().err


def test_runs_without_weights_are_counted_not_evaluated(tmp_path):
    spec = SweepSpec.from_dict({"name": "b", "fixed": {"task": "latch", "length": 6, "hidden": 4, "max_updates": 5,
                                                       "val_every": 5, "val_size": 20}, "grid": {"seed": [0]}})
    run_sweep(spec, str(tmp_path / "b.sqlite"), progress=False)
    out = evaluate_lengths(tmp_path / "b.sqlite", [6], learned_only=False, progress=False)
    assert out == {"evaluated": 0, "already": 0, "no_params": 1}


def test_runs_trained_on_a_range_of_lengths_get_a_panel_of_that_range(tmp_path):
    pytest.importorskip("matplotlib")
    spec = SweepSpec.from_dict({
        "name": "r", "fixed": {"task": "torder", "min_length": 6, "max_length": 10, "hidden": 5, "max_updates": 10,
                               "val_every": 10, "val_size": 20, "stop_at_success": False},
        "grid": {"seed": [0, 1]}, "engine": {"save_params": True}})
    path = tmp_path / "r.sqlite"
    run_sweep(spec, str(path), progress=False)
    with ResultStore(path) as store:
        assert {_trained(r) for r in store.rows()} == {(6, 10)}  # lengths 6 … 9 drawn per batch
    assert _trained({"min_length": None, "length": 8}) == (8, 8)
    assert (training_lengths(6, 10), training_lengths(8, 8)) == ("6–9", "8")
    with pytest.raises(ValueError, match="min_length <= max_length"):
        training_lengths(10, 6)
    evaluate_lengths(path, [5, 8], learned_only=False, sequences=10, progress=False)
    plot_lengths(path, tmp_path / "r.png", by=("task",))
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
