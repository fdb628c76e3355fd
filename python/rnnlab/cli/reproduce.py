"""``rnnlab reproduce NAME [--quick] [--out DIR]``: run one published result's reproduction, print
its tables, write its figures (PNG) and numbers (results.json) into --out
(default runs/reproduce/NAME; runs/reproduce/NAME-quick with --quick).
``rnnlab reproduce list`` lists the reproductions. The pages under docs/reproductions/ hold the
full runs' results and their comparison with the papers."""
from __future__ import annotations

import argparse
import os
import sys
import time


def _prepare_out(path: str) -> str | None:
    """Create ``path`` if needed; return an error message when it cannot hold the outputs."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--out {path!r} exists and is not a directory"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return f"--out {path!r} cannot be created: {e.strerror}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"--out {path!r} is not writable"
    return None


def run(args) -> int:
    from .. import reproduce

    if args.name == "list":
        for name in sorted(reproduce.REPRODUCTIONS):
            module = reproduce.load(name)
            print(f"{name:<14} {module.TITLE}  ({module.DOC})")
        return 0
    try:
        module = reproduce.load(args.name)
    except ValueError as e:
        print(f"rnnlab reproduce: {e} (or 'list')", file=sys.stderr)
        return 2
    out = args.out or os.path.join("runs", "reproduce", args.name + ("-quick" if args.quick else ""))
    problem = _prepare_out(out)
    if problem:
        print(f"rnnlab reproduce: {problem}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"{args.name}{' (quick)' if args.quick else ''}: {module.TITLE}", flush=True)
    start = time.perf_counter()
    module.run(out, quick=args.quick, log=lambda line: print(line, flush=True))
    print(f"done in {time.perf_counter() - start:.0f} s; figures and results.json in {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="run a reproduction of a published result (or 'list' them)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a reproduction's name (see 'rnnlab reproduce list'), or 'list'")
    p.add_argument("--quick", action="store_true", help="a small version of every part (under two minutes on two cores)")
    p.add_argument("--out", help="output directory (default runs/reproduce/NAME[-quick])")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=run)
