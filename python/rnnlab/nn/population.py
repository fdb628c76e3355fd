"""Populations of M independent RNNs with read-outs, each run by one fused kernel call.

Every cell of the registry (:mod:`rnnlab.cells`; ``cell=``: ``"elman"``, ``"lstm"``, ``"gru"``,
``"diag"``) defines its parameters, its recurrence and its read-out there: Elman, LSTM and GRU in
PyTorch's column layout with ŷ_t = W_out[m] h_t + b_out[m] (:mod:`rnnlab.cells.projected`), the
diagonal cell as the LRU of :mod:`rnnlab.nn.lru`. h_0 = 0 everywhere. The projected cells also
stack: options ``num_layers`` (layer l > 0 driven by layer l − 1's h, one fused call per layer)
and ``double`` (each layer two parallel cells of H/2 units), see :mod:`rnnlab.cells.projected`.

Shapes: x [M, T, B, I]; outputs y [M, K, B, O] at the last K steps.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..cells import get_cell, names
from ..functional import GradientSink


def param_shapes(M: int, input_size: int, hidden_size: int, output_size: int, cell: str = "elman",
                 **options) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a population of M models of ``cell``, by name, in the order
    used for global norms and run records."""
    return get_cell(cell).param_shapes(M, input_size, hidden_size, output_size, **options)


def recurrent_radius(params: Mapping[str, Tensor], cell: str = "elman", **options) -> Tensor:
    """[M] a stability measure of each model's recurrence: ρ(W_hh) for Elman (eigenvalues in
    float64 on the CPU), max|λ| for the diagonal cell; NaN for the LSTM and the GRU (their gates
    make ρ of the stacked [4H, H] / [3H, H] matrix meaningless)."""
    record = get_cell(cell)
    return record.recurrent_radius(params, record.complete_options(options))


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

    The input projection of all models and steps is one batched GEMM; the recurrence is the
    cell's fused op (:func:`rnnlab.elman`, :func:`rnnlab.lstm`, :func:`rnnlab.gru`,
    :func:`rnnlab.diag_recurrence`), with the optional ``sink`` (per-step ‖δ_t‖², ‖v_t‖², Ω
    after backward).

    Args:
        params: the cell's parameters (:func:`param_shapes`), each with leading dim M.
        x: [M, T, B, I] inputs.
        cell: a name of :data:`rnnlab.cells.CELLS`.
        readout_steps: K, the number of last steps read out (1 ≤ K ≤ T).
        reg_weight: α of SPEC §2.5 (float or [M]); for the cells whose backward fuses Ω's
            gradient (Elman).
        options: the cell's options (``Cell.options``): ``nonlinearity`` (Elman: tanh, relu,
            sigmoid, identity); ``num_layers``, ``double`` (Elman, LSTM, GRU: the stack,
            :mod:`rnnlab.cells.projected`; α and the sink act on the first layer);
            ``parametrization``, ``gamma`` (diag: see :class:`rnnlab.LRU`).
    Returns:
        y: [M, K, B, O].
    """
    record = get_cell(cell)
    options = record.complete_options(options)
    expected = list(record.shapes(1, 1, 2, 1, options))  # the names (H = 2 fits every layout)
    missing = [n for n in expected if n not in params]
    if missing:
        raise KeyError(f"params is missing {missing}; a {cell!r} population has {expected}")
    if reg_weight is not None and not record.omega and bool((torch.as_tensor(reg_weight) != 0).any()):
        raise ValueError(f"reg_weight (α of Ω) is implemented for cell={' or '.join(map(repr, names(lambda c: c.omega)))} "
                         f"only, got cell={cell!r}")
    M, I, _, _ = record.sizes(params)
    if x.dim() != 4 or x.shape[0] != M or x.shape[3] != I:
        raise ValueError(f"x must have shape [M={M}, T, B, I={I}], got {list(x.shape)}")
    T = x.shape[1]
    if not 1 <= readout_steps <= T:
        raise ValueError(f"readout_steps must be in [1, T={T}], got {readout_steps}")
    return record.forward(params, x, readout_steps, options, reg_weight, sink)


class PopulationModel(nn.Module):
    """M independent RNNs of one ``cell`` with read-outs, trained as one module.

    Parameters are initialised from torch's global generator like the matching torch module
    (``Cell.torch_init``: U(−1/√H, 1/√H) as ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` / ``nn.Linear``
    for Elman, LSTM and GRU, :class:`rnnlab.LRU`'s ring initialisation for ``diag``); for
    per-seed initialisations (SPEC §2.1, each model from its own random stream) use
    :func:`rnnlab.train.init.init_population` and :meth:`from_params`.

    Args:
        num_models: M.
        input_size, hidden_size, output_size: I, H, O.
        cell: a name of :data:`rnnlab.cells.CELLS`.
        options: the cell's options (``Cell.options``), e.g. ``nonlinearity="relu"``.
    """

    def __init__(self, num_models: int, input_size: int, hidden_size: int, output_size: int, cell: str = "elman",
                 device=None, dtype=None, **options):
        super().__init__()
        for name, v in (("num_models", num_models), ("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        record = get_cell(cell)
        self.cell, self.options = cell, record.complete_options(options)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        init = record.torch_init(num_models, input_size, hidden_size, output_size, self.options, device, dtype)
        for name in record.shapes(num_models, input_size, hidden_size, output_size, self.options):
            self.register_parameter(name, nn.Parameter(init[name]))

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor], cell: str = "elman", **options) -> "PopulationModel":
        """A population holding copies of ``params`` (names and shapes of :func:`param_shapes`)."""
        M, I, H, O = get_cell(cell).sizes(params)
        first = next(iter(params.values()))
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

    def select(self, idx: Tensor | list[int]) -> "PopulationModel":
        """A new population made of the models ``idx`` (copies): compaction of a population,
        e.g. to drop models that have finished training."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=next(iter(self.parameters())).device)
        return PopulationModel.from_params({n: p.detach()[idx] for n, p in self.named_parameters()}, self.cell,
                                           **self.options)

    def forward(self, x: Tensor, readout_steps: int = 1, reg_weight: float | Tensor | None = None,
                sink: GradientSink | None = None) -> Tensor:
        """x [M, T, B, I] -> y [M, K, B, O]; see :func:`population_forward`."""
        return population_forward(self.params(), x, cell=self.cell, readout_steps=readout_steps, reg_weight=reg_weight,
                                  sink=sink, **self.options)

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"num_models={self.num_models}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size}, cell={self.cell!r}{opts}")

