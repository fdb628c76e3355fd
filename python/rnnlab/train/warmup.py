"""Lambrechts et al.'s warm-up (SPEC §6.1): before normal training, the models with
``RunConfig.warmup`` take ``warmup_steps`` Adam steps at ``warmup_lr`` on

    mean over layers of (VAA*_layer − 0.95)²

(:func:`rnnlab.analysis.vaa_star`; the paper's mean; Adam is invariant to the sum's constant
factor but for its ε), using only the task's inputs. Step k: each warmed model's own
``batch_size`` training sequences (its stream, tag ``"warmup"``), a prefix c_i ~ U{1 … T} per
sequence, one constant input u ~ N(0, I_l) per layer, and K' ~ U{1 … min(1 + 10k, 200)} steps
(a population-level draw from ``length_seed``, like T: one fused call needs one K').

Models without warm-up are not touched (bit for bit); a warmed model's warm-up depends only on
its own key, ``length_seed`` and the shared fields, so it is the same alone or inside any
population. A ``double`` layout warms the first cell of each layer only: VAA* is counted on its
half of the state and the other half's gradients are zeroed, so Adam leaves it exactly as drawn.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..analysis.vaa import vaa_star
from ..tasks import Task, rng
from .config import RunConfig
from .optim import init_state, update_

#: SPEC §6.1: the VAA* each layer is pushed towards.
WARMUP_TARGET = 0.95
#: SPEC §6.1: K' ≤ min(1 + STEP_GROWTH·k, MAX_STABILIZATION).
STEP_GROWTH = 10
MAX_STABILIZATION = 200
#: names of the read-out, which VAA* does not see.
_READOUT = ("weight_out", "bias_out")


def stabilization_steps(length_seed: int, step: int) -> int:
    """K' of warm-up step ``step`` (0-based): uniform on {1 … min(1 + 10·step, 200)}."""
    high = min(1 + STEP_GROWTH * step, MAX_STABILIZATION)
    return 1 + int(rng.scalar_uniform(length_seed, "warmup-steps", step) * high)


def warm_up(task: Task, params: dict[str, Tensor], keys: Tensor, ctx: dict[str, Tensor], configs: list[RunConfig]) -> dict[int, list[float]]:
    """Warm up, in place in ``params`` ([M, ...] tensors), the models whose config has
    ``warmup``; ``keys`` [M, 2] and ``ctx`` are the population's. Returns model index -> its
    VAA* (mean over layers) at every warm-up step."""
    warm = [m for m, c in enumerate(configs) if c.warmup]
    if not warm:
        return {}
    cfg = configs[0]
    options = cfg.forward_options()
    idx = torch.tensor(warm, dtype=torch.int64, device=keys.device)
    wkeys, wctx = keys[idx], {n: v[idx] for n, v in ctx.items()}
    p = {n: v[idx].detach().clone() for n, v in params.items()}
    state = init_state("adam", p)
    dtype = p["weight_out"].dtype
    lr = torch.tensor([configs[m].warmup_lr for m in warm], dtype=dtype, device=keys.device)
    betas = {n: torch.full_like(lr, getattr(cfg, n)) for n in ("beta1", "beta2")}
    H, N = cfg.hidden, cfg.batch_size
    history = {m: [] for m in warm}
    for k in range(cfg.warmup_steps):
        T = task.train_length(cfg.length_seed, k)
        x = task.sample(rng.derive(wkeys, "warmup", k), wctx, T, N, dtype).x
        prefix = rng.randint(rng.derive(wkeys, "warmup-prefix", k), T, (N,))
        inputs = [rng.normal(rng.derive(wkeys, "warmup-input", k, depth), (task.n_in if depth == 0 else H,), dtype)
                  for depth in range(options.get("num_layers", 1))]
        leaves = {n: v.requires_grad_(True) for n, v in p.items()}
        per_layer = vaa_star(leaves, x, prefix, inputs, stabilization_steps(cfg.length_seed, k), cell=cfg.cell,
                             first_half=bool(options.get("double")), **options)
        per_layer.sub(WARMUP_TARGET).pow(2).mean(1).sum().backward()
        grads = {n: torch.zeros_like(v) if v.grad is None else v.grad for n, v in leaves.items()}
        if options.get("double"):
            for n, g in grads.items():
                if n not in _READOUT:
                    g[:, 1] = 0  # the second cell of every layer keeps its init
        p = {n: v.detach() for n, v in leaves.items()}
        update_("adam", p, grads, state, lr, beta1=betas["beta1"], beta2=betas["beta2"], eps=cfg.eps, step=k + 1)
        for j, m in enumerate(warm):
            history[m].append(float(per_layer[j].detach().mean()))
    for n, v in p.items():
        params[n][idx] = v
    return history
