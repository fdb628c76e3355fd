"""rnnlab.RNN's gradient diagnostics and regularizer against step-by-step autograd references.

Reference for ‖δ_t‖ and the ratio: a Python loop over nn.RNN's equations with ``retain_grad()``
on every state h_t, so ``h_t.grad`` is the total δ_t = ∂L/∂h_t (SPEC §1). Reference for Ω and
its gradient: ``rnnlab.reference.omega_autograd`` on the definition of SPEC §2.5 with δ and h
held constant.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from rnnlab.nn import RNN
from rnnlab.reference import activation, activation_grad_from_output, omega_autograd

F64 = torch.float64


def loop_rnn(mod: RNN, x: torch.Tensor, h0: torch.Tensor | None):
    """nn.RNN's forward written step by step (no dropout). x: [T, B, I] time-major.

    Returns output [T, B, D·H], h_n [L·D, B, H], and states[layer][direction] = list of the T
    states h_t in original time order, each with ``retain_grad()``.
    """
    T, B, _ = x.shape
    H, L, D = mod.hidden_size, mod.num_layers, 2 if mod.bidirectional else 1
    layer_input, finals, states = x, [], []
    for layer in range(L):
        per_direction = []
        for direction in range(D):
            suffix = "_reverse" if direction else ""
            w_ih, w_hh = getattr(mod, f"weight_ih_l{layer}{suffix}"), getattr(mod, f"weight_hh_l{layer}{suffix}")
            b = getattr(mod, f"bias_ih_l{layer}{suffix}") + getattr(mod, f"bias_hh_l{layer}{suffix}") if mod.bias else 0
            h = x.new_zeros(B, H) if h0 is None else h0[layer * D + direction]
            hs = [None] * T
            for t in range(T) if direction == 0 else reversed(range(T)):
                h = activation(mod.nonlinearity, layer_input[t] @ w_ih.T + b + h @ w_hh.T)
                h.retain_grad()
                hs[t] = h
            finals.append(h)
            per_direction.append(hs)
        states.append(per_direction)
        layer_input = torch.cat([torch.stack(hs) for hs in per_direction], -1)
    return layer_input, torch.stack(finals), states


def random_loss(out: torch.Tensor, h_n: torch.Tensor, seed: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() + (
        h_n * torch.randn(h_n.shape, generator=g, dtype=h_n.dtype)
    ).sum()


def make_rnn(*args, **kwargs) -> RNN:
    torch.manual_seed(0)
    return RNN(*args, dtype=F64, **kwargs)


CASES = [
    dict(layers=1, bidirectional=False, nonlinearity="tanh"),
    dict(layers=2, bidirectional=True, nonlinearity="tanh"),
    dict(layers=3, bidirectional=False, nonlinearity="relu"),
    dict(layers=2, bidirectional=True, nonlinearity="relu", batch_first=True),
    dict(layers=2, bidirectional=True, nonlinearity="tanh", unbatched=True),
]


def _setup(case, T=9, B=4, I=3, H=5):
    mod = make_rnn(I, H, case["layers"], case["nonlinearity"], batch_first=case.get("batch_first", False),
                   bidirectional=case["bidirectional"])
    D = 2 if case["bidirectional"] else 1
    gen = torch.Generator().manual_seed(1)
    x_tm = torch.randn(T, B, I, generator=gen, dtype=F64)  # time-major, for the loop reference
    h0 = torch.randn(case["layers"] * D, B, H, generator=gen, dtype=F64)
    if case.get("unbatched"):
        x_tm, h0 = x_tm[:, :1], h0[:, :1]
        x_user, h0_user = x_tm[:, 0], h0[:, 0]
    elif case.get("batch_first"):
        x_user, h0_user = x_tm.transpose(0, 1).contiguous(), h0
    else:
        x_user, h0_user = x_tm, h0
    return mod, x_tm, h0, x_user, h0_user


def _run_rnnlab(mod, x_user, h0_user, batch_first: bool):
    out, h_n = mod(x_user, h0_user)
    if out.dim() == 2:  # unbatched: compare in [T, 1, ·] form
        out, h_n = out.unsqueeze(1), h_n.unsqueeze(1)
    elif batch_first:
        out = out.transpose(0, 1)
    return out, h_n


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_delta_norm_and_ratio_match_retain_grad_loop(case):
    mod, x_tm, h0, x_user, h0_user = _setup(case)
    out, h_n, states = loop_rnn(mod, x_tm, h0)
    random_loss(out, h_n).backward()

    mod.diagnostics = True
    out_r, h_n_r = _run_rnnlab(mod, x_user, h0_user, case.get("batch_first", False))
    random_loss(out_r, h_n_r).backward()
    stats = mod.gradient_stats
    T, B = x_tm.shape[:2]
    for layer, per_direction in enumerate(states):
        for direction, hs in enumerate(per_direction):
            suffix = "_reverse" if direction else ""
            w_hh = getattr(mod, f"weight_hh_l{layer}{suffix}").detach()
            delta = torch.stack([h.grad for h in hs])  # [T, B, H], original time order
            u = delta * activation_grad_from_output(mod.nonlinearity, torch.stack(hs).detach())
            v = u @ w_hh  # the part of δ of the previous state (in processing order) via W_hh
            expected_ratio = v.square().sum(-1) / delta.square().sum(-1)
            actual_norm = stats.delta_norm(layer, direction)
            assert actual_norm.shape == (T, B)
            torch.testing.assert_close(actual_norm, delta.norm(dim=-1), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(stats.ratio(layer, direction), expected_ratio, rtol=1e-10, atol=1e-12)


def _processing_order(hs_list, direction):
    """[T, B, H] states of one direction in the order the kernel processed them."""
    stacked = torch.stack(hs_list)
    return stacked if direction == 0 else stacked.flip(0)


@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_omega_and_regularizer_gradient_match_autograd(case):
    alpha = 4.0
    mod, x_tm, h0, x_user, h0_user = _setup(case)
    out, h_n, states = loop_rnn(mod, x_tm, h0)
    random_loss(out, h_n).backward()
    batch_first = case.get("batch_first", False)

    def grads(alpha_value: float, diagnostics: bool):
        mod.zero_grad()
        mod.regularizer, mod.diagnostics = alpha_value, diagnostics
        x = x_user.clone().requires_grad_()
        out_r, h_n_r = _run_rnnlab(mod, x, h0_user, batch_first)
        random_loss(out_r, h_n_r).backward()
        return {n: p.grad.clone() for n, p in mod.named_parameters()} | {"input": x.grad}

    plain = grads(0.0, diagnostics=False)
    regularized = grads(alpha, diagnostics=True)
    assert all(torch.equal(g, grads(alpha, diagnostics=False)[n]) for n, g in regularized.items()), (
        "the sinks must not change any gradient"
    )
    stats = mod.gradient_stats
    T = x_tm.shape[0]
    for layer, per_direction in enumerate(states):
        for direction, hs in enumerate(per_direction):
            name = f"weight_hh_l{layer}{'_reverse' if direction else ''}"
            w_hh = getattr(mod, name).detach().clone().requires_grad_()
            delta = _processing_order([h.grad for h in hs], direction)
            omega = omega_autograd(
                delta[None], _processing_order([h.detach() for h in hs], direction)[None], w_hh[None],
                mod.nonlinearity,
            )[0]
            (d_omega,) = torch.autograd.grad(omega, w_hh)
            torch.testing.assert_close(stats.omega[layer, direction], omega.detach(), rtol=1e-10, atol=1e-12)
            assert stats.n_valid[layer, direction].item() == pytest.approx(T)
            torch.testing.assert_close(regularized[name] - plain[name], alpha * d_omega, rtol=1e-8, atol=1e-10)
    for name in plain:
        if not name.startswith("weight_hh"):
            assert torch.equal(regularized[name], plain[name]), f"Ω must not reach {name}"


def test_packed_diagnostics_match_per_sequence_runs():
    """Packed stats are [T_max, B] in the caller's batch order, zero past each sequence's end."""
    mod = make_rnn(3, 4, 2, bidirectional=True)
    mod.diagnostics = True
    lengths = [3, 7, 1, 5]
    gen = torch.Generator().manual_seed(3)
    seqs = [torch.randn(n, 3, generator=gen, dtype=F64) for n in lengths]
    G = torch.randn(max(lengths), len(lengths), 8, generator=gen, dtype=F64)
    Gh = torch.randn(4, len(lengths), 4, generator=gen, dtype=F64)

    out, h_n = mod(pack_sequence(seqs, enforce_sorted=False))
    padded, _ = pad_packed_sequence(out)  # [T_max, B, 2H], caller's order
    ((padded * G).sum() + (h_n * Gh).sum()).backward()
    stats = mod.gradient_stats
    packed = {(l, d): (stats.delta_norm(l, d), stats.ratio(l, d)) for l in range(2) for d in range(2)}

    for b, n in enumerate(lengths):
        out_b, h_b = mod(seqs[b])  # unbatched: [n, 2H], [4, H]
        ((out_b * G[:n, b]).sum() + (h_b * Gh[:, b]).sum()).backward()
        single = mod.gradient_stats
        for (layer, direction), (norm, ratio) in packed.items():
            torch.testing.assert_close(norm[:n, b], single.delta_norm(layer, direction)[:, 0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(ratio[:n, b], single.ratio(layer, direction)[:, 0], rtol=1e-10, atol=1e-12)
            assert (norm[n:, b] == 0).all()


def test_stats_require_diagnostics_and_check_indices():
    mod = make_rnn(2, 3, 2)
    out, _ = mod(torch.randn(4, 2, 2, dtype=F64))
    out.sum().backward()
    with pytest.raises(RuntimeError, match="diagnostics = True"):
        mod.gradient_stats
    mod.diagnostics = True
    out, _ = mod(torch.randn(4, 2, 2, dtype=F64))
    stats = mod.gradient_stats
    with pytest.raises(RuntimeError, match="backward"):
        stats.delta_norm(0)
    out.sum().backward()
    assert stats.delta_norm(1).shape == (4, 2) and stats.omega.shape == (2, 1)
    with pytest.raises(IndexError, match="layer"):
        stats.delta_norm(2)
    with pytest.raises(IndexError, match="direction"):
        stats.ratio(0, direction=1)
