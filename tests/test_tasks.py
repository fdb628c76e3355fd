"""Task generators (SPEC §2.2, §3.3, §4.2, §6.2): shapes, marker positions, targets recomputed
independently from the inputs, chance-level error of an untrained model, length sampling,
determinism per seed and independence from the population (M and position)."""
import math

import pytest
import torch

from rnnlab.nn.population import population_forward
from rnnlab.tasks import TASKS, make_task, rng
from rnnlab.train.init import init_population

SEEDS = [11, 22, 33]
KWARGS = {"mem": {"n_values": 3, "n_pos": 4}}


def sample(name, seeds=SEEDS, T=None, B=64, **kw):
    if name == "digits":
        pytest.importorskip("sklearn")  # the only optional dependency of the tasks
    task = make_task(name, **{**KWARGS.get(name, {}), **kw})
    keys = rng.seed_keys(seeds)
    T = T or task.train_length(0, 0)
    return task, task.sample(rng.derive(keys, "test"), task.setup(keys), T, B)


# ---- random streams ---------------------------------------------------------------------------
def test_rng_distributions():
    keys = rng.seed_keys([1, 2])
    u = rng.uniform(keys, (50_000,), torch.float64)
    assert u.min() >= 0 and u.max() < 1
    assert torch.allclose(u.mean(1), torch.full((2,), 0.5, dtype=torch.float64), atol=0.01)
    assert torch.allclose(u.var(1), torch.full((2,), 1 / 12, dtype=torch.float64), atol=0.005)
    z = rng.normal(keys, (50_000,), torch.float64)
    assert torch.allclose(z.mean(1), torch.zeros(2, dtype=torch.float64), atol=0.03)
    assert torch.allclose(z.std(1), torch.ones(2, dtype=torch.float64), atol=0.03)
    counts = torch.bincount(rng.randint(keys, 7, (70_000,))[0], minlength=7).double()
    chi2 = ((counts - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 30  # 6 degrees of freedom: p ≈ 4e-5 at 30
    # uncorrelated neighbours and streams
    assert abs(torch.corrcoef(torch.stack([u[0, :-1], u[0, 1:]]))[0, 1]) < 0.02
    assert abs(torch.corrcoef(u)[0, 1]) < 0.02


def test_rng_words_stay_32_bit_and_streams_differ():
    keys = rng.seed_keys([0, 2**64 - 1])
    b = rng.bits(keys, (1000,))
    assert b.min() >= 0 and b.max() < 2**32
    assert not torch.equal(rng.bits(rng.derive(keys, "a"), (10,)), rng.bits(rng.derive(keys, "b"), (10,)))
    assert not torch.equal(rng.bits(rng.derive(keys, 1), (10,)), rng.bits(rng.derive(keys, 2), (10,)))
    with pytest.raises(ValueError, match="seeds"):
        rng.seed_keys([-1])


# ---- generic properties of every task ---------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TASKS))
def test_shapes_and_dtypes(name):
    task, batch = sample(name, B=8)
    M, T, B = len(SEEDS), batch.length, 8
    K = task.readout_steps(T)
    assert batch.x.shape == (M, T, B, task.n_in) and batch.x.dtype == torch.float32
    if task.classification:
        assert batch.target.shape == (M, K, B) and batch.target.dtype == torch.int64
        assert batch.target.min() >= 0 and batch.target.max() < task.n_out
    else:
        assert batch.target.shape == (M, K, B, task.n_out)
    assert torch.isfinite(batch.x).all()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_determinism_and_independence_from_population(name):
    _, together = sample(name, seeds=[5, 6, 7], B=8)
    _, again = sample(name, seeds=[5, 6, 7], B=8)
    _, alone = sample(name, seeds=[7], B=8)
    _, shuffled = sample(name, seeds=[7, 100, 5, 101], B=8)
    assert torch.equal(together.x, again.x) and torch.equal(together.target, again.target)
    assert torch.equal(together.x[2], alone.x[0]) and torch.equal(together.target[2], alone.target[0])
    assert torch.equal(together.x[0], shuffled.x[2]) and torch.equal(together.x[2], shuffled.x[0])
    assert not torch.equal(together.x[0], together.x[1])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_untrained_model_is_at_chance(name):
    if name == "digits":
        pytest.importorskip("sklearn")
    task = make_task(name, **KWARGS.get(name, {}))
    keys = rng.seed_keys([1, 2])
    ctx = task.setup(keys)
    params = init_population(keys, "basic_tanh", task.n_in, 16, task.n_out)
    batch = task.sample(rng.derive(keys, "chance"), ctx, task.train_length(0, 3), 2000)
    with torch.no_grad():
        y = population_forward(params, batch.x, readout_steps=task.readout_steps(batch.length))
    error = task.sequence_errors(y, batch).double().mean(1)
    assert error.shape == (2,)
    if task.classification:
        # The untrained output is ~constant, so the error is 1 − P(its class).
        chance = {"torder": 0.75, "torder3": 0.875, "latch": 0.5, "parity": 0.5, "digits": 0.9}.get(name)
        if chance is not None:
            assert torch.allclose(error, torch.full_like(error, chance), atol=0.06), error
        elif name == "perm":  # 2-way decision in a 100-way softmax: 50 % at best, 100 % off {0, 1}
            assert (error > 0.45).all(), error
        else:  # recall tasks: almost every sequence has a wrong step
            assert (error > 0.5).all(), error
        if name in ("torder", "torder3", "perm", "latch", "parity"):
            loss = task.loss(y, batch)
            assert torch.allclose(loss, torch.full_like(loss, math.log(task.n_out)), rtol=0.05)
    else:
        # Chance for regression: the best constant prediction (the target mean); an untrained
        # model is no better than it.
        const = batch.target.mean((1, 2), keepdim=True).expand_as(batch.target)
        baseline = task.sequence_errors(const, batch).double().mean(1)
        assert (error >= baseline - 0.05).all(), (error, baseline)
        if name == "add":  # mean of two U[0,1): P(|y − 1/2| > 0.2) = 2·2·0.3²/2 = 0.36
            assert torch.allclose(baseline, torch.full_like(baseline, 0.36), atol=0.04), baseline


# ---- length sampling (SPEC §2.2) --------------------------------------------------------------
def test_length_sampling():
    t = make_task("torder", min_length=50, max_length=200)
    lengths = [t.train_length(0, k) for k in range(3000)]
    assert min(lengths) >= 50 and max(lengths) <= 199 and len(set(lengths)) > 140
    assert abs(sum(lengths) / len(lengths) - 124.5) < 3
    assert lengths == [t.train_length(0, k) for k in range(3000)]
    assert lengths != [t.train_length(1, k) for k in range(3000)]
    assert {make_task("torder", min_length=30, max_length=30).train_length(0, k) for k in range(50)} == {30}
    add = make_task("add", min_length=100, max_length=100)
    jittered = {add.train_length(0, k) for k in range(500)}
    assert min(jittered) >= 100 and max(jittered) <= 109 and len(jittered) == 10
    assert {make_task("mem20", min_length=50, max_length=50).train_length(0, k) for k in range(5)} == {70}
    chunks = [t.valid_length(0, 1, c) for c in range(10)]
    assert len(set(chunks)) > 1  # each validation chunk draws its own length


# ---- per-task definitions ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["add", "mul"])
def test_arithmetic(name):
    task, b = sample(name, T=150)
    x = b.x
    assert set(x[..., 0].unique().tolist()) == {0.0, 1.0}
    assert (x[..., 0].sum(1) == 2).all()
    T = 150
    pos = x[..., 0].permute(0, 2, 1).nonzero()[:, 2].view(len(SEEDS), 64, 2)  # [M, B, 2] sorted
    assert (pos[..., 0] < int(0.1 * T)).all()
    assert (pos[..., 1] >= int(0.1 * T)).all() and (pos[..., 1] < int(0.1 * T) + int(0.4 * T)).all()
    vals = x[..., 1].permute(0, 2, 1).gather(2, pos)
    expected = vals.mean(2) if name == "add" else vals.prod(2)
    assert torch.allclose(b.target[:, 0, :, 0], expected)
    assert (x[..., 1] >= 0).all() and (x[..., 1] < 1).all()
    # error rule: squared error > 0.04
    y = b.target.clone()
    y[0, 0, 0, 0] += 0.21
    y[1, 0, 0, 0] += 0.19
    err = task.sequence_errors(y, b)
    assert err[0, 0] and not err[1, 0] and err.sum() == 1


@pytest.mark.parametrize("name,n_bits", [("torder", 2), ("torder3", 3)])
def test_temporal_order(name, n_bits):
    T = 120
    task, b = sample(name, T=T)
    assert (b.x.sum(-1) == 1).all()
    sym = b.x.argmax(-1)  # [M, T, B]
    marked = sym < 2
    assert (marked.sum(1) == n_bits).all()
    starts = {2: (0.1, 0.5), 3: (0.1, 0.3, 0.6)}[n_bits]
    pos = marked.permute(0, 2, 1).nonzero()[:, 2].view(len(SEEDS), 64, n_bits)
    for k, s in enumerate(starts):
        assert (pos[..., k] >= int(s * T)).all() and (pos[..., k] < int(s * T) + int(0.1 * T)).all()
    bits = sym.permute(0, 2, 1).gather(2, pos)
    expected = sum(bits[..., k] << k for k in range(n_bits))
    assert torch.equal(b.target[:, 0], expected)
    assert torch.bincount(b.target.flatten(), minlength=2**n_bits).min() > 0


def test_permutation():
    _, b = sample("perm", T=80)
    sym = b.x.argmax(-1)
    assert (b.x.sum(-1) == 1).all()
    assert torch.equal(b.target[:, 0], sym[:, 0])
    assert (sym[:, 0] < 2).all() and (sym[:, 1:] >= 2).all()


@pytest.mark.parametrize("name,n_values,n_pos", [("mem5", 2, 5), ("mem20", 5, 10), ("mem", 3, 4)])
def test_memorization(name, n_values, n_pos):
    length = 60
    task = make_task(name, min_length=length, max_length=length, **({"n_values": 3, "n_pos": 4} if name == "mem" else {}))
    keys = rng.seed_keys(SEEDS)
    T = task.train_length(0, 0)
    assert T == length + 2 * n_pos and task.readout_steps(T) == T
    b = task.sample(keys, {}, T, 32)
    x = b.x
    assert x.shape[-1] == n_values + 2 and task.n_out == n_values + 1
    pattern = x[:, :n_pos, :, :n_values].argmax(-1)
    assert (x[:, :n_pos].sum(-1) == 1).all()
    trigger = T - n_pos
    assert (x[:, n_pos:, :, -2].sum(1) == T - n_pos - 1).all()  # blank everywhere after, but the trigger
    assert (x[:, trigger, :, -1] == 1).all() and (x[:, trigger, :, -2] == 0).all()
    assert (x[..., -1].sum(1) == 1).all()
    assert (b.target[:, :trigger] == n_values).all()
    assert torch.equal(b.target[:, trigger:], pattern)


@pytest.mark.parametrize("name", ["latch", "parity"])
def test_latch_and_parity(name):
    task, b = sample(name, T=40, n_info=3, noise=0.5)
    prefix = b.x[:, :3, :, 0]
    assert set(prefix.unique().tolist()) <= {-1.0, 1.0}
    bits = (prefix > 0).long()
    if name == "latch":
        assert (bits == bits[:, :1]).all()
        assert torch.equal(b.target[:, 0], bits[:, 0])
    else:
        assert torch.equal(b.target[:, 0], bits.sum(1) % 2)
    noise = b.x[:, 3:, :, 0]
    assert abs(noise.std().item() - 0.5) < 0.03 and abs(noise.mean().item()) < 0.03


def test_copy_first():
    task, b = sample("copy", T=30)
    assert torch.equal(b.target[:, 0], b.x[:, 0])
    assert abs(b.x.std().item() - 1) < 0.05


def test_denoise():
    T, pad = 40, 8
    task, b = sample("denoise", T=T, min_length=T, max_length=T, pad=pad)
    assert task.readout_steps(T) == 5
    marker = b.x[..., 1]
    assert (marker[:, T - 5] == -1).all()
    ones = (marker == 1)
    assert (ones.sum(1) == 5).all() and not ones[:, T - pad :].any()
    pos = ones.permute(0, 2, 1).nonzero()[:, 2].view(len(SEEDS), 64, 5)
    expected = b.x[..., 0].permute(0, 2, 1).gather(2, pos)  # in temporal order
    assert torch.equal(b.target[..., 0].permute(0, 2, 1), expected)


def test_system_identification_teacher():
    task = make_task("sysid", min_length=50, max_length=50, n_teacher=6, nu0=0.8)
    keys = rng.seed_keys(SEEDS)
    ctx = task.setup(keys)
    radius = torch.linalg.eigvals(ctx["A"]).abs()
    assert (radius >= 0.8 - 1e-9).all() and (radius < 1).all()  # ν0 + (1 − ν0)·tanh|l|
    b = task.sample(keys, ctx, 50, 16, torch.float64)
    # recompute the teacher's outputs with an explicit loop
    x = b.x[..., 0]  # [M, T, B]
    h = torch.zeros(len(SEEDS), 16, 6, dtype=torch.float64)
    ys = []
    for t in range(50):
        h = h @ ctx["A"].transpose(1, 2) + x[:, t, :, None] * ctx["B"][:, None, :, 0]
        ys.append((h * ctx["C"][:, 0][:, None, :]).sum(-1) + ctx["D"][:, 0, 0][:, None] * x[:, t])
    assert torch.allclose(b.target[..., 0], torch.stack(ys, 1), atol=1e-10)
    assert task.loss(b.target, b).abs().max() == 0
    assert not task.sequence_errors(b.target, b).any()


def test_digits():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    task = make_task("digits", pad=5)
    keys = rng.seed_keys(SEEDS)
    b = task.sample(keys, {}, 69, 16)
    assert b.x.shape == (3, 69, 16, 1) and task.train_length(0, 7) == 69
    assert (b.x[:, 64:] == 0).all()
    data = load_digits()
    images = torch.as_tensor(data.data, dtype=torch.float32) / 16 - 0.5
    train = torch.arange(len(data.target)) % 5 != 0
    # every sampled sequence is a training image with its label
    seqs = b.x[:, :64, :, 0].permute(0, 2, 1).reshape(-1, 64)
    match = (seqs[:, None, :] == images[None, train]).all(-1)
    assert (match.sum(1) >= 1).all()
    labels = torch.as_tensor(data.target)[train]
    assert all(labels[match[i]].eq(b.target.flatten()[i]).any() for i in range(len(seqs)))
    val = list(task.validation_batches(keys, {}, 0, 0, 10_000, 100))
    assert sum(v.x.shape[2] for v in val) == 360
    assert torch.equal(torch.cat([v.target[0, 0] for v in val]), torch.as_tensor(data.target)[~train])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown task"):
        make_task("nope")
    with pytest.raises(ValueError, match="min_length"):
        make_task("torder", min_length=10, max_length=5)
    with pytest.raises(ValueError, match="n_bits"):
        TASKS["torder"].func(n_bits=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_hot_equals_torchs(dtype):
    from rnnlab.tasks.base import one_hot

    symbols = torch.randint(0, 6, (3, 7, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(one_hot(symbols, 6, dtype), torch.nn.functional.one_hot(symbols, 6).to(dtype))
    assert one_hot(symbols[:, :0], 6, dtype).shape == (3, 0, 5, 6)
    assert torch.equal(one_hot(symbols.transpose(0, 2), 6, dtype), torch.nn.functional.one_hot(symbols.transpose(0, 2), 6).to(dtype))
