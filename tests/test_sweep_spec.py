"""Sweep specs: grid expansion, bundles, overrides, files, run identity, validation messages."""
from __future__ import annotations

import textwrap

import pytest

from rnnlab.sweep import SpecError, SweepSpec, grid, logspace, run_id
from rnnlab.train import RunConfig


def test_expansion_is_the_cartesian_product_in_written_order():
    spec = grid("g", task="torder", length=[10, 20], lr=[0.01, 0.1, 1.0], seed=range(2), hidden=8)
    runs = spec.expand()
    assert len(runs) == 2 * 3 * 2
    # the last factor varies fastest
    assert [(r.config.task_kwargs["max_length"], r.config.lr, r.config.seed) for r in runs[:3]] == [
        (10, 0.01, 0), (10, 0.01, 1), (10, 0.1, 0)]
    assert all(r.config.hidden == 8 and r.config.task_kwargs["min_length"] == r.config.task_kwargs["max_length"]
               for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)


def test_bundles_set_several_fields_and_label_the_run():
    spec = SweepSpec.from_dict({"name": "m", "fixed": {"task": "torder", "length": 50}, "grid": {
        "method": [{"name": "MSGD", "clip": "none", "alpha": 0.0},
                   {"name": "MSGD-C", "clip": 1.0, "alpha": 0.0},
                   {"name": "MSGD-CR", "clip": 1.0, "alpha": 4.0}],
        "seed": [0, 1]}})
    runs = spec.expand()
    assert [r.labels["method"] for r in runs[::2]] == ["MSGD", "MSGD-C", "MSGD-CR"]
    assert runs[0].config.clip is None and runs[4].config.alpha == 4.0 and runs[4].config.clip == 1.0
    assert spec.factors() == {"method": ["MSGD", "MSGD-C", "MSGD-CR"], "seed": [0, 1]}


def test_range_logspace_and_task_kwargs_fields():
    spec = SweepSpec.from_dict({"name": "r", "fixed": {"task": "latch", "length": 10, "task_kwargs.noise": 0.5},
                                "grid": {"lr": {"logspace": [1e-3, 1.0, 4]}, "seed": {"range": [3, 6]}}})
    runs = spec.expand()
    assert sorted({r.config.lr for r in runs}) == [0.001, 0.01, 0.1, 1.0]
    assert sorted({r.config.seed for r in runs}) == [3, 4, 5]
    assert runs[0].config.task_kwargs == {"noise": 0.5, "min_length": 10, "max_length": 10}
    assert logspace(1, 100, 3) == [1.0, 10.0, 100.0]


def test_overrides_turn_lists_into_factors_and_scalars_into_fixed_values():
    spec = grid("o", task="latch", length=10, lr=[0.1, 0.2], seed=range(2))
    bigger = spec.with_overrides({"seed": {"range": [0, 5]}, "lr": 0.3, "hidden": [4, 8]})
    runs = bigger.expand()
    assert len(runs) == 5 * 2
    assert {r.config.lr for r in runs} == {0.3}


def test_run_identity_is_stable_and_ignores_labels_and_int_float_spelling():
    a = grid("a", task="torder", length=20, lr=[1], seed=[7]).expand()[0]
    b = grid("b", task="torder", length=20, lr=[1.0], seed=[7]).expand()[0]
    assert a.run_id == b.run_id == run_id(a.config)
    assert a.run_id == run_id(RunConfig(task="torder", task_kwargs={"min_length": 20, "max_length": 20}, lr=1.0, seed=7))
    # frozen: the id this run had before RunConfig gained cell/cell_kwargs (old files must resume)
    assert a.run_id == "04ccaccbffc7b2b7"
    bundled = SweepSpec.from_dict({"name": "c", "fixed": {"task": "torder", "length": 20, "seed": 7},
                                   "grid": {"x": [{"name": "one", "lr": 1.0}]}}).expand()[0]
    assert bundled.run_id == a.run_id and bundled.labels == {"x": "one"}
    # two grid points that resolve to the same run are one run
    dup = SweepSpec.from_dict({"name": "d", "fixed": {"task": "torder", "length": 20},
                               "grid": {"x": [{"name": "p", "lr": 0.1}, {"name": "q", "lr": 0.1}]}}).expand()
    assert len(dup) == 1 and dup[0].labels == {"x": "p"}


def test_toml_and_yaml_files(tmp_path):
    (tmp_path / "s.toml").write_text(textwrap.dedent("""
        name = "file"
        [fixed]
        task = "torder"
        hidden = 8
        [grid]
        length = [10, 20]
        seed = {range = [0, 3]}
        [engine]
        max_population = 4
    """))
    spec = SweepSpec.from_file(tmp_path / "s.toml")
    assert len(spec.expand()) == 6 and spec.engine == {"max_population": 4}
    pytest.importorskip("yaml")
    (tmp_path / "s.yaml").write_text("name: file\nfixed: {task: torder, hidden: 8}\ngrid: {length: [10, 20], seed: [0, 1, 2]}\n")
    assert [r.run_id for r in SweepSpec.from_file(tmp_path / "s.yaml").expand()] == [r.run_id for r in spec.expand()]


@pytest.mark.parametrize("doc, message", [
    ({"name": "x", "grid": {"lrate": [0.1]}}, "unknown field 'lrate'"),
    ({"name": "x", "fixed": {"init": "smart"}}, "fixed.init: init = 'smart' is not allowed; allowed values: ['sigmoid'"),
    ({"name": "x", "grid": {"optimizer": ["sgd", "adamw"]}}, "grid.optimizer[1]: optimizer = 'adamw' is not allowed"),
    ({"name": "x", "grid": {"cell": ["rwkv"]}}, "cell = 'rwkv' is not allowed; allowed values: ['elman', 'lstm', 'gru', 'diag']"),
    ({"name": "x", "fixed": {"cell": "lstm", "init": "smart_tanh"}}, "init 'smart_tanh' is not defined for cell='lstm'"),
    ({"name": "x", "fixed": {"cell": "diag", "cell_kwargs.r_max": 2.0}}, "need 0 <= r_min < r_max <= 1"),
    ({"name": "x", "fixed": {"cell": "lstm", "alpha": 1.0}}, "needs alpha=0"),
    ({"name": "x", "fixed": {"hidden": "big"}}, "fixed.hidden: hidden must be int"),
    ({"name": "x", "fixed": {"clip": "x"}}, "fixed.clip: clip must be float or none"),
    ({"name": "x", "grid": {"lr": []}}, "grid.lr: a factor needs at least one level"),
    ({"name": "x", "grid": {"seed": {"range": [5, 2]}}}, "grid.seed: range must be [start, stop]"),
    ({"name": "x", "fixed": {"lr": 0.1}, "grid": {"lr": [0.2]}}, "'lr' is both a fixed value and a grid factor"),
    ({"name": "x", "grid": {"m": [{"clip": 1.0}]}}, "grid.m[0]: a bundle level (a table) needs a string 'name'"),
    ({"name": "x", "engine": {"max_populaton": 3}}, "did you mean 'max_population'"),
    ({"fixed": {}}, "'name'"),
    ({"name": "x", "gird": {}}, "unknown field 'gird'"),
])
def test_validation_names_the_bad_field_and_the_allowed_values(doc, message):
    with pytest.raises(SpecError) as e:
        SweepSpec.from_dict(doc).expand()
    assert message in str(e.value)


def test_run_level_errors_name_the_grid_point():
    with pytest.raises(SpecError, match=r"run \(.*lr=-0.5.*\): lr must be > 0"):
        grid("x", task="torder", length=10, lr=[0.1, -0.5]).expand()
    with pytest.raises(SpecError, match="task 'latch' rejects task_kwargs .*n_info must be in"):
        grid("x", task="latch", length=[2], **{"task_kwargs.n_info": 5}).expand()
    with pytest.raises(SpecError, match="task 'torder' rejects task_kwargs .*unexpected keyword"):
        grid("x", task="torder", length=[20], **{"task_kwargs.colour": 1}).expand()
