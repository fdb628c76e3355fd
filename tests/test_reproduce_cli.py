"""``rnnlab reproduce``: the registry, bad input (exit code 2 with a message) and every
reproduction's --quick end to end in a temporary directory (it runs and writes its outputs)."""
import json
import os

import pytest

from rnnlab import reproduce
from rnnlab.cli import main


def test_list_names_every_reproduction(capsys):
    assert main(["reproduce", "list"]) == 0
    out = capsys.readouterr().out
    for name in reproduce.REPRODUCTIONS:
        assert name in out


def test_unknown_name_is_a_clear_error(capsys):
    assert main(["reproduce", "nosuchpaper2099"]) == 2
    err = capsys.readouterr().err
    assert "unknown reproduction 'nosuchpaper2099'" in err and "zucchet2024" in err


def test_out_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["reproduce", "emami2021", "--quick", "--out", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["reproduce", "emami2021", "--quick", "--out", str(blocker / "below")]) == 2
    assert "cannot be created" in capsys.readouterr().err


#: the files each quick run must write
OUTPUTS = {
    "pascanu2013": ["torder_short_curves.png", "torder_short_grad_profile.png"],
    "zucchet2024": ["fig1_memory.png", "fig2_landscape.png", "fig3a.png", "fig3b.png"],
    "emami2021": ["taps.png", "learned_fraction.png", "error_vs_width.png"],
    "lambrechts2023": ["mse_by_arm.png", "vaa_over_training.png"],
}


@pytest.mark.parametrize("name", sorted(reproduce.REPRODUCTIONS))
def test_quick_run_writes_its_table_figures_and_numbers(name, tmp_path, capsys):
    assert set(OUTPUTS) == set(reproduce.REPRODUCTIONS)
    out = tmp_path / name
    assert main(["reproduce", name, "--quick", "--out", str(out)]) == 0
    assert "---" in capsys.readouterr().out  # a table was printed
    for fname in OUTPUTS[name]:
        assert os.path.getsize(out / fname) > 1000
    record = json.loads((out / "results.json").read_text())
    assert record["reproduction"] == name and record["quick"] is True
