"""matplotlib for the figures rnnlab writes (training curves, sweep reports, reproductions).

matplotlib is optional: :func:`available` says whether it is installed, and :func:`pyplot` raises
an ImportError naming the package when it is not. Figures are files, never windows, so pyplot is
always on the Agg backend (it also works on machines without a display).
"""
from __future__ import annotations


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("rnnlab's figures need matplotlib: pip install matplotlib") from e
    return plt
