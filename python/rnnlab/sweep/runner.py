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

Populations still training are checkpointed every ``checkpoint_every_s`` seconds beside the file
(:attr:`rnnlab.sweep.ResultStore.checkpoint_dir`); a later ``run_sweep`` resumes each one from its
checkpoint, with the same runs, and its runs end exactly as if never interrupted. A checkpoint is
deleted once every row of its population is stored. With ``time_limit_s`` the sweep checkpoints
and stops when the time is up, so a long study is carried across sittings: each population in
turn gets an equal share of the time left, so every population advances in every sitting.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..train import train_population
from ..train import checkpoint as ckpt
from ..train.checkpoint import Checkpointing, TrainingPaused
from ..train.memory import retain_freed_memory
from .pack import RunGroup, group_key, pack
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
               on_rows: Callable[[list[dict]], None] | None = None, save_params: bool = False,
               checkpoint: Checkpointing | None = None, time_limit_s: float | None = None) -> list[dict]:
    """Train ``runs`` as one population with :func:`rnnlab.train.train_population`; their rows
    (with each run's trained weights when ``save_params``).

    ``checkpoint`` and ``time_limit_s`` go to the trainer, which resumes from the checkpoint if it
    exists and raises :class:`rnnlab.train.checkpoint.TrainingPaused` at the time limit (the rows
    of the runs already final have then been handed to ``on_rows``); the caller deletes the
    checkpoint once the rows are stored.

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
                               veg_rule=veg_rule, time_limit_s=time_limit_s, checkpoint=checkpoint)
    # after a resume the runs final before the interruption are here again: the store skips rows it has
    rows = [row(i, res) for i, res in enumerate(results) if i not in emitted]
    if on_rows is not None:
        on_rows(rows)
    return rows


def _checkpointing(checkpoint_dir: Path, group: RunGroup, every_s: float) -> Checkpointing:
    """The checkpoint of ``group``: keyed by its population id, its run ids in the summary so
    that a later sweep rebuilds the same population (:func:`_resumable`)."""
    return Checkpointing(checkpoint_dir / f"{group.population_id}.pt", every_s,
                         info={"population_id": group.population_id, "run_ids": [r.run_id for r in group.runs]})


def _say_paused(paused: TrainingPaused, group: RunGroup) -> None:
    print(f"[sweep] time limit: population {group.population_id} paused at update {paused.update:,} of "
          f"{group.runs[0].config.max_updates:,}, checkpoint {paused.path}; run the same command to continue",
          file=sys.stderr, flush=True)


def _run_embedded(groups: list[RunGroup], device: str, commit: Callable[..., None], progress: Progress,
                  veg_rule: VegRule, save_params: bool, checkpoint_dir: Path, checkpoint_every_s: float,
                  deadline: float | None) -> int:
    """Populations one after the other in this process; each run's row is committed as soon as
    the run is final (progress.on_update counts the model-updates as they happen). With a
    ``deadline`` (time.monotonic()) each population gets an equal share of the time left (past
    the deadline: one update, so that every population has a checkpoint that status can show).
    Returns how many populations were paused."""
    paused = 0
    for left, group in zip(range(len(groups), 0, -1), groups):
        share = None if deadline is None else max(0.0, deadline - time.monotonic()) / left
        checkpoint = _checkpointing(checkpoint_dir, group, checkpoint_every_s)
        try:
            train_rows(group.runs, group.population_id, device, "embedded", progress.on_update, veg_rule, on_rows=commit,
                       save_params=save_params, checkpoint=checkpoint, time_limit_s=share)
        except TrainingPaused as e:
            _say_paused(e, group)
            paused += 1
        else:
            ckpt.remove(checkpoint.path)
    return paused


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
             ray_address: str | None, cpus_per_task: int, num_cpus: int | None, save_params: bool,
             checkpoint_dir: Path, checkpoint_every_s: float, deadline: float | None) -> int:
    """Populations as Ray tasks. Each worker hands its rows to a :class:`RowMailbox` as the runs
    become final; the driver commits them with ``commit(rows, count_updates=True)`` while it
    waits for the tasks (the workers cannot report single updates to the driver's progress bar,
    so a run's updates count when its row is stored). The workers write their checkpoints
    (``checkpoint_dir`` must be reachable from them: a local cluster or a shared file system);
    the driver deletes one once it has stored the rows of its finished task. A ``deadline``
    (time.time(), shared by the machines) pauses every population still training then. Returns
    how many populations were paused."""
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
    def population_task(group, mailbox) -> bool:
        """Train one population; True if the deadline paused it."""
        torch.set_num_threads(cpus_per_task)
        retain_freed_memory()  # a worker process is rnnlab's own (rnnlab.train.memory)

        def send(rows: list[dict]) -> None:
            if rows:  # waiting for the put keeps the order "rows in the mailbox, then the task is done"
                ray.get(mailbox.put.remote(rows))

        time_left = None if deadline is None else max(0.0, deadline - time.time())
        try:
            train_rows(group.runs, group.population_id, device, "ray", veg_rule=veg_rule, on_rows=send,
                       save_params=save_params, checkpoint=_checkpointing(checkpoint_dir, group, checkpoint_every_s),
                       time_limit_s=time_left)
        except TrainingPaused as e:
            _say_paused(e, group)
            return True
        return False

    # num_cpus=0: an actor that waited for a CPU held by the tasks writing to it would deadlock them
    mailbox = ray.remote(num_cpus=0)(RowMailbox).remote()
    try:
        # longest first: with fewer workers than populations this bounds the idle tail
        ordered = sorted(groups, key=lambda g: -g.cost)
        tasks = {population_task.remote(g, mailbox): g for g in ordered}
        pending, paused = list(tasks), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=RAY_POLL_S)
            # taken after the wait: the mailbox holds every row of the tasks in ``ready``
            rows = ray.get(mailbox.take.remote())
            if rows:
                commit(rows, count_updates=True)
            for ref in ready:  # a failed task raises here, once the rows taken above are stored
                if ray.get(ref):
                    paused += 1
                else:
                    ckpt.remove(_checkpointing(checkpoint_dir, tasks[ref], checkpoint_every_s).path)
        return paused
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
    time_limit_s: float | None = None,
    checkpoint_every_s: float = ckpt.DEFAULT_EVERY_S,
) -> dict:
    """Train every run of ``spec`` that ``db_path`` has no row for; one row per run.

    Arguments left as None come from the spec's ``[engine]`` table, then from the defaults
    (embedded backend, CPU, :mod:`rnnlab.sweep.pack` sizes, memory_fraction 0.5).

    Args:
        threads: torch CPU threads of the embedded backend (default: torch's own choice), for
            this call only (the caller's count is restored). On a busy machine 1 thread is often
            much faster for small models: every parallel region waits for all its threads.
        ray_address, cpus_per_task, num_cpus: Ray backend only (see the module docstring);
            ``num_cpus`` limits a local cluster.
        save_params: also store each run's trained weights, in the same transaction as its row
            (:meth:`rnnlab.sweep.ResultStore.params`); needed by the post-training analyses.
        time_limit_s: wall-clock budget of this call: populations still training then are
            checkpointed and paused (see the module docstring); None: train to the end.
        checkpoint_every_s: seconds between checkpoints of a training population.
    Returns:
        dict: ``planned``, ``skipped`` (already stored), ``trained``, ``populations``, ``resumed``
        (populations continued from a checkpoint), ``paused`` (populations stopped by the time
        limit, to be continued), and the progress rates (``elapsed_s``, ``model_updates_per_s`` …).
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
    if time_limit_s is not None and not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0 seconds or None, got {time_limit_s!r}")
    if not checkpoint_every_s > 0:
        raise ValueError(f"checkpoint_every_s must be > 0 seconds, got {checkpoint_every_s!r}")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but torch sees no CUDA device")

    runs = spec.expand()
    with ResultStore(db_path) as store:
        store.add_plan(spec.name, runs)
        store.set_meta(f"spec:{spec.name}", spec.to_dict())
        store.set_meta("veg_rule", veg_rule.to_dict())
        done = store.done_ids()
        todo = [r for r in runs if r.run_id not in done]
        resumed = _resumable(store, runs, done)
        in_checkpoints = {r.run_id for g in resumed for r in g.runs}
        groups = resumed + pack([r for r in todo if r.run_id not in in_checkpoints], device, max_population, memory_fraction)
        bar = Progress(len(todo), enabled=progress)

        def commit(rows: list[dict], count_updates: bool = False) -> None:
            # only rows the store did not have count: a Ray task retried after a worker died
            # hands out the rows of its early runs a second time
            added = [row for row in rows if store.add(row, spec.name)]
            bar.on_runs(len(added), sum(r["updates"] for r in added) if count_updates else 0)

        paused = 0
        caller_threads = torch.get_num_threads()  # the spec's threads apply to this sweep only
        try:  # with nothing left to train, no backend is started
            if groups and backend == "embedded":
                if threads:
                    torch.set_num_threads(threads)
                deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
                paused = _run_embedded(groups, device, commit, bar, veg_rule, save_params, store.checkpoint_dir,
                                       checkpoint_every_s, deadline)
            elif groups:
                deadline = None if time_limit_s is None else time.time() + time_limit_s
                paused = _run_ray(groups, device, commit, veg_rule, ray_address or os.environ.get("RAY_ADDRESS"),
                                  cpus_per_task, num_cpus, save_params, store.checkpoint_dir, checkpoint_every_s, deadline)
        finally:
            bar.close()
            torch.set_num_threads(caller_threads)
        return {"planned": len(runs), "skipped": len(runs) - len(todo), "trained": bar.done,
                "populations": len(groups), "resumed": len(resumed), "paused": paused, **bar.rates()}


def _resumable(store: ResultStore, runs: list[Run], done: set[str]) -> list[RunGroup]:
    """The populations of ``runs`` that have a checkpoint beside the store, rebuilt with the same
    runs in the same order (so they resume under the same population id). A checkpoint whose
    rows are all stored (the sweep was stopped between the last row and its deletion) is deleted;
    one of runs outside this sweep is left alone. The files of a first save that a kill
    interrupted (a summary or a temporary file, no state file) are deleted when the population is
    this sweep's (its id begins with one of its run ids): the population trains anew, perhaps
    under another id, whose end would not delete them."""
    by_id = {r.run_id: r for r in runs}
    for path, population in store.files_without_state():
        if population.split("+")[0] in by_id:
            path.unlink(missing_ok=True)
    groups = []
    for path, summary in store.checkpoints():
        ids = summary["info"].get("run_ids", [])
        if not ids or not all(i in by_id for i in ids):
            continue
        if all(i in done for i in ids):
            ckpt.remove(path)
            continue
        group = RunGroup(group_key(by_id[ids[0]]), [by_id[i] for i in ids])
        groups.append(group)
        print(f"[sweep] resuming population {group.population_id} from its checkpoint at update "
              f"{summary['update']:,} of {summary['max_updates']:,} ({summary['active']} of {summary['models']} "
              f"models training; {path})", file=sys.stderr, flush=True)
    return groups
