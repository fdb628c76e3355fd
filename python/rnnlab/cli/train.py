"""``rnnlab train``: train one run or a population of runs on a task, from the command line.

List-valued options (``--seeds``, ``--lr``, ``--clip``, ``--alpha``, ``--init-gain``, ``--init``)
make a population of their Cartesian product, trained in lockstep (one fused kernel call per
update). ``--method`` replaces the clip × alpha product by Pascanu et al.'s named methods:
``msgd`` (no clipping, α = 0), ``msgd-c`` (clipping at --clip, α = 0), ``msgd-cr`` (clipping at
--clip and α = --alpha). Writes ``run.json`` and, with matplotlib, ``curves.png`` and
``grad_profile.png`` into ``--out``.

Example (SPEC §2.6, temporal order, 5 seeds × 3 methods as one population of 15)::

    rnnlab train --task torder --min-length 50 --max-length 200 --init basic_tanh --lr 0.01 \\
        --clip 1 --alpha 4 --method msgd msgd-c msgd-cr --seeds 0-4 --out runs/torder
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time

METHODS = ("msgd", "msgd-c", "msgd-cr")


def _seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '7' -> [7]."""
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(text)]


def _clip(text: str) -> float | None:
    return None if text.lower() in ("none", "inf", "off") else float(text)


def _key_value(text: str) -> tuple[str, object]:
    """'KEY=VALUE' -> (KEY, VALUE parsed as JSON, else the string) for --task-arg / --cell-arg."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_configs(args) -> tuple[list, list[str]]:
    """The RunConfigs of the command line and a label per run (its method / hyper-parameters)."""
    from ..train import RunConfig

    task_kwargs = dict(args.task_arg or [])
    if args.min_length is not None:
        task_kwargs["min_length"] = args.min_length
    if args.max_length is not None:
        task_kwargs["max_length"] = args.max_length
    if args.method:
        variants = [(m, {"msgd": (None, 0.0), "msgd-c": (args.clip[0], 0.0), "msgd-cr": (args.clip[0], args.alpha[0])}[m])
                    for m in args.method]
    else:
        variants = [(f"clip={c} alpha={a}", (c, a)) for c, a in itertools.product(args.clip, args.alpha)]
    seeds = [s for text in args.seeds for s in _seeds(text)]
    configs, labels = [], []
    cell_kwargs = dict(args.cell_arg or [])
    if args.num_layers is not None:
        cell_kwargs["num_layers"] = args.num_layers
    if args.double:
        cell_kwargs["double"] = True
    for (label, (clip, alpha)), lr, gain, init, warm, seed in itertools.product(variants, args.lr, args.init_gain, args.init,
                                                                                args.warmup, seeds):
        if len(args.lr) > 1:
            label += f" lr={lr}"
        if len(args.init) > 1 or len(args.init_gain) > 1:
            label += f" {init}×{gain}"
        if len(args.warmup) > 1:
            label += f" warmup={warm}"
        configs.append(RunConfig(
            task=args.task, task_kwargs=task_kwargs, cell=args.cell, cell_kwargs=cell_kwargs,
            warmup=warm == "on", warmup_steps=args.warmup_steps, warmup_lr=args.warmup_lr,
            hidden=args.hidden, nonlinearity=args.nonlinearity, init=init,
            init_gain=gain, optimizer=args.optimizer, lr=lr, lr_schedule=args.lr_schedule, lr_min=args.lr_min,
            momentum=args.momentum, beta1=args.beta1, beta2=args.beta2, eps=args.eps, batch_size=args.batch_size,
            clip=clip, safeguard=not args.no_safeguard, alpha=alpha, alpha_decay=args.alpha_decay,
            max_updates=args.max_updates, val_every=args.val_every, val_size=args.val_size, val_chunk=args.val_chunk,
            success_error=args.success_error, stop_at_success=not args.no_stop, seed=seed, length_seed=args.length_seed,
            dtype=args.dtype,
        ))
        labels.append(label)
    return configs, labels


class _Progress:
    """tqdm bar when tqdm is installed, else a line per validation."""

    def __init__(self, total: int, quiet: bool):
        self.quiet = quiet
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self.bar = tqdm(total=total, unit="upd", dynamic_ncols=True) if tqdm and not quiet else None
        self.done = 0

    def __call__(self, info: dict) -> None:
        if self.bar is not None:
            self.bar.update(info["update"] - self.done)
            if "val_error" in info:
                errs = info["val_error"]
                self.bar.set_postfix(active=info["active"], best_err=f"{min(errs, default=math.nan):.3f}")
        elif "val_error" in info and not self.quiet:
            errs = info["val_error"]
            print(f"update {info['update']}: {info['active']} active, best validation error "
                  f"{min(errs, default=math.nan):.4f}, {info['elapsed_s']:.0f} s", flush=True)
        self.done = info["update"]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args) -> int:
    import torch

    from ..train import checkpoint as ckpt
    from ..train import plots, train_population

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        configs, labels = build_configs(args)
    except (TypeError, ValueError) as e:  # a bad combination of options: say which, no traceback
        print(f"rnnlab train: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    task = configs[0].make_task()
    if not args.quiet:
        print(f"training {len(configs)} run(s) of {task.name} as one population on {args.device}", flush=True)
    # the population's checkpoint lives in its output folder: rerunning the command resumes it
    checkpoint = None if args.no_checkpoint else ckpt.Checkpointing(os.path.join(args.out, "checkpoint.pt"), args.checkpoint_every)
    saved = checkpoint and ckpt.read_summary(checkpoint.path)
    if saved:
        print(f"resuming from {checkpoint.path} at update {saved['update']:,} ({saved['active']} of {saved['models']} "
              f"models training)", file=sys.stderr, flush=True)
    progress = _Progress(args.max_updates, args.quiet)
    start = time.perf_counter()
    try:
        results = train_population(configs, args.device, progress, keep_params=False, time_limit_s=args.time_limit,
                                   checkpoint=checkpoint)
    except ckpt.TrainingPaused as e:
        print(f"time limit: {e}; run the same command again to continue", file=sys.stderr)
        return 0
    except ValueError as e:  # a checkpoint of other runs in --out
        print(f"rnnlab train: {e}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    wall = time.perf_counter() - start

    threshold = task.success_error if args.success_error is None else args.success_error
    record = {
        "command": sys.argv,
        "task": task.describe(),
        "success_error": threshold,
        "device": str(args.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "wall_time_s": wall,
        "time_limit_s": args.time_limit,
        "runs": [{"label": label, **r.to_dict()} for label, r in zip(labels, results)],
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(record, f, indent=1, default=str)
    if not args.no_plots:
        if plots.available():
            plots.plot_curves(results, labels, os.path.join(args.out, "curves.png"), threshold)
            plots.plot_grad_profiles(results, labels, os.path.join(args.out, "grad_profile.png"))
        elif not args.quiet:
            print("matplotlib is not installed: no plots (pip install matplotlib)")
    if checkpoint is not None:  # run.json holds the results now
        ckpt.remove(checkpoint.path)

    print(f"{'run':<28} {'seed':>5} {'success':>7} {'updates':>8} {'error':>7} {'loss':>9} {'|g| mean':>9} {'rho':>6}")
    for label, r in zip(labels, results):
        print(f"{label:<28} {r.config.seed:>5} {str(r.success):>7} {r.updates_to_success or r.updates:>8} "
              f"{r.final_error:>7.4f} {r.final_loss:>9.4g} {r.grad_norm_mean:>9.3g} {r.rho_final:>6.3f}")
    print(f"{sum(r.success for r in results)}/{len(results)} succeeded; {wall:.1f} s; record in {args.out}/run.json")
    return 0


def register(sub) -> None:
    from ..tasks import TASKS
    from ..train.config import DTYPES, LR_SCHEDULES
    from ..cells import INITS, REGISTRY, option_choices
    from ..train.checkpoint import DEFAULT_EVERY_S
    from ..train.optim import OPTIMIZERS
    from . import positive_seconds

    p = sub.add_parser("train", help="train an RNN (or a population of them) on a long-term-memory task",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task")
    g.add_argument("--task", default="torder", choices=sorted(TASKS))
    g.add_argument("--min-length", type=int, help="shortest nominal length (task default if omitted)")
    g.add_argument("--max-length", type=int, help="lengths are drawn from [min, max) per update (SPEC §2.2)")
    g.add_argument("--task-arg", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="extra task argument, e.g. n_info=3, pad=16, nu0=0.99 (repeatable)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=int, default=50)
    g.add_argument("--cell", default="elman", choices=list(REGISTRY),
                   help=f"{', '.join(REGISTRY)}: the {', '.join(c.title for c in REGISTRY.values())} cells (docs/sweeps.md)")
    g.add_argument("--cell-arg", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="a cell option, e.g. r_min=0.9 for --cell diag (repeatable)")
    g.add_argument("--init", nargs="+", default=[None], choices=INITS,
                   help="default: the cell's own (" + ", ".join(f"{n}: {c.default_init}" for n, c in REGISTRY.items()) + ")")
    g.add_argument("--init-gain", nargs="+", type=float, default=[1.0], help="gain g multiplying W_hh")
    g.add_argument("--nonlinearity", choices=option_choices("nonlinearity"),
                   help="default: sigmoid for the sigmoid init, else tanh")
    g.add_argument("--num-layers", type=int, help="stacked layers of the Elman, LSTM or GRU cell (default 1)")
    g.add_argument("--double", action="store_true",
                   help="each layer two parallel cells of hidden/2 units; warm-up warms the first (SPEC §6.1)")
    g = p.add_argument_group("warm-up (Lambrechts et al., SPEC §6.1)")
    g.add_argument("--warmup", nargs="+", choices=("off", "on"), default=["off"],
                   help="VAA* warm-up before training; 'off on' trains both arms in one population")
    g.add_argument("--warmup-steps", type=int, default=100, help="Adam steps of the warm-up")
    g.add_argument("--warmup-lr", type=float, default=1e-2, help="Adam learning rate of the warm-up")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS)
    g.add_argument("--lr", nargs="+", type=float, default=[0.01])
    g.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES)
    g.add_argument("--lr-min", type=float, default=0.0, help="final lr of the cosine schedule")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.999)
    g.add_argument("--eps", type=float, default=1e-8)
    g.add_argument("--batch-size", type=int, default=20)
    g.add_argument("--clip", nargs="+", type=_clip, default=[1.0], help="threshold τ per run; 'none' = no clipping")
    g.add_argument("--no-safeguard", action="store_true", help="disable the NaN/Inf/1e10 fallback of SPEC §2.4")
    g.add_argument("--alpha", nargs="+", type=float, default=[0.0], help="weight α of the regularizer Ω (SPEC §2.5)")
    g.add_argument("--alpha-decay", type=float, help="t0 of the 1/t decay α/(1 + t/t0)")
    g.add_argument("--method", nargs="+", choices=METHODS, help="Pascanu's methods instead of the clip × alpha product")
    g = p.add_argument_group("budget and validation")
    g.add_argument("--max-updates", type=int, default=10_000)
    g.add_argument("--time-limit", type=positive_seconds, help="wall-clock budget in seconds: saves a checkpoint in --out and stops; "
                                                   "the same command continues (with --no-checkpoint: validates once more, "
                                                   "then stops)")
    g.add_argument("--checkpoint-every", type=positive_seconds, default=DEFAULT_EVERY_S, metavar="SECONDS",
                   help=f"seconds between checkpoints (<out>/checkpoint.pt, default {DEFAULT_EVERY_S:.0f}); a rerun "
                        f"resumes from it")
    g.add_argument("--no-checkpoint", action="store_true", help="no checkpoints: an interrupted run starts over")
    g.add_argument("--val-every", type=int, default=500)
    g.add_argument("--val-size", type=int, default=10_000)
    g.add_argument("--val-chunk", type=int, default=1_000)
    g.add_argument("--success-error", type=float, help="error rate under which a run succeeds (task default: 0.01)")
    g.add_argument("--no-stop", action="store_true", help="keep training after success")
    g = p.add_argument_group("runs and output")
    g.add_argument("--seeds", nargs="+", default=["0"], help="seeds or ranges, e.g. 0-4 7")
    g.add_argument("--length-seed", type=int, default=0, help="seed of the shared sequence-length stream")
    g.add_argument("--dtype", default="float32", choices=DTYPES)
    g.add_argument("--device", default="cpu")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    g.add_argument("--out", default="rnnlab-run", help="output directory")
    g.add_argument("--no-plots", action="store_true")
    g.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
