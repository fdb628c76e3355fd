"""The CPU random-stream ops (csrc/torch/random_ops.cpp) against their definition in torch ops
(``rng.*_torch``, used on the other devices): equal bit for bit, for every compiled ISA, with
clear errors on bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.tasks import rng

from helpers_ops import LOWER_ISAS, run_under_isa

ops = torch.ops.rnnlab
WORD = st.integers(0, 2**32 - 1)
TAG = st.one_of(st.integers(0, 2**70), st.text(max_size=12))


def keys_of(words: list[tuple[int, int]]) -> torch.Tensor:
    return torch.tensor(words, dtype=torch.int64).reshape(len(words), 2)


def assert_identical(native: torch.Tensor, reference: torch.Tensor) -> None:
    assert native.dtype == reference.dtype and native.shape == reference.shape
    assert torch.equal(native, reference), (native != reference).nonzero()[:5]


def check_every_draw(keys: torch.Tensor, shape: tuple[int, ...], high: int, tags: list) -> None:
    assert_identical(rng.derive(keys, *tags), rng.derive_torch(keys, *tags))
    assert_identical(rng.bits(keys, shape), rng.bits_torch(keys, shape))
    assert_identical(rng.randint(keys, high, shape), rng.randint_torch(keys, high, shape))
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        assert_identical(rng.uniform(keys, shape, dtype), rng.uniform_torch(keys, shape, dtype))
        assert_identical(rng.normal(keys, shape, dtype), rng.normal_torch(keys, shape, dtype))


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.tuples(WORD, WORD), max_size=9),
    shape=st.lists(st.integers(0, 40), max_size=3).map(tuple),
    high=st.one_of(st.integers(1, 2**24), st.sampled_from([1, 2, 2**24])),
    tags=st.lists(TAG, max_size=3),
)
def test_native_equals_torch_definition(words, shape, high, tags):
    check_every_draw(keys_of(words), shape, high, tags)


def test_extreme_key_words_and_strided_keys():
    keys = keys_of([(0, 0), (2**32 - 1, 2**32 - 1), (0, 2**32 - 1), (2**32 - 1, 0)])
    check_every_draw(keys, (7, 3), 2**24, ["a", 2**64 - 1])
    population = rng.seed_keys(range(40))
    check_every_draw(population[::3], (5,), 3, [0])  # a non-contiguous row selection
    check_every_draw(population.t().contiguous().t(), (5,), 3, ["x"])  # column-major


def test_large_draws_equal_torch_definition():
    """Millions of float64 draws: normal's log1p/cos must be torch's, not libm's (which differs
    in the last ulp), over every thread chunk boundary and vector tail."""
    keys = rng.seed_keys(range(64))
    for n in (40_000, 40_003):
        assert_identical(rng.normal(keys, (n,), torch.float64), rng.normal_torch(keys, (n,), torch.float64))
        assert_identical(rng.uniform(keys, (n,), torch.float64), rng.uniform_torch(keys, (n,), torch.float64))


def test_blocked_torch_definition_equals_native(monkeypatch):
    keys = rng.seed_keys([5, 6, 7])
    monkeypatch.setattr(rng, "_CPU_BLOCK", 300)
    assert_identical(rng.bits(keys, (3000,)), rng.bits_torch(keys, (3000,)))


@pytest.mark.parametrize("isa", LOWER_ISAS)
def test_every_compiled_isa_equals_torch_definition(isa):
    """The fill loops compiled for the lower ISAs (forced with RNNLAB_ISA) give the same numbers."""
    run_under_isa(
        isa,
        "from rnnlab.tasks import rng\n"
        "keys = rng.seed_keys(range(37))\n"
        "for shape in ((1,), (17,), (999,), (40, 21)):\n"
        "  assert torch.equal(rng.bits(keys, shape), rng.bits_torch(keys, shape))\n"
        "  assert torch.equal(rng.randint(keys, 5, shape), rng.randint_torch(keys, 5, shape))\n"
        "  for dt in (torch.float32, torch.float64):\n"
        "    assert torch.equal(rng.uniform(keys, shape, dt), rng.uniform_torch(keys, shape, dt))\n"
        "    assert torch.equal(rng.normal(keys, shape, dt), rng.normal_torch(keys, shape, dt))\n",
    )


# ---- bad input ----------------------------------------------------------------------------------
GOOD = rng.seed_keys([1, 2])


@pytest.mark.parametrize("draw", [
    lambda k: rng.bits(k, (4,)),
    lambda k: rng.uniform(k, (4,)),
    lambda k: rng.randint(k, 3, (4,)),
    lambda k: rng.normal(k, (4,)),
    lambda k: rng.derive(k, "a"),
])
def test_bad_keys_raise_clear_errors(draw):
    with pytest.raises(TypeError, match="keys must be int64"):
        draw(GOOD.double())
    with pytest.raises(TypeError, match="keys must be int64"):
        draw(GOOD.int())
    for bad in (GOOD[:, :1], GOOD[0], GOOD[None]):
        with pytest.raises(ValueError, match=r"keys must have shape \[M, 2\]"):
            draw(bad)
    for word in (-1, 2**32):
        with pytest.raises(ValueError, match=r"keys words must be in \[0, 2\*\*32\)"):
            draw(torch.tensor([[0, word]]))


def test_bad_sizes_and_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="fewer than 2\\*\\*32 elements"):
        rng.bits(GOOD, (2**16, 2**16))
    with pytest.raises(ValueError, match="fewer than 2\\*\\*32 elements"):
        rng.normal(GOOD, (2**32,))
    with pytest.raises(ValueError, match=r"n \(elements per model\) must be in \[0, 2\*\*32\)"):
        ops.random_bits(GOOD, 2**32)
    with pytest.raises(ValueError, match=r"n \(elements per model\) must be in \[0, 2\*\*32\)"):
        ops.random_uniform(GOOD, -1, torch.float32)
    with pytest.raises(ValueError, match="randint needs 1 <= high <= 2\\*\\*24"):
        rng.randint(GOOD, 0, (3,))
    with pytest.raises(ValueError, match=r"high must be in \[1, 2\*\*24\]"):
        ops.random_randint(GOOD, 3, 2**24 + 1)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        ops.random_uniform(GOOD, 3, torch.float16)
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        ops.random_normal(GOOD, GOOD, 3, torch.int64)
    with pytest.raises(ValueError, match="radius_keys and angle_keys must have the same M"):
        ops.random_normal(GOOD, GOOD[:1], 3, torch.float32)
    with pytest.raises(ValueError, match="stream tags must be non-negative"):
        rng.derive(GOOD, -1)
    with pytest.raises(ValueError, match=r"tag words must be in \[0, 2\*\*32\)"):
        ops.random_derive(GOOD, [2**32])


def test_normal_under_inference_mode_with_threads():
    """random_normal runs torch ops on worker threads: they must see the caller's inference mode
    (the output is an inference tensor there), and the draw stays the same bits."""
    keys = rng.seed_keys(range(64))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plain = rng.normal(keys, (100, 1000))
        with torch.inference_mode():
            inferred = rng.normal(keys, (100, 1000))
    finally:
        torch.set_num_threads(before)
    assert inferred.is_inference()
    assert torch.equal(plain, inferred)
