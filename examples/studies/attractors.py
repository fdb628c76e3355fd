"""Do RNNs that learn the latch task store the class in distinct hyperbolic attractors?

A Johnston-style study (SPEC §3.3 steps 1–6, with Lambrechts' VAA of SPEC §6.1): train tanh RNNs
on the latch task (class shown as ±1 at the first 3 steps, then N(0, 0.2²) noise, 2-class
read-out at step T) over lags × hidden sizes × learning rates × initialisations × seeds, then run
:func:`rnnlab.analysis.analyze_latching` and :func:`rnnlab.analysis.vaa` on every network that
learned, and print one table per (T, H) and one per learning rate.

    python examples/studies/attractors.py --out runs/attractors.json      # ~10 min on 2 cores
    python examples/studies/attractors.py --full-budget                    # keep training after success
    python examples/studies/attractors.py --seeds 1 --lengths 10 --hidden 8  # a smoke run

Training follows examples/sweeps/johnston.toml (batch 20, no clipping, ≤ 1,000 Adam updates,
success = < 1 % errors on 1,000 fresh sequences, checked every 100 updates), so "learned" is the
trainer's RunResult.success: the network is frozen at its first successful check. With
--full-budget every network trains for all 1,000 updates and "learned" means that its last
check was a success.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections import defaultdict

import torch

from rnnlab.analysis import STORAGE, analyze_latching, headline, stack_params, vaa
from rnnlab.train import RunConfig, train_population

INITS = {"normal-g1.0": ("normal", 1.0), "orthogonal": ("orthogonal", 1.0)}


def configs(T: int, H: int, lrs: list[float], seeds: int, stop_at_success: bool = True) -> list[RunConfig]:
    """One population: every learning rate × initialisation × seed at lag T with H units."""
    return [RunConfig(task="latch", task_kwargs={"min_length": T, "max_length": T, "n_info": 3, "noise": 0.2},
                      hidden=H, init=init, init_gain=gain, optimizer="adam", lr=lr, clip=None, batch_size=20,
                      max_updates=1000, val_every=100, val_size=1000, seed=seed, stop_at_success=stop_at_success)
            for lr in lrs for init, gain in INITS.values() for seed in range(seeds)]


def median(values: list[float | None]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else math.nan


def fmt(v: float, spec: str = ".2f") -> str:
    return "–" if math.isnan(v) else format(v, spec)


def pct(k: int, n: int) -> str:
    return "–" if n == 0 else f"{k}/{n} ({100 * k / n:.0f} %)"


def summarize(rows: list[dict]) -> dict:
    """Table cells from the learned networks' rows (analysis record + VAA)."""
    n = len(rows)
    count = lambda s: sum(r["storage"] == s for r in rows)  # noqa: E731
    stored = sum(r["stored_in_hyperbolic_attractors"] for r in rows)
    apart = sum(r["storage"] == "unsettled" and (r["unsettled_centroid_accuracy"] or 0) >= 0.99 for r in rows)
    return {
        "n": n, "stored": pct(stored, n), "not_stored": pct(n - stored, n),
        **{s: count(s) for s in STORAGE}, "unsettled_apart": apart,
        "reached": "–" if not n else "/".join(f"{statistics.mean(r['reached_by_class'][c] + r['orbits_reached_by_class'][c] for r in rows):.1f}" for c in (0, 1)),
        "fixed": fmt(median([r["n_fixed_points"] for r in rows]), ".0f"),
        "sigma": f"{fmt(median([r['sigma_max_median'] for r in rows]))} / {fmt(median([r['sigma_max_max'] for r in rows]))}",
        "lyap": fmt(median([r["lyapunov"] for r in rows]), ".3f"),
        "auto_lyap": fmt(median([r["autonomous_lyapunov"] for r in rows]), ".4f"),
        "vaa": fmt(median([r["vaa"] for r in rows]), ".3f"),
    }


def table(groups: dict, key_names: list[str], trained: dict) -> str:
    head = (key_names + ["learned", "class in distinct hyperbolic fixed points", "not (headline)", "hyperbolic orbits",
                         "non-hyperbolic", "orbit phase", "unsettled (classes apart)", "shared", "limit sets reached A/B",
                         "fixed points found", "σ_max(J_t) median / max", "λ driven", "λ autonomous", "VAA"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(trained):
        s = summarize(groups.get(key, []))
        cells = list(key) + [pct(s["n"], trained[key]), s["stored"], s["not_stored"], s["hyperbolic_orbits"], s["non_hyperbolic"],
                             s["orbit_phase"], f"{s['unsettled']} ({s['unsettled_apart']})", s["shared"], s["reached"], s["fixed"], s["sigma"], s["lyap"],
                             s["auto_lyap"], s["vaa"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50])
    ap.add_argument("--hidden", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1])
    ap.add_argument("--seeds", type=int, default=6, help="seeds per (lr, init) cell")
    ap.add_argument("--sequences", type=int, default=1000, help="test sequences per network (SPEC §3.3: ~1000)")
    ap.add_argument("--full-budget", action="store_true",
                    help="train every network for all 1,000 updates instead of freezing it at its first success; "
                         "learned = its last validation is under 1 %% errors")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write every learned network's record (JSON) here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    by_shape, by_lr = defaultdict(list), defaultdict(list)
    trained_shape, trained_lr = defaultdict(int), defaultdict(int)
    out, all_records = [], []
    for T in args.lengths:
        for H in args.hidden:
            cfgs = configs(T, H, args.lrs, args.seeds, stop_at_success=not args.full_budget)
            t0 = time.perf_counter()
            results = train_population(cfgs, keep_params=True)
            t1 = time.perf_counter()
            task = cfgs[0].make_task()
            learned = [r for r in results if (r.final_error < task.success_error if args.full_budget else r.success)]
            for r in results:
                trained_shape[(T, H)] += 1
                trained_lr[(r.config.lr,)] += 1
            if learned:
                params = stack_params([r.params for r in learned])
                records = analyze_latching(params, task, n_sequences=args.sequences)
                vaas = vaa(params, task).tolist()
                all_records += records
                for r, rec, v in zip(learned, records, vaas):
                    row = {**rec.to_dict(), "vaa": v}
                    by_shape[(T, H)].append(row)
                    by_lr[(r.config.lr,)].append(row)
                    out.append({"config": r.config.to_dict(), "updates_to_success": r.updates_to_success, **row})
            print(f"T={T} H={H}: {len(learned)}/{len(results)} learned; train {t1 - t0:.0f} s, "
                  f"analysis {time.perf_counter() - t1:.0f} s", flush=True)

    elapsed = time.perf_counter() - start
    print(f"\n{sum(trained_shape.values())} networks, {len(out)} learned; {elapsed / 60:.1f} min on {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, torch {torch.__version__}\n")
    print(table(by_shape, ["T", "H"], trained_shape))
    print()
    print(table(by_lr, ["lr"], trained_lr))
    h = headline(all_records, learned=[True] * len(all_records))  # they are the trainer's successes
    print(f"\nheadline (SPEC §3.3 step 6): {h['n_learned'] - h['n_stored_hyperbolic']} of {h['n_learned']} learned networks "
          f"({100 * h['fraction_not_stored']:.0f} %) do not store the class in distinct hyperbolic fixed points; "
          f"by storage: {h['storage']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
