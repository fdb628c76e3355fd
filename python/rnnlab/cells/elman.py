"""The Elman cell (SPEC §1): h_t = φ(W_ih[m] x_t + b[m] + W_hh[m] h_{t−1}).

One hidden bias per model (Pascanu's ``b_hh``; nn.RNN's b_ih + b_hh would be redundant), so the
parameters are exactly the five of SPEC §2.4: weight_ih [M, H, I], weight_hh [M, H, H],
bias [M, H], weight_out [M, O, H], bias_out [M, O]. The only cell whose backward kernel fuses
Ω's gradient (SPEC §2.5), and the one :mod:`rnnlab.analysis` treats as a dynamical system.
"""
from __future__ import annotations

from ..analysis.system import ElmanSystem
from ..functional import elman
from ..reference import ACTIVATIONS
from . import draws, weight_inits
from .projected import projected_cell

ELMAN = projected_cell(
    name="elman",
    title="Elman",
    gates=1,
    recurrence=lambda p, xp, state, options, reg_weight, sink: (elman(
        xp, p["weight_hh"], *(state or ()), nonlinearity=options["nonlinearity"], reg_weight=reg_weight, sink=sink),),
    options={"nonlinearity": "tanh"},
    choices={"nonlinearity": ACTIVATIONS},
    init_options={},
    inits={"sigmoid": weight_inits.gaussian(0.01), "basic_tanh": weight_inits.gaussian(0.1),
           "smart_tanh": weight_inits.smart_tanh, "orthogonal": weight_inits.orthogonal, "normal": weight_inits.normal},
    default_init="basic_tanh",
    # Pascanu's sigmoid init comes with the logistic activation (SPEC §2.1).
    init_implies={"sigmoid": {"nonlinearity": "sigmoid"}},
    # xp and h: H values each per step and sample.
    state_width=2,
    omega=True,
    # the trainer's whole update is one op call (rnnlab.train.fused_step)
    fused_step="elman_train_step",
    # validation runs one op call per block of sequences (rnnlab.train.trainer.validate)
    evaluate="elman_evaluate",
    system=ElmanSystem,
    radius=lambda params, options: draws.spectral_radius(params["weight_hh"]),
)
