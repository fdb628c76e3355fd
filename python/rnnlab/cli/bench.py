"""``rnnlab bench``: the Elman benchmark table (rnnlab against nn.RNN, JAX and batched baselines), or
with ``--peers`` rnnlab against its peers at one and two pinned threads (:mod:`rnnlab.bench.peers`)."""
from __future__ import annotations

import argparse
import json
import os
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


def parse_threads(text: str) -> int:
    """A CPU count between 1 and the number of CPUs this process may use."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= available:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, {available}] (the CPUs this process may use), got {text!r}")
    return n


def run(args) -> int:
    if args.peers is not None:
        return _peers(args)
    from ..bench.harness import confined

    # JAX sizes its thread pool from the CPUs it may use, not from torch's thread count, so a
    # thread limit must confine the whole process for the peers to be compared on equal cores.
    with confined(args.threads):
        return _measure(args)


def _peers(args) -> int:
    from ..bench import peers

    if args.configs is not None or args.breakdown:
        print("rnnlab bench: --configs and --breakdown apply to the Elman table, not to --peers", file=sys.stderr)
        return 2
    try:
        # each thread count runs in a subprocess of its own, confined there (peers module doc)
        print(peers.run(args.peers, threads=None if args.threads is None else [args.threads], cells=args.cells,
                        quick=args.quick, use_jax=not args.no_jax, compile=args.compile, json_path=args.json))
    except ValueError as e:
        print(f"rnnlab bench: {e}", file=sys.stderr)
        return 2
    return 0


def _measure(args) -> int:
    from ..bench import report, suite, workload
    from ..bench.harness import FULL, QUICK

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
                   help="configs to run (default: five single layers, H=32 B=32 T=256 to H=512 B=128 T=100, "
                        "and the population of 256 models at H=32)")
    p.add_argument("--threads", type=parse_threads,
                   help="run on this many of the process's CPUs: torch's threads and JAX's pool (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write the raw results (seconds, per case) as JSON")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--breakdown", action="store_true", help="also time each part of rnnlab's pass alone")
    p.add_argument("--peers", choices=("training", "dropin", "all"),
                   help="instead of the Elman table: rnnlab against its peers at 1 and 2 pinned threads (or "
                        "--threads), the population training update of every cell with a fused step (nn loop, "
                        "torch.func, JAX), the drop-in modules (torch.nn, JAX), or both: Markdown tables (all: about "
                        "4 minutes with the Elman fused step alone, up to 10 with LSTM and GRU steps)")
    p.add_argument("--cells", nargs="+", metavar="CELL",
                   help="with --peers: these cells (elman, lstm, gru; default: those with a fused step for the "
                        "training update, all three for the drop-ins)")
    p.add_argument("--compile", action="store_true",
                   help="with --peers: the torch.func peer through torch.compile (minutes of compilation per case)")
    p.set_defaults(func=run)
