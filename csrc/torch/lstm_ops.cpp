// ATen glue for the LSTM ops: schemas and the CPU impls (parallel dispatch over batch tiles). The
// checks, outputs and weight gradient are the device-independent glue of recurrence_glue.h; the
// math lives in csrc/kernels.
#include <torch/library.h>

#include "kernels/cpu/lstm.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_forward_cpu(const at::Tensor& xp, const at::Tensor& w_hh,
                                                                const at::Tensor& h0, const at::Tensor& c0,
                                                                const std::optional<at::Tensor>& b) {
  const RecurrenceShape s = check_lstm(xp, w_hh, h0, c0, "xp", check_float);
  const at::Tensor bias = bias_or_zeros(b, xp, "[M, 4H]");
  at::Tensor hs, cs, gates;  // not a structured binding: the kernel lambda captures them (C++17)
  std::tie(hs, cs, gates) = lstm_forward_outputs(s, xp);
  if (hs.numel() == 0) return {hs, cs, gates};
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    const auto& k = cpu::lstm_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(make_tiles(s.M, s.B, k.row_block), s.recurrent_work(4), [&](BatchTile tile) {
      k.forward(s, tile, xp.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                h0.const_data_ptr<scalar_t>(), c0.const_data_ptr<scalar_t>(), hs.mutable_data_ptr<scalar_t>(), cs.mutable_data_ptr<scalar_t>(),
                gates.mutable_data_ptr<scalar_t>());
    });
  });
  return {hs, cs, gates};
}

LstmBackwardResult lstm_backward_cpu(const at::Tensor& grad_hs_given, const std::optional<at::Tensor>& grad_cs_given,
                                     const at::Tensor& hs, const at::Tensor& cs, const at::Tensor& gates,
                                     const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh) {
  const at::Tensor grad_hs = with_contiguous_rows(grad_hs_given);
  const std::optional<at::Tensor> grad_cs =
      grad_cs_given ? std::optional<at::Tensor>(with_contiguous_rows(*grad_cs_given)) : std::nullopt;
  const RecurrenceShape s = check_lstm_backward(grad_hs, grad_cs, hs, cs, gates, h0, c0, w_hh, check_float);
  LstmBackwardOutputs out(s, gates, h0, c0);
  if (has_work(s)) {
    AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
      const auto& k = cpu::lstm_kernels<scalar_t>(cpu::selected_isa());
      for_each_tile(make_tiles(s.M, s.B, k.row_block), s.recurrent_work(4), [&](BatchTile tile) {
        k.backward(s, tile, seq_rows<scalar_t>(grad_hs), grad_cs ? seq_rows<scalar_t>(*grad_cs) : SeqRows<scalar_t>{},
                   cs.const_data_ptr<scalar_t>(), gates.const_data_ptr<scalar_t>(), c0.const_data_ptr<scalar_t>(),
                   w_hh.const_data_ptr<scalar_t>(), out.grad_xp.mutable_data_ptr<scalar_t>(),
                   out.grad_h0.mutable_data_ptr<scalar_t>(), out.grad_c0.mutable_data_ptr<scalar_t>(),
                   out.delta_sq.mutable_data_ptr<scalar_t>(), out.v_sq.mutable_data_ptr<scalar_t>());
      });
    });
  }
  return out.finish(s, hs, h0);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("lstm_forward(Tensor xp, Tensor w_hh, Tensor h0, Tensor c0, Tensor? b=None) -> (Tensor hs, Tensor cs, Tensor gates)");
  m.def(
      "lstm_backward(Tensor grad_hs, Tensor? grad_cs, Tensor hs, Tensor cs, Tensor gates, Tensor h0, Tensor c0, "
      "Tensor w_hh) -> (Tensor grad_xp, Tensor grad_w_hh, Tensor grad_h0, Tensor grad_c0, Tensor delta_sq, "
      "Tensor v_sq)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("lstm_forward", &lstm_forward_cpu);
  m.impl("lstm_backward", &lstm_backward_cpu);
}

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"lstm_forward", "lstm_backward"}); }

}  // namespace rnnlab
