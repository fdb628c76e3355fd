"""What the ops share: the denormal flush of every kernel entry."""
import platform

import pytest
import torch

from rnnlab import reference as ref

ops = torch.ops.rnnlab


SUBNORMAL = 1e-39  # below float32's smallest normal number (1.2e-38)

# (name, kernel call, reference call) on inputs that make subnormal states: xp = SUBNORMAL, no
# recurrent weights, zero initial states.
FLUSH_CASES = {
    "elman": lambda xp: (ops.elman_forward(xp, xp.new_zeros(1, 4, 4), xp.new_zeros(1, 2, 4), "identity"),
                         ref.elman_forward(xp, xp.new_zeros(1, 4, 4), xp.new_zeros(1, 2, 4), "identity")),
    "lstm": lambda xp: tuple(f(xp.repeat(1, 1, 1, 4), xp.new_zeros(1, 16, 4), xp.new_zeros(1, 2, 4),
                               xp.new_zeros(1, 2, 4))[1] for f in (ops.lstm_forward, ref.lstm_forward)),
    "gru": lambda xp: tuple(f(xp.repeat(1, 1, 1, 3), xp.new_zeros(1, 12, 4), xp.new_zeros(1, 4),
                              xp.new_zeros(1, 2, 4))[0] for f in (ops.gru_forward, ref.gru_forward)),
    "diag": lambda xp: tuple(f(xp, xp.new_full((1, 4), 0.5), xp.new_zeros(1, 2, 4), False)[0]
                             for f in (ops.diag_forward, ref.diag_forward)),
}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the flush sets x86's MXCSR")
@pytest.mark.parametrize("cell", FLUSH_CASES)
def test_every_kernel_flushes_denormals_and_restores_the_callers_mode(cell):
    """Each cell's kernels run with subnormals flushed to zero (FlushDenormalsScope, csrc/torch/
    tiles.h), where torch keeps them; the caller's own arithmetic keeps them afterwards."""
    xp = torch.full((1, 3, 2, 4), SUBNORMAL, dtype=torch.float32)
    got, want = FLUSH_CASES[cell](xp)
    assert (want != 0).all() and (want.abs() < torch.finfo(torch.float32).tiny).all(), "reference not subnormal"
    assert (got == 0).all()
    assert (xp * 1.0 != 0).all()
