"""The record of one recurrent cell (:class:`Cell`): what the population model, the trainer,
config validation, initialisation, packing, the sweep spec and the analyses need to know about
it, so that none of them branches on the cell's name.

Shapes follow :mod:`rnnlab.nn.population`: M models, I inputs, H hidden units, O outputs;
parameters carry the model dimension M first.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

Shapes = dict[str, tuple[int, ...]]
Params = Mapping[str, Tensor]
#: an initialisation: (model keys [M, 2] int64, the cell's shapes at M, completed options) ->
#: float64 values of the parameters it draws; the others (the biases) start at 0.
InitFn = Callable[[Tensor, Shapes, Mapping], dict[str, Tensor]]


@dataclass(frozen=True)
class Cell:
    """One recurrent cell. Adding a cell to rnnlab = one such record (and its kernels).

    Attributes:
        name: the ``cell=`` string of configs, specs, the CLI and the result store.
        title: the cell in words, for messages ("LSTM", "diagonal (LRU)").
        options: the forward options (keywords of ``population_forward``) -> default.
        choices: option -> its allowed values (every option has a finite set).
        init_options: options that only the initialisation reads (in ``RunConfig.cell_kwargs``)
            -> default; ``check_init_options`` validates them.
        inits: init name -> :data:`InitFn`, in the order documented (and listed in messages).
        default_init: the init a config gets when it names none.
        init_implies: init name -> options whose default that init changes (Elman's ``sigmoid``
            init is meant for the logistic φ).
        gates: H-row blocks of the recurrent matrix (gate order as PyTorch's), or 0 for a cell
            without one.
        recurrent_weight: the parameter that ``init_gain`` scales and the clipping safeguard
            decays (SPEC §2.4), or None: then the gain must be 1 and the safeguard skips the update.
        state_width: per-step values of one sample per hidden unit that a training step keeps
            (projected inputs, saved gates, states): the memory estimate of packing.
        omega: whether Ω's gradient (``reg_weight``, ``RunConfig.alpha``) is fused into this
            cell's backward kernel.
        system: the dynamical-system class of :mod:`rnnlab.analysis` that its trained
            populations convert to (fixed points, latching), or None.
        shapes: (M, I, H, O, options) -> name -> shape, in the order used for global norms,
            run records and saved weights.
        sizes: params -> (M, I, H, O), read from the cell's own parameter names.
        forward: (params, x [M, T, B, I], K, options, reg_weight, sink) -> y [M, K, B, O], the
            outputs at the last K steps, one fused recurrence call.
        radius: (params, options) -> [M] a stability measure of each model's recurrence (ρ(W_hh),
            max|λ|), or None where none is meaningful (gated cells: NaN).
        torch_init: (M, I, H, O, options, device, dtype) -> params drawn from torch's global
            generator, like the matching torch.nn module (``PopulationModel``'s default).
        check_init_options: raises ValueError on bad ``init_options`` (given completed).
        state_names: the state a step carries, e.g. ``("h",)`` or the LSTM's ``("h", "c")``.
        layer: (params, l, x [M, T, B, I_l], state, options, reg_weight=None, sink=None) -> one
            [M, T, B, H] sequence per name of ``state_names``: layer ``l`` of the stack run by
            one fused call from ``state`` (a tuple of [M, B, H], or None for zeros). What the
            VAA and the warm-up roll (SPEC §6.1); None for a cell without layers (diag).
        fused_step: the name of the op (in ``torch.ops.rnnlab``) that runs the cell's whole
            training update as one call, or None (:mod:`rnnlab.train.fused_step`, where its other
            conditions are checked).
        evaluate: the name of the op that runs one plain layer's forward with its read-out for
            validation (outputs of the last K steps only, no state kept, no xp materialized;
            ``rnnlab.train.trainer.validate``), or None: validation then calls ``forward``.
    """

    name: str
    title: str
    options: Mapping[str, object]
    choices: Mapping[str, tuple]
    init_options: Mapping[str, object]
    inits: Mapping[str, InitFn]
    default_init: str
    init_implies: Mapping[str, Mapping[str, object]]
    gates: int
    recurrent_weight: str | None
    state_width: int
    omega: bool
    system: type | None
    shapes: Callable[[int, int, int, int, Mapping], Shapes]
    sizes: Callable[[Params], tuple[int, int, int, int]]
    forward: Callable[..., Tensor]
    radius: Callable[[Params, Mapping], Tensor] | None
    torch_init: Callable[..., dict[str, Tensor]]
    check_init_options: Callable[[Mapping], None] = lambda options: None
    state_names: tuple[str, ...] = ("h",)
    layer: Callable[..., tuple[Tensor, ...]] | None = None
    fused_step: str | None = None
    evaluate: str | None = None

    # ---- options ------------------------------------------------------------------------------
    def complete_options(self, options: Mapping) -> dict:
        """``options`` completed with the defaults; unknown options or values raise ValueError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"cell {self.name!r} takes the options {sorted(self.options)}, got unknown {unknown}")
        out = {**self.options, **options}
        for name, value in out.items():
            if value not in self.choices[name]:
                raise ValueError(f"{name} must be one of {self.choices[name]}, got {value!r}")
        return out

    def complete_init_options(self, options: Mapping) -> dict:
        """The init options among ``options`` completed with their defaults, checked."""
        out = {**self.init_options, **{k: v for k, v in options.items() if k in self.init_options}}
        self.check_init_options(out)
        return out

    def options_for_init(self, init: str) -> dict:
        """The option defaults under ``init`` (:attr:`init_implies` over :attr:`options`)."""
        return {**self.options, **self.init_implies.get(init, {})}

    # ---- parameters ---------------------------------------------------------------------------
    def param_shapes(self, M: int, I: int, H: int, O: int, **options) -> Shapes:
        """Name -> shape of every parameter of M models (options as :meth:`complete_options`)."""
        return self.shapes(M, I, H, O, self.complete_options(options))

    def holds(self, params: Params) -> bool:
        """Whether ``params`` are exactly this cell's parameters (names and shapes) under some
        choice of its options."""
        try:
            M, I, H, O = self.sizes(params)
        except (KeyError, IndexError, ValueError):  # another cell's names, or shapes of other ranks
            return False
        have = {n: tuple(v.shape) for n, v in params.items()}
        for variant in itertools.product(*self.choices.values()):
            try:
                if have == self.shapes(M, I, H, O, dict(zip(self.choices, variant))):
                    return True
            except ValueError:  # a layout these sizes cannot have (an odd H split in two)
                continue
        return False

    # ---- layers -------------------------------------------------------------------------------
    def run_layers(self, params: Params, x: Tensor, options: Mapping,
                   states: list[tuple[Tensor, ...]] | None = None) -> list[tuple[Tensor, ...]]:
        """Every layer's state sequences (one [M, T, B, H] per :attr:`state_names`), layer by
        layer, each driven by the one below's h; ``states``: per layer, the initial state tuple
        (None: zeros). ``options`` completed (:meth:`complete_options`)."""
        if self.layer is None:
            raise ValueError(f"cell={self.name!r} ({self.title}) has no layer map to roll out")
        out = []
        for depth in range(options.get("num_layers", 1)):
            out.append(self.layer(params, depth, x, None if states is None else states[depth], options))
            x = out[-1][0]
        return out

    def recurrent_radius(self, params: Params, options: Mapping) -> Tensor:
        """[M] :attr:`radius` of each model, NaN for a cell without a meaningful one."""
        if self.radius is not None:
            return self.radius(params, options)
        first = next(iter(params.values()))
        return torch.full(first.shape[:1], math.nan, dtype=first.dtype, device=first.device)

    # ---- initialisations ----------------------------------------------------------------------
    def check_init(self, init: str) -> None:
        """Raise ValueError unless this cell defines ``init``."""
        if init not in self.inits:
            raise ValueError(f"init {init!r} is not defined for cell={self.name!r}; allowed: {tuple(self.inits)}")
