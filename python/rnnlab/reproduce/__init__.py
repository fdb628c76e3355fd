"""Reproductions of published results, one module per paper (``rnnlab reproduce NAME``).

Every module in :data:`REPRODUCTIONS` defines ``TITLE`` (one line), ``DOC`` (its page under
docs/reproductions/) and ``run(out, quick, log) -> dict``: it runs the reproduction, prints its
tables through ``log``, writes PNG figures and ``results.json`` into the directory ``out`` and
returns the numbers of that JSON. ``quick=True`` is a small version (minutes, not hours) that
exercises every part. Adding a paper is one module and one line here.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: name -> module (in this package) of every reproduction.
REPRODUCTIONS = {
    "pascanu2013": "pascanu2013",
    "zucchet2024": "zucchet2024",
    "emami2021": "emami2021",
    "lambrechts2023": "lambrechts2023",
}


def load(name: str) -> ModuleType:
    """The module of reproduction ``name``; ValueError listing the known names otherwise."""
    if name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; known: {', '.join(sorted(REPRODUCTIONS))}")
    return importlib.import_module(f"{__name__}.{REPRODUCTIONS[name]}")


__all__ = ["REPRODUCTIONS", "load"]
