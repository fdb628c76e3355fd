"""The LSTM cell: PyTorch's (gates i, f, g, o) with one bias per gate row (b_ih + b_hh folded):
weight_ih [M, 4H, I], weight_hh [M, 4H, H], bias [M, 4H], weight_out [M, O, H], bias_out [M, O].
"""
from __future__ import annotations

from ..functional import lstm
from . import weight_inits
from .projected import projected_cell

LSTM = projected_cell(
    name="lstm",
    title="LSTM",
    gates=4,
    recurrence=lambda p, xp, state, options, reg_weight, sink: lstm(xp, p["weight_hh"], *(state or ()), sink=sink),
    state_names=("h", "c"),
    options={},
    choices={},
    init_options={},
    inits=weight_inits.GATED,
    default_init="orthogonal",
    init_implies={},
    # xp and the saved gates (4H each), h and c.
    state_width=10,
    omega=False,
    # the trainer's whole update is one op call (rnnlab.train.fused_step)
    fused_step="lstm_train_step",
    # validation runs one op call per block of sequences (rnnlab.train.trainer.validate)
    evaluate="lstm_evaluate",
    system=None,
    # ρ of the stacked [4H, H] matrix says nothing about the gated recurrence.
    radius=None,
)
