"""Where the long Pascanu et al. (2013) study stands (docs/reproductions/pascanu2013.md, "The long
run"): a markdown table per length × init × method and two figures, from the sweep's SQLite file
and the checkpoints of its populations still training.

    python scripts/pascanu2013_long_summary.py runs/pascanu2013_long/pascanu2013_long.sqlite \\
        [--sweep pascanu2013_long] [--figures docs/reproductions/pascanu2013]

The adding stage shares the file: ``--sweep pascanu2013_long_add`` (its figures are named
long_add_profiles.png and long_add_curves.png); the variable-length study
(examples/sweeps/pascanu2013_varlen.toml) has a file of its own, its lengths shown as a range
(``--sweep pascanu2013_varlen``: varlen_profiles.png, varlen_curves.png). The method is read from the run's α
(0: MSGD-C, > 0: MSGD-CR), so a sweep without a ``method`` label works too.

A run with a row is read from its row; a run still training from its population's checkpoint
(its results so far, and the accumulators for the mean gradient norm and the clipped fraction).
"""
from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

from rnnlab.sweep import ResultStore
from rnnlab.sweep.lengths import training_lengths
from rnnlab.sweep.record import log10_ratio_profile
from rnnlab.train import checkpoint as ckpt


def _from_checkpoints(store: ResultStore) -> dict[str, dict]:
    """run_id -> the state of a run still training (same keys as a row where they exist)."""
    out = {}
    for path, summary in store.checkpoints():
        state = ckpt.load(path, "cpu")
        acc = state["accumulator"]
        for m, run_id in enumerate(summary["info"]["run_ids"]):
            r = state["results"][m]
            updates = int(state["updates"][m])
            n = float(acc["norm_count"][m])
            out[run_id] = {
                "updates": updates, "success": r["success"], "updates_to_success": r["updates_to_success"],
                "final_error": r["final_error"], "history": r["history"],
                "grad_norm_mean": float(acc["norm_total"][m]) / n if n else math.nan,
                "clip_fraction": float(acc["clipped"][m]) / max(updates, 1),
                "profile_last": log10_ratio_profile(r["grad_profiles"][-1]["delta_norm"]) if r["grad_profiles"] else None,
            }
    return out


def _span(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "—"
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}–{hi}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db")
    parser.add_argument("--sweep", default="pascanu2013_long")
    parser.add_argument("--figures", help="folder for <sweep>_profiles.png and <sweep>_curves.png, the sweep's name without "
                        "'pascanu2013_' (needs matplotlib)")
    args = parser.parse_args()

    with ResultStore(args.db) as store:
        plan = {rid: json.loads(cfg) for rid, cfg in
                store.db.execute("SELECT run_id, config FROM plan WHERE sweep = ?", (args.sweep,))}
        runs = {r["run_id"]: r for r in store.rows("sweep = ?", (args.sweep,))}
        runs.update({rid: state for rid, state in _from_checkpoints(store).items() if rid not in runs})

    cells = defaultdict(list)  # ((min length, max length), init, method) -> [(seed, run)]
    for rid, planned in plan.items():
        if rid in runs:
            c = planned["config"]
            method = "MSGD-CR" if c["alpha"] > 0 else "MSGD-C"
            cells[((c["task_kwargs"]["min_length"], c["task_kwargs"]["max_length"]), c["init"], method)].append((c["seed"], runs[rid]))
    print("| length | init | method | updates | success | updates to success | latest validation error (per seed) "
          "| mean pre-clip ‖g‖ | clipped updates | latest ρ(W_hh) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (length, init, method), members in sorted(cells.items()):
        members.sort(key=lambda m: m[0])
        rs = [r for _, r in members]
        to_success = ", ".join(format(r["updates_to_success"], ",") for r in rs if r["success"]) or "—"
        errors = ", ".join(format(100 * r["final_error"], ".1f") for r in rs)
        print(f"| {training_lengths(*length)} | {init} | {method} | {_span([r['updates'] for r in rs], ',')} | "
              f"{sum(bool(r['success']) for r in rs)}/{len(rs)} | {to_success} | {errors} % | "
              f"{_span([r['grad_norm_mean'] for r in rs], '.3g')} | {_span([100 * r['clip_fraction'] for r in rs], '.0f')} % | "
              f"{_span([r['history']['rho'][-1] for r in rs if r['history']['rho']], '.2f')} |")
    if args.figures:
        _plot(cells, Path(args.figures), args.sweep.removeprefix("pascanu2013_"))  # long, long_add, varlen


def _plot(cells: dict, folder: Path, prefix: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({k[0] for k in cells})
    colors = {"MSGD-C": "tab:blue", "MSGD-CR": "tab:red"}
    styles = {"basic_tanh": "-", "smart_tanh": ":"}
    fig_p, ax_p = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 3.4), squeeze=False, sharey=True)
    fig_c, ax_c = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 3.4), squeeze=False, sharey=True)
    for (length, init, method), members in sorted(cells.items()):
        i = lengths.index(length)
        for seed, r in members:
            label = f"{method}, {init}" if seed == min(s for s, _ in members) else None
            profile = r["profile_last"]
            if profile:
                xs = [t / (len(profile) - 1) for t in range(len(profile))]
                ax_p[0, i].plot(xs, [max(v, -40) for v in profile], styles[init], color=colors[method], lw=0.8, label=label)
            h = r["history"]
            ax_c[0, i].plot(h["update"], [100 * e for e in h["val_error"]], styles[init], color=colors[method], lw=0.8,
                            label=label)
    for i, length in enumerate(lengths):
        ax_p[0, i].set(title=f"T = {training_lengths(*length)}", xlabel="t / T (latest check)")
        ax_c[0, i].set(title=f"T = {training_lengths(*length)}", xlabel="update")
    ax_p[0, 0].set_ylabel("log10 ‖∂L/∂h_t‖ / ‖∂L/∂h_T‖")
    ax_c[0, 0].set_ylabel("validation error (%)")
    ax_p[0, 0].legend(fontsize=7)
    ax_c[0, 0].legend(fontsize=7)
    names = (f"{prefix}_profiles.png", f"{prefix}_curves.png")
    for fig, name in zip((fig_p, fig_c), names):
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
    print(f"\nfigures: {folder / names[0]}, {folder / names[1]}")


if __name__ == "__main__":
    main()
