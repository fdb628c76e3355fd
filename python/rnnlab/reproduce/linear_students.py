"""Students of the linear teacher–student task of Zucchet & Orvieto (SPEC §4.2), trained as
populations: one model per (learning rate, seed), M of them in lockstep, each on its own teacher
and data stream (:class:`rnnlab.tasks.system_id.SystemIdentification`, keyed by its seed), with
per-model Adam and a cosine schedule (SPEC §4.2).

Students (hidden size n, 1-D input and output, read out at every step):

* linear RNNs ``y = C·RNN(B x) + D x`` with a block-diagonal A of ``heads`` blocks of size
  k = n/heads (heads = 1: the dense RNN), run by :func:`rnnlab.elman` with the identity
  activation, in one of two equivalent layouts (:data:`BLOCK_LAYOUTS`);
* LRU variants (:func:`rnnlab.nn.lru.lru_forward`): complex diagonal λ in the ``plain``
  (Re, Im) or ``exp`` parametrisation, with or without the learned γ.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..functional import elman
from ..nn.lru import lru_forward, lru_param_shapes, lru_ring_params
from ..tasks import rng
from ..tasks.system_id import SystemIdentification
from ..train.optim import init_state, update_
from ..train.schedules import cosine_lr

#: block-diagonal A as a masked dense [n, n] matrix (one model = one elman recurrence), or as a
#: population of heads (M·heads recurrences of size k folded into the model axis).
BLOCK_LAYOUTS = ("dense", "heads")
MAX_PHASE = 3.14  # SPEC §4.2: phases of the teacher's and the students' eigenvalues
LR_MIN = 1e-7


@dataclass(frozen=True)
class Student:
    """One architecture. kind ``rnn`` (``heads`` blocks) or ``lru`` (``parametrization`` ``plain``
    or ``exp``, ``gamma`` ``learned`` or ``none``)."""
    label: str
    kind: str
    hidden: int = 64
    heads: int = 1
    parametrization: str = "exp"
    gamma: str = "learned"


def rnn_recurrent_init(keys: Tensor, heads: int, k: int) -> Tensor:
    """[M, heads, k, k] blocks A = randn(k, k)/√k with eigenvalues remapped to tanh|l|·e^{i·angle·
    max_phase/π} (the authors' ``recurrent_matrix_init`` with min_nu = 0, SPEC §4.2), float64."""
    a0 = rng.normal(rng.derive(keys, "student-A"), (heads, k, k), torch.float64) / math.sqrt(k)
    lam, vec = torch.linalg.eig(a0)
    lam = torch.polar(torch.tanh(lam.abs()), lam.angle() * MAX_PHASE / math.pi)
    return (vec @ torch.diag_embed(lam) @ torch.linalg.inv(vec)).real


def init_params(student: Student, keys: Tensor, nu0: float) -> dict[str, Tensor]:
    """Initial float32 parameters of M students, one per key ([M, 2] int64). RNNs: A, B
    N(0, 1), C N(0, 1/n), D N(0, 1) (flax's Dense init with fan-in 1 and n); LRUs: λ on the ring
    ν0 ≤ |λ| < 1 (SPEC §4.2: min_nu = ν0), γ = sqrt(1 − |λ|²), B, C, D N(0, 1/fan_in)."""
    M, n = len(keys), student.hidden
    if student.kind == "rnn":
        k = n // student.heads
        return {"A": rnn_recurrent_init(keys, student.heads, k).float(),
                "B": rng.normal(rng.derive(keys, "student-B"), (n, 1)),
                "C": rng.normal(rng.derive(keys, "student-C"), (1, n)) / math.sqrt(n),
                "D": rng.normal(rng.derive(keys, "student-D"), (1, 1))}
    shapes = lru_param_shapes(M, 1, n, 1, student.parametrization, student.gamma)
    params = lru_ring_params(rng.uniform(rng.derive(keys, "student-ring"), (n,), torch.float64),
                             rng.uniform(rng.derive(keys, "student-phase"), (n,), torch.float64),
                             student.parametrization, student.gamma, nu0, 1.0, MAX_PHASE)
    params = {name: p.float() for name, p in params.items()}
    for name, shape in shapes.items():
        if name[0] in "BCD":
            params[name] = rng.normal(rng.derive(keys, "student-" + name), shape[1:]) / math.sqrt(shape[-1])
    return params


def block_diagonal(A: Tensor) -> Tensor:
    """[M, heads, k, k] blocks -> [M, n, n] block-diagonal matrix (differentiable)."""
    M, h, k, _ = A.shape
    eye = torch.eye(h, dtype=A.dtype, device=A.device)
    return torch.einsum("mhij,hg->mhigj", A, eye).reshape(M, h * k, h * k)


def rnn_states(A: Tensor, xp: Tensor, layout: str) -> Tensor:
    """States of h_t = A h_{t−1} + xp_t for block-diagonal A [M, heads, k, k]; xp, returned hs: [M, T, B, n]."""
    M, h, k, _ = A.shape
    if h == 1 or layout == "dense":
        return elman(xp, block_diagonal(A) if h > 1 else A[:, 0], nonlinearity="identity")
    _, T, B, n = xp.shape
    xh = xp.view(M, T, B, h, k).permute(0, 3, 1, 2, 4).reshape(M * h, T, B, k)
    hs = elman(xh, A.reshape(M * h, k, k), nonlinearity="identity")
    return hs.view(M, h, T, B, k).permute(0, 2, 3, 1, 4).reshape(M, T, B, n)


def predict(student: Student, params: dict[str, Tensor], x: Tensor, layout: str = "dense") -> Tensor:
    """ŷ [M, T, B, 1] of M students on x [M, T, B, 1]."""
    if student.kind == "rnn":
        xp = x * params["B"].view(x.shape[0], 1, 1, -1)  # B x_t with a 1-D input
        hs = rnn_states(params["A"], xp, layout)
        return hs @ params["C"].transpose(1, 2).unsqueeze(1) + x * params["D"].view(-1, 1, 1, 1)
    return lru_forward(params, x, student.parametrization, student.gamma)[0]


def faster_block_layout(student: Student, M: int, T: int, B: int, repeats: int = 3) -> tuple[str, dict[str, float]]:
    """Time forward + backward of both :data:`BLOCK_LAYOUTS` for M block-diagonal students on
    this machine; return the faster one and the best time of each (seconds)."""
    keys = rng.seed_keys(range(M))
    params = {n: p.requires_grad_() for n, p in init_params(student, keys, 0.0).items()}
    x = torch.randn(M, T, B, 1)
    times = {}
    for layout in BLOCK_LAYOUTS:
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            predict(student, params, x, layout).square().mean().backward()
            best = min(best, time.perf_counter() - start)
        times[layout] = best
    return min(times, key=times.get), times


def train_students(student: Student, nu0: float, lrs: list[float], seeds: list[int], *, steps: int, batch: int,
                   length: int = 300, eval_batch: int = 256, layout: str = "dense") -> dict:
    """Train M = len(lrs)·len(seeds) students as one population (Adam, cosine from lr to 1e-7
    over ``steps``, fresh batches every step, loss ½·mean(ŷ − y)², SPEC §4.2).

    Returns a dict with ``lr`` and ``seed`` per model ([M] lists), ``final_loss`` [M] (on
    ``eval_batch`` fresh sequences after training; NaN when the model diverged), ``curve``
    ([steps/20 points][M], the training loss every 20 steps) and ``seconds``.
    """
    task = SystemIdentification(length, length, nu0=nu0, max_phase=MAX_PHASE)
    runs = [(lr, s) for lr in lrs for s in seeds]
    keys = rng.seed_keys([s for _, s in runs])
    teacher = task.setup(keys)
    params = {n: p.contiguous() for n, p in init_params(student, keys, nu0).items()}
    state = init_state("adam", params)
    lr0 = torch.tensor([lr for lr, _ in runs])
    betas = (torch.full_like(lr0, 0.9), torch.full_like(lr0, 0.999))
    curve, start = [], time.perf_counter()
    for step in range(steps):
        data = task.sample(rng.derive(keys, "train", step), teacher, length, batch)
        for p in params.values():
            p.requires_grad_(True)
        losses = 0.5 * (predict(student, params, data.x, layout) - data.target).square().mean((1, 2, 3))
        grads = torch.autograd.grad(torch.nan_to_num(losses, nan=0.0, posinf=0.0).sum(), list(params.values()))
        params = {n: p.detach() for n, p in params.items()}
        update_("adam", params, dict(zip(params, grads)), state, cosine_lr(lr0, LR_MIN, step, steps),
                beta1=betas[0], beta2=betas[1], step=step + 1)
        if step % 20 == 0 or step == steps - 1:
            curve.append(losses.detach().tolist())
    with torch.no_grad():
        data = task.sample(rng.derive(keys, "eval"), teacher, length, eval_batch)
        final = 0.5 * (predict(student, params, data.x, layout) - data.target).square().mean((1, 2, 3))
    final = torch.where(final.isfinite(), final, torch.nan)
    return {"lr": [lr for lr, _ in runs], "seed": [s for _, s in runs], "final_loss": final.tolist(), "curve": curve,
            "seconds": time.perf_counter() - start}


def best_lr(result: dict) -> dict:
    """Per-lr mean final loss over seeds, and the lr with the lowest mean (the paper's
    "final loss, mean over seeds, at the best learning rate", SPEC §4.2). A diverged seed makes
    its lr's mean NaN: that lr is not eligible."""
    by_lr: dict[float, list[float]] = {}
    for lr, loss in zip(result["lr"], result["final_loss"]):
        by_lr.setdefault(lr, []).append(loss)
    means = {lr: sum(v) / len(v) for lr, v in by_lr.items()}
    finite = {lr: m for lr, m in means.items() if not math.isnan(m)}
    lr = min(finite, key=finite.get) if finite else math.nan
    losses = by_lr.get(lr, [math.nan])
    return {"best_lr": lr, "loss": finite.get(lr, math.nan), "loss_per_seed": losses, "mean_per_lr": means}
