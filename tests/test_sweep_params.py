"""Saved weights (engine.save_params): written with the row in one transaction, read back per run
and stacked per population, equal to the weights the trainer ends with. The runs train in
float64 so that a run trained in the sweep's population of two and alone agree to ~1e-12 on
every CPU (batched and single-model GEMMs may round differently: docs/training.md)."""
from __future__ import annotations

import pytest
import torch

from rnnlab.nn.population import population_forward
from rnnlab.sweep import ResultStore, SpecError, SweepSpec, run_sweep
from rnnlab.train import train_population

SPEC = {"name": "p", "fixed": {"task": "torder", "length": 8, "hidden": 6, "max_updates": 6, "val_every": 3,
                               "val_size": 20, "stop_at_success": False, "dtype": "float64"},
        "grid": {"cell": ["elman", "lstm"], "seed": [0, 1]}, "engine": {"save_params": True}}


def test_saved_weights_equal_the_trained_ones(tmp_path):
    spec = SweepSpec.from_dict(SPEC)
    db = tmp_path / "p.sqlite"
    run_sweep(spec, str(db), progress=False)
    with ResultStore(db) as store:
        assert store.params_count() == 4
        for run in spec.expand():
            alone = train_population([run.config], "cpu", keep_params=True)[0].params
            saved = store.params(run.run_id)
            assert saved.keys() == alone.keys()
            for name in alone:
                assert saved[name].dtype == torch.float64
                torch.testing.assert_close(saved[name], alone[name], rtol=1e-10, atol=1e-12)
        elman_ids = [r["run_id"] for r in store.rows("WHERE cell = 'elman' ORDER BY seed")]
        stacked = store.population_params(elman_ids)
        assert stacked["weight_hh"].shape == (2, 6, 6)
        x = torch.randn(2, 8, 3, stacked["weight_ih"].shape[-1], dtype=torch.float64)
        assert population_forward(stacked, x).shape[:2] == (2, 1)
        lstm_id = store.rows("WHERE cell = 'lstm'")[0]["run_id"]
        with pytest.raises(ValueError, match="other names or shapes"):
            store.population_params([elman_ids[0], lstm_id])
        with pytest.raises(ValueError, match="no saved weights"):
            store.population_params(["nope"])
        assert store.params("nope") is None


def test_no_weights_unless_asked(tmp_path):
    spec = SweepSpec.from_dict({**SPEC, "engine": {}, "grid": {"seed": [0]}})
    db = tmp_path / "p.sqlite"
    run_sweep(spec, str(db), progress=False)
    with ResultStore(db) as store:
        assert store.count() == 1 and store.params_count() == 0


def test_a_row_and_its_weights_land_together(tmp_path):
    run = SweepSpec.from_dict({**SPEC, "grid": {"seed": [0]}}).expand()[0]
    w = {"weight_hh": torch.randn(3, 3)}
    with ResultStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyError, match="unknown columns"):  # a bad row stores neither
            store.add({"run_id": run.run_id, "colour": 1, "params": w})
        assert store.count() == 0 and store.params_count() == 0
        assert store.add({"run_id": run.run_id, "params": w}) is True
        assert store.add({"run_id": run.run_id, "params": {"weight_hh": torch.zeros(3, 3)}}) is False
        torch.testing.assert_close(store.params(run.run_id)["weight_hh"], w["weight_hh"])


def test_save_params_must_be_a_bool():
    with pytest.raises(SpecError, match="engine.save_params must be bool"):
        SweepSpec.from_dict({**SPEC, "engine": {"save_params": 1}})
