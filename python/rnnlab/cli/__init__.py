"""The ``rnnlab`` command. Each module in this package adds one subcommand by defining
``register(subparsers)``, which adds a parser whose ``func`` default runs the command."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..train.memory import retain_freed_memory


def positive_seconds(text: str) -> float:
    """The argparse type of the options that take a duration in seconds (> 0)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description="Fused RNN kernels, training and sweeps for long-term-memory research.")
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "bench":
        # this process is rnnlab's own: training updates reuse freed memory (rnnlab.train.memory);
        # benchmarks keep the allocator a user's process has, for rnnlab and its peers alike
        retain_freed_memory()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
