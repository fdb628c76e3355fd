"""`rnnlab bench` runs end to end on a tiny config (a smoke test: timings are not asserted)."""
import subprocess
import sys


def test_bench_quick_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "rnnlab", "bench", "--quick", "--no-jax", "--configs", "8x2x5"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    assert "nn.RNN ms" in out and "rnnlab.RNN ms" in out and "H=8 B=2 T=5" in out


def test_info_reports_isa_and_threads():
    out = subprocess.run([sys.executable, "-m", "rnnlab", "info"], capture_output=True, text=True, check=True).stdout
    assert "rnnlab CPU kernels:" in out and "threads" in out
