"""Shared fixtures. (The shared test helpers are the tests/helpers_*.py modules, importable from
every test file: pytest puts tests/ on sys.path.)"""
from __future__ import annotations

import pytest
import torch

import rnnlab


@pytest.fixture
def kernel_calls(monkeypatch):
    """record(op) -> a list that receives the first argument's shape of every real call of
    ``torch.ops.rnnlab.<op>`` made through rnnlab's autograd functions (``rnnlab._ops.ops``).

    Calls at a vmap level (functorch-wrapped arguments) are not real kernel calls: their batching
    rule folds the vmapped dimension into M and calls the op again, which is recorded.
    """

    def record(op_name: str) -> list:
        calls = []
        real = getattr(torch.ops.rnnlab, op_name)

        def spy(*args):
            wrapped = [torch._C._functorch.is_functorch_wrapped_tensor(t) for t in args if isinstance(t, torch.Tensor)]
            if not any(wrapped):
                calls.append(args[0].shape)
            return real(*args)

        class Spy:
            def __getattr__(self, name):
                return spy if name == op_name else getattr(torch.ops.rnnlab, name)

        monkeypatch.setattr(rnnlab._ops, "ops", Spy())
        return calls

    return record
