// ATen glue for the LSTM ops: schemas, input checks, parallel dispatch over batch tiles, and the
// weight-gradient GEMMs that follow the backward kernel. The math lives in csrc/kernels.
#include <torch/library.h>

#include "kernels/cpu/lstm.h"
#include "torch/checks.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

// Checks xp [M, T, B, 4H], w_hh [M, 4H, H], h0 and c0 [M, B, H]; returns the shape with s.H = H.
RecurrenceShape check_lstm(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0, const at::Tensor& c0,
                           const char* xp_name) {
  check_float(xp_name, xp);
  check_dim(xp_name, xp, 4, "[M, T, B, 4H]");
  TORCH_CHECK_VALUE(xp.size(3) % 4 == 0, xp_name, " must have shape [M, T, B, 4H] (gates i, f, g, o), got ",
                    xp.sizes(), " whose last size is not a multiple of 4");
  const RecurrenceShape s{xp.size(0), xp.size(1), xp.size(2), xp.size(3) / 4};
  check_like("w_hh", w_hh, xp, {s.M, 4 * s.H, s.H}, "[M, 4H, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  check_like("c0", c0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_forward_cpu(const at::Tensor& xp, const at::Tensor& w_hh,
                                                                const at::Tensor& h0, const at::Tensor& c0) {
  const RecurrenceShape s = check_lstm(xp, w_hh, h0, c0, "xp");
  auto hs = at::empty({s.M, s.T, s.B, s.H}, xp.options());
  auto cs = at::empty({s.M, s.T, s.B, s.H}, xp.options());
  auto gates = at::empty_like(xp, at::MemoryFormat::Contiguous);
  if (hs.numel() == 0) return {hs, cs, gates};
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    const auto& k = cpu::lstm_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(make_tiles(s.M, s.B, k.row_block), [&](BatchTile tile) {
      k.forward(s, tile, xp.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(),
                c0.const_data_ptr<scalar_t>(), hs.mutable_data_ptr<scalar_t>(), cs.mutable_data_ptr<scalar_t>(),
                gates.mutable_data_ptr<scalar_t>());
    });
  });
  return {hs, cs, gates};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_backward_cpu(
    const at::Tensor& grad_hs, const std::optional<at::Tensor>& grad_cs, const at::Tensor& hs, const at::Tensor& cs,
    const at::Tensor& gates, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh) {
  const RecurrenceShape s = check_lstm(gates, w_hh, h0, c0, "gates");
  const std::vector<int64_t> seq{s.M, s.T, s.B, s.H};
  check_like("grad_hs", grad_hs, gates, seq, "[M, T, B, H]");
  check_like("hs", hs, gates, seq, "[M, T, B, H]");
  check_like("cs", cs, gates, seq, "[M, T, B, H]");
  if (grad_cs) check_like("grad_cs", *grad_cs, gates, seq, "[M, T, B, H]");

  auto grad_xp = at::empty_like(gates, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stay 0 when T = 0
  auto grad_c0 = at::zeros_like(c0, at::MemoryFormat::Contiguous);
  auto delta_sq = at::empty({s.M, s.T, s.B}, gates.options());
  auto v_sq = at::empty({s.M, s.T, s.B}, gates.options());
  if (s.T > 0 && s.B > 0 && s.H > 0) {
    AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
      const auto& k = cpu::lstm_kernels<scalar_t>(cpu::selected_isa());
      for_each_tile(make_tiles(s.M, s.B, k.row_block), [&](BatchTile tile) {
        k.backward(s, tile, grad_hs.const_data_ptr<scalar_t>(), grad_cs ? grad_cs->const_data_ptr<scalar_t>() : nullptr,
                   cs.const_data_ptr<scalar_t>(), gates.const_data_ptr<scalar_t>(), c0.const_data_ptr<scalar_t>(),
                   w_hh.const_data_ptr<scalar_t>(), grad_xp.mutable_data_ptr<scalar_t>(),
                   grad_h0.mutable_data_ptr<scalar_t>(), grad_c0.mutable_data_ptr<scalar_t>(),
                   delta_sq.mutable_data_ptr<scalar_t>(), v_sq.mutable_data_ptr<scalar_t>());
      });
    });
  } else {
    grad_xp.zero_();
    delta_sq.zero_();
    v_sq.zero_();
  }

  // dW_hh = Σ_t ∂z_tᵀ h_{t-1}: two batched GEMMs over all steps (h_0, then h_1 … h_{T-1}).
  auto grad_w = at::zeros_like(w_hh, at::MemoryFormat::Contiguous);
  if (s.T > 0 && s.B > 0) {
    grad_w.baddbmm_(grad_xp.select(1, 0).transpose(1, 2), h0);
    if (s.T > 1)
      grad_w.baddbmm_(grad_xp.narrow(1, 1, s.T - 1).reshape({s.M, (s.T - 1) * s.B, 4 * s.H}).transpose(1, 2),
                      hs.narrow(1, 0, s.T - 1).reshape({s.M, (s.T - 1) * s.B, s.H}));
  }
  return {grad_xp, grad_w, grad_h0, grad_c0, delta_sq, v_sq};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("lstm_forward(Tensor xp, Tensor w_hh, Tensor h0, Tensor c0) -> (Tensor hs, Tensor cs, Tensor gates)");
  m.def(
      "lstm_backward(Tensor grad_hs, Tensor? grad_cs, Tensor hs, Tensor cs, Tensor gates, Tensor h0, Tensor c0, "
      "Tensor w_hh) -> (Tensor grad_xp, Tensor grad_w_hh, Tensor grad_h0, Tensor grad_c0, Tensor delta_sq, "
      "Tensor v_sq)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("lstm_forward", &lstm_forward_cpu);
  m.impl("lstm_backward", &lstm_backward_cpu);
}

}  // namespace rnnlab
