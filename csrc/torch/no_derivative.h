// The ops' Autograd kernels. An op has no derivative of its own: its derivative is the
// autograd.Function of python/rnnlab/_ops.py that calls it with grad mode off. Differentiating an
// op's output directly (torch.ops.rnnlab.* outside those Functions) is therefore an error that
// names the op, instead of autograd's default for such an op: a warning and a zero gradient.
#pragma once

#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

#include <initializer_list>

namespace rnnlab {

inline void register_no_derivative(torch::Library& m, std::initializer_list<const char*> ops) {
  for (const char* op : ops) m.impl(op, torch::autograd::autogradNotImplementedFallback());
}

}  // namespace rnnlab
