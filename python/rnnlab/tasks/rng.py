"""Counter-based random streams, one per model, vectorized over the population.

Why not one ``torch.Generator`` per model: a population of M models would need M small generator
calls per tensor per update (thousands of launches on a GPU). Instead every random number is a
pure function of (model key, stream tags, element index), computed with integer hashing on the
target device in a handful of elementwise ops for all M models at once. Consequences:

* model m's data depends only on its own key (derived from its seed), never on M or on its
  position in the population, so a model trained alone sees exactly the data it sees inside a
  population;
* the numbers are identical on CPU and CUDA (integer arithmetic only; floats are formed from the
  top 24 bits, exactly representable in float32 and float64).

The hash is Wellons' "lowbias32" mixer applied to 32-bit words held in int64 tensors; the 32-bit
products are formed from 16-bit halves so that no int64 operation can overflow. A key is two
32-bit words (a 64-bit seed space: no key collisions in practice for populations of thousands).
This is a statistical hash for generating training data, not a cryptographic generator.

The public functions call ops of rnnlab._C (csrc/torch/random_ops.cpp). On the CPU these compute
the numbers in one parallel pass instead of ~20 memory-bound elementwise passes (and ~25 small ops
per :func:`derive` tag): in torch ops, data generation was a third of a small population's update
on the CPU. The ``*_torch`` functions are the definitions in torch ops, bit for bit the same
numbers; on CUDA they are the ops' kernels (rnnlab._ops.register_reference_kernel).

Shapes: ``keys`` is [M, 2] int64 (words in [0, 2³²)); draws are [M, *shape].
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _ops

_native = _ops.ops  # torch.ops.rnnlab

_MASK32 = 0xFFFFFFFF
_C1 = 0x7FEB352D
_C2 = 0x846CA68B
_GOLDEN = 0x9E3779B9
_CPU_BLOCK = 1 << 15  # int64 words hashed per block on CPU (256 KiB: stays in L2)


def _mul32_(x: Tensor, c: int, tmp: Tensor) -> None:
    """x ← (x · c) mod 2³² in place, for x in [0, 2³²), without int64 overflow."""
    torch.mul(x, c >> 16, out=tmp)
    tmp.bitwise_and_(0xFFFF).bitwise_left_shift_(16)
    x.mul_(c & 0xFFFF).add_(tmp).bitwise_and_(_MASK32)


def mix32_(x: Tensor) -> Tensor:
    """In-place bijective 32-bit hash (lowbias32) of an int64 tensor with values in [0, 2³²).

    In place because the per-element draws are large (M·T·B words) and memory-bound."""
    tmp = torch.empty_like(x)
    x.bitwise_xor_(x >> 16)
    _mul32_(x, _C1, tmp)
    x.bitwise_xor_(x >> 15)
    _mul32_(x, _C2, tmp)
    return x.bitwise_xor_(x >> 16)


def mix32(x: Tensor) -> Tensor:
    """Out-of-place :func:`mix32_`."""
    return mix32_(x.clone())


def _mix_int(v: int) -> int:
    """mix32 on a Python int (used for tags and seeds)."""
    v &= _MASK32
    v ^= v >> 16
    v = (v * _C1) & _MASK32
    v ^= v >> 15
    v = (v * _C2) & _MASK32
    return v ^ (v >> 16)


@functools.lru_cache(maxsize=4096)  # a few names, hashed at every update otherwise
def _string_word(tag: str) -> int:
    acc = 0x811C9DC5  # FNV-1a over the UTF-8 bytes: a fixed, platform-independent string hash
    for byte in tag.encode():
        acc = ((acc ^ byte) * 0x01000193) & _MASK32
    return acc


def _tag_word(tag: int | str) -> int:
    if isinstance(tag, str):
        return _string_word(tag)
    if tag < 0:
        raise ValueError(f"stream tags must be non-negative, got {tag}")
    return (tag & _MASK32) ^ _mix_int(tag >> 32)


def seed_keys(seeds: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """[M, 2] int64 keys, one per seed. A seed is any integer in [0, 2⁶⁴)."""
    rows = []
    for s in seeds:
        s = int(s)
        if not 0 <= s < 2**64:
            raise ValueError(f"seeds must be integers in [0, 2**64), got {s}")
        w0 = _mix_int(_mix_int(s & _MASK32) ^ _GOLDEN)
        w1 = _mix_int(_mix_int(s >> 32) ^ w0 ^ 0x85EBCA6B)
        rows.append((w0, w1))
    return torch.tensor(rows, dtype=torch.int64, device=device).reshape(len(rows), 2)


def derive(keys: Tensor, *tags: int | str) -> Tensor:
    """Keys of an independent sub-stream: ``derive(keys, "train", k)`` for update k, etc.

    Args:
        keys: [M, 2] int64.
        tags: ints (≥ 0) or strings naming the sub-stream.
    Returns:
        [M, 2] int64.
    """
    return _native.random_derive(keys, [_tag_word(tag) for tag in tags])


def bits(keys: Tensor, shape: Sequence[int]) -> Tensor:
    """[M, *shape] int64 hash words in [0, 2³²), element i of model m a function of (keys[m], i)."""
    return _native.random_bits(keys, _draw_size(shape)).view(len(keys), *shape)


def uniform(keys: Tensor, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """[M, *shape] U[0, 1) with 24-bit resolution."""
    if dtype in (torch.float32, torch.float64):
        return _native.random_uniform(keys, _draw_size(shape), dtype).view(len(keys), *shape)
    return _uniform_from_bits(bits(keys, shape), dtype)


def randint(keys: Tensor, high: int, shape: Sequence[int]) -> Tensor:
    """[M, *shape] int64 on {0, …, high−1}: ⌊u·high⌋ of a 24-bit u (relative bias ≤ high/2²⁴)."""
    if not 1 <= high <= 1 << 24:
        raise ValueError(f"randint needs 1 <= high <= 2**24, got {high}")
    return _native.random_randint(keys, _draw_size(shape), high).view(len(keys), *shape)


def normal(keys: Tensor, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """[M, *shape] N(0, 1) by the Box–Muller transform of two independent uniform draws."""
    radius, angle = derive(keys, "normal-radius"), derive(keys, "normal-angle")
    return _native.random_normal(radius, angle, _draw_size(shape), dtype).view(len(keys), *shape)


# ---- the definitions in torch ops: the reference of the CPU ops, and the CUDA kernels -------------
def derive_torch(keys: Tensor, *tags: int | str) -> Tensor:
    """:func:`derive` in torch ops."""
    k0, k1 = keys[:, 0], keys[:, 1]
    for tag in tags:
        t = _tag_word(tag)
        k0 = mix32(k0 ^ _mix_int(t ^ _GOLDEN))
        k1 = mix32(k1 ^ k0 ^ t)
    return torch.stack([k0, k1], 1)


def bits_torch(keys: Tensor, shape: Sequence[int]) -> Tensor:
    """:func:`bits` in torch ops."""
    n = _draw_size(shape)
    M = keys.shape[0]
    out = torch.empty(M, n, dtype=torch.int64, device=keys.device)
    # On CPU the ~20 elementwise passes are memory-bound: hash cache-sized column blocks.
    step = n if keys.device.type != "cpu" else max(1, _CPU_BLOCK // max(M, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        h = out[:, start:stop]
        torch.bitwise_xor(torch.arange(start, stop, device=keys.device, dtype=torch.int64)[None, :], keys[:, :1], out=h)
        mix32_(h).bitwise_xor_(keys[:, 1:])
        mix32_(h)
    return out.reshape(M, *shape)


def uniform_torch(keys: Tensor, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`uniform` in torch ops."""
    return _uniform_from_bits(bits_torch(keys, shape), dtype)


def randint_torch(keys: Tensor, high: int, shape: Sequence[int]) -> Tensor:
    """:func:`randint` in torch ops."""
    return ((bits_torch(keys, shape) >> 8) * high) >> 24


def normal_torch(keys: Tensor, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`normal` in torch ops."""
    return _box_muller(derive_torch(keys, "normal-radius"), derive_torch(keys, "normal-angle"), shape, dtype)


def _box_muller(radius_keys: Tensor, angle_keys: Tensor, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    u1 = uniform_torch(radius_keys, shape, torch.float64)
    u2 = uniform_torch(angle_keys, shape, torch.float64)
    z = torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos(2.0 * math.pi * u2)
    return z.to(dtype)


def _draw_size(shape: Sequence[int]) -> int:
    n = math.prod(shape)
    if n >= 2**32:
        raise ValueError(f"a single draw must have fewer than 2**32 elements per model, got {n}")
    return n


def _uniform_from_bits(words: Tensor, dtype: torch.dtype) -> Tensor:
    return (words >> 8).to(dtype) * (1.0 / (1 << 24))


def scalar_uniform(seed: int, *tags: int | str) -> float:
    """One U[0, 1) number from a population-level stream (e.g. the sequence length that all
    models of a population share in one update), computed in plain Python: no device work."""
    h = _mix_int(_mix_int(seed & _MASK32) ^ (seed >> 32) ^ _GOLDEN)
    for tag in tags:
        h = _mix_int(h ^ _mix_int(_tag_word(tag) ^ _GOLDEN))
    return (h >> 8) / (1 << 24)


# The ops' kernels on CUDA, in their own signatures (a draw of n words per model; tags already
# hashed to words, which _tag_word leaves unchanged).
for _op, _definition in (
    ("random_derive", lambda keys, words: derive_torch(keys, *words)),
    ("random_bits", lambda keys, n: bits_torch(keys, (n,))),
    ("random_uniform", lambda keys, n, dtype: uniform_torch(keys, (n,), dtype)),
    ("random_randint", lambda keys, n, high: randint_torch(keys, high, (n,))),
    ("random_normal", lambda radius_keys, angle_keys, n, dtype: _box_muller(radius_keys, angle_keys, (n,), dtype)),
):
    _ops.register_reference_kernel(_op, "cuda", _definition)
