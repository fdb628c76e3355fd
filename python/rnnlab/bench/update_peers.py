"""One training update of a population, as rnnlab and its peers do it.

The job (:class:`Job`): M models of one cell (one layer of H units in rnnlab's parameter layout
and initialisation, a linear read-out), cross-entropy at the last step (temporal order by
default: I = 6, O = 4), SGD at lr 0.01 with per-model global gradient-norm clipping at τ = 1,
batch 20, float32, on batches generated before the clock starts. Every peer starts from the same
parameters and batches (:class:`Problem`) and returns the updated parameters in rnnlab's layout,
so that its update can be checked against rnnlab's (tests/test_bench_peers.py):

* ``rnnlab fused`` (:func:`rnnlab_fused`): the fused training step
  (:class:`rnnlab.train.fused_step.FusedStep`), one op call per update of the M models;
* ``rnnlab autograd`` (:func:`rnnlab_autograd`): the trainer's autograd path built from its pieces
  (population_forward, the task's loss, torch.autograd.grad, clip_gradients_, the vectorized SGD);
* ``nn loop`` (:func:`nn_loop`): M separate ``torch.nn.RNN/LSTM/GRU`` + ``nn.Linear`` models, each
  updated with autograd, ``clip_grad_norm_`` and ``torch.optim.SGD``, one after the other;
* ``torch.func`` (:func:`torch_func`): ``torch.func.stack_module_state`` of M modules whose cell is
  written in torch ops (peer_cells.py), ``vmap`` of an SGD step (``torch.func.grad``, per-model
  clipping), eager or compiled with ``torch.compile``;
* ``jax`` (:func:`jax_vmap`): ``jax.jit(jax.vmap(sgd_step))`` of the same step with a
  ``lax.scan`` cell.

A builder returns a :data:`Run`: a callable that trains its models through every batch from the
initial parameters and returns (seconds spent updating, the final parameters [models, ...]).
Compilation (JAX, torch.compile) happens in the builder, outside every clock.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells import get_cell
from ..nn.population import population_forward
from ..tasks import rng
from ..tasks.base import Batch, Task
from ..train import RunConfig
from ..train.clipping import clip_gradients_
from ..train.fused_step import FusedStep
from ..train.init import init_population
from ..train.optim import init_state, update_
from .peer_cells import TORCH_OPS, PeerCell, jax_scan, peer_cell

LR = 0.01
CLIP = 1.0
#: (seconds updating, final parameters in rnnlab's layout, [models, ...])
Run = Callable[[], tuple[float, dict[str, Tensor]]]


@dataclass(frozen=True)
class Job:
    """``updates`` SGD updates of M models of ``cell`` with H units on ``task`` at length T.

    ``init``: the cell's initialisation (None: its default).
    """

    cell: str
    T: int
    H: int
    M: int
    updates: int
    task: str = "torder"
    batch: int = 20
    init: str | None = None

    @property
    def label(self) -> str:
        return f"{self.cell} {self.task} T={self.T} H={self.H} M={self.M}"

    def configs(self) -> list[RunConfig]:
        """The M runs, as the sweep engine would give them to train_population."""
        return [RunConfig(task=self.task, task_kwargs={"min_length": self.T, "max_length": self.T}, cell=self.cell,
                          hidden=self.H, init=self.init, lr=LR, clip=CLIP, batch_size=self.batch,
                          max_updates=self.updates, val_every=self.updates, val_size=20, val_chunk=20,
                          stop_at_success=False, seed=s) for s in range(self.M)]

    def flops(self, n_in: int, n_out: int, readout_steps: int = 1) -> float:
        """Useful flops of one model-update, the multiply-adds ×2 any implementation must do: with
        G gate blocks, forward h W_hhᵀ, backward u W_hh and ∂W_hh (3·2·T·B·G·H²), the input
        projection and ∂W_ih (2·2·T·B·G·H·I), the read-out, its input gradient and ∂W_out
        (3·2·K·B·H·O). Element-wise work (activations, gates) is not counted.

        A cell without a recurrent matrix (G = 0: the diagonal cell, at its default complex λ,
        R = 2H real columns) counts its complex products instead: λ h_{t−1}, conj(λ) δ_t and
        ∂λ's conj(h_{t−1}) δ_t (3·2·2·T·B·R, a complex product being two multiply-adds per real
        column), the input projection and ∂B (2·2·T·B·R·I), and the read-out Re(C h) + D x with
        its input gradient and ∂C, ∂D (3·2·K·B·R·O + 2·2·K·B·I·O)."""
        T, B, H, G = self.T, self.batch, self.H, get_cell(self.cell).gates
        if G == 0:
            R, K = 2 * H, readout_steps
            return 12 * T * B * R + 4 * T * B * R * n_in + 6 * K * B * R * n_out + 4 * K * B * n_in * n_out
        return 6 * T * B * G * H * H + 4 * T * B * G * H * n_in + 6 * readout_steps * B * H * n_out


@dataclass(frozen=True)
class Problem:
    """What every peer starts from: the task, the M models' initial parameters (rnnlab's layout,
    float32, in the cell's ``shapes`` order, drawn as train_population draws them) and the
    pre-generated batches (x [M, T, B, I], target [M, 1, B])."""

    job: Job
    task: Task
    params: dict[str, Tensor]
    batches: list[Batch]

    @staticmethod
    def make(job: Job) -> "Problem":
        configs = job.configs()
        cfg = configs[0]
        task = cfg.make_task()
        if task.readout_steps(job.T) != 1 or not task.classification:
            raise ValueError(f"the peers train with cross-entropy at the last step; task {job.task!r} reads out "
                             f"{task.readout_steps(job.T)} steps (classification: {task.classification})")
        keys = rng.seed_keys([c.seed for c in configs])
        params = init_population(keys, [c.init for c in configs], task.n_in, job.H, task.n_out,
                                 [c.init_gain for c in configs], torch.float32, job.cell, cfg.cell_kwargs)
        ctx = task.setup(keys)
        batches = [task.sample(rng.derive(keys, "train", k), ctx, job.T, job.batch) for k in range(job.updates)]
        return Problem(job, task, params, batches)

    @property
    def cell(self) -> PeerCell:
        return peer_cell(self.job.cell)

    def targets(self, batch: Batch) -> Tensor:
        """[M, B] class indices at the read-out step."""
        return batch.target[:, -1]


def _timed(loop: Callable[[], dict[str, Tensor]]) -> tuple[float, dict[str, Tensor]]:
    start = time.perf_counter()
    params = loop()
    return time.perf_counter() - start, params


def rnnlab_fused(problem: Problem) -> Run:
    """The fused training step, as train_population calls it (its cell must have one)."""
    step = FusedStep(problem.job.configs(), problem.task)
    M = problem.job.M
    hyper = {n: torch.full((M,), v) for n, v in (("lr", LR), ("lr_min", 0.0), ("momentum", 0.0), ("beta1", 0.9),
                                                  ("beta2", 0.999), ("clip", CLIP))}

    def run():
        p = {n: v.clone() for n, v in problem.params.items()}
        state = init_state("sgd", p)

        def loop():
            for k, b in enumerate(problem.batches):
                step(p, state, hyper, b, k)
            return p

        return _timed(loop)

    return run


def rnnlab_autograd(problem: Problem) -> Run:
    """The trainer's autograd path (what it runs where the fused step does not apply)."""
    cfg = problem.job.configs()[0]
    model_kw = {"cell": cfg.cell, **cfg.forward_options()}
    recurrent = get_cell(cfg.cell).recurrent_weight
    M = problem.job.M
    lr, tau = torch.full((M,), LR), torch.full((M,), CLIP)

    def run():
        p = {n: v.clone() for n, v in problem.params.items()}

        def loop():
            nonlocal p
            for b in problem.batches:
                leaves = {n: v.requires_grad_(True) for n, v in p.items()}
                loss = problem.task.loss(population_forward(leaves, b.x, **model_kw), b)
                grads = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values()))))
                p = {n: v.detach() for n, v in leaves.items()}
                clip_gradients_(grads, p[recurrent] if recurrent else None, tau, weight_hh_name=recurrent)
                update_("sgd", p, grads, {}, lr)
            return p

        return _timed(loop)

    return run


def rnnlab_step(problem: Problem) -> tuple[str, Run]:
    """rnnlab's update of ``problem``: the fused step where the cell has one, else the autograd
    path; (its name, the run)."""
    if get_cell(problem.job.cell).fused_step is not None:
        return "rnnlab fused", rnnlab_fused(problem)
    return "rnnlab autograd", rnnlab_autograd(problem)


def nn_loop(problem: Problem, models: int | None = None) -> Run:
    """The first ``models`` models (all by default) trained one after the other, each a standard
    PyTorch loop: ``torch.nn.RNN/LSTM/GRU`` + ``nn.Linear``, ``clip_grad_norm_``,
    ``torch.optim.SGD``.

    nn's second bias ``bias_hh`` is rnnlab's model only where rnnlab has that parameter (the
    GRU's b_hn): elsewhere it stays zero (frozen, or its gradient masked by a hook), so that
    each module is exactly rnnlab's model, with the same parameters clipped and updated.
    """
    cell, p0 = problem.cell, problem.params
    M = problem.job.M if models is None else models
    if not 1 <= M <= problem.job.M:
        raise ValueError(f"models must be in [1, {problem.job.M}] (the population's), got {models}")
    _, I, H, O = get_cell(problem.job.cell).sizes(p0)
    mask = cell.hidden_bias_mask(H)
    units = []
    for m in range(M):
        rnn, head = cell.nn_class(I, H), nn.Linear(H, O)
        if mask is None:
            rnn.bias_hh_l0.requires_grad_(False)
        else:
            rnn.bias_hh_l0.register_hook(lambda g: g * mask)
        params = [q for q in (*rnn.parameters(), *head.parameters()) if q.requires_grad]
        data = [(b.x[m], problem.targets(b)[m]) for b in problem.batches]
        units.append((rnn, head, params, torch.optim.SGD(params, lr=LR), data))

    def load(m: int, rnn: nn.Module, head: nn.Module) -> None:
        b_ih, b_hh = cell.nn_biases(p0["bias"][m], p0["bias_hn"][m] if "bias_hn" in p0 else None)
        with torch.no_grad():
            for dst, src in ((rnn.weight_ih_l0, p0["weight_ih"][m]), (rnn.weight_hh_l0, p0["weight_hh"][m]),
                             (rnn.bias_ih_l0, b_ih), (rnn.bias_hh_l0, b_hh), (head.weight, p0["weight_out"][m]),
                             (head.bias, p0["bias_out"][m])):
                dst.copy_(src)

    def run():
        seconds = 0.0
        for m, (rnn, head, params, opt, data) in enumerate(units):
            load(m, rnn, head)
            start = time.perf_counter()
            for x, y in data:
                out, _ = rnn(x)
                loss = F.cross_entropy(head(out[-1]), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, CLIP)
                opt.step()
            seconds += time.perf_counter() - start
        return seconds, _stack_nn(cell, units)

    return run


def _stack_nn(cell: PeerCell, units: list) -> dict[str, Tensor]:
    """The nn modules' parameters in rnnlab's layout, [models, ...]."""
    out: dict[str, list[Tensor]] = {}
    for rnn, head, *_ in units:
        bias, bias_hn = cell.split_bias(rnn.bias_ih_l0.detach(), rnn.bias_hh_l0.detach())
        one = {"weight_ih": rnn.weight_ih_l0, "weight_hh": rnn.weight_hh_l0, "bias": bias,
               **({"bias_hn": bias_hn} if bias_hn is not None else {}),
               "weight_out": head.weight, "bias_out": head.bias}
        for n, v in one.items():
            out.setdefault(n, []).append(v.detach())
    return {n: torch.stack(v) for n, v in out.items()}


class TorchOpsModel(nn.Module):
    """One model in rnnlab's layout with its cell written in torch ops (peer_cells.py):
    x [T, B, I] -> the read-out's logits at the last step [B, O]."""

    def __init__(self, cell: PeerCell, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        self.cell = cell
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))

    def forward(self, x: Tensor) -> Tensor:
        xp = x @ self.weight_ih.T + self.bias
        state = self.cell.zero_state(lambda: xp.new_zeros(xp.shape[1], self.weight_hh.shape[1]))
        b_hn = getattr(self, "bias_hn", None)
        for xp_t in xp.unbind(0):
            state = self.cell.step(TORCH_OPS, xp_t, state, self.weight_hh, b_hn)
        return state[0] @ self.weight_out.T + self.bias_out


def torch_func(problem: Problem, compile: bool = False) -> Run:
    """``vmap`` over the M models' stacked parameters (``torch.func.stack_module_state``) of one
    SGD step: ``torch.func.grad`` of the loss through ``functional_call``, the model's global
    gradient norm, clipping at τ, the update. ``compile``: the vmapped step through
    ``torch.compile`` (compiled here, on the first batch)."""
    p0 = problem.params
    models = []
    for m in range(problem.job.M):
        model = TorchOpsModel(problem.cell, {n: tuple(v.shape[1:]) for n, v in p0.items()})
        model.load_state_dict({n: v[m] for n, v in p0.items()})
        models.append(model)
    stacked, _ = torch.func.stack_module_state(models)
    stacked = {n: v.detach() for n, v in stacked.items()}  # the update below is not differentiated
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(torch.func.functional_call(base, p, (x,)), y)

    def sgd_step(p: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
        g = torch.func.grad(loss)(p, x, y)
        norm = torch.sqrt(sum((v * v).sum() for v in g.values()))
        scale = torch.where(norm > CLIP, CLIP / norm, torch.ones_like(norm))
        return {n: p[n] - LR * scale * g[n] for n in p}

    step = torch.func.vmap(sgd_step)
    data = [(b.x, problem.targets(b)) for b in problem.batches]
    if compile:
        step = torch.compile(step)
        step(stacked, *data[0])

    def run():
        def loop():
            p = stacked
            for x, y in data:
                p = step(p, x, y)
            return p

        return _timed(loop)

    return run


def jax_vmap(problem: Problem) -> Run:
    """``jax.jit(jax.vmap(sgd_step))``: the torch.func peer's step in JAX, the cell a
    ``lax.scan`` (compiled here, on the first batch). JAX sizes its thread pool from the CPUs the
    process may use when it first starts (harness.confined)."""
    import jax
    import jax.numpy as jnp

    cell = problem.cell

    def loss(p, x, y):
        xp = x @ p["weight_ih"].T + p["bias"]
        state, _ = jax_scan(cell, xp, p["weight_hh"], p.get("bias_hn"), outputs=False)
        logits = state[0] @ p["weight_out"].T + p["bias_out"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    def sgd_step(p, x, y):
        g = jax.grad(loss)(p, x, y)
        norm = jnp.sqrt(sum(jnp.sum(v * v) for v in g.values()))
        scale = jnp.where(norm > CLIP, CLIP / norm, 1.0)
        return {n: p[n] - LR * scale * g[n] for n in p}

    step = jax.jit(jax.vmap(sgd_step))
    params = {n: jnp.asarray(v.numpy()) for n, v in problem.params.items()}
    data = [(jnp.asarray(b.x.numpy()), jnp.asarray(problem.targets(b).numpy())) for b in problem.batches]
    jax.block_until_ready(step(params, *data[0]))

    def run():
        def loop():
            p = params
            for x, y in data:
                p = step(p, x, y)
            return jax.block_until_ready(p)

        seconds, p = _timed(loop)
        return seconds, {n: torch.from_numpy(np.array(p[n])) for n in problem.params}  # JAX sorts dict keys

    return run
