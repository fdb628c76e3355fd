"""rnnlab: fused RNN kernels with gradient diagnostics, for research on long-term memory."""
from . import _ops  # noqa: F401  (loads the extension, registers fake kernels and vmap rules)
from .functional import GradientSink, elman
from .nn import RNN

__all__ = ["GradientSink", "RNN", "elman"]
