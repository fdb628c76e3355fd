"""Gated-cell (LSTM, GRU) and diagonal-recurrence benchmarks: rnnlab against its peers, measured in
the same run.

    python benchmarks/bench_cells.py [--quick] [--markdown] [--threads N] [--profile]
                                     [--only lstm|gru|diag]

Tables (median wall-clock ms of one call; ratio = peer / rnnlab, > 1 means rnnlab is faster):

* LSTM and GRU, forward+backward float32: ``rnnlab.LSTM`` / ``rnnlab.GRU`` against ``nn.LSTM``
  (oneDNN) / ``nn.GRU`` (ATen's step-by-step path: on the CPU PyTorch hands only the LSTM to
  oneDNN) and, when jax is installed, ``jax.jit(jax.grad(L))`` of a ``lax.scan`` of
  the same cell (projection hoisted out of the scan, as rnnlab does), at the Elman benchmark's
  single-model configs, I = H. The job is the Elman benchmark's (rnnlab/bench/workload.py): from zero
  initial states, loss ``L = Σ output ⊙ G`` with a fixed random G, back-propagated to every
  parameter (not to x). Before a cell's table the JAX cell is checked against torch's on values.
* Population (with each cell): M = 256 independent models (H = 32, B = 32, T = 100, I = 2) in one
  fused call (:func:`rnnlab.lstm` / :func:`rnnlab.gru` after one batched input GEMM) against a
  Python loop over 256 nn.LSTMs / nn.GRUs.
* Diagonal recurrence ``h_t = λ ⊙ h_{t-1} + u_t`` (B·N ≥ 4096), forward+backward: the raw ops
  against the memory floor, i.e. the time to copy the same bytes (``torch.clone`` of u, measured
  here: forward reads u and writes h, one copy; backward reads ∂L/∂h and h and writes ∂L/∂u, 1.5
  copies), and ``rnnlab.diag_recurrence`` + autograd against a pure-PyTorch sequential loop.
* ``--profile``: where the drop-in's forward+backward time goes, per config: torch.profiler's
  self time per pass of each op.

``--threads N`` runs everything on N of the process's CPUs: torch with N threads, and JAX (whose
CPU client ignores XLA's thread flags and sizes its pools from the task affinity) confined to the
same N CPUs. Without it torch and JAX use their defaults. Other processes' share of the cores
during the run is printed: numbers from a busy machine are not comparable.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

import rnnlab
from rnnlab.bench.harness import FULL, QUICK, OtherLoad, confined, machine_info, measure
from rnnlab.bench.peer_cells import PEER_CELLS, PeerCell, jax_scan
from rnnlab.bench.report import table

CONFIGS = [(32, 32, 256), (64, 1, 1000), (128, 32, 200), (256, 64, 200), (512, 128, 100)]  # (H, B, T), I = H
POPULATION = dict(M=256, H=32, B=32, T=100, I=2)
# (M, B, N, T, dtype): B·N ≥ 4096, real and complex
DIAG_CONFIGS = [
    (1, 64, 64, 1000, torch.float32),
    (1, 16, 256, 1000, torch.float32),
    (1, 1, 4096, 1000, torch.float32),
    (1, 64, 64, 1000, torch.complex64),
    (64, 32, 128, 200, torch.float32),
    (64, 32, 128, 200, torch.complex64),
]


CELLS = {"lstm": PEER_CELLS["lstm"], "gru": PEER_CELLS["gru"]}
#: (xp [M, T, B, G·H], w_hh, b_hn or None) -> hs [M, T, B, H]: the cell's fused recurrence
FUSED = {"lstm": lambda xp, w_hh, b_hn: rnnlab.lstm(xp, w_hh)[0], "gru": rnnlab.gru}


def single_case(cell: PeerCell, H: int, B: int, T: int) -> tuple[nn.Module, Tensor, Tensor]:
    """The torch peer (I = H, seed 0), x [T, B, H] and the loss weights G."""
    torch.manual_seed(0)
    return cell.nn_class(H, H), torch.randn(T, B, H), torch.randn(T, B, H)


def drop_in(cell: PeerCell, peer: nn.Module) -> nn.Module:
    ours = cell.dropin_class(peer.input_size, peer.hidden_size)
    ours.load_state_dict(peer.state_dict())
    return ours


def training_step(model: nn.Module, x: Tensor, g: Tensor) -> Callable[[], None]:
    def run():
        model.zero_grad(set_to_none=True)
        (model(x)[0] * g).sum().backward()

    return run


def jax_peer(cell: PeerCell, peer: nn.Module, x: Tensor, g: Tensor):
    """Blocking calls ``(forward, grad)`` of the jitted lax.scan ``cell`` with ``peer``'s weights:
    the outputs for x, and ``jax.grad(L)`` as (∂w_ih, ∂w_hh, ∂b folded, ∂b kept); None without jax."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def forward(params, x):
        w_ih, w_hh, b_x, b_h = params
        return jax_scan(cell, x @ w_ih.T + b_x, w_hh, b_h)[1]

    def loss(params, x, g):
        return jnp.sum(forward(params, x) * g)

    with torch.no_grad():
        b_x, b_h = cell.split_bias(peer.bias_ih_l0, peer.bias_hh_l0)
    params = tuple(None if t is None else jnp.asarray(t.detach().numpy())
                   for t in (peer.weight_ih_l0, peer.weight_hh_l0, b_x, b_h))
    xj, gj = jnp.asarray(x.numpy()), jnp.asarray(g.numpy())
    fwd, grad = jax.jit(forward), jax.jit(jax.grad(loss))
    return lambda: jax.block_until_ready(fwd(params, xj)), lambda: jax.block_until_ready(grad(params, xj, gj))


def check_jax_peer(cell: PeerCell) -> str | None:
    """Asserts that the JAX cell computes torch's on a small model (outputs and ∂W_ih, ∂W_hh) and
    says by how much they differ; None without jax."""
    peer, x, g = single_case(cell, 16, 3, 40)
    calls = jax_peer(cell, peer, x, g)
    if calls is None:
        return None
    forward, grad = calls
    out = peer(x)[0]
    (out * g).sum().backward()
    pairs = [(forward(), out), *zip(grad()[:2], (peer.weight_ih_l0.grad, peer.weight_hh_l0.grad))]
    diffs = []
    for got, want in pairs:
        got = torch.from_numpy(np.array(got))
        torch.testing.assert_close(got, want.detach(), rtol=1e-4, atol=1e-5)
        diffs.append((got - want).abs().max().item())
    return (f"JAX {cell.module} = nn.{cell.module}: max |Δ output| {diffs[0]:.1e}, "
            f"max |Δ ∂W_ih|, |Δ ∂W_hh| {diffs[1]:.1e}, {diffs[2]:.1e}")


def cell_rows(cell: PeerCell, budget, quick: bool) -> list[list[str]]:
    rows = []
    for H, B, T in CONFIGS:
        peer, x, g = single_case(cell, H, B, T // 4 if quick else T)
        ours = drop_in(cell, peer)
        t_peer = measure(training_step(peer, x, g), budget)
        t_ours = measure(training_step(ours, x, g), budget)
        row = [f"H={H} B={B} T={x.shape[0]}", f"{1e3 * t_peer.median:.2f}", f"{1e3 * t_ours.median:.2f}",
               f"{t_peer.median / t_ours.median:.2f}"]
        calls = jax_peer(cell, peer, x, g)
        if calls is not None:
            t_jax = measure(calls[1], budget)
            row += [f"{1e3 * t_jax.median:.2f}", f"{t_jax.median / t_ours.median:.2f}"]
        rows.append(row)
    return rows


def population_rows(cell: PeerCell, budget, quick: bool) -> list[list[str]]:
    M, H, B, T, I = (POPULATION[k] for k in "MHBTI")
    T = T // 4 if quick else T
    torch.manual_seed(0)
    peers = [cell.nn_class(I, H) for _ in range(M)]

    def stacked(name: str) -> Tensor:
        return torch.stack([getattr(p, name).detach() for p in peers])

    w_ih, w_hh = stacked("weight_ih_l0"), stacked("weight_hh_l0")
    b_x, b_h = cell.split_bias(stacked("bias_ih_l0"), stacked("bias_hh_l0"))
    leaves = [t.requires_grad_() for t in (w_ih, w_hh, b_x, b_h) if t is not None]
    x = torch.randn(T, B, I)
    g = torch.randn(M, T, B, H)
    steps = [training_step(peer, x, g[m]) for m, peer in enumerate(peers)]

    def loop():
        for step in steps:
            step()

    def fused():
        for p in leaves:
            p.grad = None
        # one batched GEMM for all models, the bias added in its epilogue (no extra pass over xp)
        xp = torch.baddbmm(b_x.unsqueeze(1), x.reshape(1, T * B, I).expand(M, T * B, I), w_ih.transpose(1, 2))
        (FUSED[cell.name](xp.view(M, T, B, -1), w_hh, b_h) * g).sum().backward()

    t_loop, t_fused = measure(loop, budget), measure(fused, budget)
    return [[f"M={M} H={H} B={B} T={T} I={I}", f"{1e3 * t_loop.median:.2f}", f"{1e3 * t_fused.median:.2f}",
             f"{t_loop.median / t_fused.median:.2f}"]]


def profile_lines(cell: PeerCell, quick: bool, passes: int = 5) -> list[str]:
    """Per config: the drop-in's wall time per forward+backward pass under torch.profiler, and the
    self time per pass of every op above 1 % of it, largest first."""
    from torch.profiler import ProfilerActivity, profile

    lines = []
    for H, B, T in CONFIGS:
        peer, x, g = single_case(cell, H, B, T // 4 if quick else T)
        step = training_step(drop_in(cell, peer), x, g)
        step(), step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(passes):
                step()
            wall = (time.perf_counter() - start) / passes * 1e3
        per_pass = {e.key: e.self_cpu_time_total / passes / 1e3 for e in prof.key_averages()}
        ops = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_pass.items(), key=lambda kv: -kv[1]) if v > 0.01 * wall)
        lines.append(f"H={H} B={B} T={x.shape[0]}: {wall:.2f} ms per pass — {ops}")
    return lines


def diag_rows(budget, quick: bool) -> list[list[str]]:
    ops = torch.ops.rnnlab
    rows = []
    for M, B, N, T, dtype in DIAG_CONFIGS:
        T = T // 4 if quick else T
        gen = torch.Generator().manual_seed(0)
        real = torch.empty(0, dtype=dtype).real.dtype
        u = torch.randn(M, T, B, N, dtype=dtype, generator=gen)
        lam = (0.5 + 0.49 * torch.rand(M, N, generator=gen, dtype=real)).to(dtype)
        h0 = torch.zeros(M, B, N, dtype=dtype)
        g = torch.randn(M, T, B, N, dtype=dtype, generator=gen)
        hs = ops.diag_forward(u, lam, h0, False)[0]

        t_copy = measure(lambda: u.clone(), budget).median
        t_fwd = measure(lambda: ops.diag_forward(u, lam, h0, False), budget).median
        t_bwd = measure(lambda: ops.diag_backward(g, hs, h0, lam), budget).median

        u_leaf, lam_leaf = u.clone().requires_grad_(), lam.clone().requires_grad_()

        def fused():
            u_leaf.grad = lam_leaf.grad = None
            (rnnlab.diag_recurrence(u_leaf, lam_leaf) * g).real.sum().backward()

        def loop():
            u_leaf.grad = lam_leaf.grad = None
            h, out = h0, []
            for t in range(T):
                h = lam_leaf[:, None] * h + u_leaf[:, t]
                out.append(h)
            (torch.stack(out, 1) * g).real.sum().backward()

        t_fused, t_loop = measure(fused, budget).median, measure(loop, budget).median
        floor = 2.5 * t_copy
        mib = u.numel() * u.element_size() / 2**20
        rows.append([f"M={M} B={B} N={N} T={T} {str(dtype).replace('torch.', '')} ({mib:.0f} MiB)",
                     f"{1e3 * t_copy:.2f}", f"{1e3 * t_fwd:.2f}", f"{1e3 * t_bwd:.2f}",
                     f"{(t_fwd + t_bwd) / floor:.2f}", f"{1e3 * t_loop:.1f}", f"{1e3 * t_fused:.2f}",
                     f"{t_loop / t_fused:.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T/4 and short timing budgets (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument("--threads", type=int, help="run torch and JAX on this many CPUs (default: their own)")
    parser.add_argument("--profile", action="store_true", help="also profile each cell's drop-in per config")
    parser.add_argument("--only", choices=[*CELLS, "diag"], action="append",
                        help="a cell's table and population, or the diagonal recurrence (repeatable)")
    args = parser.parse_args()
    if args.threads is not None and not 1 <= args.threads <= len(os.sched_getaffinity(0)):
        parser.error(f"--threads must be in [1, {len(os.sched_getaffinity(0))}] (the CPUs this process may use), "
                     f"got {args.threads}")
    budget = QUICK if args.quick else FULL
    parts = args.only or [*CELLS, "diag"]
    cores, load = len(os.sched_getaffinity(0)), OtherLoad()
    with confined(args.threads):
        info = machine_info()
        cpus = "" if args.threads is None else f" (torch and JAX confined to CPUs {sorted(os.sched_getaffinity(0))})"
        print(f"{info['cpu']}, {cores} cores, rnnlab kernels {info['rnnlab_isa']}, {info['threads']} torch "
              f"threads{cpus}, torch {info['torch']}, jax {info['jax'] or 'not installed'}\n")
        for key in (k for k in CELLS if k in parts):
            cell = CELLS[key]
            check = check_jax_peer(cell)
            print(f"{cell.module} forward+backward, float32, I = H" + (f" ({check})" if check else ""))
            rows = cell_rows(cell, budget, args.quick)
            headers = ["config", f"nn.{cell.module} ms", f"rnnlab.{cell.module} ms", f"× nn.{cell.module}"]
            headers += ["JAX ms", "× JAX"] * (len(rows[0]) > 4)
            print(table(headers, rows, args.markdown), "\n", flush=True)
            print(f"Population of {cell.module}s, forward+backward, float32")
            headers = ["config", f"loop of nn.{cell.module} ms", f"rnnlab.{key} fused ms", "×"]
            print(table(headers, population_rows(cell, budget, args.quick), args.markdown), "\n", flush=True)
            if args.profile:
                print(f"Where rnnlab.{cell.module}'s forward+backward time goes (torch.profiler, ms per pass)")
                print("\n".join(profile_lines(cell, args.quick)), "\n", flush=True)
        if "diag" in parts:
            print("Diagonal recurrence h_t = λ h_{t-1} + u_t; floor = 2.5 × copy of u (the bytes fwd+bwd move)")
            headers = ["config", "copy u ms", "fwd op ms", "bwd op ms", "(fwd+bwd)/floor", "PyTorch loop ms",
                       "rnnlab fwd+bwd ms", "× loop"]
            print(table(headers, diag_rows(budget, args.quick), args.markdown), "\n", flush=True)
    share = load.share()
    print(f"other processes used {'?' if share is None else f'{100 * share:.0f} %'} of the cores during the run")


if __name__ == "__main__":
    main()
