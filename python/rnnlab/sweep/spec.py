"""Sweep specification: a factorial grid of training runs, from a TOML/YAML file or from Python.

A sweep is ``fixed`` values shared by every run and ``grid`` factors, each a list of levels; the
runs are the Cartesian product of the factors, in the order the factors are written (the last
factor varies fastest). Every field is a :class:`rnnlab.train.RunConfig` field (``task``,
``hidden``, ``init``, ``init_gain``, ``optimizer``, ``lr``, ``clip``, ``alpha``, ``seed``,
``max_updates``, ``val_every`` …) or one of these shorthands:

* ``length``: a fixed sequence length, i.e. ``task_kwargs.min_length = max_length = length``;
  ``min_length`` / ``max_length`` set the training range of SPEC §2.2 separately;
* ``task_kwargs.<name>``: one keyword of the task constructor (e.g. ``task_kwargs.noise``);
  ``cell_kwargs.<name>`` likewise for the cell (e.g. ``cell_kwargs.r_min`` of ``cell = "diag"``).

``cell`` is a name of the cell registry: ``elman``, ``lstm``, ``gru`` or ``diag`` (:mod:`rnnlab.cells`).

A level may also be a *bundle*: a table with a ``name`` and several fields, e.g. Pascanu's
methods ``{name = "MSGD-C", clip = 1.0, alpha = 0.0}``; the run records the bundle's name under
the factor's name in its ``labels``. Special level lists: ``{range = [start, stop]}`` (integers,
stop excluded) and ``{logspace = [lo, hi, n]}`` (n values from lo to hi, both included).

TOML example (``rnnlab sweep run quick.toml``)::

    name = "quick"
    [fixed]
    task = "torder"
    hidden = 16
    max_updates = 2000
    [grid]
    length = [10, 20]
    lr = {logspace = [0.01, 0.1, 3]}
    seed = {range = [0, 4]}

Python::

    spec = SweepSpec.from_dict({"name": "quick", "fixed": {...}, "grid": {...}})
    spec = grid("quick", task="torder", length=[10, 20], lr=[0.01, 0.1], seed=range(4))
    runs = spec.expand()          # list[Run], validated

Validation raises :class:`SpecError` naming the bad field, where it was written, and the allowed
values or range.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import itertools
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..cells import CELLS, INITS, option_choices
from ..tasks import TASKS, make_task
from ..train import RunConfig
from ..train.config import DTYPES, LATER_FIELDS, LR_SCHEDULES
from ..train.optim import OPTIMIZERS

#: sweep-level fields that are not RunConfig fields.
SHORTHANDS = ("length", "min_length", "max_length")
#: fields whose entries a spec may set one by one as ``<field>.<name>``.
_KWARG_FIELDS = ("task_kwargs", "cell_kwargs")
#: the sections a spec file may have.
SECTIONS = ("name", "description", "fixed", "grid", "engine")
#: engine options a spec file may set in its [engine] table (command-line flags override them).
ENGINE_OPTIONS = {"max_population": int, "device": str, "backend": str, "memory_fraction": float, "threads": int,
                  "save_params": bool}

_CHOICES = {
    "task": tuple(sorted(TASKS)),
    "init": INITS,
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "dtype": DTYPES,
    "nonlinearity": option_choices("nonlinearity"),
    "cell": CELLS,
}
_RUN_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_HINTS = typing.get_type_hints(RunConfig)


def _is_kwarg_entry(name: str) -> bool:
    """``task_kwargs.<key>`` or ``cell_kwargs.<key>``."""
    return "." in name and name.split(".", 1)[0] in _KWARG_FIELDS


def toml_module():
    """``tomllib`` (Python ≥ 3.11), else the ``tomli`` backport it came from."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise SpecError("reading TOML on Python < 3.11 needs tomli (pip install tomli)") from None
    return tomllib


class SpecError(ValueError):
    """A sweep specification is invalid; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its trainer config and the bundle labels it came from.

    ``run_id`` is its identity: a hash of everything that determines the result (the trainer
    config, cell included), so the same run in two sweeps, or a resumed sweep, has the same id.
    Labels are names only and do not enter the id.
    """

    config: RunConfig
    labels: dict = field(default_factory=dict)

    @property
    def cell(self) -> str:
        return self.config.cell

    @functools.cached_property
    def run_id(self) -> str:
        # Cached: the hash (asdict, JSON, SHA-256) costs ≈ 0.15 ms and the engine asks for it ~9
        # times per run, ≈ 4 % of a 100,000-run study. A run's config is not changed once the run
        # exists (configs are replaced, never edited, e.g. by dataclasses.replace).
        return run_id(self.config)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "cell": self.cell, "labels": dict(self.labels), "config": self.config.to_dict()}


def run_id(config: RunConfig) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of the cell and the rest of the config.

    (The layout predates ``RunConfig.cell``: keeping the cell outside and leaving out empty
    ``cell_kwargs`` and the :data:`rnnlab.train.config.LATER_FIELDS` at their defaults keeps the
    ids of earlier sweeps, so their files still resume.)"""
    rest = {k: v for k, v in config.to_dict().items() if k != "cell" and not (k == "cell_kwargs" and not v)
            and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
    text = json.dumps({"cell": config.cell, "config": rest}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def logspace(lo: float, hi: float, n: int) -> list[float]:
    """``n`` values from ``lo`` to ``hi`` (both included), evenly spaced in log, rounded to 6
    significant digits so that they print and hash the same everywhere."""
    if not (lo > 0 and hi > 0) or not isinstance(n, int) or n < 1:
        raise SpecError(f"logspace needs lo > 0, hi > 0 and an int n >= 1, got [{lo}, {hi}, {n}]")
    if n == 1:
        return [float(f"{lo:.6g}")]
    a, b = math.log10(lo), math.log10(hi)
    return [float(f"{10 ** (a + (b - a) * i / (n - 1)):.6g}") for i in range(n)]


def _expand_levels(where: str, value) -> list:
    """A factor's list of levels from a list, a range, or a ``{range}``/``{logspace}`` table."""
    if isinstance(value, range):
        return list(value)
    if isinstance(value, Mapping) and set(value) == {"range"}:
        r = value["range"]
        if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) for v in r) and r[0] < r[1]):
            raise SpecError(f"{where}: range must be [start, stop] with integers start < stop, got {r!r}")
        return list(range(r[0], r[1]))
    if isinstance(value, Mapping) and set(value) == {"logspace"}:
        r = value["logspace"]
        if not (isinstance(r, list) and len(r) == 3):
            raise SpecError(f"{where}: logspace must be [lo, hi, n], got {r!r}")
        return logspace(*r)
    if isinstance(value, (list, tuple)):
        if not value:
            raise SpecError(f"{where}: a factor needs at least one level, got an empty list")
        return list(value)
    return [value]


def _unknown(where: str, name: str, allowed: Iterable[str]) -> SpecError:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(f"{where}: unknown field {name!r}{hint}; allowed fields: {allowed}")


def _check_type(where: str, name: str, value) -> None:
    """Check one field value against the RunConfig annotation and the allowed choices."""
    if _is_kwarg_entry(name):
        return  # checked when the task / the run is built
    if name in _CHOICES:
        if name == "nonlinearity" and value is None:
            return
        if value not in _CHOICES[name]:
            raise SpecError(f"{where}: {name} = {value!r} is not allowed; allowed values: {list(_CHOICES[name])}")
        return
    if name in ("length", "min_length", "max_length"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"{where}: {name} must be a positive integer, got {value!r}")
        return
    if name in _KWARG_FIELDS:
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: {name} must be a table of {name.split('_')[0]} arguments, got {value!r}")
        return
    allowed = _allowed_types(name)
    ok = any(
        (t is type(None) and value is None)
        or (t is bool and isinstance(value, bool))
        or (t is int and isinstance(value, int) and not isinstance(value, bool))
        or (t is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (t is str and isinstance(value, str))
        for t in allowed
    )
    if not ok:
        names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
        raise SpecError(f"{where}: {name} must be {names}, got {value!r}")


def _normalize(name: str, value):
    """TOML has no null: the strings "none"/"off" mean None for optional fields (e.g. clip).
    Integers given for float fields become floats, so ``lr = 1`` and ``lr = 1.0`` are one run."""
    if name not in _RUN_FIELDS:
        return value
    allowed = _allowed_types(name)
    if isinstance(value, str) and value.lower() in ("none", "off") and type(None) in allowed:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and float in allowed and int not in allowed:
        return float(value)
    return value


def _allowed_types(name: str) -> tuple:
    hint = _HINTS[name]
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def _check_field(where: str, name: str, value):
    allowed = set(_RUN_FIELDS) | set(SHORTHANDS)
    if name not in allowed and not _is_kwarg_entry(name):
        raise _unknown(where, name, allowed)
    value = _normalize(name, value)
    _check_type(where, name, value)
    return value


def _check_level(where: str, factor: str, level) -> tuple[str | None, dict]:
    """A level as (label, {field: value}): a bundle table, or a plain value of the factor."""
    if isinstance(level, Mapping):
        if "name" not in level or not isinstance(level["name"], str):
            raise SpecError(f"{where}: a bundle level (a table) needs a string 'name', got {dict(level)!r}")
        values = {k: _check_field(f"{where}.{k}", k, v) for k, v in level.items() if k != "name"}
        return level["name"], values
    return None, {factor: _check_field(where, factor, level)}


@dataclass
class SweepSpec:
    """A factorial sweep: ``fixed`` fields and ``grid`` factors (name -> list of levels).

    Use :meth:`from_file` / :meth:`from_dict` / :func:`grid` to build one and :meth:`expand` for
    its runs. ``engine`` holds engine options (``max_population``, ``device``, ``backend``,
    ``memory_fraction``, ``threads``, ``save_params``).
    """

    name: str
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    description: str = ""

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping) -> "SweepSpec":
        """From a parsed spec (the TOML/YAML document as a dict); validates everything."""
        if not isinstance(data, Mapping):
            raise SpecError(f"a sweep spec must be a table, got {type(data).__name__}")
        for key in data:
            if key not in SECTIONS:
                raise _unknown("spec", key, SECTIONS)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError("spec: 'name' (a non-empty string naming the sweep) is required")
        for section in ("fixed", "grid", "engine"):
            if not isinstance(data.get(section, {}), Mapping):
                raise SpecError(f"spec: [{section}] must be a table, got {data[section]!r}")
        spec = cls(name=name, fixed=dict(data.get("fixed", {})), grid=dict(data.get("grid", {})),
                   engine=dict(data.get("engine", {})), description=str(data.get("description", "")))
        spec.validate()
        return spec

    @classmethod
    def from_file(cls, path: str | Path) -> "SweepSpec":
        """From a ``.toml`` file (tomllib) or a ``.yaml``/``.yml`` file (needs PyYAML)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sweep spec file not found: {path}")
        if path.suffix == ".toml":
            toml = toml_module()
            try:
                data = toml.loads(path.read_text())
            except toml.TOMLDecodeError as e:
                raise SpecError(f"{path}: invalid TOML: {e}") from None
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise SpecError(f"{path}: YAML specs need PyYAML (pip install pyyaml); or write TOML") from None
            data = yaml.safe_load(path.read_text())
        else:
            raise SpecError(f"{path}: the spec file must end in .toml, .yaml or .yml")
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        """The spec as a plain dict (JSON-ready; ranges already expanded into lists)."""
        return {"name": self.name, "description": self.description, "fixed": self.fixed,
                "grid": {k: _expand_levels(f"grid.{k}", v) for k, v in self.grid.items()}, "engine": self.engine}

    def with_overrides(self, overrides: Mapping[str, object]) -> "SweepSpec":
        """A copy where each ``name -> value`` replaces the factor or fixed value of that name:
        a list or ``{range}``/``{logspace}`` table becomes a grid factor, a scalar a fixed value.
        (``rnnlab sweep run --set seed='{range=[0,100]}'`` scales a study this way.)"""
        fixed, grid_ = dict(self.fixed), dict(self.grid)
        for k, v in overrides.items():
            fixed.pop(k, None)
            grid_.pop(k, None)
            is_factor = isinstance(v, (list, tuple, range)) or (isinstance(v, Mapping) and set(v) <= {"range", "logspace"})
            (grid_ if is_factor else fixed)[k] = v
        spec = SweepSpec(self.name, fixed, grid_, dict(self.engine), self.description)
        spec.validate()
        return spec

    # ---- validation and expansion -------------------------------------------------------------
    def validate(self) -> None:
        """Check every field, level and engine option; raise :class:`SpecError` on the first bad one."""
        for k, v in self.engine.items():
            if k not in ENGINE_OPTIONS:
                raise _unknown("engine", k, ENGINE_OPTIONS)
            kind = ENGINE_OPTIONS[k]
            if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
                raise SpecError(f"engine.{k} must be {ENGINE_OPTIONS[k].__name__}, got {v!r}")
        for k, v in self.fixed.items():
            self.fixed[k] = _check_field(f"fixed.{k}", k, v)
        for k, v in self.grid.items():
            if k in self.fixed:
                raise SpecError(f"grid.{k}: {k!r} is both a fixed value and a grid factor; keep one")
            for i, level in enumerate(_expand_levels(f"grid.{k}", v)):
                _check_level(f"grid.{k}[{i}]", k, level)

    def factors(self) -> dict[str, list]:
        """Factor name -> levels (bundles as their names), for reports."""
        return {k: [_check_level(k, k, lv)[0] or lv for lv in _expand_levels(f"grid.{k}", v)] for k, v in self.grid.items()}

    def expand(self) -> list[Run]:
        """All runs of the grid, validated, in grid order, without duplicates (two grid points
        that resolve to the same run are one run; the first one's labels are kept)."""
        names = list(self.grid)
        levels = [[_check_level(f"grid.{k}[{i}]", k, lv) for i, lv in enumerate(_expand_levels(f"grid.{k}", self.grid[k]))]
                  for k in names]
        runs: dict[str, Run] = {}
        tasks_checked: set[str] = set()
        for point in itertools.product(*levels):
            values, labels = dict(self.fixed), {}
            for factor, (label, fields) in zip(names, point):
                values.update(fields)
                if label is not None:
                    labels[factor] = label
            run = _resolve(values, labels, tasks_checked)
            runs.setdefault(run.run_id, run)
        return list(runs.values())


def _describe_point(values: Mapping, labels: Mapping) -> str:
    keep = ("task", "length", "hidden", "init", "lr", "seed")
    shown = {**{k: v for k, v in values.items() if k in keep and v is not None}, **labels}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _resolve(values: dict, labels: dict, tasks_checked: set[str]) -> Run:
    """One grid point's field values -> a validated :class:`Run`."""
    values = dict(values)
    kwargs = dict(values.pop("task_kwargs", {}) or {})
    cell_kwargs = dict(values.pop("cell_kwargs", {}) or {})
    for k in [k for k in values if "." in k]:
        (kwargs if k.startswith("task_kwargs.") else cell_kwargs)[k.split(".", 1)[1]] = values.pop(k)
    length = values.pop("length", None)
    if length is not None:
        kwargs["min_length"] = kwargs["max_length"] = length
    for k in ("min_length", "max_length"):
        if k in values:
            kwargs[k] = values.pop(k)
    where = f"run ({_describe_point({**values, 'length': length}, labels)})"
    try:
        config = RunConfig(task_kwargs=kwargs, cell_kwargs=cell_kwargs, **values)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{where}: {e}") from None
    task_key = json.dumps([config.task, kwargs], sort_keys=True)
    if task_key not in tasks_checked:
        try:
            make_task(config.task, **kwargs)
        except (TypeError, ValueError) as e:
            raise SpecError(f"{where}: task {config.task!r} rejects task_kwargs {kwargs}: {e}") from None
        tasks_checked.add(task_key)
    return Run(config=config, labels=labels)


def grid(name: str, *, engine: Mapping | None = None, description: str = "", **fields) -> SweepSpec:
    """A spec from keyword arguments: lists, tuples and ranges are grid factors (in the order
    given), scalars are fixed; e.g. ``grid("s", task="torder", lr=[0.01, 0.1], seed=range(5))``."""
    fixed = {k: v for k, v in fields.items() if not isinstance(v, (list, tuple, range))}
    factors = {k: list(v) for k, v in fields.items() if isinstance(v, (list, tuple, range))}
    return SweepSpec.from_dict({"name": name, "description": description, "fixed": fixed, "grid": factors,
                                "engine": dict(engine or {})})
