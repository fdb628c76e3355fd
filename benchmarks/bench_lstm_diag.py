"""LSTM and diagonal-recurrence benchmarks: rnnlab against its peers, measured in the same run.

    python benchmarks/bench_lstm_diag.py [--quick] [--markdown] [--only lstm|population|diag]

Tables (median wall-clock ms of one call; ratio = peer / rnnlab, > 1 means rnnlab is faster):

* LSTM, forward+backward float32: ``rnnlab.LSTM`` against ``nn.LSTM`` (oneDNN) and, when jax
  is installed, ``jax.jit(jax.grad(L))`` of a ``lax.scan`` LSTM (projection hoisted out of the
  scan, as rnnlab does), at the foundation's single-model configs, I = H. The job is the
  foundation's (rnnlab/bench/workload.py): from h0 = c0 = 0, loss ``L = Σ output ⊙ G`` with a
  fixed random G, back-propagated to every parameter (not to x).
* Population: M = 256 independent LSTMs (H = 32, B = 32, T = 100, I = 2) in one fused call
  (:func:`rnnlab.lstm` after one batched input GEMM) against a Python loop over 256 nn.LSTMs.
* Diagonal recurrence ``h_t = λ ⊙ h_{t-1} + u_t`` (B·N ≥ 4096), forward+backward: the raw ops
  against the memory floor, i.e. the time to copy the same bytes (``torch.clone`` of u, measured
  here: forward reads u and writes h, one copy; backward reads ∂L/∂h and h and writes ∂L/∂u, 1.5
  copies), and ``rnnlab.diag_recurrence`` + autograd against a pure-PyTorch sequential loop.

Other processes' share of the cores during the run is printed: numbers from a busy machine are
not comparable.
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

import rnnlab
from rnnlab.bench.harness import FULL, QUICK, OtherLoad, machine_info, measure
from rnnlab.bench.report import table

LSTM_CONFIGS = [(32, 32, 256), (64, 1, 1000), (128, 32, 200), (256, 64, 200), (512, 128, 100)]  # (H, B, T)
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


def jax_lstm_grad(peer: nn.LSTM, x: torch.Tensor, g: torch.Tensor):
    """A blocking call of ``jax.jit(jax.grad(L))`` for the LSTM ``peer``, or None without jax."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def loss(params, x, g):
        w_ih, w_hh, b = params
        xp = x @ w_ih.T + b

        def step(state, xp_t):
            h, c = state
            i, f, z, o = jnp.split(xp_t + h @ w_hh.T, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(z)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[1], w_hh.shape[1]), x.dtype)
        return jnp.sum(jax.lax.scan(step, (zeros, zeros), xp)[1] * g)

    params = tuple(jnp.asarray(t.detach().numpy()) for t in
                   (peer.weight_ih_l0, peer.weight_hh_l0, peer.bias_ih_l0 + peer.bias_hh_l0))
    grad = jax.jit(jax.grad(loss))
    xj, gj = jnp.asarray(x.numpy()), jnp.asarray(g.numpy())
    return lambda: jax.block_until_ready(grad(params, xj, gj))


def lstm_rows(budget, quick: bool) -> list[list[str]]:
    rows = []
    for H, B, T in LSTM_CONFIGS:
        T = T // 4 if quick else T
        torch.manual_seed(0)
        peer = nn.LSTM(H, H)
        ours = rnnlab.LSTM(H, H)
        ours.load_state_dict(peer.state_dict())
        x = torch.randn(T, B, H)
        g = torch.randn(T, B, H)

        def step(model):
            def run():
                model.zero_grad(set_to_none=True)
                (model(x)[0] * g).sum().backward()

            return run

        t_peer, t_ours = measure(step(peer), budget), measure(step(ours), budget)
        row = [f"H={H} B={B} T={T}", f"{1e3 * t_peer.median:.2f}", f"{1e3 * t_ours.median:.2f}",
               f"{t_peer.median / t_ours.median:.2f}"]
        jax_call = jax_lstm_grad(peer, x, g)
        if jax_call is not None:
            t_jax = measure(jax_call, budget)
            row += [f"{1e3 * t_jax.median:.2f}", f"{t_jax.median / t_ours.median:.2f}"]
        rows.append(row)
    return rows


def population_rows(budget, quick: bool) -> list[list[str]]:
    M, H, B, T, I = (POPULATION[k] for k in "MHBTI")
    T = T // 4 if quick else T
    torch.manual_seed(0)
    peers = [nn.LSTM(I, H) for _ in range(M)]
    w_ih = torch.stack([p.weight_ih_l0.detach() for p in peers]).requires_grad_()
    w_hh = torch.stack([p.weight_hh_l0.detach() for p in peers]).requires_grad_()
    bias = torch.stack([(p.bias_ih_l0 + p.bias_hh_l0).detach() for p in peers]).requires_grad_()
    x = torch.randn(T, B, I)
    g = torch.randn(M, T, B, H)

    def loop():
        for m, peer in enumerate(peers):
            peer.zero_grad(set_to_none=True)
            (peer(x)[0] * g[m]).sum().backward()

    def fused():
        for p in (w_ih, w_hh, bias):
            p.grad = None
        # one batched GEMM for all models, the bias added in its epilogue (no extra pass over xp)
        xp = torch.baddbmm(bias.unsqueeze(1), x.reshape(1, T * B, I).expand(M, T * B, I), w_ih.transpose(1, 2))
        xp = xp.view(M, T, B, 4 * H)
        (rnnlab.lstm(xp, w_hh)[0] * g).sum().backward()

    t_loop, t_fused = measure(loop, budget), measure(fused, budget)
    return [[f"M={M} H={H} B={B} T={T} I={I}", f"{1e3 * t_loop.median:.2f}", f"{1e3 * t_fused.median:.2f}",
             f"{t_loop.median / t_fused.median:.2f}"]]


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
    parser.add_argument("--only", choices=["lstm", "population", "diag"], action="append")
    args = parser.parse_args()
    budget = QUICK if args.quick else FULL
    parts = args.only or ["lstm", "population", "diag"]
    info, load = machine_info(), OtherLoad()
    print(f"{info['cpu']}, {info['cores']} cores, rnnlab kernels {info['rnnlab_isa']}, {info['threads']} torch "
          f"threads, torch {info['torch']}\n")
    if "lstm" in parts:
        print("LSTM forward+backward, float32, I = H")
        rows = lstm_rows(budget, args.quick)
        headers = ["config", "nn.LSTM ms", "rnnlab.LSTM ms", "× nn.LSTM"] + ["JAX ms", "× JAX"] * (len(rows[0]) > 4)
        print(table(headers, rows, args.markdown), "\n", flush=True)
    if "population" in parts:
        print("Population of LSTMs, forward+backward, float32")
        print(table(["config", "loop of nn.LSTM ms", "rnnlab.lstm fused ms", "×"], population_rows(budget, args.quick),
                    args.markdown), "\n", flush=True)
    if "diag" in parts:
        print("Diagonal recurrence h_t = λ h_{t-1} + u_t; floor = 2.5 × copy of u (the bytes fwd+bwd move)")
        headers = ["config", "copy u ms", "fwd op ms", "bwd op ms", "(fwd+bwd)/floor", "PyTorch loop ms",
                   "rnnlab fwd+bwd ms", "× loop"]
        print(table(headers, diag_rows(budget, args.quick), args.markdown), "\n", flush=True)
    share = load.share()
    print(f"other processes used {'?' if share is None else f'{100 * share:.0f} %'} of the cores during the run")


if __name__ == "__main__":
    main()
