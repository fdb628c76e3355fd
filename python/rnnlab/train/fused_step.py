"""One fused op call per training update of a population (``rnnlab::<cell>_train_step``).

The op a cell's record names (:attr:`rnnlab.cells.Cell.fused_step`) does for every model m, in one
parallel region over the models: the input projection inside the recurrence (xp is never
materialized), the read-out and the task's loss at its read-out steps, the whole backward with
every gradient accumulated in the kernel, with Pascanu's regularizer α·∂⁺Ω/∂W_hh (SPEC §2.5) in
∂W_hh for the cells whose record has ``omega``, the per-step ‖δ_t‖² [M, T, B] of the VEG flags,
‖v_t‖² and Ω [M] computed from them as the autograd path's ``omega_from_norms`` does (bit for bit),
the global gradient norm, clipping with the
SPEC §2.4 safeguard (:mod:`rnnlab.train.clipping`) and the optimizer step
(:mod:`rnnlab.train.optim`, constant or cosine learning rate) on the parameters and optimizer
state in place. A model runs on one thread from start to end, so its update is bitwise the same
alone or in any population, at any thread count. The autograd path of the trainer is its
executable reference.

Every cell's op takes the same arguments (the parameters in the order of the cell's ``shapes``)
followed by the cell's own forward options as keywords (the Elman cell's ``nonlinearity``, the
diagonal cell's ``parametrization`` and ``gamma``), and,
for a cell with Ω (``Cell.omega``; :class:`RunConfig` allows α > 0 for those only), the per-model
α of the update (``alpha`` decayed by :func:`rnnlab.train.schedules.decayed_alpha`, as the
autograd path computes it) as ``reg_weight``. A population that mixes α = 0 and α > 0 runs is
updated by two calls, one per kind (the Elman op runs Ω in its row layout only, while an α = 0
model of small H takes the lanes layout): a model gets exactly the update it would get alone.

Covered (:func:`unsupported` returns None): a cell whose record names a fused step (every cell
today; the diagonal cell with every parametrization and gamma option, its read-out its own
Re(C h) + D x, and, having no W_hh, a safeguard that zeroes the whole gradient as
:func:`rnnlab.train.clipping.clip_gradients_` does with ``weight_hh=None``), one plain layer, any α
(with its 1/t decay), a task whose loss is :meth:`rnnlab.tasks.base.Task.loss` (cross-entropy for
classification, mean squared error for regression) or system identification's ½·MSE, every
optimizer and schedule, float32 and float64, on the CPU. Everything else falls back to the autograd
path, for the reason :func:`unsupported` gives.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cells import get_cell
from ..cells.projected import LAYOUT_OPTIONS
from ..tasks.base import Batch, Task
from ..tasks.system_id import SystemIdentification
from .clipping import ClipStats
from .config import RunConfig
from .optim import init_state
from .schedules import cosine_lr, decayed_alpha


def loss_of(task: Task) -> tuple[str, float] | None:
    """(the op's loss name, its scale) of ``task``'s loss, or None for a loss the op lacks."""
    loss = type(task).loss
    if loss is Task.loss:
        return ("cross_entropy", 1.0) if task.classification else ("squared_error", 1.0)
    if loss is SystemIdentification.loss:
        return "squared_error", 0.5
    return None


def unsupported(configs: list[RunConfig], task: Task, device: torch.device) -> str | None:
    """Why the runs ``configs`` (one population) must train on the autograd path, or None when
    the fused step covers them."""
    cfg = configs[0]
    options = cfg.forward_options()
    if get_cell(cfg.cell).fused_step is None:
        return f"cell {cfg.cell!r}: its record has no fused training step (Cell.fused_step)"
    if options.get("num_layers", 1) != 1 or options.get("double", False):
        return "stacked or double layers: the fused step runs one plain layer"
    if loss_of(task) is None:
        return f"task {task.name!r} defines a loss of its own that the fused step does not implement"
    if device.type != "cpu":
        return f"device {device}: the fused step is a CPU kernel"
    return None


class FusedStep:
    """The fused update of one population's runs ``configs`` on ``task`` (see the module
    docstring; :func:`unsupported` must have returned None)."""

    def __init__(self, configs: list[RunConfig], task: Task):
        cfg = configs[0]
        cell = get_cell(cfg.cell)
        self.op = getattr(torch.ops.rnnlab, cell.fused_step)
        options = cfg.forward_options()
        self.param_names = tuple(cell.shapes(1, 1, 1, 1, cell.complete_options(options)))
        self.cell_options = {k: v for k, v in options.items() if k not in LAYOUT_OPTIONS}
        self.loss, self.loss_scale = loss_of(task)
        self.task = task
        self.optimizer, self.cosine, self.max_updates = cfg.optimizer, cfg.lr_schedule == "cosine", cfg.max_updates
        self.safeguard, self.eps = cfg.safeguard, cfg.eps
        self.any_clip = any(c.clip is not None for c in configs)
        # α > 0 for some run (then the cell has Ω: RunConfig checks it)
        self.any_alpha = any(c.alpha > 0 for c in configs)
        #: ‖v_t‖² [M, T, B] of the latest update (with ‖δ_t‖², what Ω is computed from)
        self.v_sq: Tensor | None = None
        # the optimizer's state slots, in the order the op takes them ("buf"; "m", "v")
        self.slots = [key.split(".")[0] for key in init_state(cfg.optimizer, {"p": torch.zeros(0)})]

    def __call__(self, params: dict[str, Tensor], state: dict[str, Tensor], hyper: dict[str, Tensor], batch: Batch,
                 update: int) -> tuple[Tensor, ClipStats, Tensor, Tensor]:
        """Update the models of ``params`` and ``state`` in place ([M, ...] tensors as the
        trainer keeps them, contiguous) on ``batch``, at the 0-based ``update``.

        Args:
            hyper: the trainer's [M] per-model hyper-parameters (``lr``, ``lr_min``,
                ``momentum``, ``beta1``, ``beta2``, ``clip``, ``alpha``, ``alpha_decay``) in the
                parameters' dtype.
        Returns:
            the loss [M], the clipping statistics, ‖δ_t‖² [M, T, B] and Ω [M] (before the update,
            as the autograd path reports it).
        """
        regularized = hyper["alpha"] > 0 if self.any_alpha else None  # (no tensor ops when no run has α > 0)
        some = regularized is not None and bool(regularized.any())
        if not some or bool(regularized.all()):
            loss, stats, delta_sq, v_sq, omega = self._call(params, state, hyper, batch, update, some)
        else:
            # A mixed population: the models with α > 0 in one call with Ω (the row layout), the
            # others in one without (the layout their shape picks), so that a model's update is the
            # one it gets alone, whatever α its neighbours have.
            parts = [regularized.nonzero()[:, 0], (~regularized).nonzero()[:, 0]]
            outs = []
            for idx, regularize in zip(parts, (True, False)):
                sub = {n: v[idx] for n, v in params.items()}, {n: v[idx] for n, v in state.items()}
                outs.append(self._call(*sub, {n: v[idx] for n, v in hyper.items()},
                                       Batch(batch.x[idx], batch.target[idx]), update, regularize))
                for whole, part in zip((params, state), sub):
                    for n, v in part.items():
                        whole[n][idx] = v
            order = torch.cat(parts).argsort()
            join = lambda a, b: torch.cat([a, b])[order]  # noqa: E731
            (loss_a, stats_a, dsq_a, vsq_a, omega_a), (loss_b, stats_b, dsq_b, vsq_b, omega_b) = outs
            loss, delta_sq, v_sq, omega = join(loss_a, loss_b), join(dsq_a, dsq_b), join(vsq_a, vsq_b), join(omega_a, omega_b)
            stats = ClipStats(join(stats_a.norm, stats_b.norm), join(stats_a.clipped, stats_b.clipped),
                              join(stats_a.fallback, stats_b.fallback))
        self.v_sq = v_sq
        return loss, stats, delta_sq, omega

    def _call(self, params, state, hyper, batch, update, regularize: bool) -> tuple[Tensor, ClipStats, Tensor, Tensor, Tensor]:
        """One op call on these models, with Ω's gradient (``reg_weight``) when ``regularize``: the loss,
        the clipping statistics, ‖δ_t‖², ‖v_t‖² and Ω (what ``omega_from_norms`` makes of them)."""
        cosine = cosine_lr(1.0, 0.0, update, self.max_updates) if self.cosine else 0.0
        reg = {"reg_weight": decayed_alpha(hyper["alpha"], hyper["alpha_decay"], update)} if regularize else {}
        loss, norm, clipped, fallback, delta_sq, v_sq, omega = self.op(
            batch.x.contiguous(), batch.target.contiguous(), [params[n] for n in self.param_names],
            [state[f"{s}.{n}"] for s in self.slots for n in self.param_names], hyper["lr"],
            hyper["lr_min"] if self.cosine else None, cosine, hyper["momentum"], hyper["beta1"], hyper["beta2"],
            hyper["clip"] if self.any_clip else None, self.loss, self.loss_scale, self.optimizer,
            self.safeguard, self.eps, update + 1, self.task.readout_steps(batch.length), **self.cell_options, **reg)
        return loss, ClipStats(norm, clipped, fallback), delta_sq, v_sq, omega
