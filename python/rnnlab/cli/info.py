"""``rnnlab info``: how this installation was built and what it runs on."""
from __future__ import annotations

import platform

import torch


def run(args) -> int:
    from .. import _C

    print(f"rnnlab CPU kernels: {_C.cpu_isa()}, {torch.get_num_threads()} threads "
          f"({_C.parallel_threads_used()} used by a parallel_for), CUDA kernels: {'yes' if _C.with_cuda else 'no'}")
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="show how rnnlab was built (ISA, threads, CUDA)")
    p.set_defaults(func=run)
