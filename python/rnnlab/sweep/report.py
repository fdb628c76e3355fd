"""Tables and PNG plots from a sweep's SQLite file.

* success rate over learning rate × length, one table (and heatmap panel) per cell × init
  (× bundle factors such as Pascanu's ``method``, × any ``by`` factors); other factors pooled;
* success rate against length, one line per bundle/``by`` level (the layout of Pascanu Fig. 7);
* the VEG × learned 2×2 table of SPEC §3.3, stratified by learning rate;
* gradient-norm profiles log10(‖δ_t‖/‖δ_T‖) of learned vs failed runs, at their first and last
  check, one panel per length.

A factor's value in a table is its bundle name when the run came from a bundle (e.g. the init
``normal-g1.5``), else the column value.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from ..plotting import pyplot
from .query import RunFilter
from .record import VegRule, veg_from_counts, veg_from_series
from .store import ResultStore

#: profiles are drawn clipped at this log10 ratio: ‖δ_t‖ = 0 (−inf) is below float32's range anyway.
PROFILE_FLOOR = -40.0
#: factor columns a report may group by.
FACTORS = ("task", "length", "cell", "hidden", "nonlinearity", "init", "init_gain", "optimizer", "lr", "clip",
           "alpha", "batch_size", "max_updates")


def value(row: dict, factor: str):
    """The row's level of ``factor``: its bundle label if it has one, else the column."""
    labels = row.get("labels") or {}
    if factor in labels:
        return labels[factor]
    if factor in row:
        return row[factor]
    return (row.get("config") or {}).get("config", {}).get(factor)


def varying(rows: list[dict]) -> list[str]:
    """Factors (columns and bundle labels) with more than one level among ``rows``."""
    names = list(FACTORS) + sorted({k for r in rows for k in (r.get("labels") or {}) if k not in FACTORS})
    return [f for f in names if len({_key(value(r, f)) for r in rows}) > 1]


def _key(v):
    return (1, float("inf")) if v is None else (0, v) if isinstance(v, (int, float)) else (0.5, str(v))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "none" if v is None else str(v)


def panel_factors(rows: list[dict], by: tuple[str, ...] = ()) -> list[str]:
    """cell and init, the bundle factors, and ``by``, in that order, without repeats."""
    labels = sorted({k for r in rows for k in (r.get("labels") or {})} - {"cell", "init"})
    out = []
    for f in ("cell", "init", *labels, *by):
        if f not in out:
            out.append(f)
    return out


def pooled_factors(rows: list[dict], shown: list[str]) -> list[str]:
    """Varying factors that the ``shown`` factors do not determine (e.g. ``init_gain`` is not
    pooled when the ``init`` bundle sets it)."""
    out = []
    for f in varying(rows):
        if f in shown:
            continue
        levels: dict = defaultdict(set)
        for r in rows:
            levels[tuple(_key(value(r, g)) for g in shown)].add(_key(value(r, f)))
        if any(len(v) > 1 for v in levels.values()):
            out.append(f)
    return out


def success_grid(rows: list[dict], panel: list[str], x: str = "length", y: str = "lr") -> dict:
    """panel tuple -> {(y, x): (successes, runs)}."""
    out: dict = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in rows:
        cell = out[tuple(value(r, f) for f in panel)][(value(r, y), value(r, x))]
        cell[0] += bool(r["success"])
        cell[1] += 1
    return out


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def success_tables(rows: list[dict], by: tuple[str, ...] = ()) -> str:
    """Markdown: per panel, success rate (k/n) with learning rate as rows and length as columns."""
    panel = panel_factors(rows, by)
    pooled = pooled_factors(rows, [*panel, "lr", "length"])
    grid = success_grid(rows, panel)
    out = [f"Success = validation error < the task's threshold (SPEC §2.3). Pooled over: "
           f"{', '.join(pooled) if pooled else 'nothing but seeds'}."]
    for key in sorted(grid, key=lambda k: tuple(_key(v) for v in k)):
        cells = grid[key]
        lrs = sorted({k[0] for k in cells}, key=_key)
        lengths = sorted({k[1] for k in cells}, key=_key)
        title = ", ".join(f"{f}={_fmt(v)}" for f, v in zip(panel, key))
        body = []
        for lr in lrs:
            row = [_fmt(lr)]
            for L in lengths:
                k, n = cells.get((lr, L), (0, 0))
                row.append(f"{k}/{n} ({100 * k / n:.0f}%)" if n else "")
            body.append(row)
        out.append(f"\n**{title}**\n\n" + markdown_table(["lr \\ length"] + [_fmt(L) for L in lengths], body))
    return "\n".join(out)


def veg_tables(rows: list[dict], by: str = "lr") -> str:
    """Markdown: the VEG × learned 2×2 table (SPEC §3.3), one row per level of ``by``."""
    counts: dict = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        c = counts[value(r, by)]
        c[(0 if r["veg"] else 2) + (0 if r["success"] else 1)] += 1
    body = []
    total = [0, 0, 0, 0]
    for level in sorted(counts, key=_key):
        c = counts[level]
        total = [a + b for a, b in zip(total, c)]
        body.append(_veg_row(_fmt(level), c))
    body.append(_veg_row("all", total))
    header = [by, "VEG & learned", "VEG & failed", "no VEG & learned", "no VEG & failed", r"P(learned \| VEG)",
              r"P(learned \| no VEG)"]
    return markdown_table(header, body)


def _veg_row(label: str, c: list[int]) -> list[str]:
    def rate(k: int, n: int) -> str:
        return f"{100 * k / n:.0f}%" if n else "–"

    return [label, *map(str, c), rate(c[0], c[0] + c[1]), rate(c[2], c[2] + c[3])]


def summary(rows: list[dict]) -> str:
    n = len(rows)
    k = sum(bool(r["success"]) for r in rows)
    upd = sum(r["updates"] or 0 for r in rows)
    wall = max((r["wall_time_s"] or 0 for r in rows), default=0)
    return (f"{n} runs, {k} learned ({100 * k / max(n, 1):.1f}%), {upd:,} model-updates in total; "
            f"longest population {wall:.0f} s.")


# ---- plots ------------------------------------------------------------------------------------
def plot_success_heatmaps(rows: list[dict], path: Path, by: tuple[str, ...] = ()) -> Path:
    """One lr × length heatmap of the success rate per panel (see :func:`success_tables`)."""
    plt = pyplot()
    panel = panel_factors(rows, by)
    grid = success_grid(rows, panel)
    keys = sorted(grid, key=lambda k: tuple(_key(v) for v in k))
    ncol = min(4, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        cells = grid[key]
        lrs = sorted({k[0] for k in cells}, key=_key)
        lengths = sorted({k[1] for k in cells}, key=_key)
        img = [[(cells[(lr, L)][0] / cells[(lr, L)][1]) if (lr, L) in cells else math.nan for L in lengths] for lr in lrs]
        ax.imshow(img, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        for i, lr in enumerate(lrs):
            for j, L in enumerate(lengths):
                if (lr, L) in cells:
                    k, n = cells[(lr, L)]
                    ax.text(j, i, f"{k}/{n}", ha="center", va="center", fontsize=7, color="w" if k / n < 0.6 else "k")
        ax.set_xticks(range(len(lengths)), [_fmt(L) for L in lengths])
        ax.set_yticks(range(len(lrs)), [_fmt(lr) for lr in lrs])
        ax.set_xlabel("length")
        ax.set_ylabel("learning rate")
        ax.set_title(", ".join(f"{_fmt(v)}" for v in key), fontsize=8)
    fig.suptitle("success rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_success_vs_length(rows: list[dict], path: Path, by: tuple[str, ...] = ()) -> Path:
    """Success rate against length, one line per learning rate when it varies (else per level of
    the last varying panel factor, e.g. Pascanu's ``method``: the layout of Fig. 7), one panel
    per combination of the other panel factors."""
    plt = pyplot()
    moving = varying(rows)
    panel = [f for f in panel_factors(rows, by) if f in moving] or ["cell"]
    if "lr" in moving:
        hue = ["lr"]
    else:
        hue, panel = panel[-1:], panel[:-1]
    groups: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    for r in rows:
        c = groups[tuple(value(r, f) for f in panel)][tuple(value(r, f) for f in hue)][value(r, "length")]
        c[0] += bool(r["success"])
        c[1] += 1
    keys = sorted(groups, key=lambda k: tuple(_key(v) for v in k))
    ncol = min(4, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow + 0.6), squeeze=False, sharey=True)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        for h in sorted(groups[key], key=lambda k: tuple(_key(v) for v in k)):
            pts = sorted(groups[key][h].items(), key=lambda kv: _key(kv[0]))
            ax.plot([p[0] for p in pts], [p[1][0] / p[1][1] for p in pts], marker="o", label=", ".join(_fmt(v) for v in h))
        ax.set_title(", ".join(_fmt(v) for v in key) or "all runs", fontsize=8)
        ax.set_xlabel("sequence length", fontsize=8)
        ax.set_ylim(-0.05, 1.05)
    for ax in axes[:, 0]:
        ax.set_ylabel("success rate", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 8), fontsize=7, title=", ".join(hue),
               title_fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (2.9 * nrow + 0.6)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _profile_steps(T: int, n: int) -> list[int]:
    """The steps t (1-based) of a stored profile of n points of a length-T sequence
    (:func:`rnnlab.sweep.record.downsample`)."""
    if n == T:
        return list(range(1, T + 1))
    return [1 + round(i * (T - 1) / (n - 1)) for i in range(n)]


def plot_profiles(rows: list[dict], path: Path) -> Path:
    """Median (and quartiles) of log10(‖δ_t‖/‖δ_T‖) against t, learned vs failed runs; rows:
    first check, last check; columns: lengths. Zero norms (−inf) are drawn at PROFILE_FLOOR."""
    plt = pyplot()
    lengths = sorted({r["length"] for r in rows if r["length"] is not None})
    fig, axes = plt.subplots(2, max(1, len(lengths)), figsize=(3.6 * max(1, len(lengths)), 5.6), squeeze=False)
    for j, L in enumerate(lengths):
        for i, which in enumerate(("profile_first", "profile_last")):
            ax = axes[i][j]
            for learned, color in ((True, "tab:green"), (False, "tab:red")):
                profs = [r[which] for r in rows if r["length"] == L and bool(r["success"]) == learned and r[which]]
                if not profs:
                    continue
                n = min(len(p) for p in profs)
                profs = [p[:n] for p in profs if len(p) == n]
                steps = _profile_steps(L, n)
                cols = [[max(p[k], PROFILE_FLOOR) for p in profs if p[k] is not None and not math.isnan(p[k])]
                        for k in range(n)]
                keep = [k for k in range(n) if cols[k]]
                q = [statistics.quantiles(cols[k], n=4) if len(cols[k]) > 1 else [cols[k][0]] * 3 for k in keep]
                xs = [steps[k] for k in keep]
                ax.plot(xs, [v[1] for v in q], color=color, label=f"{'learned' if learned else 'failed'} ({len(profs)})")
                ax.fill_between(xs, [v[0] for v in q], [v[2] for v in q], color=color, alpha=0.2)
            ax.set_title(f"T={L}, {'first' if i == 0 else 'last'} check", fontsize=9)
            ax.set_xlabel("step t")
            if j == 0:
                ax.set_ylabel(f"log10 ‖δ_t‖ / ‖δ_T‖ (floor {PROFILE_FLOOR})")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reflag(rows: list[dict], rule: VegRule, trained: dict | None = None) -> None:
    """Recompute the rows' VEG flags in place with ``rule``.

    When ``rule`` differs from the thresholds the trainer counted with (``trained``, the file's
    meta ``veg_rule``) only in ``fraction``, the flags come exactly from the per-update counts;
    otherwise from the stored per-check series (sampled at the validations)."""
    same_counts = trained is not None and all(trained.get(k) == v for k, v in rule.to_dict().items() if k != "fraction")
    for r in rows:
        if same_counts and r.get("veg_steps"):
            flags = veg_from_counts(r["veg_steps"], r["vanishing_steps"], r["exploding_steps"], r["fallbacks"] or 0, rule)
            r.update({k: flags[k] for k in ("veg", "veg_vanishing", "veg_exploding", "vanishing_frac", "exploding_frac")})
            continue
        if r.get("log10_r1") is None:
            raise ValueError(f"run {r['run_id']} has no stored log10_r1 series (written by an older rnnlab): "
                             "its VEG flags cannot be recomputed")
        flags = veg_from_series(r["log10_r1"], (r.get("history") or {}).get("grad_norm", []), r["fallbacks"] or 0, rule)
        r.update({k: flags[k] for k in ("veg", "veg_vanishing", "veg_exploding", "vanishing_frac", "exploding_frac")})


def write_report(db_path: str | Path, out_dir: str | Path, by: tuple[str, ...] = (), where: str | RunFilter = "",
                 params: tuple = (), veg_rule: VegRule | None = None) -> dict:
    """Write ``report.md`` and the PNG plots of the runs in ``db_path`` into ``out_dir``.

    Args:
        by: extra factors to split the success tables and plots by (e.g. ``("optimizer",)``).
        where, params: a filter of the runs (:mod:`rnnlab.sweep.query`), e.g. ``"task = 'latch'"``
            or ``("task = ?", ("latch",))``.
        veg_rule: recompute the VEG flags with these thresholds (default: the stored flags).
    Returns:
        dict with ``markdown`` (the report text), ``success`` (its success tables alone) and
        ``files`` (paths written).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ResultStore(db_path) as store:
        rows = store.rows(where, params)
        planned = store.planned()
        rule = store.meta("veg_rule", {})
    if not rows:
        raise ValueError(f"{db_path} has no finished runs{' matching ' + where if where else ''}")
    if veg_rule is not None:
        reflag(rows, veg_rule, rule)
        rule = veg_rule.to_dict()
    success = success_tables(rows, by)
    files = [
        plot_success_heatmaps(rows, out_dir / "success_lr_length.png", by),
        plot_success_vs_length(rows, out_dir / "success_vs_length.png", by),
        plot_profiles(rows, out_dir / "grad_profiles.png"),
    ]
    text = "\n\n".join([
        f"# Sweep report: {db_path}",
        summary(rows) + f" ({planned} runs planned in this file.)",
        "## Success rate over learning rate × length",
        success,
        "## VEG × learned (SPEC §3.3), by learning rate",
        "VEG rule: " + ", ".join(f"{k} = {v:g}" for k, v in rule.items())
        + " (rnnlab.sweep.record and docs/sweeps.md say how the flags are sampled).",
        veg_tables(rows, "lr"),
        "## Plots",
        *[f"![{p.stem}]({p.name})" for p in files],
    ])
    (out_dir / "report.md").write_text(text + "\n")
    return {"markdown": text, "success": success, "files": [*files, out_dir / "report.md"]}
