"""Modules: drop-in replacements for torch.nn recurrent layers (DESIGN.md §4)."""
from ._diagnostics import GradientStats
from .gru import GRU
from .lru import LRU
from .lstm import LSTM
from .rnn import RNN

__all__ = ["GRU", "GradientStats", "LRU", "LSTM", "RNN"]
