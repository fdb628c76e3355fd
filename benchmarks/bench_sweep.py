"""Sweep throughput: model-updates per second of rnnlab's population trainer against the ways a
PyTorch or JAX user trains the same runs, against the sweep speed targets (≥ 50× a loop over
nn.RNN, ≥ 5× jax.vmap; docs/sweeps.md). Results are reported, not asserted.

    python benchmarks/bench_sweep.py [--quick] [--threads 1] [--json out.json]
    python benchmarks/bench_sweep.py --fused [--quick] [--json out.json]
    python benchmarks/bench_sweep.py --layouts [--quick] [--json out.json]

For each case (task, length T, hidden size H, population M), all peers train the same models
(one-layer Elman RNN, linear read-out, cross-entropy at the last step, SGD with per-model global
gradient-norm clipping at τ = 1, batch 20) for a fixed number of updates, no early stopping:

* ``rnnlab sweep``: :func:`rnnlab.train.train_population` on M models at once, exactly as the
  sweep engine calls it (data generated per model on the fly; one validation at the end on 20
  sequences, included in the time);
* ``rnnlab step``: the same update loop built from the trainer's pieces
  (:func:`rnnlab.nn.population.population_forward`, per-model clipping, the vectorized SGD) on
  pre-generated data, no validation: how fast the fused kernels make one training step, apart from
  the trainer's per-update data generation and bookkeeping;
* ``nn.RNN loop``: the runs one by one, each a standard PyTorch loop — ``nn.RNN`` + ``nn.Linear``,
  ``torch.optim.SGD``, ``clip_grad_norm_`` — measured on a subset of ``--subset`` models; its
  batches are generated before the clock starts (a favour to the peer);
* ``jax.vmap``: one ``jax.jit(jax.vmap(train_step))`` over the M models (``lax.scan`` RNN,
  per-model clipping inside the step), data pre-generated as for nn.RNN; when JAX is installed.

With ``--fused``, the fused training step (:mod:`rnnlab.train.fused_step`, one op call per
update) against ``rnnlab step`` (the trainer's autograd path: ≈ 25 ATen calls per update), and
``train_population`` with the fused step (its default for these runs) against the same trainer
forced onto its autograd path (data generation and the final validation included), at
H ∈ {8, 16, 32, 64} and T ∈ {25, 100} (temporal order, M = 32, SGD with clipping at τ = 1 as above,
float32, pre-generated batches): model-updates/s and useful GFLOP/s (:func:`useful_flops`), also
as a fraction of one-core sgemm (torch.mm, MKL where torch has it) measured in the same run.

With ``--layouts``, the fused step alone in its two layouts (the row layout, each model
vectorized over H, and the lanes layout, one model per vector lane; forced with
``RNNLAB_ELMAN_TRAIN_LAYOUT``) at H ∈ {8, 16, 32, 64, 96}, T ∈ {25, 100}, M = 96, on temporal order
(I = 6, O = 4) and latching (I = 1, O = 2), float32 (``--dtype float64``; another ISA with
``RNNLAB_ISA=avx2``): useful GFLOP/s and their fraction of one-core
sgemm, the measurements behind the op's choice of layout (docs/sweeps.md). Both are timed in
the thread's CPU time (``time.thread_time``; one thread), which other processes' load does not
inflate as it does wall time on a shared machine.

The peers are measured interleaved, ``--repeats`` times, and the best time of each is kept, so
that a burst of load from other processes hurts every peer alike; the share of the cores that
other processes used meanwhile is printed with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import torch

from rnnlab.bench.harness import FULL, OtherLoad, confined, machine_info, sgemm_gflops
from rnnlab.tasks import make_task, rng
from rnnlab.tasks.base import Batch
from rnnlab.train import RunConfig, train_population
from rnnlab.nn.population import population_forward
from rnnlab.train.clipping import clip_gradients_
from rnnlab.train.fused_step import FusedStep
from rnnlab.train.init import init_population
from rnnlab.train.optim import init_state, update_


@dataclass(frozen=True)
class Case:
    task: str
    T: int
    H: int
    M: int
    updates: int

    @property
    def label(self) -> str:
        return f"{self.task} T={self.T} H={self.H} M={self.M}"

    def configs(self) -> list[RunConfig]:
        return [RunConfig(task=self.task, task_kwargs={"min_length": self.T, "max_length": self.T}, hidden=self.H,
                          init="normal", lr=0.01, clip=1.0, max_updates=self.updates, val_every=self.updates,
                          val_size=20, val_chunk=20, stop_at_success=False, seed=s) for s in range(self.M)]


# Enough updates that the population's fixed costs (per-seed init, the final validation and
# spectral radii) weigh as little as in a real sweep of thousands of updates.
CASES = (Case("latch", 25, 8, 256, 200), Case("torder", 50, 32, 256, 60), Case("torder", 100, 50, 128, 30))
QUICK = (Case("latch", 25, 8, 128, 10), Case("torder", 50, 32, 64, 5))


def _batches(case: Case, models: int, n: int):
    """n batches (x [m, T, B, I], target [m, B]) for the first ``models`` models, from the task."""
    task = make_task(case.task, min_length=case.T, max_length=case.T)
    keys = rng.seed_keys(range(models))
    return task, [task.sample(rng.derive(keys, "train", k), {}, case.T, 20) for k in range(n)]


def time_rnnlab(case: Case) -> float:
    """Seconds per model-update of train_population on the M models."""
    configs = case.configs()
    start = time.perf_counter()
    train_population(configs, "cpu", keep_params=False)
    return (time.perf_counter() - start) / (case.M * case.updates)


def make_rnnlab_step(case: Case):
    """run() -> seconds per model-update of M-model updates on pre-generated batches."""
    task, batches = _batches(case, case.M, case.updates)
    params = init_population(rng.seed_keys(range(case.M)), "normal", task.n_in, case.H, task.n_out)
    lr = torch.full((case.M,), 0.01)
    tau = torch.ones(case.M)

    def run() -> float:
        p = {n: v.clone() for n, v in params.items()}
        start = time.perf_counter()
        for b in batches:
            leaves = {n: v.requires_grad_(True) for n, v in p.items()}
            loss = task.loss(population_forward(leaves, b.x), b)
            grads = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values()))))
            p = {n: v.detach() for n, v in leaves.items()}
            clip_gradients_(grads, p["weight_hh"], tau)
            update_("sgd", p, grads, {}, lr)
        return (time.perf_counter() - start) / (case.M * case.updates)

    return run


FUSED_CASES = tuple(Case("torder", T, H, 32, 10) for T in (25, 100) for H in (8, 16, 32, 64))
FUSED_QUICK = (Case("torder", 25, 8, 8, 3), Case("torder", 100, 64, 4, 2))


def useful_flops(case: Case, n_in: int, n_out: int, batch: int = 20, readout_steps: int = 1) -> float:
    """Multiply-adds ×2 of one model-update that any implementation must do: forward h W_hhᵀ,
    backward u W_hh and ∂W_hh (3·2·T·B·H²), the input projection and ∂W_ih (2·2·T·B·H·I), the
    read-out, its input gradient and ∂W_out (3·2·K·B·H·O)."""
    T, B, H = case.T, batch, case.H
    return 6 * T * B * H * H + 4 * T * B * H * n_in + 6 * readout_steps * B * H * n_out


def make_fused_step(case: Case, clock=time.perf_counter, dtype=torch.float32):
    """run() -> seconds per model-update of the fused step on the batches of make_rnnlab_step,
    by ``clock``, in ``dtype``."""
    configs = case.configs()
    task, batches = _batches(case, case.M, case.updates)
    batches = [Batch(b.x.to(dtype), b.target if task.classification else b.target.to(dtype)) for b in batches]
    params = init_population(rng.seed_keys(range(case.M)), "normal", task.n_in, case.H, task.n_out, dtype=dtype)
    hyper = {n: torch.full((case.M,), v, dtype=dtype) for n, v in (("lr", 0.01), ("lr_min", 0.0), ("momentum", 0.0),
                                                                    ("beta1", 0.9), ("beta2", 0.999), ("clip", 1.0))}
    fused = FusedStep(configs, task)

    def run() -> float:
        p = {n: v.clone() for n, v in params.items()}
        state = init_state("sgd", p)
        start = clock()
        for k, b in enumerate(batches):
            fused(p, state, hyper, b, k)
        return (clock() - start) / (case.M * case.updates)

    return run


LAYOUT_CASES = tuple(Case(task, T, H, 96, 3) for task in ("torder", "latch") for T in (25, 100)
                     for H in (8, 16, 32, 64, 96))
LAYOUT_QUICK = (Case("torder", 25, 8, 32, 2), Case("latch", 25, 32, 32, 2))


def _sgemm_cpu_gflops(n: int = 512, repeats: int = 20) -> float:
    """sgemm_gflops in the thread's CPU time: the best of ``repeats`` torch.mm n×n float32."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(5):
            torch.mm(a, b, out=c)
        best = min(best, (time.thread_time() - start) / 5)
    return 2 * n**3 / best / 1e9


def _run_layouts(args) -> int:
    load = OtherLoad()
    gemm = _sgemm_cpu_gflops()
    results = []
    for case in LAYOUT_QUICK if args.quick else LAYOUT_CASES:
        task = make_task(case.task, min_length=case.T, max_length=case.T)
        flops = useful_flops(case, task.n_in, task.n_out)
        run = make_fused_step(case, time.thread_time, getattr(torch, args.dtype))
        best = {"rows": float("inf"), "lanes": float("inf")}
        for _ in range(args.repeats):
            for layout in best:
                os.environ["RNNLAB_ELMAN_TRAIN_LAYOUT"] = layout
                best[layout] = min(best[layout], run())
        del os.environ["RNNLAB_ELMAN_TRAIN_LAYOUT"]
        row = {"case": f"{case.label} I={task.n_in}", **{f"{k} GFLOP/s": flops / v / 1e9 for k, v in best.items()}}
        row.update({f"{k} ÷ sgemm": row[f"{k} GFLOP/s"] / gemm for k in best})
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {**machine_info(), "threads": args.threads, "other_load": load.share(), "loadavg": os.getloadavg(),
            "sgemm GFLOP/s": gemm, "mkl": torch.backends.mkl.is_available(), "dtype": args.dtype}
    print(f"\nmachine: {info}")
    print("| case | rows GFLOP/s | lanes GFLOP/s | rows ÷ sgemm | lanes ÷ sgemm | lanes ÷ rows |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['rows GFLOP/s']:.1f} | {r['lanes GFLOP/s']:.1f} | {r['rows ÷ sgemm']:.3f} | "
              f"{r['lanes ÷ sgemm']:.3f} | {r['lanes GFLOP/s'] / r['rows GFLOP/s']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0


def time_trainer(case: Case, fused: bool) -> float:
    """time_rnnlab with the trainer's fused step, or forced onto its autograd path."""
    from rnnlab.train import trainer

    saved = trainer.unsupported
    if not fused:
        trainer.unsupported = lambda *args: "the autograd path, for the benchmark"
    try:
        return time_rnnlab(case)
    finally:
        trainer.unsupported = saved


def _run_fused(args) -> int:
    load = OtherLoad()
    gemm = sgemm_gflops(512, FULL)
    results = []
    for case in FUSED_QUICK if args.quick else FUSED_CASES:
        task = make_task(case.task, min_length=case.T, max_length=case.T)
        flops = useful_flops(case, task.n_in, task.n_out)
        runs = {"rnnlab step": make_rnnlab_step(case), "fused step": make_fused_step(case),
                "trainer autograd": lambda: time_trainer(case, False), "trainer fused": lambda: time_trainer(case, True)}
        best = {k: float("inf") for k in runs}
        for _ in range(args.repeats):
            for k, run in runs.items():
                best[k] = min(best[k], run())
        row = {"case": case.label, **{f"{k} model-updates/s": 1 / v for k, v in best.items()},
               **{f"{k} GFLOP/s": flops / v / 1e9 for k, v in best.items()}}
        row["fused ÷ step"] = best["rnnlab step"] / best["fused step"]
        row["trainer fused ÷ autograd"] = best["trainer autograd"] / best["trainer fused"]
        row["fused ÷ sgemm"] = row["fused step GFLOP/s"] / gemm
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {**machine_info(), "threads": args.threads, "other_load": load.share(), "loadavg": os.getloadavg(),
            "sgemm GFLOP/s": gemm, "mkl": torch.backends.mkl.is_available()}
    print(f"\nmachine: {info}")
    header = ["case", "step upd/s", "fused upd/s", "fused ÷ step", "step GFLOP/s", "fused GFLOP/s", "fused ÷ sgemm",
              "trainer autograd upd/s", "trainer fused upd/s", "trainer fused ÷ autograd"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        print(f"| {r['case']} | {r['rnnlab step model-updates/s']:,.0f} | {r['fused step model-updates/s']:,.0f} | "
              f"{r['fused ÷ step']:.2f} | {r['rnnlab step GFLOP/s']:.2f} | {r['fused step GFLOP/s']:.2f} | "
              f"{r['fused ÷ sgemm']:.3f} | {r['trainer autograd model-updates/s']:,.0f} | "
              f"{r['trainer fused model-updates/s']:,.0f} | {r['trainer fused ÷ autograd']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0


def time_nn_rnn(case: Case, subset: int) -> float:
    """Seconds per model-update of the standard PyTorch loop, one model after the other."""
    task, batches = _batches(case, subset, case.updates)
    params = init_population(rng.seed_keys(range(subset)), "normal", task.n_in, case.H, task.n_out)
    total = 0.0
    for m in range(subset):
        rnn = torch.nn.RNN(task.n_in, case.H)
        head = torch.nn.Linear(case.H, task.n_out)
        with torch.no_grad():  # same initial weights as the population's model m
            rnn.weight_ih_l0.copy_(params["weight_ih"][m])
            rnn.weight_hh_l0.copy_(params["weight_hh"][m])
            rnn.bias_ih_l0.zero_()
            rnn.bias_hh_l0.zero_()
            head.weight.copy_(params["weight_out"][m])
            head.bias.zero_()
        model_params = [*rnn.parameters(), *head.parameters()]
        opt = torch.optim.SGD(model_params, lr=0.01)
        data = [(b.x[m], b.target[m, 0]) for b in batches]
        start = time.perf_counter()
        for x, y in data:
            out, _ = rnn(x)
            loss = torch.nn.functional.cross_entropy(head(out[-1]), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model_params, 1.0)
            opt.step()
        total += time.perf_counter() - start
    return total / (subset * case.updates)


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def make_jax_step(case: Case):
    """A jitted, vmapped SGD step with per-model clipping, and its data; returns run() -> None."""
    import jax
    import jax.numpy as jnp

    task, batches = _batches(case, case.M, case.updates)
    p = init_population(rng.seed_keys(range(case.M)), "normal", task.n_in, case.H, task.n_out)
    params = tuple(jnp.asarray(p[n].numpy()) for n in ("weight_ih", "weight_hh", "bias", "weight_out", "bias_out"))
    data = [(jnp.asarray(b.x.numpy()), jnp.asarray(b.target[:, 0].numpy())) for b in batches]

    def loss_fn(prm, x, y):
        w_ih, w_hh, b, w_out, b_out = prm
        xp = x @ w_ih.T + b

        def step(h, xp_t):
            h = jnp.tanh(xp_t + h @ w_hh.T)
            return h, None

        h, _ = jax.lax.scan(step, jnp.zeros(xp.shape[1:], xp.dtype), xp)
        logits = h @ w_out.T + b_out
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    def train_step(prm, x, y):
        g = jax.grad(loss_fn)(prm, x, y)
        norm = jnp.sqrt(sum(jnp.sum(gi * gi) for gi in g))
        scale = jnp.where(norm > 1.0, 1.0 / norm, 1.0)
        return tuple(pi - 0.01 * scale * gi for pi, gi in zip(prm, g))

    step = jax.jit(jax.vmap(train_step))
    jax.block_until_ready(step(params, *data[0]))  # compile outside the clock

    def run() -> float:
        prm = params
        start = time.perf_counter()
        for x, y in data:
            prm = step(prm, x, y)
        jax.block_until_ready(prm)
        return (time.perf_counter() - start) / (case.M * case.updates)

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller cases (a smoke run)")
    ap.add_argument("--threads", type=int, default=1, help="CPUs for torch and JAX (default 1; see harness.confined)")
    ap.add_argument("--subset", type=int, default=4, help="models the nn.RNN loop trains (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the best is kept")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--fused", action="store_true", help="the fused training step against the autograd step")
    ap.add_argument("--layouts", action="store_true", help="the fused training step's two layouts")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="with --layouts")
    args = ap.parse_args(argv)
    with confined(args.threads):  # before JAX starts its thread pools
        return _run_layouts(args) if args.layouts else _run_fused(args) if args.fused else _run(args)


def _run(args) -> int:
    use_jax = jax_available() and not args.no_jax
    load = OtherLoad()
    results = []
    for case in QUICK if args.quick else CASES:
        jax_run = make_jax_step(case) if use_jax else None
        step_run = make_rnnlab_step(case)
        best = {"rnnlab sweep": float("inf"), "rnnlab step": float("inf"), "nn.RNN loop": float("inf"),
                "jax.vmap": float("inf")}
        for _ in range(args.repeats):
            best["rnnlab sweep"] = min(best["rnnlab sweep"], time_rnnlab(case))
            best["rnnlab step"] = min(best["rnnlab step"], step_run())
            best["nn.RNN loop"] = min(best["nn.RNN loop"], time_nn_rnn(case, args.subset))
            if jax_run is not None:
                best["jax.vmap"] = min(best["jax.vmap"], jax_run())
        row = {"case": case.label, "updates": case.updates,
               **{f"{k} model-updates/s": 1 / v for k, v in best.items() if v < float("inf")}}
        row["speedup vs nn.RNN loop"] = best["nn.RNN loop"] / best["rnnlab sweep"]
        row["step speedup vs nn.RNN loop"] = best["nn.RNN loop"] / best["rnnlab step"]
        if jax_run is not None:
            row["speedup vs jax.vmap"] = best["jax.vmap"] / best["rnnlab sweep"]
            row["step speedup vs jax.vmap"] = best["jax.vmap"] / best["rnnlab step"]
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {**machine_info(), "threads": args.threads, "other_load": load.share(), "torch": torch.__version__}
    print(f"\nmachine: {info}")
    peers = ("rnnlab sweep", "rnnlab step", "nn.RNN loop", "jax.vmap")
    header = ["case (model-updates/s)", *peers, "sweep ÷ nn.RNN", "sweep ÷ jax", "step ÷ nn.RNN", "step ÷ jax"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    nan = float("nan")
    for r in results:
        cells = [r["case"], *(f"{r.get(k + ' model-updates/s', nan):,.0f}" for k in peers),
                 *(f"{r.get(k, nan):.2f}" for k in ("speedup vs nn.RNN loop", "speedup vs jax.vmap",
                                                    "step speedup vs nn.RNN loop", "step speedup vs jax.vmap"))]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
