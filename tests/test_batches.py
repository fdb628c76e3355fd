"""The trainer's training batches drawn several updates at a time (rnnlab.train.batches) are,
for every task, bit for bit the batches drawn one update at a time (system identification's
targets, computed with a BLAS, to its rounding), for all the models and for
a compacted population; blocks end at validations, at changes of the sequence length and at
their memory budget."""
import pytest
import torch

from rnnlab.tasks import TASKS, make_task, rng
from rnnlab.train import batches as batches_module
from rnnlab.train.batches import TrainingBatches


def _small(name: str):
    """The task with short sequences (variable length where it allows), else its defaults."""
    for kwargs in ({"min_length": 20, "max_length": 23}, {"min_length": 20, "max_length": 20}, {}):
        try:
            return make_task(name, **kwargs)
        except (TypeError, ValueError):
            continue
    raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_of_updates_equal_one_update_at_a_time(name, dtype):
    task = _small(name)
    keys = rng.seed_keys([3, 1, 4, 1, 5])
    ctx = task.setup(keys)
    one_at_a_time = task.sample
    draws = []
    task.sample = lambda *args: draws.append(args[0].shape[0]) or one_at_a_time(*args)
    batches = TrainingBatches(task, keys, ctx, 7, 4, dtype, val_every=5, max_updates=12)
    for k in range(12):
        models = None if k < 5 else torch.tensor([0, 2, 3])  # compacted at the validation after update 4
        sub = keys if models is None else keys[models]
        want = one_at_a_time(rng.derive(sub, "train", k), {n: v if models is None else v[models] for n, v in ctx.items()},
                             task.train_length(7, k), 4, dtype)
        got = batches.get(k, models)
        assert torch.equal(got.x, want.x), k
        if name == "sysid":  # its targets go through a batched GEMM (einsum), which a BLAS may round
            eps = 4 * torch.finfo(dtype).eps  # differently for other batch counts (MKL on AMD CPUs)
            torch.testing.assert_close(got.target, want.target, rtol=eps, atol=eps * float(want.target.abs().max()))
        else:
            assert torch.equal(got.target, want.target), k
    lengths = [task.train_length(7, k) for k in range(12)]
    blocks = sum(k == 0 or k == 5 or k == 10 or lengths[k] != lengths[k - 1] for k in range(12))
    assert len(draws) == blocks  # one draw per block: at the validations (5, 10) and length changes


def test_a_block_holds_at_most_the_memory_budget(monkeypatch):
    task = make_task("torder", min_length=10, max_length=10)
    keys = rng.seed_keys(range(4))
    per_update = 4 * 10 * 3 * task.n_in * 4  # M · T · B · I float32
    monkeypatch.setattr(batches_module, "PREFETCH_BYTES", 3 * per_update)
    draws = []
    sample = task.sample
    task.sample = lambda *args: draws.append(args[0].shape[0]) or sample(*args)
    batches = TrainingBatches(task, keys, {}, 0, 3, torch.float32, val_every=100, max_updates=7)
    for k in range(7):
        batches.get(k, None)
    assert draws == [12, 12, 4]  # 3 updates of 4 models, 3 more, then the last (the 7th)
