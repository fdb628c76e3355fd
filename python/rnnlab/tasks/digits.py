"""Sequential 8×8 digits: scikit-learn's ``load_digits`` read one pixel per step (the small
cousin of sequential MNIST, SPEC §6.2), with optional blank steps appended to lengthen the lag.

Data: 1797 images, pixel values 0–16, scaled to v/16 − 0.5 (as SPEC §6.2 scales MNIST by
/255 − 0.5); appended blank steps are 0. T = 64 + pad. 10-way cross-entropy at step T.
Split (fixed): image i (in ``load_digits`` order) is a test image when i % 5 == 0 (360 images),
a training image otherwise (1437). Training batches draw training images uniformly with
replacement from each model's own stream; validation is the whole test set, the same every time.
Success (project choice): test error under ``success_error`` (default 10 %).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from . import rng
from .base import Batch, Task

_PIXELS = 64


def _load():
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # optional dependency: only this task needs it
        raise ImportError("the digits task needs scikit-learn: pip install scikit-learn") from e
    data = load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float64) / 16.0 - 0.5
    y = torch.as_tensor(data.target, dtype=torch.int64)
    test = torch.arange(len(y)) % 5 == 0
    return (x[~test], y[~test]), (x[test], y[test])


class SequentialDigits(Task):
    """Sequential 8×8 digits (see the module docstring). ``pad`` blank steps follow the pixels."""

    name = "digits"
    n_in = 1
    n_out = 10
    fresh_validation = False

    def __init__(self, pad: int = 0, success_error: float = 0.1):
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        super().__init__(_PIXELS + pad, _PIXELS + pad)
        self.pad = pad
        self.success_error = float(success_error)
        self._cache: dict = {}

    def _data(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._cache:
            if "raw" not in self._cache:
                self._cache["raw"] = _load()
            (xtr, ytr), (xte, yte) = self._cache["raw"]
            self._cache[key] = (xtr.to(device, dtype), ytr.to(device), xte.to(device, dtype), yte.to(device))
        return self._cache[key]

    def _sequences(self, pixels: torch.Tensor) -> torch.Tensor:
        """[M, B, 64] -> [M, 64 + pad, B, 1]."""
        x = pixels.transpose(1, 2)
        if self.pad:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.pad, x.shape[2])], 1)
        return x[..., None].contiguous()

    def sample(self, keys, ctx, length, batch_size, dtype=torch.float32) -> Batch:
        xtr, ytr, _, _ = self._data(keys.device, dtype)
        idx = rng.randint(rng.derive(keys, "images"), len(ytr), (batch_size,))  # [M, B]
        return Batch(self._sequences(xtr[idx]), ytr[idx][:, None])

    def validation_batches(self, keys, ctx, length_seed, round_, size, chunk, dtype=torch.float32) -> Iterator[Batch]:
        """The whole test set (``size`` is ignored), in chunks of ``chunk`` images."""
        _, _, xte, yte = self._data(keys.device, dtype)
        M = keys.shape[0]
        for start in range(0, len(yte), chunk):
            x, y = xte[start : start + chunk], yte[start : start + chunk]
            yield Batch(self._sequences(x.expand(M, *x.shape)), y.expand(M, 1, len(y)))

    def describe(self) -> dict:
        return {"name": self.name, "pad": self.pad, "success_error": self.success_error}
