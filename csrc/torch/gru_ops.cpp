// ATen glue for the GRU ops: schemas, input checks, parallel dispatch over batch tiles, and the
// weight-gradient GEMMs and sums that follow the backward kernel. The math lives in csrc/kernels.
#include <torch/library.h>

#include "kernels/cpu/gru.h"
#include "torch/checks.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

// Checks xp [M, T, B, 3H], w_hh [M, 3H, H], b_hn [M, H], h0 [M, B, H]; returns the shape with s.H = H.
RecurrenceShape check_gru_forward(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& b_hn,
                                  const at::Tensor& h0) {
  check_float("xp", xp);
  check_dim("xp", xp, 4, "[M, T, B, 3H]");
  TORCH_CHECK_VALUE(xp.size(3) % 3 == 0, "xp must have shape [M, T, B, 3H] (gates r, z, n), got ", xp.sizes(),
                    " whose last size is not a multiple of 3");
  const RecurrenceShape s{xp.size(0), xp.size(1), xp.size(2), xp.size(3) / 3};
  check_like("w_hh", w_hh, xp, {s.M, 3 * s.H, s.H}, "[M, 3H, H]");
  check_like("b_hn", b_hn, xp, {s.M, s.H}, "[M, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

std::tuple<at::Tensor, at::Tensor> gru_forward_cpu(const at::Tensor& xp, const at::Tensor& w_hh,
                                                   const at::Tensor& b_hn, const at::Tensor& h0) {
  const RecurrenceShape s = check_gru_forward(xp, w_hh, b_hn, h0);
  auto hs = at::empty({s.M, s.T, s.B, s.H}, xp.options());
  auto gates = at::empty({s.M, s.T, s.B, 4 * s.H}, xp.options());
  if (hs.numel() == 0) return {hs, gates};
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    const auto& k = cpu::gru_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(make_tiles(s.M, s.B, k.row_block), [&](BatchTile tile) {
      k.forward(s, tile, xp.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                b_hn.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(), hs.mutable_data_ptr<scalar_t>(),
                gates.mutable_data_ptr<scalar_t>());
    });
  });
  return {hs, gates};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_backward_cpu(
    const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& gates, const at::Tensor& h0,
    const at::Tensor& w_hh) {
  check_float("hs", hs);
  check_dim("hs", hs, 4, "[M, T, B, H]");
  const RecurrenceShape s{hs.size(0), hs.size(1), hs.size(2), hs.size(3)};
  check_like("grad_hs", grad_hs, hs, hs.sizes(), "[M, T, B, H]");
  check_like("gates", gates, hs, {s.M, s.T, s.B, 4 * s.H}, "[M, T, B, 4H]");
  check_like("h0", h0, hs, {s.M, s.B, s.H}, "[M, B, H]");
  check_like("w_hh", w_hh, hs, {s.M, 3 * s.H, s.H}, "[M, 3H, H]");

  auto grad_xp = at::empty({s.M, s.T, s.B, 3 * s.H}, hs.options());
  auto grad_hn = at::empty_like(hs, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stays 0 when T = 0
  auto delta_sq = at::empty({s.M, s.T, s.B}, hs.options());
  auto v_sq = at::empty({s.M, s.T, s.B}, hs.options());
  if (s.T > 0 && s.B > 0 && s.H > 0) {
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "gru_backward", [&] {
      const auto& k = cpu::gru_kernels<scalar_t>(cpu::selected_isa());
      for_each_tile(make_tiles(s.M, s.B, k.row_block), [&](BatchTile tile) {
        k.backward(s, tile, grad_hs.const_data_ptr<scalar_t>(), hs.const_data_ptr<scalar_t>(),
                   gates.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                   grad_xp.mutable_data_ptr<scalar_t>(), grad_hn.mutable_data_ptr<scalar_t>(),
                   grad_h0.mutable_data_ptr<scalar_t>(), delta_sq.mutable_data_ptr<scalar_t>(),
                   v_sq.mutable_data_ptr<scalar_t>());
      });
    });
  } else {
    for (auto* t : {&grad_xp, &grad_hn, &delta_sq, &v_sq}) t->zero_();
  }

  // ∂w_hh = Σ_t [∂r, ∂z, grad_hn]_tᵀ h_{t-1}: the r and z rows come from grad_xp, the n rows from
  // grad_hn, each as two batched GEMMs over all steps (h_0, then h_1 … h_{T-1}).
  auto grad_w = at::zeros_like(w_hh, at::MemoryFormat::Contiguous);
  auto add_outer = [&](at::Tensor out, const at::Tensor& g) {  // out [M, R, H] += Σ_t g_tᵀ h_{t-1}
    const int64_t R = g.size(3);
    out.baddbmm_(g.select(1, 0).transpose(1, 2), h0);
    if (s.T > 1)
      out.baddbmm_(g.narrow(1, 1, s.T - 1).reshape({s.M, (s.T - 1) * s.B, R}).transpose(1, 2),
                   hs.narrow(1, 0, s.T - 1).reshape({s.M, (s.T - 1) * s.B, s.H}));
  };
  if (s.T > 0 && s.B > 0) {
    add_outer(grad_w.narrow(1, 0, 2 * s.H), grad_xp.narrow(3, 0, 2 * s.H));
    add_outer(grad_w.narrow(1, 2 * s.H, s.H), grad_hn);
  }
  auto grad_b_hn = grad_hn.sum({1, 2});
  return {grad_xp, grad_w, grad_b_hn, grad_h0, delta_sq, v_sq};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("gru_forward(Tensor xp, Tensor w_hh, Tensor b_hn, Tensor h0) -> (Tensor hs, Tensor gates)");
  m.def(
      "gru_backward(Tensor grad_hs, Tensor hs, Tensor gates, Tensor h0, Tensor w_hh) -> (Tensor grad_xp, "
      "Tensor grad_w_hh, Tensor grad_b_hn, Tensor grad_h0, Tensor delta_sq, Tensor v_sq)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("gru_forward", &gru_forward_cpu);
  m.impl("gru_backward", &gru_backward_cpu);
}

}  // namespace rnnlab
