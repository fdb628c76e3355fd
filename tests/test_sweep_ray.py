"""The Ray backend on a local cluster: same rows as the embedded backend, written by the driver."""
from __future__ import annotations

import pytest

from rnnlab.sweep import ResultStore, grid, run_sweep

ray = pytest.importorskip("ray")


def test_ray_backend_on_a_local_cluster_matches_embedded(tmp_path):
    spec = grid("ray", task="latch", length=[5, 8], lr=[0.05, 0.5], seed=range(3), hidden=6, init="normal",
                max_updates=40, val_every=20, val_size=200, val_chunk=200)
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
        assert ra[rid]["final_loss"] == pytest.approx(rb[rid]["final_loss"], rel=1e-3, abs=1e-5)
    # resuming on Ray trains nothing
    again = run_sweep(spec, str(tmp_path / "ray.sqlite"), backend="ray", num_cpus=2, progress=False)
    assert again["trained"] == 0 and again["skipped"] == 12
