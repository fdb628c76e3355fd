"""Packing runs into populations: by the trainer's shared fields, near-equal sizes, memory bound."""
from __future__ import annotations

import importlib

import pytest

from rnnlab.sweep import SweepSpec, grid, pack
from rnnlab.sweep.pack import bytes_per_model, group_key, max_models


def test_packing_groups_by_shared_fields_and_splits_evenly(monkeypatch):
    spec = SweepSpec.from_dict({"name": "p", "fixed": {"task": "latch"},
                                "grid": {"length": [6, 9], "lr": [0.1, 0.2, 0.3], "seed": list(range(7))}})
    runs = spec.expand()
    groups = pack(runs, "cpu", max_population=5)
    # two lengths -> two groups of 21 runs -> 5 populations of 4 or 5 each
    assert [g.size for g in groups] == [5, 4, 4, 4, 4] * 2
    assert all(len({group_key(r) for r in g.runs}) == 1 for g in groups)
    assert sorted(r.run_id for g in groups for r in g.runs) == sorted(r.run_id for r in runs)
    assert len(pack(runs, "cpu")) == 2  # default cap: one population per group
    # the memory bound: a budget of 3 models' worth gives populations of at most 3
    budget = 3 * bytes_per_model(runs[0]) / 0.5
    monkeypatch.setattr(importlib.import_module("rnnlab.sweep.pack"), "free_memory", lambda device: budget)
    assert max(g.size for g in pack(runs, "cpu")) == 3


def test_runs_differing_in_a_shared_field_never_share_a_population():
    runs = grid("q", task="torder", length=10, hidden=[4, 8], optimizer=["sgd", "adam"], lr=[0.1, 0.2]).expand()
    groups = pack(runs, "cpu")
    assert len(groups) == 4 and all(g.size == 2 for g in groups)
    assert all({r.config.lr for r in g.runs} == {0.1, 0.2} for g in groups)


def test_memory_estimate_grows_with_length_and_hidden_and_limits_are_checked():
    small, long_, wide = (grid("e", task="torder", length=L, hidden=H).expand()[0] for L, H in ((10, 8), (100, 8), (10, 64)))
    assert bytes_per_model(long_) > 5 * bytes_per_model(small)
    assert bytes_per_model(wide) > bytes_per_model(small)
    assert max_models(small, "cpu", cap=7) == 7
    with pytest.raises(ValueError, match="max_population must be >= 1"):
        max_models(small, "cpu", cap=0)
    with pytest.raises(ValueError, match="memory_fraction must be in"):
        max_models(small, "cpu", memory_fraction=2.0)
