"""One run's hyper-parameters (:class:`RunConfig`) and outcome (:class:`RunResult`).

A population trains several runs in lockstep; runs can share a population when they agree on
every field in :data:`SHARED_FIELDS` (same task, model size, optimizer kind, batch size,
budget, validation protocol, length stream and dtype). The other fields are per model: seed,
initialisation, learning rate, momentum/betas, clipping threshold, α and its decay.
:func:`population_key` gives the tuple a sweep engine can group runs by.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from ..cells import get_cell, names
from ..tasks import make_task
from .optim import OPTIMIZERS

#: fields that must be equal for runs packed into one population.
SHARED_FIELDS = (
    "task", "task_kwargs", "cell", "cell_kwargs", "hidden", "nonlinearity", "optimizer", "lr_schedule", "eps", "batch_size", "safeguard",
    "max_updates", "val_every", "val_size", "val_chunk", "success_error", "stop_at_success", "length_seed", "dtype",
    "warmup_steps",
)
#: fields added after run ids existed, with their defaults: a run at these defaults keeps its id
#: (:func:`rnnlab.sweep.spec.run_id` leaves them out).
LATER_FIELDS = {"warmup": False, "warmup_steps": 100, "warmup_lr": 1e-2}
LR_SCHEDULES = ("constant", "cosine")
DTYPES = ("float32", "float64")
#: cell options that a RunConfig holds as fields of its own instead of in ``cell_kwargs`` (Elman's
#: φ was a field before cell_kwargs existed; run ids hash it as one).
OPTION_FIELDS = ("nonlinearity",)


def _titles(where) -> str:
    """The titles of the cells satisfying ``where``, for messages ("Elman")."""
    return " / ".join(get_cell(name).title for name in names(where))


@dataclass
class RunConfig:
    """The hyper-parameters of one training run (defaults: Pascanu et al.'s temporal order
    setting of SPEC §2.3, Fig. 7, with MSGD-C: basic_tanh, 50 units, lr 0.01, batch 20, τ = 1).

    Attributes:
        task, task_kwargs: :func:`rnnlab.tasks.make_task` arguments (lengths go in task_kwargs).
        cell: a name of :data:`rnnlab.cells.CELLS` (``elman``, ``lstm``, ``gru``, ``diag``).
            cell_kwargs: the cell's options and init options other than :data:`OPTION_FIELDS`
            (``Cell.options``, ``Cell.init_options``: the diagonal cell's ``parametrization``,
            ``gamma``, ``r_min``, ``r_max``, ``max_phase``; see :class:`rnnlab.LRU`); empty for
            the cells without any.
        hidden: H. nonlinearity: Elman's φ, or None for the init's own (sigmoid for ``sigmoid``,
            else tanh); must stay None for the cells without that option.
        init, init_gain: the name of one of the cell's initialisations (None: its default,
            basic_tanh / orthogonal / ring) and the gain g multiplying its recurrent weight W_hh.
        optimizer: ``sgd``, ``momentum`` or ``adam``; lr, momentum, beta1, beta2, eps as usual.
        lr_schedule: ``constant`` or ``cosine`` (to ``lr_min`` at ``max_updates``, SPEC §4.2).
        clip: τ of SPEC §2.4, or None for no clipping. safeguard: the NaN/Inf/1e10 fallback.
        alpha: α of Ω (SPEC §2.5; 0 disables). alpha_decay: t₀ of α/(1 + t/t₀), or None.
        max_updates: budget. val_every: validate every this many updates, on val_size fresh
            sequences in chunks of val_chunk (SPEC §2.2–2.3).
        success_error: the error rate under which a run succeeds (None: the task's, 1 %).
        stop_at_success: freeze a model once it succeeds (SPEC §2.3 stopping).
        seed: the model's seed (its data and its initialisation). length_seed: seed of the
            sequence-length stream shared by a population.
        warmup: warm this model up before training (Lambrechts et al.'s VAA* warm-up, SPEC §6.1,
            :mod:`rnnlab.train.warmup`): warmup_steps Adam steps (shared) at warmup_lr (per model).
            The stack is in ``cell_kwargs``: ``num_layers`` and ``double`` (two half-width cells
            per layer, of which warm-up warms the first).
    """

    task: str = "torder"
    task_kwargs: dict = field(default_factory=dict)
    cell: str = "elman"
    cell_kwargs: dict = field(default_factory=dict)
    hidden: int = 50
    nonlinearity: str | None = None
    init: str | None = None
    init_gain: float = 1.0
    optimizer: str = "sgd"
    lr: float = 0.01
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    batch_size: int = 20
    clip: float | None = 1.0
    safeguard: bool = True
    alpha: float = 0.0
    alpha_decay: float | None = None
    max_updates: int = 100_000
    val_every: int = 1_000
    val_size: int = 10_000
    val_chunk: int = 1_000
    success_error: float | None = None
    stop_at_success: bool = True
    seed: int = 0
    length_seed: int = 0
    dtype: str = "float32"
    warmup: bool = False
    warmup_steps: int = LATER_FIELDS["warmup_steps"]
    warmup_lr: float = LATER_FIELDS["warmup_lr"]

    def __post_init__(self):
        cell = get_cell(self.cell)
        if self.init is None:
            self.init = cell.default_init
        cell.check_init(self.init)
        allowed = set(cell.options) - set(OPTION_FIELDS) | set(cell.init_options)
        unknown = sorted(set(self.cell_kwargs) - allowed)
        if unknown:
            raise ValueError(f"cell_kwargs {unknown} are not options of cell={self.cell!r}; allowed: {sorted(allowed)}")
        for name in OPTION_FIELDS:
            if name in cell.options:
                if getattr(self, name) is None:
                    setattr(self, name, cell.options_for_init(self.init)[name])
            elif getattr(self, name) is not None:
                raise ValueError(f"{name} is an {_titles(lambda c: name in c.options)} option; cell={self.cell!r} needs "
                                 f"{name}=None, got {getattr(self, name)!r}")
        cell.complete_options(self.forward_options())
        cell.complete_init_options(self.cell_kwargs)
        cell.param_shapes(1, 1, self.hidden, 1, **self.forward_options())  # a layout H allows (double: even)
        if not isinstance(self.warmup, bool):
            raise ValueError(f"warmup must be True or False, got {self.warmup!r}")
        if self.warmup and cell.layer is None:
            raise ValueError(f"warmup needs a cell with layers (VAA*, SPEC §6.1); cell={self.cell!r} has none")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if not self.warmup_lr > 0:
            raise ValueError(f"warmup_lr must be > 0, got {self.warmup_lr!r}")
        if self.alpha != 0 and not cell.omega:
            raise ValueError(f"alpha (Ω's gradient, SPEC §2.5) is fused into the {_titles(lambda c: c.omega)} backward only; "
                             f"cell={self.cell!r} needs alpha=0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("hidden", "batch_size", "max_updates", "val_every", "val_size", "val_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or None (no clipping), got {self.clip!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        if self.alpha_decay is not None and not self.alpha_decay > 0:
            raise ValueError(f"alpha_decay must be > 0 or None, got {self.alpha_decay!r}")
        if not 0 <= self.seed < 2**64 or not 0 <= self.length_seed < 2**64:
            raise ValueError(f"seed and length_seed must be in [0, 2**64), got {self.seed}, {self.length_seed}")

    def make_task(self):
        return make_task(self.task, **self.task_kwargs)

    def forward_options(self) -> dict:
        """The cell's options for :func:`rnnlab.nn.population.population_forward`."""
        options = get_cell(self.cell).options
        own = {name: getattr(self, name) for name in OPTION_FIELDS if name in options}
        return {**{k: v for k, v in self.cell_kwargs.items() if k in options}, **own}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def population_key(config: RunConfig) -> str:
    """A string equal for exactly the configs that can share a population (:data:`SHARED_FIELDS`)."""
    return json.dumps({f: getattr(config, f) for f in SHARED_FIELDS}, sort_keys=True, default=str)


def check_compatible(configs: list[RunConfig]) -> None:
    """Raise ValueError naming the first shared field on which ``configs`` disagree."""
    if not configs:
        raise ValueError("configs must hold at least one RunConfig")
    for c in configs:
        if not isinstance(c, RunConfig):
            raise TypeError(f"configs must be RunConfig instances, got {type(c).__name__}")
    for f in SHARED_FIELDS:
        values = {json.dumps(getattr(c, f), sort_keys=True, default=str) for c in configs}
        if len(values) > 1:
            raise ValueError(f"runs in one population must share {f!r}; got {sorted(values)}")


@dataclass
class RunResult:
    """The outcome of one run.

    Attributes:
        success: validation error fell under the success threshold (SPEC §2.3).
        updates: updates this model took (it stops updating at success).
        updates_to_success: the update count at the validation that succeeded, or None.
        final_loss, final_error: the last validation's loss and error rate; best_error the lowest.
        train_loss: mean training loss over the last validation interval.
        grad_norm_mean, grad_norm_max: pre-clipping global gradient norm over all updates
            (non-finite norms excluded from the mean, counted in fallbacks).
        clip_fraction: the fraction of updates that were clipped; fallbacks: safeguard count.
        rho_final: the cell's recurrent radius at the end (ρ(W_hh), max|λ| for the diagonal
            cell, NaN for the LSTM and the GRU).
        wall_time_s: population time until this run finished.
        veg_steps, vanishing_steps, exploding_steps: updates checked and flagged vanishing /
            exploding by the per-update VEG test (:mod:`rnnlab.train.veg`).
        history: per validation: ``update``, ``train_loss``, ``grad_norm`` (interval mean),
            ``omega`` (interval mean Ω), ``val_loss``, ``val_error``, ``rho``.
        grad_profiles: per validation: ``update``, ``length`` T and ``delta_norm`` (T values of
            sqrt(mean_b ‖∂L/∂h_t‖²) from the last training update before it).
        params: the final weights of this model (name -> tensor without the M dimension), or None.
    """

    config: RunConfig
    success: bool = False
    updates: int = 0
    updates_to_success: int | None = None
    final_loss: float = math.nan
    final_error: float = math.nan
    best_error: float = math.nan
    train_loss: float = math.nan
    grad_norm_mean: float = math.nan
    grad_norm_max: float = math.nan
    clip_fraction: float = 0.0
    fallbacks: int = 0
    rho_final: float = math.nan
    wall_time_s: float = 0.0
    veg_steps: int = 0
    vanishing_steps: int = 0
    exploding_steps: int = 0
    history: dict = field(default_factory=dict)
    grad_profiles: list = field(default_factory=list)
    params: dict | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready fields (the weights in ``params`` are left out)."""
        return {f.name: dataclasses.asdict(self)[f.name] if f.name == "config" else getattr(self, f.name)
                for f in dataclasses.fields(self) if f.name != "params"}
