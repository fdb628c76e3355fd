"""The Elman RNN's CPU speed targets (forward+backward, float32), checked against one run of
``rnnlab bench --json results.json``:

* ≥ 10× nn.RNN at H ≤ 64, ≥ 3× at H = 128–256, never slower at H = 512;
* faster than JAX's jit(grad(lax.scan)) at every config, ≥ 2× JAX at H ≤ 128;
* the population of M models: ≥ 50 % of the sgemm rate, ≥ 5× the bmm/unbind baseline.

    python benchmarks/elman_targets.py results.json

Each verdict compares medians measured in the same run; a target whose peer or config was not
measured (``--no-jax``, ``--configs``) is left out rather than reported as met. Verdicts and
their reasons are in docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from rnnlab.bench.report import sgemm_reference


@dataclass(frozen=True)
class Verdict:
    target: str
    met: bool
    detail: str


def _speedups(results: dict, peer: str) -> list[tuple[int, str, float]]:
    """(H, label, peer time / rnnlab time) of every forward+backward row that has ``peer``."""
    out = []
    for row in results["single"]:
        t = row["times"]
        if row["mode"] == "forward+backward" and peer in t:
            out.append((row["config"]["H"], row["label"], t[peer]["median"] / t["rnnlab"]["median"]))
    return out


def _at_least(target: str, rows: list[tuple[int, str, float]], factor: float) -> Verdict | None:
    if not rows:
        return None
    detail = ", ".join(f"{label}: {s:.2f}×" for _, label, s in rows)
    return Verdict(target, all(s >= factor for _, _, s in rows), detail)


def verdicts(results: dict) -> list[Verdict]:
    out = []
    nn = _speedups(results, "nn.RNN")
    out.append(_at_least("≥ 10× nn.RNN at H ≤ 64", [r for r in nn if r[0] <= 64], 10))
    out.append(_at_least("≥ 3× nn.RNN at H = 128–256", [r for r in nn if 128 <= r[0] <= 256], 3))
    out.append(_at_least("never slower than nn.RNN at H = 512", [r for r in nn if r[0] >= 512], 1))
    jax = _speedups(results, "jax")
    slow = [r for r in jax if r[2] <= 1]
    if jax:
        out.append(Verdict("faster than JAX at every config", not slow,
                           ", ".join(f"{label}: {s:.2f}×" for _, label, s in jax)))
    out.append(_at_least("≥ 2× JAX at H ≤ 128", [r for r in jax if r[0] <= 128], 2))

    pop = results.get("population")
    if pop is not None:
        t = pop["times"]
        fused = t["rnnlab fused"]["median"]
        gflops = pop["flops"] / fused / 1e9
        fraction = gflops / sgemm_reference(results)
        out.append(Verdict("population ≥ 50 % of sgemm", fraction >= 0.5,
                           f"{gflops:.1f} GFLOP/s = {100 * fraction:.0f} % of {sgemm_reference(results):.0f}"))
        ratio = t["bmm/unbind"]["median"] / fused
        out.append(Verdict("population ≥ 5× the bmm/unbind baseline", ratio >= 5, f"{ratio:.2f}×"))
    return [v for v in out if v is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="the JSON file of rnnlab bench --json")
    with open(parser.parse_args(argv).results) as f:
        results = json.load(f)
    print("Targets (forward+backward):")
    for v in verdicts(results):
        print(f"- [{'met' if v.met else 'MISSED'}] {v.target}: {v.detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
