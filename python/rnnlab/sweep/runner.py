"""Running a sweep: expand, skip finished runs, pack, train, store (DESIGN.md §5).

Backends:

* ``embedded`` (default): this process trains one population after the other on ``device``
  (the CPU with all of torch's threads, or one GPU);
* ``ray``: each population is a Ray task (``pip install ray``); the driver — this process —
  writes the rows, so the SQLite file has a single writer. ``ray_address=None`` starts a local
  cluster; pass an address (or set ``RAY_ADDRESS``) to use an existing one. Every task asks
  for ``cpus_per_task`` CPUs (and one GPU when ``device`` is CUDA), so Ray spreads populations
  over the GPUs and machines it has.

Both backends commit a run's row as soon as the run is final: at the validation that freezes it
at success, or when its population ends. On Ray the workers put the rows into a mailbox actor
that the driver empties every :data:`RAY_POLL_S` seconds. A sweep killed at any point loses only
the runs that were still training (and, on Ray, rows not yet taken from the mailbox);
``run_sweep`` on the same file trains exactly the runs that have no row.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import torch

from ..train import train_population
from .pack import RunGroup, pack
from .record import VegRule, make_row
from .spec import Run, SweepSpec
from .store import ResultStore

BACKENDS = ("embedded", "ray")

#: how often the Ray driver takes finished rows from the workers while it waits for populations.
RAY_POLL_S = 1.0


class Progress:
    """Runs done, models per second and time left, on a tqdm bar when tqdm is installed and the
    stream is a terminal, else as a printed line at most every ``every_s`` seconds (log files).

    ``models per second`` is model-updates per second: every update of every model still
    training counts once (finished models cost nothing and count nothing).
    """

    def __init__(self, total: int, enabled: bool = True, every_s: float = 10.0, stream=sys.stderr):
        self.total, self.done, self.model_updates = total, 0, 0
        self.start = time.perf_counter()
        self.enabled, self.every_s, self.stream = enabled, every_s, stream
        self._last_print = 0.0
        self._bar = None
        if enabled and getattr(stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="run", file=stream, dynamic_ncols=True, smoothing=0.05)

    def rates(self) -> dict:
        """``elapsed_s``, ``runs_per_s``, ``model_updates_per_s`` and ``eta_s`` (None until a run finished)."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        runs_per_s = self.done / elapsed
        eta = (self.total - self.done) / runs_per_s if self.done else None
        return {"elapsed_s": elapsed, "runs_per_s": runs_per_s, "model_updates_per_s": self.model_updates / elapsed, "eta_s": eta}

    def on_update(self, active: int) -> None:
        self.model_updates += active
        self._refresh()

    def on_runs(self, n: int, model_updates: int = 0) -> None:
        self.done += n
        self.model_updates += model_updates
        if self._bar is not None:
            self._bar.update(n)
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last_print < (0.5 if self._bar is not None else self.every_s):
            return
        self._last_print = now
        r = self.rates()
        if self._bar is not None:
            self._bar.set_postfix_str(f"{r['model_updates_per_s']:,.0f} model-updates/s", refresh=True)
        else:
            eta = "?" if r["eta_s"] is None else f"{r['eta_s'] / 60:.1f} min"
            print(f"[sweep] {self.done}/{self.total} runs, {r['model_updates_per_s']:,.0f} model-updates/s, "
                  f"{r['runs_per_s'] * 60:.1f} runs/min, time left {eta}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def train_rows(runs: list[Run], population_id: str, device: str, backend: str,
               on_update: Callable[[int], None] | None = None, veg_rule: VegRule = VegRule(),
               on_rows: Callable[[list[dict]], None] | None = None, save_params: bool = False) -> list[dict]:
    """Train ``runs`` as one population with :func:`rnnlab.train.train_population`; their rows
    (with each run's trained weights when ``save_params``).

    ``on_update(active)`` is called after every update with the number of models still training.
    ``on_rows(rows)`` is called with the rows of runs as soon as they are final: the runs a
    validation froze at success, during training, and the rest when the population ends. Without
    it every row is returned at the end.
    """
    def row(i: int, result) -> dict:
        return make_row(runs[i], result, population_id=population_id, population_size=len(runs), backend=backend,
                        device=str(device), rule=veg_rule)

    emitted: set[int] = set()

    def callback(event: dict) -> None:
        if on_update is not None:
            on_update(event["active"])
        if on_rows is not None and event.get("finished"):
            on_rows([row(i, res) for i, res in event["finished"]])
            emitted.update(i for i, _ in event["finished"])

    results = train_population([r.config for r in runs], device, callback=callback, keep_params=save_params,
                               veg_rule=veg_rule)
    rows = [row(i, res) for i, res in enumerate(results) if i not in emitted]
    if on_rows is not None:
        on_rows(rows)
    return rows


def _run_embedded(groups: list[RunGroup], device: str, commit: Callable[..., None], progress: Progress,
                  veg_rule: VegRule, save_params: bool) -> None:
    """Populations one after the other in this process; each run's row is committed as soon as
    the run is final (progress.on_update counts the model-updates as they happen)."""
    for group in groups:
        train_rows(group.runs, group.population_id, device, "embedded", progress.on_update, veg_rule, on_rows=commit,
                   save_params=save_params)


class RowMailbox:
    """Rows on their way from the Ray workers to the driver (run as a Ray actor).

    ``put`` is called synchronously by the workers, so once a task has returned every row it
    produced is here; ``take`` empties the mailbox in one call.
    """

    def __init__(self):
        self._rows: list[dict] = []

    def put(self, rows: list[dict]) -> None:
        self._rows.extend(rows)

    def take(self) -> list[dict]:
        rows, self._rows = self._rows, []
        return rows


def _run_ray(groups: list[RunGroup], device: str, commit: Callable[..., None], veg_rule: VegRule,
             ray_address: str | None, cpus_per_task: int, num_cpus: int | None, save_params: bool) -> None:
    """Populations as Ray tasks. Each worker hands its rows to a :class:`RowMailbox` as the runs
    become final; the driver commits them with ``commit(rows, count_updates=True)`` while it
    waits for the tasks (the workers cannot report single updates to the driver's progress bar,
    so a run's updates count when its row is stored)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray backend needs Ray: pip install 'rnnlab[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=ray_address, num_cpus=num_cpus if ray_address is None else None, include_dashboard=False,
                 log_to_driver=False)
    gpus = 1 if torch.device(device).type == "cuda" else 0

    @ray.remote(num_cpus=cpus_per_task, num_gpus=gpus)
    def population_task(runs, population_id, mailbox) -> None:
        torch.set_num_threads(cpus_per_task)

        def send(rows: list[dict]) -> None:
            if rows:  # waiting for the put keeps the order "rows in the mailbox, then the task is done"
                ray.get(mailbox.put.remote(rows))

        train_rows(runs, population_id, device, "ray", veg_rule=veg_rule, on_rows=send, save_params=save_params)

    # num_cpus=0: an actor that waited for a CPU held by the tasks writing to it would deadlock them
    mailbox = ray.remote(num_cpus=0)(RowMailbox).remote()
    try:
        # longest first: with fewer workers than populations this bounds the idle tail
        ordered = sorted(groups, key=lambda g: -g.cost)
        pending = [population_task.remote(g.runs, g.population_id, mailbox) for g in ordered]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=RAY_POLL_S)
            # taken after the wait: the mailbox holds every row of the tasks in ``ready``
            rows = ray.get(mailbox.take.remote())
            if rows:
                commit(rows, count_updates=True)
            ray.get(ready)  # a failed task raises here, once the rows taken above are stored
    finally:
        ray.kill(mailbox)
        if started_here:
            ray.shutdown()


def run_sweep(
    spec: SweepSpec,
    db_path: str,
    *,
    backend: str | None = None,
    device: str | None = None,
    max_population: int | None = None,
    memory_fraction: float | None = None,
    progress: bool = True,
    veg_rule: VegRule = VegRule(),
    ray_address: str | None = None,
    cpus_per_task: int = 1,
    num_cpus: int | None = None,
    threads: int | None = None,
    save_params: bool | None = None,
) -> dict:
    """Train every run of ``spec`` that ``db_path`` has no row for; one row per run.

    Arguments left as None come from the spec's ``[engine]`` table, then from the defaults
    (embedded backend, CPU, :mod:`rnnlab.sweep.pack` sizes, memory_fraction 0.5).

    Args:
        threads: torch CPU threads of the embedded backend (default: torch's own choice). On a
            busy machine 1 thread is often much faster for small models: every parallel region
            waits for all its threads to be scheduled.
        ray_address, cpus_per_task, num_cpus: Ray backend only (see the module docstring);
            ``num_cpus`` limits a local cluster.
        save_params: also store each run's trained weights, in the same transaction as its row
            (:meth:`rnnlab.sweep.ResultStore.params`); needed by the post-training analyses.
    Returns:
        dict: ``planned``, ``skipped`` (already stored), ``trained``, ``populations``, and the
        progress rates (``elapsed_s``, ``model_updates_per_s`` …).
    """
    eng = spec.engine
    backend = backend or eng.get("backend", "embedded")
    device = device or eng.get("device", "cpu")
    max_population = max_population or eng.get("max_population")
    memory_fraction = memory_fraction or eng.get("memory_fraction", 0.5)
    threads = threads or eng.get("threads")
    save_params = eng.get("save_params", False) if save_params is None else save_params
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but torch sees no CUDA device")

    runs = spec.expand()
    with ResultStore(db_path) as store:
        store.add_plan(spec.name, runs)
        store.set_meta(f"spec:{spec.name}", spec.to_dict())
        store.set_meta("veg_rule", veg_rule.to_dict())
        done = store.done_ids()
        todo = [r for r in runs if r.run_id not in done]
        groups = pack(todo, device, max_population, memory_fraction)
        bar = Progress(len(todo), enabled=progress)

        def commit(rows: list[dict], count_updates: bool = False) -> None:
            # only rows the store did not have count: a Ray task retried after a worker died
            # hands out the rows of its early runs a second time
            added = [row for row in rows if store.add(row, spec.name)]
            bar.on_runs(len(added), sum(r["updates"] for r in added) if count_updates else 0)

        try:  # with nothing left to train, no backend is started
            if groups and backend == "embedded":
                if threads:
                    torch.set_num_threads(threads)
                _run_embedded(groups, device, commit, bar, veg_rule, save_params)
            elif groups:
                _run_ray(groups, device, commit, veg_rule, ray_address or os.environ.get("RAY_ADDRESS"),
                         cpus_per_task, num_cpus, save_params)
        finally:
            bar.close()
        return {"planned": len(runs), "skipped": len(runs) - len(todo), "trained": bar.done,
                "populations": len(groups), **bar.rates()}
