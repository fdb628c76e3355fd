"""Resume: a sweep killed with SIGKILL and resumed has exactly one row per run, and
every row equals that of an uninterrupted sweep packed differently (a model's result does not
depend on its population). The runs train in float64: populations of other sizes run GEMMs of
other shapes, which may round differently (they do on AMD CPUs), and only float64 keeps that
difference at round-off level after training (docs/training.md)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest


from rnnlab.sweep import ResultStore, SweepSpec, grid, run_sweep

SPEC = textwrap.dedent("""
    name = "resume"
    [fixed]
    task = "latch"
    hidden = 6
    init = "normal"
    clip = 1.0
    max_updates = 60
    val_every = 20
    val_size = 200
    val_chunk = 200
    dtype = "float64"
    [grid]
    length = [6, 9]
    lr = [0.05, 0.5]
    seed = {range = [0, 8]}
    [engine]
    threads = 1
""")


def _count(db) -> int:
    try:
        return sqlite3.connect(db, timeout=30).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # the table does not exist yet
        return 0


def test_sigkill_in_the_middle_then_resume_loses_and_repeats_nothing(tmp_path):
    spec_file = tmp_path / "resume.toml"
    spec_file.write_text(SPEC)
    spec = SweepSpec.from_file(spec_file)
    total = len(spec.expand())
    db = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "sweep", "run", str(spec_file), "--db", str(db),
                             "--max-population", "1", "--no-report", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _count(db) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _count(db)
    assert 3 <= killed_at < total, (killed_at, proc.stderr.read().decode()[-2000:])

    out = run_sweep(spec, str(db), max_population=3, progress=False)
    assert out["skipped"] == killed_at and out["trained"] == total - killed_at

    reference = tmp_path / "reference.sqlite"
    run_sweep(spec, str(reference), progress=False)  # one population per length
    with ResultStore(db) as a, ResultStore(reference) as b:
        rows_a = {r["run_id"]: r for r in a.rows()}
        rows_b = {r["run_id"]: r for r in b.rows()}
        assert a.count() == total == len(rows_a)
        assert set(rows_a) == set(rows_b) == {r.run_id for r in spec.expand()}
    for rid, ra in rows_a.items():
        rb = rows_b[rid]
        assert (ra["success"], ra["updates"]) == (rb["success"], rb["updates"])
        assert ra["final_loss"] == pytest.approx(rb["final_loss"], rel=1e-10, abs=1e-12)
        assert ra["grad_norm_mean"] == pytest.approx(rb["grad_norm_mean"], rel=1e-10)


def test_a_run_is_committed_as_soon_as_it_succeeds():
    """The embedded backend hands a run's row to the store at the validation that freezes it,
    before its population ends (a kill then cannot lose it)."""
    from rnnlab.sweep.runner import train_rows
    from rnnlab.sweep.spec import Run
    from rnnlab.train import RunConfig

    fast = RunConfig(task="latch", task_kwargs=dict(min_length=6, max_length=7), hidden=8, optimizer="adam",
                     lr=0.05, clip=1.0, max_updates=100, val_every=10, val_size=500, val_chunk=500, seed=1)
    never = RunConfig(**{**fast.__dict__, "lr": 1e-9, "seed": 2})
    runs = [Run(fast), Run(never)]
    ids = [r.run_id for r in runs]
    batches = []
    rows = train_rows(runs, "pop", "cpu", "embedded", on_rows=lambda rs: batches.append([r["run_id"] for r in rs]))
    assert batches == [[ids[0]], [ids[1]]], batches
    assert [r["run_id"] for r in rows] == [ids[1]]


def test_a_sweep_sets_its_threads_for_itself_only(tmp_path):
    """The spec's threads apply to the sweep; the caller's thread count is restored after it."""
    import torch

    before = torch.get_num_threads()
    spec = grid("threads", task="latch", length=5, lr=0.1, seed=range(2), hidden=4, init="normal", max_updates=4,
                val_every=2, val_size=50, val_chunk=50)
    run_sweep(spec, str(tmp_path / "threads.sqlite"), progress=False, threads=1)
    assert torch.get_num_threads() == before
