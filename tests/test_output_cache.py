"""The CPU ops' large outputs come from a cache of freed blocks (csrc/torch/output_allocator.h): a
freed output's block is reused by the next output of its byte size, never while a tensor still
holds it, and what the ops compute into reused blocks is what they compute into fresh ones."""
import torch

import rnnlab  # noqa: F401  (registers the ops)

ops = torch.ops.rnnlab

# [M, T, B, H] of ≥ 256 KiB in float32 (the cache's lower bound): 1·50·16·96·4 B = 300 KiB.
M, T, B, H = 1, 50, 16, 96


def elman_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    xp = torch.randn(M, T, B, H, generator=g)
    w = torch.randn(M, H, H, generator=g) / H**0.5
    h0 = torch.randn(M, B, H, generator=g)
    return xp, w, h0


def test_a_freed_output_is_reused_and_a_live_one_is_not():
    xp, w, h0 = elman_case(0)
    first = ops.elman_forward(xp, w, h0, "tanh")
    second = ops.elman_forward(xp, w, h0, "tanh")  # `first` is alive: another block
    assert second.data_ptr() != first.data_ptr()
    ptr = first.data_ptr()
    del first
    third = ops.elman_forward(xp, w, h0, "tanh")
    assert third.data_ptr() == ptr
    assert torch.equal(third, second)


def test_results_into_reused_blocks_are_bitwise_those_into_fresh_ones():
    """Forward and backward of the Elman, LSTM and GRU ops: two runs with every output kept alive
    (fresh blocks), a third on other data whose outputs are freed at once, then the first two
    again, into the blocks the third freed."""
    def elman(seed):
        g = torch.Generator().manual_seed(seed)
        xp, w, h0 = elman_case(seed)
        hs = ops.elman_forward(xp, w, h0, "tanh")
        grad_hs = torch.randn(hs.shape, generator=g)
        return (hs, *ops.elman_backward(grad_hs, hs, h0, w, "tanh", torch.ones(M))[:2])

    def lstm(seed):
        g = torch.Generator().manual_seed(seed)
        xp = torch.randn(M, T, B, 4 * H, generator=g)
        w = torch.randn(M, 4 * H, H, generator=g) / H**0.5
        h0, c0 = torch.randn(M, B, H, generator=g), torch.randn(M, B, H, generator=g)
        hs, cs, gates = ops.lstm_forward(xp, w, h0, c0)
        grad_hs = torch.randn(hs.shape, generator=g)
        return (hs, cs, gates, *ops.lstm_backward(grad_hs, None, hs, cs, gates, h0, c0, w)[:2])

    def gru(seed):
        g = torch.Generator().manual_seed(seed)
        xp = torch.randn(M, T, B, 3 * H, generator=g)
        w = torch.randn(M, 3 * H, H, generator=g) / H**0.5
        b_hn, h0 = torch.randn(M, H, generator=g), torch.randn(M, B, H, generator=g)
        hs, gates = ops.gru_forward(xp, w, b_hn, h0)
        grad_hs = torch.randn(hs.shape, generator=g)
        return (hs, gates, *ops.gru_backward(grad_hs, hs, gates, h0, w)[:2])

    for run in (elman, lstm, gru):
        fresh = [run(1), run(2)]
        run(3)
        reused = [run(1), run(2)]
        for got, want in zip(reused, fresh):
            for a, b in zip(got, want):
                assert torch.equal(a, b), run.__name__


def test_a_cached_output_can_be_resized():
    xp, w, h0 = elman_case(0)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    hs.resize_(2 * hs.numel()).fill_(1.0)
    assert hs.sum().item() == 2 * M * T * B * H


def test_a_cached_output_works_where_a_default_one_does():
    """Copy-on-write clones, serialization, shared memory and numpy accept it."""
    import io

    xp, w, h0 = elman_case(0)
    hs = ops.elman_forward(xp, w, h0, "tanh")
    want = hs.clone()
    assert torch.equal(hs._lazy_clone(), want)
    buf = io.BytesIO()
    torch.save(hs, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf), want)
    assert (hs.numpy() == want.numpy()).all()
    assert torch.equal(hs.share_memory_(), want)
