"""Population trainer: M runs in lockstep, one fused kernel call per update (DESIGN.md §5).

The models are of one cell of the registry per population (``RunConfig.cell``: Elman RNNs, LSTMs,
GRUs or diagonal linear recurrences), see :mod:`rnnlab.cells` and :mod:`rnnlab.nn.population`.

One update of the population (SPEC §2.3–2.5):

1. T from the population's length stream; each active model's batch from its own stream (drawn
   a few updates at a time for small populations, :mod:`rnnlab.train.batches`);
2. forward through :func:`rnnlab.nn.population.population_forward` with α (Ω's gradient is added
   to W_hh's gradient inside the fused backward) and a :class:`GradientSink`;
3. the sum of the models' losses is back-propagated once (model m's gradient is that of its own
   loss);
4. per-model clipping with the safeguard (:mod:`rnnlab.train.clipping`);
5. per-model optimizer update (:mod:`rnnlab.train.optim`);
6. per-model VEG flags of the update from the sink's [M, T, B] ‖δ_t‖² (:mod:`rnnlab.train.veg`).

Before the first update, the models with ``RunConfig.warmup`` are warmed up (SPEC §6.1,
:mod:`rnnlab.train.warmup`); the others start from their initialisation as drawn.

Every ``val_every`` updates the active models are validated on fresh sequences; a model whose
error is under the success threshold is frozen (it is no longer computed at all: the active
models are gathered into a compact population for each update, so finished models cost
nothing). Validation is chunked; a model that can no longer succeed stops counting chunks (its
estimate is its own, whatever models beside it), and validation stops once none can succeed.

With a :class:`rnnlab.train.checkpoint.Checkpointing` the population is saved every few minutes
and at its time limit, and a later call resumes it bit for bit (:mod:`rnnlab.train.checkpoint`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor

from ..cells import get_cell
from ..cells.projected import LAYOUT_OPTIONS
from ..nn.population import make_sink, population_forward, recurrent_radius
from ..tasks import rng
from . import checkpoint as ckpt
from .batches import TrainingBatches
from .checkpoint import Checkpointing, TrainingPaused
from .clipping import clip_gradients_
from .config import RunConfig, RunResult, check_compatible
from .fused_step import FusedStep, unsupported
from .init import init_population
from .optim import init_state, update_
from .schedules import cosine_lr, decayed_alpha
from .veg import VegCounter, VegRule
from .warmup import warm_up

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _hyper(configs: list[RunConfig], name: str, device, none_value: float = math.inf) -> Tensor:
    values = [getattr(c, name) for c in configs]
    return torch.tensor([none_value if v is None else float(v) for v in values], dtype=torch.float64, device=device)


class _Accumulator:
    """Per-model running sums over a validation interval and over the whole run."""

    def __init__(self, M: int, device):
        z = lambda: torch.zeros(M, dtype=torch.float64, device=device)  # noqa: E731
        self.loss, self.norm, self.omega, self.count = z(), z(), z(), z()
        self.norm_total, self.norm_count, self.clipped, self.fallbacks = z(), z(), z(), z()
        self.norm_max = torch.full((M,), -math.inf, dtype=torch.float64, device=device)

    def add(self, idx: Tensor, loss: Tensor, norm: Tensor, omega: Tensor, clipped: Tensor, fallback: Tensor) -> None:
        """Add one update of the models ``idx`` ([m] each). On the CPU one op call
        (``rnnlab::interval_sums_add``) computes what :meth:`add_in_torch` defines, bit for bit."""
        if self.norm_max.device.type == "cpu":
            sums = [self.loss, self.norm, self.omega, self.count, self.norm_total, self.norm_count, self.clipped, self.fallbacks]
            torch.ops.rnnlab.interval_sums_add(idx, loss, norm, omega, clipped, fallback, sums, self.norm_max)
            return
        self.add_in_torch(idx, loss, norm, omega, clipped, fallback)

    def add_in_torch(self, idx: Tensor, loss: Tensor, norm: Tensor, omega: Tensor, clipped: Tensor, fallback: Tensor) -> None:
        """:meth:`add` in torch ops: the definition (any device)."""
        finite = torch.isfinite(norm)
        safe_norm = torch.where(finite, norm, torch.zeros_like(norm)).double()
        self.loss.index_add_(0, idx, loss.double())
        self.norm.index_add_(0, idx, safe_norm)
        self.omega.index_add_(0, idx, omega.double())
        self.count.index_add_(0, idx, torch.ones_like(safe_norm))
        self.norm_total.index_add_(0, idx, safe_norm)
        self.norm_count.index_add_(0, idx, finite.double())
        self.clipped.index_add_(0, idx, clipped.double())
        self.fallbacks.index_add_(0, idx, fallback.double())
        self.norm_max[idx] = torch.maximum(self.norm_max[idx], safe_norm)

    def interval(self) -> dict[str, Tensor]:
        """Interval means [M] (NaN where a model took no update), then reset the interval."""
        n = self.count
        out = {k: getattr(self, k) / n for k in ("loss", "norm", "omega")}
        for k in ("loss", "norm", "omega", "count"):
            getattr(self, k).zero_()
        return out


#: the most memory one validation forward call keeps ([M, T, B] × the cell's state width × H values):
#: larger chunks are evaluated in blocks of models. A whole chunk of a big population at once
#: (1,000 sequences × 226 models × 50 steps of an LSTM's 4H projected inputs: 1.4 GB) spent more
#: time page-faulting fresh memory and missing caches than computing (measured: 2.3× slower).
VALIDATION_BLOCK_BYTES = 4 << 20


def _blocked_forward(params: dict[str, Tensor], x: Tensor, config: RunConfig, K: int) -> Tensor:
    """population_forward of ``x`` [M, T, B, I] in blocks of models of at most
    VALIDATION_BLOCK_BYTES of state (at least one model): the outputs [M, K, B, O] are bitwise
    those of one call, a model's result being independent of the models beside it. (Blocks of
    sequences are not used: a row's rounding may depend on the batch size through BLAS.)"""
    M, T, B, _ = x.shape
    per_model = T * B * get_cell(config.cell).state_width * config.hidden * x.element_size()
    per_model *= config.forward_options().get("num_layers", 1)
    models = max(1, VALIDATION_BLOCK_BYTES // per_model)

    def forward(m0: int) -> Tensor:
        return population_forward({n: v[m0:m0 + models] for n, v in params.items()}, x[m0:m0 + models],
                                  cell=config.cell, readout_steps=K, **config.forward_options())

    return forward(0) if models >= M else torch.cat([forward(m0) for m0 in range(0, M, models)], 0)


def validation_outputs(params: dict[str, Tensor], x: Tensor, config: RunConfig, K: int) -> Tensor:
    """The outputs [M, K, B, O] of the models ``params`` on ``x`` [M, T, B, I] without gradient: one
    call of the cell's evaluate op (``Cell.evaluate``: one plain layer on the CPU; each sequence's
    outputs independent of the models and sequences beside it), else population_forward in blocks
    of models."""
    record = get_cell(config.cell)
    options = config.forward_options()
    if (record.evaluate is None or x.device.type != "cpu" or options.get("num_layers", 1) != 1
            or options.get("double", False)):
        return _blocked_forward(params, x, config, K)
    names = record.shapes(1, 1, 1, 1, record.complete_options(options))
    cell_options = {k: v for k, v in options.items() if k not in LAYOUT_OPTIONS}
    return getattr(torch.ops.rnnlab, record.evaluate)(x.contiguous(), [params[n].contiguous() for n in names], K,
                                                       **cell_options)


@torch.no_grad()
def validate(task, params: dict[str, Tensor], keys: Tensor, ctx: dict[str, Tensor], config: RunConfig,
             round_: int, threshold: float) -> tuple[Tensor, Tensor]:
    """Validation loss and error rate [M] of the models ``params`` on fresh sequences.

    Chunks are evaluated in order. A model stops counting chunks once it has at least
    ``threshold``·val_size wrong sequences (it cannot succeed): its rates are estimated from its
    own chunks up to there, so they do not depend on the models validated beside it. Once every
    model has stopped, the remaining chunks are skipped.
    """
    dtype = _DTYPES[config.dtype]
    M = keys.shape[0]
    loss_sum = torch.zeros(M, dtype=torch.float64, device=keys.device)
    wrong = torch.zeros_like(loss_sum)
    seen = torch.zeros_like(loss_sum)
    counting = torch.ones(M, dtype=torch.bool, device=keys.device)
    for batch in task.validation_batches(keys, ctx, config.length_seed, round_, config.val_size, config.val_chunk, dtype):
        y = validation_outputs(params, batch.x, config, task.readout_steps(batch.length))
        n = batch.x.shape[2]
        loss_sum += torch.where(counting, task.loss(y, batch).double() * n, 0.0)
        wrong += torch.where(counting, task.sequence_errors(y, batch).sum(1).double(), 0.0)
        seen += torch.where(counting, float(n), 0.0)
        if task.fresh_validation:
            counting &= wrong < threshold * config.val_size
            if not bool(counting.any()):
                break
    return loss_sum / seen, wrong / seen


def train_population(
    configs: list[RunConfig],
    device: torch.device | str | None = None,
    callback: Callable[[dict], None] | None = None,
    keep_params: bool = True,
    time_limit_s: float | None = None,
    veg_rule: VegRule = VegRule(),
    checkpoint: Checkpointing | None = None,
) -> list[RunResult]:
    """Train the runs ``configs`` as one population of M = len(configs) models.

    Each model's data and initialisation depend only on its own ``seed`` (and the shared
    ``length_seed``), so a run gives the same result (up to floating-point reassociation) alone
    or inside any population.

    Args:
        configs: runs that agree on :data:`rnnlab.train.config.SHARED_FIELDS`.
        device: where to train (default: CPU).
        callback: called after every validation with a dict ``update``, ``active`` (number of
            models still training), ``val_error`` [M_active] list, ``elapsed_s`` and ``finished``,
            a list of ``(index, RunResult)`` for the runs that validation froze at success (their
            results are final, so a sweep can store them at once), ``params`` (every model's
            current weights, [M, ...], read-only: e.g. to analyse them over training); and after every update with
            ``update`` and ``active`` only (for progress bars).
        keep_params: store each model's final weights in ``RunResult.params`` (on the CPU).
        time_limit_s: wall-clock budget of this call. With ``checkpoint``, training saves a
            checkpoint and raises :class:`TrainingPaused` once it is exceeded (the validation
            schedule is untouched, so the resumed runs end exactly as uninterrupted ones).
            Without, the population is validated once more and training stops (results then
            depend on the machine's speed).
        veg_rule: thresholds of the per-update VEG flags (:class:`rnnlab.train.veg.VegRule`).
        checkpoint: where and how often to save the population; training resumes from the
            checkpoint if it exists (ValueError if it was written for other runs, VEG rule or
            ``keep_params``). The caller deletes it once the results are safe
            (:func:`rnnlab.train.checkpoint.remove`).
    Returns:
        one :class:`RunResult` per config, in order.
    Raises:
        TrainingPaused: ``checkpoint`` given and the time limit reached before the end.
    """
    check_compatible(configs)
    cfg = configs[0]
    device = torch.device(device or "cpu")
    dtype = _DTYPES[cfg.dtype]
    task = cfg.make_task()
    success_error = task.success_error if cfg.success_error is None else cfg.success_error
    M = len(configs)

    keys = rng.seed_keys([c.seed for c in configs], device)
    ctx = task.setup(keys)
    params = init_population(keys, [c.init for c in configs], task.n_in, cfg.hidden, task.n_out,
                             [c.init_gain for c in configs], dtype, cfg.cell, cfg.cell_kwargs)
    model_kw = {"cell": cfg.cell, **cfg.forward_options()}
    # the weight the clipping safeguard decays; None: it skips the update instead (SPEC §2.4)
    recurrent = get_cell(cfg.cell).recurrent_weight
    state = init_state(cfg.optimizer, params)
    h = {n: _hyper(configs, n, device).to(dtype) for n in ("lr", "lr_min", "momentum", "beta1", "beta2", "clip", "alpha", "alpha_decay")}
    any_clip = any(c.clip is not None for c in configs)
    # one fused op call per update where it covers the runs (rnnlab.train.fused_step), else autograd
    fused = None if unsupported(configs, task, device) else FusedStep(configs, task)
    batches = TrainingBatches(task, keys, ctx, cfg.length_seed, cfg.batch_size, dtype, cfg.val_every, cfg.max_updates)

    results = [RunResult(config=c, history={k: [] for k in ("update", "train_loss", "grad_norm", "omega", "val_loss", "val_error", "rho")})
               for c in configs]
    acc = _Accumulator(M, device)
    veg = VegCounter(M, veg_rule, device)
    active = torch.ones(M, dtype=torch.bool, device=device)
    last_delta_sq = None  # [M_active, T, B] ‖δ_t‖² of the latest update, profiled at validations
    updates = torch.zeros(M, dtype=torch.int64, device=device)
    finalized: set[int] = set()  # runs whose results are final (frozen at success)
    first_update, elapsed_before = 0, 0.0
    if checkpoint is not None:
        identity = ckpt.fingerprint(configs, veg_rule=veg_rule.to_dict(), keep_params=keep_params)
        if checkpoint.path.is_file():
            saved = ckpt.load(checkpoint.path, device)
            if saved["fingerprint"] != identity:
                raise ValueError(f"checkpoint {checkpoint.path} was saved by other runs (or another veg_rule or "
                                 f"keep_params): delete it or train these runs elsewhere")
            first_update, elapsed_before = saved["update"], saved["elapsed_s"]
            params, state, active, updates = saved["params"], saved["optimizer"], saved["active"], saved["updates"]
            ckpt.restore_fields(acc, saved["accumulator"])
            ckpt.restore_fields(veg, saved["veg"])
            for r, fields in zip(results, saved["results"]):
                ckpt.restore_fields(r, fields)
            finalized = set(saved["finalized"])
    if first_update == 0:  # SPEC §6.1: the warmed models' VAA* warm-up, before the first update
        for m, vaa_stars in warm_up(task, params, keys, ctx, configs).items():
            results[m].history["warmup_vaa_star"] = vaa_stars
    session_start = last_save = time.perf_counter()
    start = session_start - elapsed_before  # a resumed run's wall time continues its own
    # (subnormal gradients are flushed to zero inside every kernel call, csrc/torch/tiles.h: no global mode)
    idx = None  # the active models' indices, recomputed after a validation froze some (nothing else changes them)
    for k in range(first_update, cfg.max_updates):
        if idx is None:
            idx = active.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        compact = idx.numel() < M

        def sub(t: Tensor) -> Tensor:
            return t[idx] if compact else t

        batch = batches.get(k, idx if compact else None)
        T = batch.length
        if fused is not None:
            weights, opt_state = {n: sub(v) for n, v in params.items()}, {n: sub(v) for n, v in state.items()}
            loss, stats, delta_sq, omega = fused(weights, opt_state, {n: sub(v) for n, v in h.items()}, batch, k)
        else:
            p = {n: sub(v).detach().requires_grad_(True) for n, v in params.items()}
            sink = make_sink(idx.numel(), T, cfg.batch_size, dtype, device)
            alpha = decayed_alpha(sub(h["alpha"]), sub(h["alpha_decay"]), k)
            y = population_forward(p, batch.x, readout_steps=task.readout_steps(T),
                                   reg_weight=alpha if bool((alpha > 0).any()) else None, sink=sink, **model_kw)
            loss = task.loss(y, batch)
            loss.sum().backward()

            grads = {n: v.grad for n, v in p.items()}
            weights = {n: v.detach() for n, v in p.items()}
            stats = clip_gradients_(grads, weights[recurrent] if recurrent else None, sub(h["clip"]) if any_clip else None,
                                    cfg.safeguard, weight_hh_name=recurrent)
            lr = sub(h["lr"]) if cfg.lr_schedule == "constant" else cosine_lr(sub(h["lr"]), sub(h["lr_min"]), k, cfg.max_updates)
            opt_state = {n: sub(v) for n, v in state.items()}
            update_(cfg.optimizer, weights, grads, opt_state, lr, momentum=sub(h["momentum"]), beta1=sub(h["beta1"]),
                    beta2=sub(h["beta2"]), eps=cfg.eps, step=k + 1)
            omega, delta_sq = sink.omega.detach(), sink.delta_sq.detach()
        if compact:  # write the compact copies back; otherwise the updates were in place
            for n, v in weights.items():
                params[n][idx] = v
            for n, v in opt_state.items():
                state[n][idx] = v
        acc.add(idx, loss.detach(), stats.norm, omega, stats.clipped, stats.fallback)
        veg.add(idx, delta_sq, stats.norm, k)
        last_delta_sq = delta_sq
        updates[idx] = k + 1

        out_of_time = time_limit_s is not None and time.perf_counter() - session_start > time_limit_s
        if (k + 1) % cfg.val_every == 0 or k + 1 == cfg.max_updates or (out_of_time and checkpoint is None):
            newly_done = _validation_step(task, params, keys, ctx, cfg, idx, k + 1, acc, last_delta_sq, results,
                                          active, success_error, time.perf_counter() - start, model_kw)
            _finalize(newly_done, results, params, acc, veg, updates, keep_params, model_kw)
            finalized.update(newly_done)
            if callback is not None:
                callback({"update": k + 1, "active": int(active.sum()), "elapsed_s": time.perf_counter() - start,
                          "val_error": [results[m].final_error for m in idx.tolist()],
                          "finished": [(m, results[m]) for m in newly_done], "params": params})
            if newly_done:
                idx = None
        elif callback is not None:
            callback({"update": k + 1, "active": idx.numel()})
        now = time.perf_counter()
        if (checkpoint is not None and (out_of_time or now - last_save >= checkpoint.every_s)
                and k + 1 < cfg.max_updates and bool(active.any())):
            ckpt.save(checkpoint, {
                "fingerprint": identity, "update": k + 1, "elapsed_s": now - start, "params": params,
                "optimizer": state, "accumulator": ckpt.tensor_fields(acc), "veg": ckpt.tensor_fields(veg),
                "active": active, "updates": updates, "finalized": sorted(finalized),
                "results": [ckpt.result_fields(r) for r in results],
            }, {"update": k + 1, "max_updates": cfg.max_updates, "models": M, "active": int(active.sum()),
                "elapsed_s": now - start, "updates_per_s": (k + 1 - first_update) / max(now - session_start, 1e-9)})
            last_save = time.perf_counter()
            if out_of_time:
                raise TrainingPaused(k + 1, checkpoint.path)
        if out_of_time:
            break

    elapsed = time.perf_counter() - start
    unfinished = [m for m in range(M) if m not in finalized]
    for m in unfinished:
        results[m].wall_time_s = elapsed
    _finalize(unfinished, results, params, acc, veg, updates, keep_params, model_kw)
    return results


def _finalize(models: list[int], results, params, acc, veg, updates, keep_params: bool, model_kw: dict) -> None:
    """Fill the end-of-run fields of the runs ``models`` (frozen at success, or at the end)."""
    if not models:
        return
    idx = torch.tensor(models, device=updates.device)
    rho = recurrent_radius({n: v[idx] for n, v in params.items()}, **model_kw)
    for j, m in enumerate(models):
        r = results[m]
        r.updates = int(updates[m])
        n = float(acc.norm_count[m])
        r.grad_norm_mean = float(acc.norm_total[m]) / n if n else math.nan
        r.grad_norm_max = float(acc.norm_max[m]) if n else math.nan
        r.clip_fraction = float(acc.clipped[m]) / max(r.updates, 1)
        r.fallbacks = int(acc.fallbacks[m])
        r.rho_final = float(rho[j])
        r.veg_steps, r.vanishing_steps, r.exploding_steps = (int(t[m]) for t in (veg.steps, veg.vanishing, veg.exploding))
        if keep_params:
            r.params = {n: v[m].detach().cpu().clone() for n, v in params.items()}


def _validation_step(task, params, keys, ctx, cfg, idx, update, acc, last_delta_sq, results, active, success_error, elapsed,
                     model_kw):
    """Validate the models ``idx``, log their interval statistics, freeze the successful ones.
    Returns the models frozen by this validation."""
    sub_params = {n: v[idx] for n, v in params.items()}
    val_loss, val_error = validate(task, sub_params, keys[idx], {n: v[idx] for n, v in ctx.items()}, cfg,
                                   math.ceil(update / cfg.val_every), success_error)
    rho = recurrent_radius(sub_params, **model_kw)
    interval = acc.interval()
    T, profile = last_delta_sq.shape[1], last_delta_sq.mean(2).sqrt()
    frozen = []
    for j, m in enumerate(idx.tolist()):
        r = results[m]
        loss_m, err_m = float(val_loss[j]), float(val_error[j])
        for key, value in (("update", update), ("train_loss", float(interval["loss"][m])), ("grad_norm", float(interval["norm"][m])),
                           ("omega", float(interval["omega"][m])), ("val_loss", loss_m), ("val_error", err_m), ("rho", float(rho[j]))):
            r.history[key].append(value)
        r.grad_profiles.append({"update": update, "length": T, "delta_norm": profile[j].tolist()})
        r.final_loss, r.final_error, r.train_loss = loss_m, err_m, float(interval["loss"][m])
        r.best_error = err_m if math.isnan(r.best_error) else min(r.best_error, err_m)
        if err_m < success_error and math.isfinite(loss_m) and not r.success:
            r.success, r.updates_to_success = True, update
            if cfg.stop_at_success:
                active[m] = False
                r.wall_time_s = elapsed
                frozen.append(m)
    return frozen


def train(config: RunConfig, device: torch.device | str | None = None, callback=None, keep_params: bool = True,
          time_limit_s: float | None = None, checkpoint: Checkpointing | None = None) -> RunResult:
    """Train one run (a population of one); see :func:`train_population`."""
    return train_population([config], device, callback, keep_params, time_limit_s, checkpoint=checkpoint)[0]
