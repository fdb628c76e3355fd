"""The drop-ins against torch.nn on what PyTorch's own tests expect of nn.RNN, nn.LSTM and nn.GRU:
the same call on both (construction, moves, copies, dropout changes, packed and unbatched inputs,
bad arguments) returns the same results or raises the same exception type with the same message,
and torch's ModuleInfo samples for the three (torch.testing._internal.common_modules, what
test_modules.py runs) pass against the drop-ins.

Where rnnlab differs on purpose, :data:`DELIBERATE_DIFFERENCES` says why and checks rnnlab's side.
"""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence
from torch.testing._internal.common_modules import ModuleErrorEnum

import helpers_dropin as dropin
from helpers_dropin import FAMILIES

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
F64 = torch.float64


def outcome(call):
    """("returned", result) or ("raised", exception type, message) of call()."""
    try:
        return ("returned", call())
    except Exception as error:  # noqa: BLE001 - the exception is the result compared
        return ("raised", type(error), str(error))


def assert_same_results(actual, expected, where: str = "result") -> None:
    """Same structure; tensors of the same dtype, floating ones equal up to the drop-in tests'
    tolerance, the others exactly; every other leaf equal."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and actual.dtype == expected.dtype, where
        if expected.is_floating_point():
            dropin.assert_close_rel(actual, expected, dropin.TOL[expected.dtype], where)
        else:
            assert torch.equal(actual, expected), where
    elif isinstance(expected, (tuple, list)):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_results(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, where


def _floating_tensors(result) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result] if result.is_floating_point() else []
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _floating_tensors(item)]
    return []


def run_scenario(family, cls: type, scenario):
    """scenario(family, cls) building ``cls`` (nn's or rnnlab's, seeded the same for
    both classes): the forward's result and, where it has a graph, the parameters' gradients of
    a fixed function of it."""
    torch.manual_seed(0)
    module, result = scenario(family, cls)
    outputs = [t for t in _floating_tensors(result) if t.requires_grad]
    if not outputs:
        return result
    loss = sum((t * torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view_as(t)).sum() for t in outputs)
    params = [p for p in module.parameters() if p.requires_grad]
    return result, torch.autograd.grad(loss, params, allow_unused=True)


def check_same_behaviour(family, scenario) -> None:
    expected = outcome(lambda: run_scenario(family, family.peer, scenario))
    actual = outcome(lambda: run_scenario(family, family.module, scenario))
    if expected[0] == "raised" or actual[0] == "raised":
        assert actual == expected
    else:
        assert_same_results(actual[1], expected[1])


# ---------------------------------------------------------------------------------------------
# scenarios: (family, cls) -> (module, result), run on nn's class and on rnnlab's
# ---------------------------------------------------------------------------------------------
def _states(family, *lead: int, dtype=F64, hidden: int = 4, proj_size: int = 0):
    return family.hx([torch.randn(*lead, size, dtype=dtype) for size in family.state_sizes(hidden, proj_size)])


def _forward(family, cls, *inputs, construct=(3, 4, 2), change=lambda m: m, **kwargs):
    """Build cls(*construct, **kwargs) in float64, apply change, run it on inputs() (drawn after)."""
    module = change(cls(*construct, dtype=kwargs.pop("dtype", F64), **kwargs))
    return module, module(*(make() for make in inputs))


def _x(*shape, dtype=F64):
    return lambda: torch.randn(*shape, dtype=dtype, requires_grad=True)


def _pickled(module):
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def _loaded_into_a_new_module(module):
    fresh = type(module)(3, 4, 2, dtype=F64)
    fresh.load_state_dict(module.state_dict())
    return fresh


def _set(**attributes):
    def change(module):
        for name, value in attributes.items():
            setattr(module, name, value)
        return module

    return change


def _packed(lengths, enforce_sorted: bool):
    return lambda: pack_sequence([torch.randn(n, 3, dtype=F64) for n in lengths], enforce_sorted=enforce_sorted)


def _packed_from_padded_batch_first():
    padded = torch.randn(4, 6, 3, dtype=F64)
    return pack_padded_sequence(padded, torch.tensor([2, 6, 1, 4]), batch_first=True, enforce_sorted=False)


def _inference_mode(family, cls):
    module = cls(3, 4, 2, dtype=F64)
    with torch.inference_mode():
        return module, module(torch.randn(5, 2, 3, dtype=F64))


def _no_grad_frozen(family, cls):
    module = cls(3, 4, 2, dtype=F64).requires_grad_(False)
    with torch.no_grad():
        return module, module(torch.randn(5, 2, 3, dtype=F64))


X = _x(5, 2, 3)
SCENARIOS = {
    # moves and copies: the moved or copied module computes what the original does
    "double()": lambda f, c: _forward(f, c, X, dtype=torch.float32, change=nn.Module.double),
    "to(float64)": lambda f, c: _forward(f, c, X, dtype=torch.float32, change=lambda m: m.to(F64)),
    "to(cpu, float64)": lambda f, c: _forward(f, c, X, dtype=torch.float32, change=lambda m: m.to("cpu", F64)),
    "float() after double()": lambda f, c: _forward(f, c, _x(5, 2, 3, dtype=torch.float32),
                                                    change=lambda m: m.double().float()),
    "float64 input, float32 module": lambda f, c: _forward(f, c, X, dtype=torch.float32),
    "float32 input, double() module": lambda f, c: _forward(f, c, _x(5, 2, 3, dtype=torch.float32),
                                                            change=nn.Module.double),
    "deepcopy": lambda f, c: _forward(f, c, X, change=copy.deepcopy),
    "torch.save, torch.load": lambda f, c: _forward(f, c, X, change=_pickled),
    "state_dict into a new module": lambda f, c: _forward(f, c, X, change=_loaded_into_a_new_module),
    "flatten_parameters()": lambda f, c: _forward(f, c, X, change=lambda m: m.flatten_parameters() or m),
    "zero_grad() and requires_grad_(False)": lambda f, c: _forward(
        f, c, X, change=lambda m: m.zero_grad() or m.requires_grad_(False)),
    "no_grad, frozen": _no_grad_frozen,
    "inference_mode": _inference_mode,
    # dropout: an attribute read at every forward, between layers, in training mode only
    "dropout set after construction": lambda f, c: _forward(f, c, X, change=_set(dropout=0.3)),
    "dropout 1 set after construction": lambda f, c: _forward(f, c, X, change=_set(dropout=1.0)),
    "dropout set, eval()": lambda f, c: _forward(f, c, X, change=lambda m: _set(dropout=0.5)(m).eval()),
    "dropout 0 set after construction": lambda f, c: _forward(f, c, X, dropout=0.5, change=_set(dropout=0.0)),
    "dropout, 3 layers, bidirectional": lambda f, c: _forward(f, c, X, construct=(3, 4, 3), dropout=0.4,
                                                             bidirectional=True),
    # layouts
    "batch_first with hx": lambda f, c: _forward(f, c, _x(2, 5, 3), lambda: _states(f, 2, 2), batch_first=True),
    "unbatched": lambda f, c: _forward(f, c, _x(5, 3)),
    "unbatched with hx": lambda f, c: _forward(f, c, _x(5, 3), lambda: _states(f, 2)),
    "unbatched, batch_first, bidirectional, hx": lambda f, c: _forward(
        f, c, _x(5, 3), lambda: _states(f, 4), batch_first=True, bidirectional=True),
    "empty batch": lambda f, c: _forward(f, c, _x(5, 0, 3)),
    "empty batch with hx": lambda f, c: _forward(f, c, _x(5, 0, 3), lambda: _states(f, 2, 0)),
    "empty batch, batch_first, bidirectional": lambda f, c: _forward(f, c, _x(0, 5, 3), batch_first=True,
                                                                    bidirectional=True),
    "one step": lambda f, c: _forward(f, c, _x(1, 2, 3)),
    # PackedSequence: sorted or not, hx in the caller's order, batch_first ignored
    "packed, sorted": lambda f, c: _forward(f, c, _packed([5, 3, 3, 1], True)),
    "packed, unsorted, hx": lambda f, c: _forward(f, c, _packed([3, 5, 1, 3], False), lambda: _states(f, 2, 4)),
    "packed, bidirectional, hx": lambda f, c: _forward(f, c, _packed([2, 5, 4], False), lambda: _states(f, 4, 3),
                                                      bidirectional=True),
    "packed into a batch_first module": lambda f, c: _forward(f, c, _packed([4, 2], False), batch_first=True),
    "packed from a padded batch_first batch": lambda f, c: _forward(f, c, _packed_from_padded_batch_first),
    "packed, unsorted, hx with extra rows": lambda f, c: _forward(f, c, _packed([3, 5], False),
                                                                 lambda: _states(f, 2, 3)),
    "packed, unsorted, hx with too few rows": lambda f, c: _forward(f, c, _packed([3, 5, 2], False),
                                                                   lambda: _states(f, 2, 2)),
    "packed, hx with too few rows": lambda f, c: _forward(f, c, _packed([5, 3, 2], True), lambda: _states(f, 2, 2)),
    "packed, input size": lambda f, c: _forward(f, c, lambda: pack_sequence([torch.randn(3, 2, dtype=F64)])),
    "packed, float32 data": lambda f, c: _forward(f, c, lambda: pack_sequence([torch.randn(3, 3)])),
    # LSTM projections (nn.RNN and nn.GRU refuse proj_size)
    "projections with hx": lambda f, c: _forward(f, c, X, lambda: _states(f, 2, 2, proj_size=2), proj_size=2),
    "projections, bidirectional, packed": lambda f, c: _forward(f, c, _packed([3, 5], False), proj_size=3,
                                                               bidirectional=True),
    "projections, hx of hidden size": lambda f, c: _forward(f, c, X, lambda: _states(f, 2, 2), proj_size=2),
    # bad inputs
    "input 4-D": lambda f, c: _forward(f, c, _x(5, 2, 3, 1)),
    "input 1-D": lambda f, c: _forward(f, c, _x(5)),
    "input size": lambda f, c: _forward(f, c, _x(5, 2, 2)),
    "input without features": lambda f, c: _forward(f, c, _x(5, 2, 0)),
    "integer input": lambda f, c: _forward(f, c, lambda: torch.ones(5, 2, 3, dtype=torch.long)),
    "input on meta": lambda f, c: _forward(f, c, lambda: torch.randn(5, 2, 3, dtype=F64, device="meta")),
    "T = 0": lambda f, c: _forward(f, c, _x(0, 2, 3)),
    "T = 0, unbatched": lambda f, c: _forward(f, c, _x(0, 3)),
    "hx batch size": lambda f, c: _forward(f, c, X, lambda: _states(f, 2, 3)),
    "hx hidden size": lambda f, c: _forward(f, c, X, lambda: _states(f, 2, 2, hidden=5)),
    "hx layers": lambda f, c: _forward(f, c, X, lambda: _states(f, 1, 2)),
    "hx 2-D for batched input": lambda f, c: _forward(f, c, X, lambda: _states(f, 2)),
    "hx 3-D for unbatched input": lambda f, c: _forward(f, c, _x(5, 3), lambda: _states(f, 2, 1)),
    "hx unbatched size": lambda f, c: _forward(f, c, _x(5, 3), lambda: _states(f, 1)),
    "hx on meta": lambda f, c: _forward(f, c, X, lambda: f.hx([torch.zeros(2, 2, size, dtype=F64, device="meta")
                                                             for size in f.state_sizes(4)])),
}




def _autocast(family, cls):
    module = cls(3, 4, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return module, module(torch.randn(5, 2, 3))


def _returns_float32(result) -> None:
    output, states = dropin.split_result(result)
    assert all(t.dtype == torch.float32 for t in (output, *states))


SCENARIOS |= {
    "hx of another dtype": lambda f, c: _forward(f, c, _x(5, 2, 3, dtype=torch.float32), lambda: _states(f, 2, 2),
                                                 dtype=torch.float32),
    "hx not a Tensor or a pair of Tensors": lambda f, c: _forward(f, c, X, lambda: [torch.zeros(2, 2, 4)] * 3),
    "input a list": lambda f, c: _forward(f, c, lambda: [[0.0] * 3]),
    "half-precision module": lambda f, c: _forward(f, c, lambda: torch.randn(5, 2, 3, dtype=torch.half),
                                                   dtype=torch.half),
    "autocast to bfloat16": _autocast,
}

#: nn.LSTM skips its checks for a PackedSequence (they sit in its Tensor branch only), so bad
#: packed input fails inside its kernels, if at all; rnnlab.LSTM checks it as nn.RNN and nn.GRU do.
_NN_LSTM_PACKED = "nn.LSTM does not check packed input"
_CLEAR_ERROR = "nn fails inside its implementation; rnnlab names the argument"
#: {(cell, scenario): (what rnnlab does, why it differs from nn)}. What rnnlab does: (exception
#: type, message pattern), or a check of its result.
DELIBERATE_DIFFERENCES = {
    ("lstm", "packed, hx with too few rows"): ((RuntimeError, r"Expected hidden\[0\] size"), _NN_LSTM_PACKED),
    ("lstm", "packed, input size"): ((RuntimeError, "must be equal to input_size"), _NN_LSTM_PACKED),
    ("lstm", "packed, float32 data"): ((ValueError, "RNN input dtype"), _NN_LSTM_PACKED),
    **{(cell, "hx of another dtype"): ((RuntimeError, r"hx(\[0\])? dtype \(torch.float64\) does not match input"),
                                       _CLEAR_ERROR) for cell in FAMILIES},
    **{(cell, "hx not a Tensor or a pair of Tensors"): ((TypeError, "hx must be a"), _CLEAR_ERROR) for cell in FAMILIES},
    **{(cell, "input a list"): ((TypeError, "input must be a Tensor or a PackedSequence"), _CLEAR_ERROR)
       for cell in FAMILIES},
    **{(cell, "half-precision module"): ((TypeError, "runs in float32 or float64"), "the kernels' dtypes")
       for cell in FAMILIES},
    **{(cell, "autocast to bfloat16"): (_returns_float32, "the kernels run in float32; nn.RNN and nn.LSTM in bfloat16")
       for cell in FAMILIES},
}


@pytest.mark.parametrize(
    "cell, scenario",
    [(cell, name) for cell in FAMILIES for name in SCENARIOS if (cell, name) not in DELIBERATE_DIFFERENCES],
)
def test_same_behaviour_as_nn(cell, scenario):
    check_same_behaviour(FAMILIES[cell], SCENARIOS[scenario])


@pytest.mark.parametrize("cell, scenario", list(DELIBERATE_DIFFERENCES))
def test_deliberate_difference_from_nn(cell, scenario):
    expected, _why = DELIBERATE_DIFFERENCES[cell, scenario]
    family = FAMILIES[cell]
    if callable(expected):
        expected(run_scenario(family, family.module, SCENARIOS[scenario])[0])
    else:
        with pytest.raises(expected[0], match=expected[1]):
            run_scenario(family, family.module, SCENARIOS[scenario])


# ---------------------------------------------------------------------------------------------
# torch's ModuleInfo samples for nn.RNN, nn.LSTM, nn.GRU, as test_modules.py runs them
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_forward_matches_nn_and_reference(cell, dtype, training):
    """test_modules' test_forward: the sample's reference (the batched forward of unbatched input)
    and nn's result; then .float() / .double() and another forward."""
    family = FAMILIES[cell]
    for sample in dropin.module_info_samples(cell, dtype, training=training):
        module = dropin.build(family.module, sample, dtype, training)
        result = dropin.forward(module, sample)
        assert_same_results(result, dropin.forward(dropin.build(family.peer, sample, dtype, training), sample))
        assert_same_results(result, sample.reference_fn(module, *sample.forward_input.args,
                                                        **sample.forward_input.kwargs))
        (module.double if dtype == F64 else module.float)()
        dropin.forward(module, sample)
        assert all(p.dtype == dtype for p in module.parameters())


@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_errors_match_nn(cell):
    """test_modules' test_errors: the expected exception, and nn's type and message."""
    family = FAMILIES[cell]
    info = dropin.module_info(cell)
    for error in info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=False,
                                               training=True):
        sample = error.module_error_input
        results = []
        for cls in (family.peer, family.module):
            def call(cls=cls):
                module = cls(*sample.constructor_input.args, **sample.constructor_input.kwargs)
                if error.error_on == ModuleErrorEnum.FORWARD_ERROR:
                    dropin.forward(module, sample)

            with pytest.raises(error.error_type, match=error.error_regex):
                call()
            results.append(outcome(call))
        assert results[1] == results[0]


@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_gradcheck(cell):
    """test_modules' test_grad: the total derivative, and each parameter's alone (on the
    bidirectional samples with biases only, which have every kind of parameter: 2 cores)."""
    family = FAMILIES[cell]
    for sample in dropin.module_info_samples(cell, requires_grad=True):
        module = dropin.build(family.module, sample)
        f, inputs = dropin.gradcheck_function(module, sample)
        assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
        if not (module.bidirectional and module.bias):
            continue
        params = list(module.parameters())
        for p in params:
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
            assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
            p.requires_grad_(False)


def _non_contiguous(obj):
    """test_modules' layout: every tensor a strided view (every other element of a doubled copy)."""
    if isinstance(obj, (tuple, list)):
        return type(obj)(_non_contiguous(o) for o in obj)
    out = obj.repeat_interleave(2, dim=-1)[..., ::2].detach()
    return out.requires_grad_(obj.requires_grad)


def _forward_backward(module: nn.Module, args, grad_outputs):
    """Outputs, and the gradients of the inputs and the parameters for grad_outputs."""
    module.zero_grad()
    for t in args_tensors(args):
        t.grad = None
    outputs = torch.utils._pytree.tree_flatten(module(*args))[0]
    torch.autograd.backward(outputs, grad_outputs)
    return outputs, [t.grad for t in args_tensors(args)], [p.grad for p in module.parameters()]


def args_tensors(args) -> list[torch.Tensor]:
    return torch.utils._pytree.tree_flatten(args)[0]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_non_contiguous_inputs(cell, training):
    """test_modules' test_non_contiguous_tensors: strided inputs and output gradients give the
    same outputs and gradients (up to rounding: the strides may change torch's GEMM kernel)."""
    family = FAMILIES[cell]
    for sample in dropin.module_info_samples(cell, requires_grad=True, training=training):
        module = dropin.build(family.module, sample, training=training)
        args = sample.forward_input.args
        outputs = torch.utils._pytree.tree_flatten(module(*args))[0]
        grad_outputs = [torch.randn_like(o) for o in outputs]
        expected = _forward_backward(module, args, grad_outputs)
        for a, g in ((args, _non_contiguous(grad_outputs)), (_non_contiguous(args), grad_outputs)):
            assert_same_results(_forward_backward(module, a, g), expected)


@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_outputs_and_gradients_as_contiguous_as_nn(cell):
    """test_modules' test_memory_format: outputs and input and parameter gradients are contiguous
    where nn's are."""
    family = FAMILIES[cell]
    for sample in dropin.module_info_samples(cell, requires_grad=True):
        layouts = []
        for cls in (family.peer, family.module):
            module = dropin.build(cls, sample)
            outputs = torch.utils._pytree.tree_flatten(dropin.forward(module, sample))[0]
            wrt = args_tensors(sample.forward_input.args) + list(module.parameters())
            grads = torch.autograd.grad(outputs, wrt, [torch.ones_like(o) for o in outputs])
            layouts.append([t.is_contiguous() for t in (*outputs, *grads)])
        assert layouts[1] == layouts[0]


@pytest.mark.parametrize("cell", list(FAMILIES))
def test_module_info_pickle_and_construction(cell):
    """test_modules' test_pickle, test_factory_kwargs and test_device_ctx_init: a module from
    torch.load gives the same output; device and dtype reach every parameter; under
    torch.device("meta") the parameters are meta tensors with the CPU ones' metadata."""
    family = FAMILIES[cell]
    for sample in dropin.module_info_samples(cell):
        module = dropin.build(family.module, sample)
        assert_same_results(dropin.forward(_pickled(module), sample), dropin.forward(module, sample))
        args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
        assert all(p.dtype == F64 and p.device.type == "cpu"
                   for p in family.module(*args, **kwargs, device="cpu", dtype=F64).parameters())
        with torch.device("meta"):
            meta = family.module(*args, **kwargs)
        for p_meta, p in zip(meta.parameters(), module.float().parameters(), strict=True):
            assert p_meta.is_meta and (p_meta.shape, p_meta.dtype, p_meta.stride()) == (p.shape, p.dtype, p.stride())
