"""Populations of M independent RNNs with read-outs, each run by one fused kernel call.

Four cells (``cell=``), model m of each in PyTorch's column layout:

* ``"elman"`` (SPEC §1): h_t = φ(W_ih[m] x_t + b[m] + W_hh[m] h_{t-1}); one hidden bias per
  model (Pascanu's ``b_hh``; nn.RNN's b_ih + b_hh would be redundant), so the parameters are
  exactly the five of SPEC §2.4: weight_ih [M, H, I], weight_hh [M, H, H], bias [M, H],
  weight_out [M, O, H], bias_out [M, O].
* ``"lstm"``: PyTorch's LSTM cell (gates i, f, g, o) with one bias per gate row (b_ih + b_hh
  folded): weight_ih [M, 4H, I], weight_hh [M, 4H, H], bias [M, 4H], weight_out, bias_out.
* ``"gru"``: PyTorch's GRU cell (gates r, z, n): weight_ih [M, 3H, I], weight_hh [M, 3H, H],
  bias [M, 3H] (b_ih with the r and z hidden biases folded in), bias_hn [M, H] (the n gate's
  hidden bias, which r multiplies, so it cannot be folded), weight_out, bias_out.
* ``"diag"``: the LRU of :mod:`rnnlab.nn.lru`, h_t = λ ⊙ h_{t−1} + γ ⊙ (B x_t), read out through
  its own ``Re(C h_t) + D x_t`` (parameters: :func:`rnnlab.nn.lru.lru_param_shapes`).

Elman, LSTM and GRU read out ŷ_t = W_out[m] h_t + b_out[m]. h_0 = 0 everywhere.

Shapes: x [M, T, B, I]; outputs y [M, K, B, O] at the last K steps.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..functional import GradientSink, elman, gru, lstm
from .lru import LRU, check_lru_variant, lru_forward, lru_lam, lru_param_shapes

CELLS = ("elman", "lstm", "gru", "diag")
#: keyword options of ``population_forward`` per cell (the diagonal cell's LRU variant).
CELL_OPTIONS = {"elman": {"nonlinearity": "tanh"}, "lstm": {}, "gru": {},
                "diag": {"parametrization": "exp", "gamma": "learned"}}


def _check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


def cell_options(cell: str, options: Mapping) -> dict:
    """``options`` completed with the cell's defaults; unknown or bad options raise ValueError."""
    _check_cell(cell)
    allowed = CELL_OPTIONS[cell]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"cell {cell!r} takes the options {sorted(allowed)}, got unknown {unknown}")
    out = {**allowed, **options}
    if cell == "diag":
        check_lru_variant(out["parametrization"], out["gamma"])
    return out


def param_shapes(M: int, input_size: int, hidden_size: int, output_size: int, cell: str = "elman",
                 **options) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a population of M models of ``cell``, by name, in the order
    used for global norms and run records."""
    options = cell_options(cell, options)
    H, I, O = hidden_size, input_size, output_size
    if cell == "diag":
        return lru_param_shapes(M, I, H, O, options["parametrization"], options["gamma"])
    G = {"elman": 1, "lstm": 4, "gru": 3}[cell] * H
    hn = {"bias_hn": (M, H)} if cell == "gru" else {}
    return {"weight_ih": (M, G, I), "weight_hh": (M, G, H), "bias": (M, G), **hn, "weight_out": (M, O, H), "bias_out": (M, O)}


def recurrent_radius(params: Mapping[str, Tensor], cell: str = "elman", **options) -> Tensor:
    """[M] a stability measure of each model's recurrence: ρ(W_hh) for Elman (eigenvalues in
    float64 on the CPU), max|λ| for the diagonal cell; NaN for the LSTM and the GRU (their gates
    make ρ of the stacked [4H, H] / [3H, H] matrix meaningless)."""
    _check_cell(cell)
    if cell == "elman":
        w = params["weight_hh"].detach()
        return torch.linalg.eigvals(w.to("cpu", torch.float64)).abs().amax(-1).to(w.device, w.dtype)
    if cell == "diag":
        return lru_lam(params, cell_options(cell, options)["parametrization"]).detach().abs().amax(-1)
    w = params["weight_hh"]
    return torch.full(w.shape[:1], math.nan, dtype=w.dtype, device=w.device)


def make_sink(M: int, T: int, B: int, dtype: torch.dtype, device: torch.device | str) -> GradientSink:
    """A :class:`rnnlab.GradientSink` for a population forward pass over [M, T, B] sequences."""
    kw = dict(dtype=dtype, device=device, requires_grad=True)
    return GradientSink(torch.zeros(M, 2, T, B, **kw), torch.zeros(M, 2, **kw))


def population_forward(
    params: Mapping[str, Tensor],
    x: Tensor,
    *,
    cell: str = "elman",
    readout_steps: int = 1,
    reg_weight: float | Tensor | None = None,
    sink: GradientSink | None = None,
    **options,
) -> Tensor:
    """Outputs of M RNNs of ``cell`` at their last ``readout_steps`` steps, in one fused call.

    The input projection of all models and steps is one batched GEMM; the recurrence is
    :func:`rnnlab.elman`, :func:`rnnlab.lstm`, :func:`rnnlab.gru` or :func:`rnnlab.diag_recurrence`, with the
    optional ``sink`` (per-step ‖δ_t‖², ‖v_t‖², Ω after backward).

    Args:
        params: the cell's parameters (:func:`param_shapes`), each with leading dim M.
        x: [M, T, B, I] inputs.
        cell: ``"elman"``, ``"lstm"``, ``"gru"`` or ``"diag"``.
        readout_steps: K, the number of last steps read out (1 ≤ K ≤ T).
        reg_weight: α of SPEC §2.5 (float or [M]); Elman only (Ω's gradient is fused into its
            backward kernel).
        options: ``nonlinearity`` (Elman: tanh, relu, sigmoid, identity); ``parametrization``,
            ``gamma`` (diag: see :class:`rnnlab.LRU`).
    Returns:
        y: [M, K, B, O].
    """
    options = cell_options(cell, options)
    names = list(param_shapes(1, 1, 1, 1, cell, **options))
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"params is missing {missing}; a {cell!r} population has {names}")
    if reg_weight is not None and cell != "elman" and bool((torch.as_tensor(reg_weight) != 0).any()):
        raise ValueError(f"reg_weight (α of Ω) is implemented for cell='elman' only, got cell={cell!r}")
    first = params["D" if cell == "diag" else "weight_ih"]  # [M, ·, I] in every cell
    M, I = first.shape[0], first.shape[-1]
    if x.dim() != 4 or x.shape[0] != M or x.shape[3] != I:
        raise ValueError(f"x must have shape [M={M}, T, B, I={I}], got {list(x.shape)}")
    _, T, B, _ = x.shape
    if not 1 <= readout_steps <= T:
        raise ValueError(f"readout_steps must be in [1, T={T}], got {readout_steps}")
    K = readout_steps
    if cell == "diag":
        y, _, _ = lru_forward(params, x, options["parametrization"], options["gamma"], sink=sink, readout_steps=K)
        return y
    w_ih, w_out = params["weight_ih"], params["weight_out"]
    G, H = w_ih.shape[1], params["weight_hh"].shape[2]
    xp = torch.baddbmm(params["bias"][:, None, :], x.reshape(M, T * B, I), w_ih.transpose(1, 2)).view(M, T, B, G)
    if cell == "elman":
        hs = elman(xp, params["weight_hh"], nonlinearity=options["nonlinearity"], reg_weight=reg_weight, sink=sink)
    elif cell == "gru":
        hs = gru(xp, params["weight_hh"], params["bias_hn"], sink=sink)
    else:
        hs, _ = lstm(xp, params["weight_hh"], sink=sink)
    O = w_out.shape[1]
    h_read = hs[:, T - K :].reshape(M, K * B, H)
    return torch.baddbmm(params["bias_out"][:, None, :], h_read, w_out.transpose(1, 2)).view(M, K, B, O)


class Population(nn.Module):
    """M independent RNNs of one ``cell`` with read-outs, trained as one module.

    Parameters are initialised like ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` / ``nn.Linear``
    (U(−1/√H, 1/√H)) for Elman, LSTM and GRU, and with :class:`rnnlab.LRU`'s ring initialisation for ``diag``, from
    torch's global generator; for per-seed initialisations (SPEC §2.1, each model from its own
    random stream) use :func:`rnnlab.train.init.init_population` and :meth:`from_params`.

    Args:
        num_models: M.
        input_size, hidden_size, output_size: I, H, O.
        cell: ``"elman"``, ``"lstm"``, ``"gru"`` or ``"diag"``.
        options: the cell's options (:data:`CELL_OPTIONS`), e.g. ``nonlinearity="relu"``.
    """

    def __init__(self, num_models: int, input_size: int, hidden_size: int, output_size: int, cell: str = "elman",
                 device=None, dtype=None, **options):
        super().__init__()
        for name, v in (("num_models", num_models), ("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.cell, self.options = cell, cell_options(cell, options)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        if cell == "diag":
            lru = LRU(input_size, hidden_size, output_size, num_models=num_models, device=device, dtype=dtype, **self.options)
            init = {n: p.detach() for n, p in lru.named_parameters()}
        bound = 1 / math.sqrt(hidden_size)
        for name, shape in param_shapes(num_models, input_size, hidden_size, output_size, cell, **self.options).items():
            w = init[name] if cell == "diag" else torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
            self.register_parameter(name, nn.Parameter(w))

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor], cell: str = "elman", **options) -> "Population":
        """A population holding copies of ``params`` (names and shapes of :func:`param_shapes`)."""
        first = params["D" if cell == "diag" else "weight_ih"]
        M, I = first.shape[0], first.shape[-1]
        H = params["C_re"].shape[2] if cell == "diag" else params["weight_hh"].shape[2]
        O = params["D" if cell == "diag" else "weight_out"].shape[1]
        model = cls(M, I, H, O, cell, device=first.device, dtype=first.dtype, **options)
        model.load_params(params)
        return model

    @property
    def num_models(self) -> int:
        return next(iter(self.parameters())).shape[0]

    def params(self) -> dict[str, Tensor]:
        """The parameters by name."""
        return dict(self.named_parameters())

    @torch.no_grad()
    def load_params(self, params: Mapping[str, Tensor]) -> None:
        """Copy ``params`` into this population (names and shapes must match exactly)."""
        for n, p in self.named_parameters():
            if n not in params:
                raise KeyError(f"params is missing {n!r}")
            if tuple(params[n].shape) != tuple(p.shape):
                raise ValueError(f"params[{n!r}] must have shape {list(p.shape)}, got {list(params[n].shape)}")
            p.copy_(params[n])

    def select(self, idx: Tensor | list[int]) -> "Population":
        """A new population made of the models ``idx`` (copies): compaction of a population,
        e.g. to drop models that have finished training."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=next(iter(self.parameters())).device)
        return Population.from_params({n: p.detach()[idx] for n, p in self.named_parameters()}, self.cell, **self.options)

    def forward(self, x: Tensor, readout_steps: int = 1, reg_weight: float | Tensor | None = None,
                sink: GradientSink | None = None) -> Tensor:
        """x [M, T, B, I] -> y [M, K, B, O]; see :func:`population_forward`."""
        return population_forward(self.params(), x, cell=self.cell, readout_steps=readout_steps, reg_weight=reg_weight,
                                  sink=sink, **self.options)

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"num_models={self.num_models}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size}, cell={self.cell!r}{opts}")


class PopulationElman(Population):
    """:class:`Population` of Elman RNNs: ``PopulationElman(M, I, H, O, nonlinearity)``."""

    def __init__(self, num_models: int, input_size: int, hidden_size: int, output_size: int,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        super().__init__(num_models, input_size, hidden_size, output_size, "elman", device, dtype, nonlinearity=nonlinearity)

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor], nonlinearity: str = "tanh") -> "PopulationElman":
        M, H, I = params["weight_ih"].shape
        model = cls(M, I, H, params["weight_out"].shape[1], nonlinearity, params["weight_ih"].device, params["weight_ih"].dtype)
        model.load_params(params)
        return model
