// ATen glue for the Elman ops: schemas and the CPU impls (parallel dispatch over batch tiles). The
// checks, outputs, weight gradient and Ω are the device-independent glue of recurrence_glue.h; the
// math lives in csrc/kernels.
#include <torch/library.h>

#include "kernels/cpu/elman.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

at::Tensor elman_forward_cpu(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0, c10::string_view activation,
                             const std::optional<at::Tensor>& b) {
  const RecurrenceShape s = check_elman(xp, w_hh, h0, check_float);
  const at::Tensor bias = bias_or_zeros(b, xp, "[M, H]");
  const Activation act = parse_activation(activation);
  auto hs = empty_output(xp.sizes(), xp.options());
  if (hs.numel() == 0) return hs;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "elman_forward", [&] {
    const auto& k = cpu::elman_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(make_tiles(s.M, s.B, k.row_block), s.recurrent_work(1), [&](BatchTile tile) {
      k.forward(s, tile, act, xp.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                h0.const_data_ptr<scalar_t>(), hs.mutable_data_ptr<scalar_t>());
    });
  });
  return hs;
}

ElmanBackwardResult elman_backward_cpu(const at::Tensor& grad_hs_given, const at::Tensor& hs, const at::Tensor& h0,
                                       const at::Tensor& w_hh, c10::string_view activation,
                                       const std::optional<at::Tensor>& reg_weight) {
  const at::Tensor grad_hs = with_contiguous_rows(grad_hs_given);
  const RecurrenceShape s = check_elman_backward(grad_hs, hs, h0, w_hh, reg_weight, check_float);
  const Activation act = parse_activation(activation);
  ElmanBackwardOutputs out(s, hs, h0, reg_weight.has_value());
  if (has_work(s)) {
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "elman_backward", [&] {
      const auto& k = cpu::elman_kernels<scalar_t>(cpu::selected_isa());
      for_each_tile(make_tiles(s.M, s.B, k.row_block), s.recurrent_work(1), [&](BatchTile tile) {
        k.backward(s, tile, act, seq_rows<scalar_t>(grad_hs), hs.const_data_ptr<scalar_t>(),
                   h0.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                   out.grad_xp.mutable_data_ptr<scalar_t>(), out.grad_h0.mutable_data_ptr<scalar_t>(),
                   out.delta_sq.mutable_data_ptr<scalar_t>(), out.v_sq.mutable_data_ptr<scalar_t>(),
                   out.reg_v.defined() ? out.reg_v.mutable_data_ptr<scalar_t>() : nullptr);
      });
    });
  }
  return out.finish(s, hs, h0, reg_weight);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("elman_forward(Tensor xp, Tensor w_hh, Tensor h0, str activation, Tensor? b=None) -> Tensor");
  m.def(
      "elman_backward(Tensor grad_hs, Tensor hs, Tensor h0, Tensor w_hh, str activation, Tensor? reg_weight) -> "
      "(Tensor grad_xp, Tensor grad_w_hh, Tensor grad_h0, Tensor delta_sq, Tensor v_sq, Tensor omega, Tensor n_valid)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("elman_forward", &elman_forward_cpu);
  m.impl("elman_backward", &elman_backward_cpu);
}

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"elman_forward", "elman_backward"}); }

}  // namespace rnnlab
