"""rnnlab: fused RNN kernels with gradient diagnostics, for research on long-term memory."""
from . import _ops  # noqa: F401  (loads the extension, registers fake kernels and vmap rules)
from .functional import GradientSink, diag_recurrence, elman, gru, lstm
from .nn import GRU, LRU, LSTM, RNN

__all__ = ["GRU", "GradientSink", "LRU", "LSTM", "RNN", "diag_recurrence", "elman", "gru", "lstm"]
