"""The Ray backend on a local cluster: same rows as the embedded backend, written by the driver
as soon as each run is final. The compared runs train in float64, because the two backends pack
populations of different sizes, whose GEMMs may round differently (docs/training.md)."""
from __future__ import annotations

import os
import sys

import pytest

from rnnlab.sweep import ResultStore, grid, run_sweep

# The test extra installs Ray, so CI must run these: there a missing Ray is an error, not a skip.
ray = __import__("ray") if os.environ.get("CI") else pytest.importorskip("ray")


def test_ray_backend_on_a_local_cluster_matches_embedded(tmp_path):
    spec = grid("ray", task="latch", length=[5, 8], lr=[0.05, 0.5], seed=range(3), hidden=6, init="normal",
                max_updates=40, val_every=20, val_size=200, val_chunk=200, dtype="float64")
    out = run_sweep(spec, str(tmp_path / "ray.sqlite"), backend="ray", num_cpus=2, max_population=3, progress=False)
    assert out["trained"] == 12 and out["populations"] == 4
    assert not ray.is_initialized()  # the cluster this call started is shut down again
    run_sweep(spec, str(tmp_path / "emb.sqlite"), progress=False)
    with ResultStore(tmp_path / "ray.sqlite") as a, ResultStore(tmp_path / "emb.sqlite") as b:
        ra = {r["run_id"]: r for r in a.rows()}
        rb = {r["run_id"]: r for r in b.rows()}
    assert set(ra) == set(rb) and len(ra) == 12
    assert {r["backend"] for r in ra.values()} == {"ray"}
    for rid in ra:
        assert ra[rid]["updates"] == rb[rid]["updates"]
        assert ra[rid]["final_loss"] == pytest.approx(rb[rid]["final_loss"], rel=1e-10, abs=1e-12)
    # resuming on Ray trains nothing
    again = run_sweep(spec, str(tmp_path / "ray.sqlite"), backend="ray", num_cpus=2, progress=False)
    assert again["trained"] == 0 and again["skipped"] == 12


def _hold_then_crash_once():
    """Ray worker setup hook for the test below. After a validation that froze runs, the
    population waits until the driver has stored their rows (it raises after a minute instead of
    hanging), then the first attempt kills its worker process so that Ray retries the task."""
    import os
    import sqlite3
    import time

    import rnnlab.sweep.runner as runner

    db, crashed = os.environ["RNNLAB_TEST_DB"], os.environ["RNNLAB_TEST_CRASHED"]
    train_population = runner.train_population

    def stored() -> int:
        try:
            return sqlite3.connect(db, timeout=30).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        except sqlite3.OperationalError:  # no table yet
            return 0

    def held(configs, device, callback, **kwargs):
        finished = 0

        def hold(event):
            nonlocal finished
            callback(event)
            finished += len(event.get("finished", ()))
            if not event.get("finished"):
                return
            deadline = time.monotonic() + 60
            while stored() < finished:
                if time.monotonic() > deadline:
                    raise RuntimeError("the rows of finished runs were not stored while their population trained")
                time.sleep(0.05)
            if not os.path.exists(crashed):
                open(crashed, "w").close()
                os._exit(1)

        return train_population(configs, device, hold, **kwargs)

    runner.train_population = held


def test_ray_rows_are_stored_while_the_population_trains_and_a_retry_counts_them_once(tmp_path):
    """Two runs in one population: lr 0.05 succeeds within a few validations, lr 1e-9 trains to
    max_updates. The worker only goes on once the early row is in the SQLite file, so the driver
    must store it while the task runs; the worker's crash after that makes Ray rerun the task,
    which hands the early row out again: the store and the progress count must keep it once."""
    db = tmp_path / "early.sqlite"
    spec = grid("early", task="latch", min_length=6, max_length=7, hidden=8, optimizer="adam", lr=[0.05, 1e-9],
                clip=1.0, seed=1, max_updates=100, val_every=10, val_size=500, val_chunk=500)
    # the workers cannot import this test module: ship the hook by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": _hold_then_crash_once,
                              "env_vars": {"RNNLAB_TEST_DB": str(db), "RNNLAB_TEST_CRASHED": str(tmp_path / "crashed")}})
        out = run_sweep(spec, str(db), backend="ray", max_population=2, progress=False)
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (tmp_path / "crashed").exists()  # the first attempt died after the early row was stored
    assert out["populations"] == 1 and out["trained"] == 2
    with ResultStore(db) as store:
        rows = {r["lr"]: r for r in store.rows()}
    assert len(rows) == 2
    assert rows[0.05]["success"] and rows[0.05]["updates"] < 100
    assert not rows[1e-9]["success"] and rows[1e-9]["updates"] == 100
    # every run's updates counted once, the retried early run's included
    model_updates = out["model_updates_per_s"] * out["elapsed_s"]
    assert model_updates == pytest.approx(sum(r["updates"] for r in rows.values()))
