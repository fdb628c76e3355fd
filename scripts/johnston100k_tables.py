"""The tables of docs/studies/johnston.md ("Widened to 101,376 runs") from the study's SQLite file.

    python scripts/johnston100k_tables.py runs/johnston100k/johnston100k.sqlite \
        [--figure docs/studies/johnston/wide_success_lr.png]

Prints Markdown: learned by model × task × optimizer, by model × lag (with the VEG flags), by
initialisation, by learning rate, and VEG × learned stratified by learning rate; with --figure,
the success rate against the learning rate per model, one panel per lag and optimizer. Learned = the
run's validation error fell under the success threshold (< 1 % of 1,000 fresh sequences).
Reads the compact snapshot (scripts/compact_sweep_db.py) or the working copy alike.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

MODELS = ["rnn-h8", "rnn-h32", "lstm-h8", "gru-h8"]
INITS = [("normal-g0.5", "N(0, 0.25/H)"), ("normal-g1.0", "N(0, 1/H)"), ("orthogonal", "orthogonal"),
         ("normal-g1.5", "N(0, 2.25/H)")]


def pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} %" if n else "–"


def load(path: str) -> list[dict]:
    if not Path(path).is_file():
        raise SystemExit(f"db: no such file {path!r} (the study's SQLite file; gunzip the committed snapshot first)")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = []
    for labels, task, length, opt, lr, success, veg, vanishing, exploding, updates in con.execute(
        "SELECT labels, task, length, optimizer, lr, success, veg, veg_vanishing, veg_exploding, updates FROM runs"
    ):
        lab = json.loads(labels)
        rows.append(dict(model=lab["model"], init=lab["init"], task=task, length=length, opt=opt, lr=lr,
                         success=bool(success), veg=bool(veg), vanishing=bool(vanishing),
                         exploding=bool(exploding), updates=updates))
    return rows


def rate(rows, **match) -> tuple[int, int]:
    sel = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return sum(r["success"] for r in sel), len(sel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--figure", help="PNG of the success rate against the learning rate (needs matplotlib)")
    args = ap.parse_args()
    rows = load(args.db)
    learned = sum(r["success"] for r in rows)
    print(f"{len(rows):,} runs, {learned:,} learned ({pct(learned, len(rows))}), "
          f"{sum(r['updates'] for r in rows):,} model-updates\n")

    print("| model | latch, SGD | latch, Adam | parity, SGD | parity, Adam | all |")
    print("|---|---|---|---|---|---|")
    for m in MODELS:
        cells = [pct(*rate(rows, model=m, task=t, opt=o)) for t in ("latch", "parity") for o in ("sgd", "adam")]
        print(f"| {m} | " + " | ".join(cells) + f" | {pct(*rate(rows, model=m))} |")

    lengths = sorted({r["length"] for r in rows})
    lag_names = " / ".join(map(str, lengths))
    print(f"\n| model, lag T = {lag_names} | learned | runs flagged vanishing | flagged exploding |")
    print("|---|---|---|---|")
    for m in MODELS:
        learned_by, vanish_by, explode_by = [], [], []
        for T in lengths:
            sel = [r for r in rows if r["model"] == m and r["length"] == T]
            learned_by.append(f"{100 * sum(r['success'] for r in sel) / len(sel):.1f}")
            vanish_by.append(f"{100 * sum(r['vanishing'] for r in sel) / len(sel):.1f}")
            explode_by.append(str(sum(r["exploding"] for r in sel)))
        print(f"| {m} | {' / '.join(learned_by)} % | {' / '.join(vanish_by)} % | {' / '.join(explode_by)} |")

    print("\n| init | " + " | ".join(name for _, name in INITS) + " |")
    print("|---|" + "---|" * len(INITS))
    print("| learned | " + " | ".join(pct(*rate(rows, init=key)) for key, _ in INITS) + " |")
    flagged = []
    for key, _ in INITS:
        sel = [r for r in rows if r["init"] == key]
        flagged.append(pct(sum(r["vanishing"] for r in sel), len(sel)))
    print("| flagged vanishing | " + " | ".join(flagged) + " |")

    lrs = sorted({r["lr"] for r in rows})
    print("\n| lr | " + " | ".join(MODELS) + " | all |")
    print("|---|" + "---|" * (len(MODELS) + 1))
    for lr in lrs:
        cells = [pct(*rate(rows, model=m, lr=lr)) for m in MODELS]
        print(f"| {lr:.3g} | " + " | ".join(cells) + f" | {pct(*rate(rows, lr=lr))} |")

    print("\n| lr | VEG & learned | VEG & failed | no VEG & learned | no VEG & failed "
          "| P(learned \\| VEG) | P(learned \\| no VEG) |")
    print("|---|---|---|---|---|---|---|")
    for lr in lrs + [None]:
        sel = [r for r in rows if lr is None or r["lr"] == lr]
        counts = defaultdict(int)
        for r in sel:
            counts[(r["veg"], r["success"])] += 1
        a, b, c, d = counts[(True, True)], counts[(True, False)], counts[(False, True)], counts[(False, False)]
        name = "all" if lr is None else f"{lr:.3g}"
        print(f"| {name} | {a:,} | {b:,} | {c:,} | {d:,} | {pct(a, a + b)} | {pct(c, c + d)} |")
    if args.figure:
        plot(rows, args.figure)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths, lrs = sorted({r["length"] for r in rows}), sorted({r["lr"] for r in rows})
    fig, axes = plt.subplots(2, len(lengths), figsize=(3.2 * len(lengths), 5.6), sharex=True, sharey=True)
    for i, opt in enumerate(("sgd", "adam")):
        for j, T in enumerate(lengths):
            ax = axes[i, j]
            for m in MODELS:
                ys = [100 * k / n if n else float("nan") for k, n in (rate(rows, model=m, opt=opt, length=T, lr=lr) for lr in lrs)]
                ax.plot(lrs, ys, marker="o", ms=3, lw=1, label=m)
            ax.set_xscale("log")
            ax.set_title(f"{'SGD' if opt == 'sgd' else 'Adam'}, lag T = {T}", fontsize=9)
            if i == 1:
                ax.set_xlabel("learning rate")
            if j == 0:
                ax.set_ylabel("learned (%)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{len(rows):,} runs: both tasks, 4 inits and all seeds pooled per point", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nfigure: {path}")


if __name__ == "__main__":
    main()
