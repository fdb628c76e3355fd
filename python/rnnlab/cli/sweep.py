"""``rnnlab sweep run | status | report | export | attractors | lengths``: factorial sweeps of RNN training runs
(docs/sweeps.md)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..train.checkpoint import DEFAULT_EVERY_S
from . import positive_seconds


def _parse_set(items: list[str]) -> dict:
    """``--set name=value`` pairs, each value a TOML value: ``lr=0.1``, ``seed={range=[0,20]}``,
    ``hidden=[8,32,128]``, ``task="parity"``."""
    from ..sweep.spec import toml_module

    tomllib = toml_module()
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--set expects name=value, got {item!r}")
        try:
            out[name.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise SystemExit(f"--set {item!r}: the value must be a TOML value (strings in double quotes): {e}") from None
    return out


def _run(args) -> int:
    from ..sweep import SpecError, SweepSpec, run_sweep
    from ..sweep.report import write_report

    try:
        spec = SweepSpec.from_file(args.spec)
        if args.set:
            spec = spec.with_overrides(_parse_set(args.set))
        if args.dry_run:
            from ..sweep.pack import pack

            runs = spec.expand()
            groups = pack(runs, args.device or spec.engine.get("device", "cpu"), args.max_population)
            print(f"{spec.name}: {len(runs)} runs in {len(groups)} populations "
                  f"(sizes {sorted({g.size for g in groups})}); factors: "
                  + ", ".join(f"{k} ({len(v)})" for k, v in spec.factors().items()))
            return 0
    except SpecError as e:
        print(f"rnnlab sweep: invalid spec: {e}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else None
    db = Path(args.db) if args.db else (out_dir / f"{spec.name}.sqlite" if out_dir else Path(f"{spec.name}.sqlite"))
    out = run_sweep(spec, str(db), backend=args.backend, device=args.device, max_population=args.max_population,
                    progress=not args.quiet, threads=args.threads, ray_address=args.ray_address,
                    cpus_per_task=args.cpus_per_task, num_cpus=args.num_cpus,
                    save_params=True if args.save_params else None, time_limit_s=args.time_limit,
                    checkpoint_every_s=args.checkpoint_every)
    print(f"{spec.name}: {out['trained']} runs trained, {out['skipped']} already in {db}, "
          f"{out['model_updates_per_s']:,.0f} model-updates/s over {out['elapsed_s']:.0f} s")
    if out["paused"]:
        print(f"{out['paused']} population(s) left at the time limit (checkpointed); continue with the same command. "
              f"rnnlab sweep status {db} shows where they stand", file=sys.stderr)
    if not args.no_report:
        report_dir = Path(args.report) if args.report else out_dir or db.with_name(db.stem + "_report")
        rep = write_report(db, report_dir)
        print(rep["success"])
        print(f"\nreport: {report_dir / 'report.md'} (+ {len(rep['files']) - 1} PNG plots)")
    return 0


def _missing(command: str, db: str) -> bool:
    """Say so on stderr when the SQLite file ``db`` does not exist."""
    if Path(db).is_file():
        return False
    print(f"rnnlab sweep {command}: no such file {db}", file=sys.stderr)
    return True


def _status(args) -> int:
    from ..sweep import ResultStore

    if _missing("status", args.db):
        return 2
    with ResultStore(args.db) as store:
        progress = store.progress()
        checkpoints = store.checkpoints()
    for p in progress:
        print(f"{p.sweep}: {p.done}/{p.planned} runs done ({100 * p.done / max(p.planned, 1):.1f}%), {p.learned} learned, "
              f"{p.model_updates:,} model-updates; first row {p.first_finished or '-'}, last row {p.last_finished or '-'}"
              f"{_pace(p.done, p.planned, p.first_finished, p.last_finished)}")
    for _, summary in checkpoints:
        print(_checkpoint_line(summary))
    return 0


def _checkpoint_line(summary: dict) -> str:
    """One population still training, from its checkpoint summary: updates done, models still
    training, and the time to its budget at the pace of its last sitting (an upper estimate:
    models that succeed stop costing anything)."""
    update, budget, rate = summary["update"], summary["max_updates"], summary["updates_per_s"]
    left = f"about {_duration((budget - update) / rate)} to the budget at {rate:.1f} updates/s" if rate > 0 else "pace unknown"
    return (f"  population {summary['info'].get('population_id', '?')}: update {update:,} of {budget:,} "
            f"({100 * update / budget:.1f}%), {summary['active']} of {summary['models']} models still training, "
            f"{_duration(summary['elapsed_s'])} trained, {left}; checkpoint saved {summary['saved_at']}")


def _duration(seconds: float) -> str:
    """'42 s', '17 min', '5.3 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _pace(n: int, planned: int, first: str | None, last: str | None) -> str:
    """Rows per minute between the first and the last row, and the time left at that pace (a
    rough guide: populations finish in bursts, and the cheap ones often first)."""
    from datetime import datetime

    if not first or n < 2 or first == last:
        return ""
    span = (datetime.strptime(last, "%Y-%m-%dT%H:%M:%S%z") - datetime.strptime(first, "%Y-%m-%dT%H:%M:%S%z")).total_seconds()
    per_min = (n - 1) / span * 60
    left = f", about {(planned - n) / per_min:.0f} min left at that pace" if planned > n else ""
    return f"; {per_min:.1f} runs/min{left}"


def _report(args) -> int:
    from ..sweep import VegRule
    from ..sweep.query import QueryError
    from ..sweep.report import write_report

    if _missing("report", args.db):
        return 2
    by = tuple(f for f in (args.by or "").split(",") if f)
    out = Path(args.out or Path(args.db).with_name(Path(args.db).stem + "_report"))
    rule = None
    if args.veg_rule:
        try:
            rule = VegRule(**{k: int(v) if k == "window" else float(v) for k, v in (kv.split("=", 1) for kv in args.veg_rule.split(","))})
        except (TypeError, ValueError) as e:
            print(f"rnnlab sweep report: --veg-rule expects e.g. eps_vanish=1e-4,fraction=0.2 "
                  f"(fields eps_vanish, eps_explode, jump, fraction): {e}", file=sys.stderr)
            return 2
    try:
        rep = write_report(args.db, out, by, args.where or "", veg_rule=rule)
    except QueryError as e:
        print(f"rnnlab sweep report: --where: {e}", file=sys.stderr)
        return 2
    print(rep["markdown"])
    print(f"\nwritten: {', '.join(str(p) for p in rep['files'])}")
    return 0


def _export(args) -> int:
    from ..sweep import ResultStore
    from ..sweep.export import write
    from ..sweep.query import QueryError

    if _missing("export", args.db):
        return 2
    out = args.out or str(Path(args.db).with_suffix(f".{args.format}"))
    try:
        with ResultStore(args.db) as store:
            rows = store.rows(args.where or "")
        write(rows, out, args.format)
    except QueryError as e:
        print(f"rnnlab sweep export: --where: {e}", file=sys.stderr)
        return 2
    except (ImportError, ValueError) as e:  # pyarrow missing; Parquet to stdout
        print(f"rnnlab sweep export: {e}", file=sys.stderr)
        return 2
    if out != "-":
        print(f"{len(rows)} runs written to {out}", file=sys.stderr)
    return 0


def _attractors(args) -> int:
    from ..sweep.analyze import analyze_sweep, latching_table
    from ..sweep.query import QueryError

    if _missing("attractors", args.db):
        return 2
    options = {"n_sequences": args.sequences, "max_steps": args.max_steps}
    try:
        out = analyze_sweep(args.db, args.where or "", learned_only=not args.all, batch=args.batch, redo=args.redo,
                            progress=not args.quiet, **options)
    except QueryError as e:
        print(f"rnnlab sweep attractors: --where: {e}", file=sys.stderr)
        return 2
    print(f"analysed {out['analysed']} runs now, {out['already']} already had a record, "
          f"{out['no_params']} matching runs have no saved weights (sweep run --save-params)")
    for group, why in out["skipped_groups"].items():
        print(f"skipped {group}: {why}")
    print(latching_table(args.db, tuple(f for f in args.by.split(",") if f)))
    return 0


def _lengths(args) -> int:
    from ..sweep.lengths import evaluate_lengths, lengths_table, plot_lengths
    from ..sweep.query import QueryError

    if _missing("lengths", args.db):
        return 2
    try:
        lengths = [int(L) for L in args.lengths.split(",") if L.strip()]
    except ValueError:
        print(f"rnnlab sweep lengths: --lengths must be comma-separated ints, got {args.lengths!r}", file=sys.stderr)
        return 2
    try:
        out = evaluate_lengths(args.db, lengths, args.where or "", learned_only=not args.all, sequences=args.sequences,
                               chunk=args.chunk, batch=args.batch, redo=args.redo, progress=not args.quiet)
        by = tuple(f for f in args.by.split(",") if f)
        table = lengths_table(args.db, lengths, args.where or "", by)
        if args.plot:
            plot_lengths(args.db, args.plot, args.where or "", tuple(c for c in by if c != "length"))
    except QueryError as e:
        print(f"rnnlab sweep lengths: --where: {e}", file=sys.stderr)
        return 2
    except (ImportError, ValueError) as e:  # matplotlib missing for --plot; bad arguments
        print(f"rnnlab sweep lengths: {e}", file=sys.stderr)
        return 2
    print(f"evaluated {out['evaluated']} run-lengths now, {out['already']} already had a record, "
          f"{out['no_params']} matching runs have no saved weights (sweep run --save-params)")
    print(table)
    return 0


WHERE_HELP = ("filter (and order) the runs, e.g. \"task = 'latch' AND length >= 25 AND labels.method = 'MSGD-C'\" "
              "or \"success = 1 ORDER BY lr\": conditions on columns joined by AND (see docs/sweeps.md)")


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run factorial sweeps of RNN training runs and report on them")
    cmds = p.add_subparsers(dest="sweep_command", required=True)

    r = cmds.add_parser("run", help="train every run of a spec that the SQLite file has no row for")
    r.add_argument("spec", help="sweep spec (.toml, or .yaml with PyYAML)")
    r.add_argument("--out", help="directory for the SQLite file (<spec name>.sqlite) and the report")
    r.add_argument("--db", help="SQLite result file (default: <out>/<spec name>.sqlite, else ./<spec name>.sqlite)")
    r.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a field or factor with a TOML value, e.g. --set 'seed={range=[0,20]}' (repeatable)")
    r.add_argument("--backend", choices=("embedded", "ray"), help="default: the spec's, else embedded")
    r.add_argument("--device", help="cpu, cuda or cuda:N (default: the spec's, else cpu)")
    r.add_argument("--max-population", type=int, help="cap on models per population")
    r.add_argument("--threads", type=int, help="torch CPU threads (embedded backend)")
    r.add_argument("--num-cpus", type=int, help="CPUs of a local Ray cluster")
    r.add_argument("--cpus-per-task", type=int, default=1, help="CPUs per population on Ray (default 1)")
    r.add_argument("--ray-address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local one)")
    r.add_argument("--report", help="report directory (default: <out>, else <db>_report)")
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--save-params", action="store_true",
                   help="also store each run's trained weights (for rnnlab.analysis; default: the spec's engine.save_params)")
    r.add_argument("--time-limit", type=positive_seconds, metavar="SECONDS",
                   help="stop after this long, checkpointing the populations still training (each gets an equal "
                        "share of the time left); run the same command again to continue")
    r.add_argument("--checkpoint-every", type=positive_seconds, default=DEFAULT_EVERY_S, metavar="SECONDS",
                   help=f"seconds between checkpoints of a training population (default {DEFAULT_EVERY_S:.0f}); they go "
                        f"to <db stem>_checkpoints/ beside the SQLite file and a rerun resumes from them")
    r.add_argument("--dry-run", action="store_true", help="validate and count runs and populations only")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_run)

    s = cmds.add_parser("status", help="runs planned, done and learned in a sweep's SQLite file, and the populations "
                                       "still training (checkpointed)")
    s.add_argument("db")
    s.set_defaults(func=_status)

    rep = cmds.add_parser("report", help="tables and PNG plots from a sweep's SQLite file")
    rep.add_argument("db")
    rep.add_argument("--out", help="output directory (default: <db>_report)")
    rep.add_argument("--by", help="comma-separated extra factors to split tables and plots by, e.g. optimizer,hidden")
    rep.add_argument("--where", help=WHERE_HELP)
    rep.add_argument("--veg-rule", help="recompute the VEG flags with other thresholds, e.g. eps_vanish=1e-4,fraction=0.2")
    rep.set_defaults(func=_report)

    e = cmds.add_parser("export", help="a sweep's runs as one CSV or Parquet table (one row per run) for pandas, R, "
                                       "spreadsheets")
    e.add_argument("db")
    e.add_argument("--format", choices=("csv", "parquet"), default="csv", help="csv (default) or parquet (needs pyarrow)")
    e.add_argument("--out", help="output file (default: the db file with the format's suffix; '-': CSV on stdout)")
    e.add_argument("--where", help=WHERE_HELP)
    e.set_defaults(func=_export)

    a = cmds.add_parser("attractors", help="the latching / hyperbolic-attractor analysis (SPEC 3.3) of a sweep's "
                                           "learned Elman runs (needs saved weights)")
    a.add_argument("db")
    a.add_argument("--where", help=WHERE_HELP)
    a.add_argument("--all", action="store_true", help="also analyse runs that did not learn")
    a.add_argument("--by", default="task,length,hidden", help="columns of the summary table (default task,length,hidden)")
    a.add_argument("--batch", type=int, default=64, help="models per analysis call (default 64)")
    a.add_argument("--sequences", type=int, default=1000, help="test sequences per network (default 1000)")
    a.add_argument("--max-steps", type=int, default=10_000, help="roll-out budget of the fixed-point search (default 10^4)")
    a.add_argument("--redo", action="store_true", help="analyse runs that already have a record again")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=_attractors)

    g = cmds.add_parser("lengths", help="each stored network's error on fresh sequences of other lengths than it "
                                        "trained at (needs saved weights)")
    g.add_argument("db")
    g.add_argument("--lengths", required=True, help="comma-separated test lengths, e.g. 200,500,1000")
    g.add_argument("--where", help=WHERE_HELP)
    g.add_argument("--all", action="store_true", help="also evaluate runs that did not learn")
    g.add_argument("--by", default="task,length,hidden",
                   help="columns of the summary table (default task,length,hidden; length is the training length)")
    g.add_argument("--sequences", type=int, default=2000, help="test sequences per run and length (default 2000)")
    g.add_argument("--chunk", type=int, default=100, help="sequences per draw; part of the test set's definition (default 100)")
    g.add_argument("--batch", type=int, default=64, help="runs per evaluation call (default 64)")
    g.add_argument("--redo", action="store_true", help="evaluate lengths a run already has a record for again")
    g.add_argument("--plot", metavar="PNG", help="also draw every matching run's error against the test length "
                                                 "(every length it has a record for), one panel per training length")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_lengths)
