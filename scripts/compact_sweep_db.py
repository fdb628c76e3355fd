"""A sweep's SQLite file made small enough to commit: every stored run's row, without what can be
regenerated or is not needed for the study's tables.

    python scripts/compact_sweep_db.py SRC DST [--drop-columns profile_first,profile_last]

DST gets a copy of SRC (SQLite's online backup, so a sweep may still be writing SRC) with the
``plan`` table emptied (``rnnlab sweep run`` plans the spec again and skips every run_id already in
``runs``) and the named JSON columns of ``runs`` set to NULL (default: the two per-run gradient
profiles, ≈ 40 % of a Johnston row), then vacuumed. Continuing a sweep from DST retrains only the
runs it lacks. Compress it with ``gzip -9`` to commit.
"""
from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from rnnlab.sweep.schema import JSON_COLUMNS


def compact(src: Path, dst: Path, drop: list[str]) -> None:
    unknown = [c for c in drop if c not in JSON_COLUMNS or c in ("config", "labels")]
    if unknown:
        raise ValueError(f"--drop-columns: {unknown} are not droppable JSON columns of runs "
                         f"(droppable: {sorted(JSON_COLUMNS - {'config', 'labels'})})")
    if dst.exists():
        raise FileExistsError(f"{dst} exists; remove it first")
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    with sqlite3.connect(dst) as db:
        db.execute("DELETE FROM plan")
        if drop:
            db.execute("UPDATE runs SET " + ", ".join(f"{c} = NULL" for c in drop))
    with sqlite3.connect(dst) as db:
        db.execute("VACUUM")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--drop-columns", default="profile_first,profile_last",
                    help="comma-separated JSON columns of runs to set NULL ('' keeps all)")
    args = ap.parse_args(argv)
    compact(args.src, args.dst, [c for c in args.drop_columns.split(",") if c])
    rows = sqlite3.connect(f"file:{args.dst}?mode=ro", uri=True).execute("SELECT count(*) FROM runs").fetchone()[0]
    print(f"{args.dst}: {rows:,} runs, {args.dst.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
