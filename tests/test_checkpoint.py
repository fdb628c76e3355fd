"""Checkpoints of training populations: a run interrupted anywhere (time limit, SIGKILL) and
resumed ends bit for bit like the uninterrupted one; sweeps and ``rnnlab train`` resume on their
own; bad checkpoints and arguments are refused by name."""
from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rnnlab.cli import main
from rnnlab.sweep import ResultStore, SweepSpec, run_sweep
from rnnlab.train import RunConfig, train_population
from rnnlab.train.checkpoint import Checkpointing, TrainingPaused, read_summary
from rnnlab.train.fused_step import unsupported

#: row columns that record when and where a run was trained, not what it computed (a population
#: re-formed after a kill without its finished runs has another id and size)
_TIMING = {"wall_time_s", "finished_at", "host", "population_id", "population_size"}


#: per-model variants: a two-layer stack trains on the autograd path (the fused step runs one plain
#: layer), a plain layer on the fused Elman step
_STACK = {"cell_kwargs": {"num_layers": 2}}
_VARIANTS = {"autograd": ({**_STACK, "alpha": 0.0}, {**_STACK, "alpha": 2.0}),
             "fused": ({"clip": 1.0}, {"clip": 0.5, "lr": 0.05})}


def _configs(path: str = "autograd", **over) -> list[RunConfig]:
    """4 tiny runs whose per-model hyper-parameters differ; some succeed early (compaction)."""
    base = dict(task="torder", task_kwargs={"min_length": 8, "max_length": 12}, hidden=8, max_updates=300,
                val_every=40, val_size=200, val_chunk=100, optimizer="adam", lr=0.02, dtype="float64", **over)
    return [RunConfig(seed=s, **{**base, **variant}) for s in (0, 1) for variant in _VARIANTS[path]]


def _same(a, b) -> bool:
    """Two RunResults equal in every field but the wall time, weights bit for bit."""
    da, db = a.to_dict(), b.to_dict()
    da.pop("wall_time_s"), db.pop("wall_time_s")
    text = lambda d: json.dumps(d, sort_keys=True, default=str)  # noqa: E731 (NaN-equal)
    return text(da) == text(db) and a.params.keys() == b.params.keys() and all(
        torch.equal(a.params[n], b.params[n]) for n in a.params)


@pytest.mark.parametrize("path", list(_VARIANTS))
def test_paused_at_every_few_updates_and_resumed_equals_uninterrupted(tmp_path, path):
    configs = _configs(path)
    assert (unsupported(configs, configs[0].make_task(), torch.device("cpu")) is None) == (path == "fused")
    reference = train_population(configs)
    checkpoint = Checkpointing(tmp_path / "population.pt", every_s=1e-9)  # at every update
    pauses = 0
    while True:
        try:
            resumed = train_population(configs, time_limit_s=1e-3, checkpoint=checkpoint)
            break
        except TrainingPaused as paused:
            assert paused.path == checkpoint.path and read_summary(checkpoint.path)["update"] == paused.update
            pauses += 1
    assert pauses > 3
    assert any(r.success and r.updates < 300 for r in reference)  # a model was frozen mid-way
    assert all(_same(a, b) for a, b in zip(reference, resumed))


def test_time_limit_with_a_checkpoint_keeps_the_validation_schedule(tmp_path):
    checkpoint = Checkpointing(tmp_path / "p.pt")
    with pytest.raises(TrainingPaused):
        train_population(_configs(), time_limit_s=1e-9, checkpoint=checkpoint)
    summary = read_summary(checkpoint.path)
    assert summary["update"] == 1 and summary["models"] == 4 and summary["max_updates"] == 300
    state = torch.load(checkpoint.path, weights_only=True)
    assert all(r["history"]["update"] == [] for r in state["results"])  # no extra validation


def test_a_checkpoint_of_other_runs_is_refused(tmp_path):
    checkpoint = Checkpointing(tmp_path / "p.pt")
    with pytest.raises(TrainingPaused):
        train_population(_configs(), time_limit_s=1e-9, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="p.pt was saved by other runs"):
        train_population(_configs(lr_schedule="cosine"), checkpoint=checkpoint)


@pytest.mark.parametrize("kwargs, match", [({"path": "p.ckpt"}, "must end in .pt"), ({"path": "p.pt", "every_s": 0}, "every_s")])
def test_bad_checkpointing_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Checkpointing(**kwargs)


_SPEC = {
    "name": "killed", "engine": {"threads": 1, "save_params": True},
    "fixed": {"task": "torder", "hidden": 8, "max_updates": 1500, "val_every": 50, "val_size": 200, "val_chunk": 100,
              "optimizer": "momentum", "lr": 0.05, "clip": 1.0, "dtype": "float32"},
    "grid": {"length": [8, 12], "alpha": [0.0, 2.0], "seed": {"range": [0, 3]}},
}

_SWEEP_SCRIPT = textwrap.dedent("""
    import sys
    from rnnlab.sweep import SweepSpec, run_sweep
    run_sweep(SweepSpec.from_dict({spec}), sys.argv[1], progress=False, checkpoint_every_s=0.05)
""")


def _sweep(db, kill_after: float | None = None) -> bool:
    """Run the sweep in a fresh process (same process configuration for every run); SIGKILL it
    after ``kill_after`` seconds. True if it was killed before it ended."""
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP_SCRIPT.format(spec=repr(_SPEC)), str(db)])
    try:
        proc.wait(timeout=kill_after)
        assert proc.returncode == 0
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _stored(db) -> dict:
    with ResultStore(db) as store:
        rows = {r["run_id"]: {k: v for k, v in r.items() if k not in _TIMING} for r in store.rows()}
        params = {rid: store.params(rid) for rid in rows}
        assert not list(store.checkpoint_dir.glob("*")), "checkpoints are deleted once their rows are stored"
    return {rid: (json.dumps(row, sort_keys=True), params[rid]) for rid, row in rows.items()}


def test_sweep_killed_at_random_points_resumes_to_the_uninterrupted_rows_and_weights(tmp_path):
    start = time.perf_counter()
    _sweep(tmp_path / "reference.sqlite")
    duration = time.perf_counter() - start  # the kill points scale with this machine's speed
    rng = random.Random(2013)
    db = tmp_path / "killed.sqlite"
    kills = 0
    for _ in range(4):  # a few kills at random points, then the sweep runs to its end
        kills += _sweep(db, kill_after=rng.uniform(0.3, 0.9) * duration)
    _sweep(db)
    reference, resumed = _stored(tmp_path / "reference.sqlite"), _stored(db)
    assert kills >= 1 and reference.keys() == resumed.keys() and len(reference) == 12
    for rid, (row, params) in reference.items():
        assert resumed[rid][0] == row
        assert all(torch.equal(params[n], resumed[rid][1][n]) for n in params)


def test_files_left_without_their_state_file_are_deleted_by_the_next_run(tmp_path):
    """A kill during a population's first save leaves its summary (.json) or a temporary file
    without state (.pt); the population may be re-formed under another id (some of its rows
    stored), so the next run of the sweep deletes them. Files of other runs are left alone."""
    spec = SweepSpec.from_dict({**_SPEC, "grid": {"length": [8], "seed": {"range": [0, 2]}}})
    db = tmp_path / "s.sqlite"
    assert run_sweep(spec, str(db), progress=False, time_limit_s=1e-6)["paused"] == 1
    with ResultStore(db) as store:
        (state, _), = store.checkpoints()
    run = state.stem.split("+")[0]
    orphans = [state.with_name(f"{run}+9.json"), state.with_name(f"{run}+9.json.123.tmp"),
               state.with_name(f"{run}+9.pt.123.tmp")]
    foreign = state.with_name("0123456789abcdef+1.json")
    for path in orphans + [foreign]:
        path.write_text(state.with_suffix(".json").read_text())
    state.unlink()
    out = run_sweep(spec, str(db), progress=False)
    assert out["trained"] == 2 and out["resumed"] == 0
    assert sorted(p.name for p in state.parent.iterdir()) == [foreign.name]


def test_sweep_time_limit_pauses_then_resumes_and_status_shows_the_population(tmp_path, capsys):
    spec = SweepSpec.from_dict({**_SPEC, "grid": {"length": [8], "seed": {"range": [0, 2]}}})
    db = tmp_path / "s.sqlite"
    out = run_sweep(spec, str(db), progress=False, time_limit_s=1e-6)
    assert out["paused"] == 1 and out["trained"] == 0
    assert main(["sweep", "status", str(db)]) == 0
    status = capsys.readouterr().out
    assert "models still training" in status and "of 1,500" in status
    out = run_sweep(spec, str(db), progress=False)
    assert out["resumed"] == 1 and out["paused"] == 0 and out["trained"] == 2
    assert "resuming population" in capsys.readouterr().err
    with ResultStore(db) as store:
        assert store.count() == 2 and store.checkpoints() == []


def test_a_checkpoint_whose_rows_are_all_stored_is_deleted(tmp_path):
    spec = SweepSpec.from_dict({**_SPEC, "grid": {"length": [8], "seed": {"range": [0, 2]}}, "fixed": {**_SPEC["fixed"], "max_updates": 100}})
    db = tmp_path / "s.sqlite"
    run_sweep(spec, str(db), progress=False, time_limit_s=1e-6)
    with ResultStore(db) as store:
        [(path, _)] = store.checkpoints()
    stale = path.read_bytes(), path.with_suffix(".json").read_bytes()
    run_sweep(spec, str(db), progress=False)
    path.write_bytes(stale[0]), path.with_suffix(".json").write_bytes(stale[1])  # as if killed before the deletion
    out = run_sweep(spec, str(db), progress=False)
    assert out["resumed"] == 0 and not path.exists()


def test_sweep_run_refuses_a_bad_time_limit(tmp_path):
    spec = SweepSpec.from_dict(_SPEC)
    with pytest.raises(ValueError, match="time_limit_s"):
        run_sweep(spec, str(tmp_path / "s.sqlite"), time_limit_s=0)
    with pytest.raises(ValueError, match="checkpoint_every_s"):
        run_sweep(spec, str(tmp_path / "s.sqlite"), checkpoint_every_s=-1)


def test_cli_train_time_limit_checkpoints_and_the_same_command_continues(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "torder", "--min-length", "8", "--max-length", "12", "--hidden", "8", "--max-updates", "200",
            "--val-every", "50", "--val-size", "200", "--seeds", "0-1", "--dtype", "float64", "--out", str(out),
            "--no-plots", "--quiet"]
    assert main(argv + ["--no-checkpoint"]) == 0
    reference = json.loads((out / "run.json").read_text())["runs"]
    (out / "run.json").unlink()
    assert main(argv + ["--time-limit", "1e-9"]) == 0
    assert "run the same command again" in capsys.readouterr().err and not (out / "run.json").exists()
    assert main(argv) == 0
    assert "resuming from" in capsys.readouterr().err and not (out / "checkpoint.pt").exists()
    resumed = json.loads((out / "run.json").read_text())["runs"]
    strip = lambda runs: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in runs]  # noqa: E731
    assert json.dumps(strip(reference)) == json.dumps(strip(resumed))
    assert not math.isnan(resumed[0]["final_error"])


def test_ray_time_limit_checkpoints_every_population_and_a_rerun_resumes_them(tmp_path):
    pytest.importorskip("ray")
    spec = SweepSpec.from_dict({**_SPEC, "grid": {"length": [8, 12], "seed": {"range": [0, 2]}}})
    db = tmp_path / "ray.sqlite"
    out = run_sweep(spec, str(db), backend="ray", num_cpus=2, progress=False, time_limit_s=1e-6)
    assert out["paused"] == 2 and out["trained"] == 0
    with ResultStore(db) as store:
        assert len(store.checkpoints()) == 2
    out = run_sweep(spec, str(db), backend="ray", num_cpus=2, progress=False)
    assert out["resumed"] == 2 and out["paused"] == 0 and out["trained"] == 4
    with ResultStore(db) as store:
        assert store.count() == 4 and store.checkpoints() == []
