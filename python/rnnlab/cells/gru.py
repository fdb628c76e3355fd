"""The GRU cell: PyTorch's (gates r, z, n): weight_ih [M, 3H, I], weight_hh [M, 3H, H],
bias [M, 3H] (b_ih with the r and z hidden biases folded in), bias_hn [M, H] (the n gate's hidden
bias, which r multiplies, so it cannot be folded), weight_out [M, O, H], bias_out [M, O].
"""
from __future__ import annotations

from ..functional import gru
from . import weight_inits
from .projected import projected_cell

GRU = projected_cell(
    name="gru",
    title="GRU",
    gates=3,
    recurrence=lambda p, xp, state, options, reg_weight, sink: (gru(xp, p["weight_hh"], p["bias_hn"], *(state or ()),
                                                                    sink=sink),),
    extra_params={"bias_hn": 1},
    options={},
    choices={},
    init_options={},
    inits=weight_inits.GATED,
    default_init="orthogonal",
    init_implies={},
    # xp (3H), the saved gates with h W_hnᵀ (4H), h.
    state_width=8,
    omega=False,
    # the trainer's whole update is one op call (rnnlab.train.fused_step)
    fused_step="gru_train_step",
    # validation runs one op call per block of sequences (rnnlab.train.trainer.validate)
    evaluate="gru_evaluate",
    system=None,
    # ρ of the stacked [3H, H] matrix says nothing about the gated recurrence.
    radius=None,
)
