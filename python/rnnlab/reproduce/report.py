"""Output helpers shared by the reproductions: aligned text tables, PNG figures, the results JSON
and a checkpoint file that lets a long run resume after a crash without redoing finished parts."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence

from ..plotting import pyplot


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain-text table, columns right-aligned; floats in 4 significant digits."""
    def cell(v) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in text]
    return "\n".join(lines)


def save_figure(fig, path: str) -> None:
    """Save as a compact PNG (the docs commit these; dpi 100 keeps them well under 300 KB)."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def _rounded(value, digits: int = 5):
    """``value`` with every float rounded to ``digits`` significant digits (the docs commit these
    files: measurements carry no more, and the JSON stays small)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def write_json(path: str, record: dict) -> None:
    """Write compactly, floats to 5 significant digits, atomically (a crash mid-write leaves the
    previous file intact)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_rounded(record), f, separators=(",", ":"), default=float)
    os.replace(tmp, path)


class Checkpoint:
    """Finished parts of a run, by key, in ``out/checkpoint.json``: :meth:`get_or_run` returns a
    stored part or computes and stores it, so a rerun after a crash continues where it stopped.
    Parts are stored under the run's settings (``tag``): a quick run never reuses a full run's."""

    def __init__(self, out: str, tag: str):
        self.path = os.path.join(out, "checkpoint.json")
        self.tag = tag
        self.parts: dict = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                stored = json.load(f)
            if stored.get("tag") == tag:
                self.parts = stored["parts"]

    def get_or_run(self, key: str, compute: Callable[[], dict], log: Callable[[str], None] = print) -> dict:
        if key in self.parts:
            log(f"  {key}: from {self.path}")
            return self.parts[key]
        self.parts[key] = compute()
        write_json(self.path, {"tag": self.tag, "parts": self.parts})
        return self.parts[key]
