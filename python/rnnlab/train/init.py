"""Per-model initialisations (SPEC §2.1 and §3.3), drawn from each model's own random stream.

Each cell's record (:mod:`rnnlab.cells`) names its initialisations and its default:

* Elman: ``sigmoid``, ``basic_tanh`` (default), ``smart_tanh``, ``orthogonal``, ``normal``;
* LSTM and GRU: ``orthogonal`` (default), ``basic_tanh``, ``normal``, applied per [H, H] gate
  block of W_hh (:mod:`rnnlab.cells.weight_inits` has the table);
* diag: ``ring`` (:mod:`rnnlab.cells.diag`), whose bounds are init options in ``cell_kwargs``.

The per-model ``gain`` g multiplies the cell's recurrent weight (W_hh) after the init: ``normal``
with gain g is N(0, g²/H) and ``orthogonal`` is g·Q (SPEC §3.3's init factor); the Pascanu inits
take g = 1, and a cell without a recurrent matrix (diag) takes no gain.

Every draw is a function of the model's key only (:mod:`rnnlab.tasks.rng`), so a model starts
from the same weights alone or inside any population.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..cells import get_cell
from ..cells.draws import spectral_radius

__all__ = ["init_population", "spectral_radius"]


def init_population(
    keys: Tensor,
    inits: str | Sequence[str],
    input_size: int,
    hidden_size: int,
    output_size: int,
    gains: float | Sequence[float] = 1.0,
    dtype: torch.dtype = torch.float32,
    cell: str = "elman",
    cell_kwargs: dict | None = None,
) -> dict[str, Tensor]:
    """Parameters of M models of ``cell``, each initialised from its own key.

    Args:
        keys: [M, 2] int64 model keys (:func:`rnnlab.tasks.rng.seed_keys`), on the target device.
        inits: one init name for all models, or one per model (see the module docstring).
        gains: g per model (or one for all), multiplying the recurrent weight.
        cell: a name of :data:`rnnlab.cells.CELLS`.
        cell_kwargs: the cell's options and init options (diag: ``parametrization``, ``gamma``,
            ``r_min``, ``r_max``, ``max_phase``).
    Returns:
        the parameters (:func:`rnnlab.nn.population.param_shapes`) in ``dtype`` on ``keys.device``.
    """
    record = get_cell(cell)
    M = keys.shape[0]
    inits = [inits] * M if isinstance(inits, str) else list(inits)
    gains = [float(gains)] * M if isinstance(gains, (int, float)) else [float(g) for g in gains]
    if len(inits) != M or len(gains) != M:
        raise ValueError(f"inits and gains must have one entry per model (M={M}), got {len(inits)} and {len(gains)}")
    for init in set(inits):
        record.check_init(init)
    kwargs = dict(cell_kwargs or {})
    unknown = sorted(set(kwargs) - set(record.options) - set(record.init_options))
    if unknown:
        raise ValueError(f"cell_kwargs {unknown} are not options of cell={cell!r}; allowed: "
                         f"{sorted({*record.options, *record.init_options})}")
    options = {**record.complete_options({k: v for k, v in kwargs.items() if k in record.options}),
               **record.complete_init_options(kwargs)}
    if record.recurrent_weight is None and any(g != 1.0 for g in gains):
        raise ValueError(f"cell={cell!r} has no recurrent weight for a gain to scale (init_gain must be 1), "
                         f"got {sorted(set(gains))}")
    shapes = record.shapes(M, input_size, hidden_size, output_size, options)
    params = {n: keys.new_zeros(s, dtype=torch.float64) for n, s in shapes.items()}
    for init in sorted(set(inits)):
        idx = torch.tensor([m for m in range(M) if inits[m] == init], dtype=torch.int64, device=keys.device)
        group = record.shapes(len(idx), input_size, hidden_size, output_size, options)
        for n, v in record.inits[init](keys[idx], group, options).items():
            params[n][idx] = v
    if record.recurrent_weight is not None:
        w = params[record.recurrent_weight]
        w *= torch.tensor(gains, dtype=torch.float64, device=keys.device).view(-1, *(1,) * (w.dim() - 1))
    return {n: params[n].to(dtype).contiguous() for n in shapes}
