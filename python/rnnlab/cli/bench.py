"""``rnnlab bench``: the Elman benchmark table (rnnlab against nn.RNN, JAX and batched baselines)."""
from __future__ import annotations

import argparse
import json
import sys


def parse_config(text: str):
    """``HxBxT`` or ``HxBxTxI`` -> a one-model Config; ``pop`` -> the population case."""
    from ..bench.workload import POPULATION, Config

    if text in ("pop", "population"):
        return POPULATION
    try:
        sizes = [int(v) for v in text.lower().split("x")]
    except ValueError:
        sizes = []
    if len(sizes) not in (3, 4) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"a config is HxBxT, HxBxTxI (positive integers) or 'pop', got {text!r}")
    return Config(*sizes)


def run(args) -> int:
    import torch

    from ..bench import report, suite, workload
    from ..bench.harness import FULL, QUICK

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.configs is None:
        configs = list(workload.QUICK_SINGLE if args.quick else workload.SINGLE)
        population = workload.QUICK_POPULATION if args.quick else workload.POPULATION
    else:
        configs = [c for c in args.configs if c.M == 1]
        population = next((c for c in args.configs if c.M > 1), None)

    def progress(line: str) -> None:
        print(f"  timing {line} ...", file=sys.stderr, flush=True)

    results = suite.run(configs, population, budget=QUICK if args.quick else FULL, use_jax=not args.no_jax,
                        progress=progress)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(report.render(results, markdown=args.markdown))
    if args.breakdown:
        from ..bench.breakdown import breakdown

        parts = {}
        for cfg in configs + ([population] if population else []):
            progress(f"{cfg.label} breakdown")
            parts[cfg.label] = breakdown(cfg, QUICK if args.quick else FULL)
        print("\nWhere rnnlab's forward+backward time goes (each part timed alone):\n")
        print(report.breakdown_table(parts, args.markdown))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="time rnnlab's Elman RNN against nn.RNN, JAX and batched baselines")
    p.add_argument("--quick", action="store_true", help="shorter sequences and fewer repeats (about a minute)")
    p.add_argument("--no-jax", action="store_true", help="skip the JAX peer even when jax is installed")
    p.add_argument("--configs", nargs="+", type=parse_config, metavar="HxBxT[xI]|pop",
                   help="configs to run (default: the five of issue 2 and the population case)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice); JAX uses its own pool")
    p.add_argument("--json", metavar="PATH", help="also write the raw results (seconds, per case) as JSON")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--breakdown", action="store_true", help="also time each part of rnnlab's pass alone")
    p.set_defaults(func=run)
