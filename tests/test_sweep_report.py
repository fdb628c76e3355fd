"""Reports from a small finished sweep; the CLI end to end; VEG flags on constructed results."""
from __future__ import annotations

import math
import re

import pytest

from rnnlab.cli import main
from rnnlab.sweep import SweepSpec, run_sweep
from rnnlab.sweep.record import VegRule, downsample, log10_ratio_profile, veg_flags, veg_from_counts, veg_from_series
from rnnlab.sweep.report import veg_tables, write_report
from rnnlab.train import RunConfig, RunResult

pytest.importorskip("matplotlib")

SPEC = {
    "name": "rep", "fixed": {"task": "latch", "hidden": 6, "init": "normal", "max_updates": 40, "val_every": 10,
                             "val_size": 200, "val_chunk": 200},
    "grid": {"length": [5, 12], "lr": [0.01, 0.5],
             "method": [{"name": "C", "clip": 1.0}, {"name": "CR", "clip": 1.0, "alpha": 2.0}],
             "seed": {"range": [0, 2]}},
    "engine": {"threads": 1},
}


def test_report_writes_tables_and_nonempty_pngs(tmp_path):
    db = tmp_path / "rep.sqlite"
    run_sweep(SweepSpec.from_dict(SPEC), str(db), progress=False)
    rep = write_report(db, tmp_path / "out")
    for p in rep["files"]:
        assert p.is_file() and p.stat().st_size > 1000, p
    md = rep["markdown"]
    assert "16 runs" in md and "**cell=elman, init=normal, method=C**" in md and "| lr \\ length | 5 | 12 |" in md
    assert "| all |" in md and r"P(learned \| VEG)" in md


def test_cli_run_status_report(tmp_path, capsys):
    spec = tmp_path / "cli.toml"
    spec.write_text('name = "cli"\n[fixed]\ntask = "latch"\nhidden = 4\nmax_updates = 20\nval_every = 10\n'
                    'val_size = 100\nval_chunk = 100\n[grid]\nlength = [5]\nlr = [0.1, 1.0]\n')
    db = tmp_path / "cli.sqlite"
    assert main(["sweep", "run", str(spec), "--db", str(db), "--set", "seed={range=[0,3]}", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "cli: 6 runs trained, 0 already in" in out and "| lr \\ length | 5 |" in out
    assert (tmp_path / "cli_report" / "success_lr_length.png").stat().st_size > 1000
    assert main(["sweep", "run", str(spec), "--db", str(db), "--set", "seed={range=[0,3]}", "--quiet", "--no-report"]) == 0
    assert "0 runs trained, 6 already in" in capsys.readouterr().out
    assert main(["sweep", "status", str(db)]) == 0
    assert "cli: 6/6 runs done (100.0%)" in capsys.readouterr().out
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert (tmp_path / "o" / "cli.sqlite").is_file() and (tmp_path / "o" / "grad_profiles.png").is_file()
    capsys.readouterr()
    assert main(["sweep", "report", str(db), "--out", str(tmp_path / "r"), "--by", "seed"]) == 0
    assert "seed=2" in capsys.readouterr().out
    # VEG flags recomputed from the stored series: a threshold above every R_1 flags every run
    assert main(["sweep", "report", str(db), "--out", str(tmp_path / "r"), "--veg-rule", "eps_vanish=10,fraction=0"]) == 0
    learned, failed = re.search(r"\| all \| (\d+) \| (\d+) \| 0 \| 0 \|", capsys.readouterr().out).groups()
    assert int(learned) + int(failed) == 6
    assert main(["sweep", "report", str(db), "--veg-rule", "eps=1"]) == 2
    assert main(["sweep", "run", str(spec), "--set", "init=\"smart\"", "--dry-run"]) == 2
    assert "init = 'smart' is not allowed" in capsys.readouterr().err
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 0
    assert "cli: 2 runs in 1 populations" in capsys.readouterr().out


def _series_flags(profiles, norms, rule, fallbacks=0):
    """The per-check flags of a run whose validations saw ``profiles`` (‖δ_t‖ lists) and ``norms``."""
    return veg_from_series([log10_ratio_profile(p)[0] for p in profiles], norms, fallbacks, rule)


def test_veg_flags_from_the_per_check_series_follow_the_rule():
    rule = VegRule(eps_vanish=1e-6, eps_explode=1e6, jump=10.0, fraction=0.25)
    flat = [1.0, 1.0, 1.0]
    vanished = [1e-9, 1e-3, 1.0]
    exploded = [1e8, 10.0, 1.0]
    none = _series_flags([flat] * 4, [1.0, 1.2, 0.9, 1.1], rule)
    assert not none["veg"] and none["veg_checks"] == 4 and none["log10_r1_median"] == 0.0
    v = _series_flags([vanished, vanished, flat, flat], [1.0] * 4, rule)
    assert v["veg_vanishing"] and not v["veg_exploding"] and v["vanishing_frac"] == 0.5
    assert v["log10_r1_min"] == pytest.approx(-9)
    e = _series_flags([exploded, flat, flat, flat], [1.0] * 4, rule)
    assert not e["veg_exploding"]  # 1 of 4 checks is not more than 25 %
    jump = _series_flags([flat] * 4, [1.0, 1.0, 50.0, 60.0], rule)
    assert jump["veg_exploding"] and jump["exploding_frac"] == 0.5
    assert _series_flags([flat], [1.0], rule, fallbacks=1)["veg_exploding"]
    # a norm flushed to 0 is the strongest vanishing, not a missing value
    zero = _series_flags([[0.0, 1e-3, 1.0]] * 4, [1.0] * 4, rule)
    assert zero["veg_vanishing"] and zero["log10_r1_min"] == -math.inf and zero["log10_r1"] == [-math.inf] * 4


def test_stored_veg_flags_come_from_the_per_update_counts():
    rule = VegRule(fraction=0.25)
    r = RunResult(config=RunConfig(), veg_steps=100, vanishing_steps=30, exploding_steps=20)
    r.grad_profiles = [{"update": 10, "length": 3, "delta_norm": [1.0, 1.0, 1.0]}]  # no flag at the check
    r.history = {"grad_norm": [1.0]}
    flags = veg_flags(r, rule)
    assert flags["veg_vanishing"] and not flags["veg_exploding"] and flags["vanishing_frac"] == 0.3
    assert flags["veg_steps"] == 100 and flags["veg_checks"] == 1 and flags["log10_r1"] == [0.0]
    assert veg_from_counts(100, 0, 0, 1, rule)["veg_exploding"]  # the safeguard fired
    assert log10_ratio_profile([0.0, 1.0])[0] == -math.inf
    assert math.isnan(log10_ratio_profile([1.0, 0.0])[0]) and math.isnan(log10_ratio_profile([math.nan, 1.0])[0])
    assert downsample(list(range(100)), 5) == [0, 25, 50, 74, 99]


def test_veg_table_counts_every_run_once():
    rows = [{"lr": lr, "veg": veg, "success": ok, "labels": {}} for lr, veg, ok in
            [(0.1, 1, 1), (0.1, 1, 0), (0.1, 0, 1), (1.0, 0, 0), (1.0, 0, 0)]]
    md = veg_tables(rows)
    assert "| 0.1 | 1 | 1 | 1 | 0 | 50% | 100% |" in md
    assert "| 1 | 0 | 0 | 0 | 2 | – | 0% |" in md
    assert "| all | 1 | 1 | 1 | 2 | 50% | 33% |" in md
