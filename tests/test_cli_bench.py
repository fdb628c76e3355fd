"""`rnnlab bench` runs end to end on a tiny config, and benchmarks/elman_targets.py reads its JSON
(smoke tests: timings are not asserted)."""
import json
import subprocess
import sys
from pathlib import Path

TARGETS = Path(__file__).resolve().parents[1] / "benchmarks" / "elman_targets.py"


def test_bench_quick_prints_the_table_and_the_targets_script_reads_its_json(tmp_path):
    results = tmp_path / "results.json"
    out = subprocess.run([sys.executable, "-m", "rnnlab", "bench", "--quick", "--no-jax", "--threads", "1", "--configs",
                          "8x2x5", "--json", str(results)], capture_output=True, text=True, check=True, timeout=300).stdout
    assert "nn.RNN ms" in out and "rnnlab.RNN ms" in out and "H=8 B=2 T=5" in out
    assert json.loads(results.read_text())["machine"]["threads"] == 1
    verdicts = subprocess.run([sys.executable, str(TARGETS), str(results)], capture_output=True, text=True, check=True,
                              timeout=60).stdout
    assert "≥ 10× nn.RNN at H ≤ 64: H=8 B=2 T=5" in verdicts


def test_bench_threads_must_fit_the_cpus():
    done = subprocess.run([sys.executable, "-m", "rnnlab", "bench", "--threads", "0"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "--threads: must be an integer in [1," in done.stderr


def test_info_reports_isa_and_threads():
    out = subprocess.run([sys.executable, "-m", "rnnlab", "info"], capture_output=True, text=True, check=True).stdout
    assert "rnnlab CPU kernels:" in out and "threads" in out
