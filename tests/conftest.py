"""Shared fixtures."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnlab.nn import RNN


@pytest.fixture
def rnn_pair():
    """make(*args, **kwargs) -> (nn.RNN, rnnlab.RNN) with the same arguments and identical weights.

    Both are built under the same seed, so this also relies on (and the drop-in tests check)
    the identical initialization.
    """

    def make(*args, seed: int = 0, **kwargs) -> tuple[nn.RNN, RNN]:
        torch.manual_seed(seed)
        ref = nn.RNN(*args, **kwargs)
        torch.manual_seed(seed)
        return ref, RNN(*args, **kwargs)

    return make
