// ATen glue for the GRU ops: schemas and the CPU impls (parallel dispatch over batch tiles). The
// gate-stack check, backward outputs and weight-gradient GEMMs are the shared glue of
// recurrence_glue.h; what is the GRU's own is b_hn and grad_hn, the n gate's hidden pre-activation
// gradient, from which the n rows of ∂W_hh and ∂b_hn are formed. The math lives in csrc/kernels.
#include <torch/library.h>

#include "kernels/cpu/gru.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

// xp [M, T, B, 3H], w_hh [M, 3H, H], b_hn [M, H], h0 [M, B, H]: the shape with s.H = H, or a clear error.
RecurrenceShape check_gru_forward(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& b_hn,
                                  const at::Tensor& h0) {
  const RecurrenceShape s = check_gate_stack("xp", xp, 3, "[M, T, B, 3H]", "r, z, n", check_float);
  check_like("w_hh", w_hh, xp, {s.M, 3 * s.H, s.H}, "[M, 3H, H]");
  check_like("b_hn", b_hn, xp, {s.M, s.H}, "[M, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

// gates [M, T, B, 4H] (r, z, n, hn), and grad_hs (check_rows_like), hs [M, T, B, H], h0 [M, B, H],
// w_hh [M, 3H, H] like it.
RecurrenceShape check_gru_backward(const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& gates,
                                   const at::Tensor& h0, const at::Tensor& w_hh) {
  const RecurrenceShape s = check_gate_stack("gates", gates, 4, "[M, T, B, 4H]", "r, z, n, hn", check_float);
  check_rows_like("grad_hs", grad_hs, gates, {s.M, s.T, s.B, s.H}, "[M, T, B, H]");
  check_like("hs", hs, gates, {s.M, s.T, s.B, s.H}, "[M, T, B, H]");
  check_like("h0", h0, gates, {s.M, s.B, s.H}, "[M, B, H]");
  check_like("w_hh", w_hh, gates, {s.M, 3 * s.H, s.H}, "[M, 3H, H]");
  return s;
}

using GruBackwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The gru_backward op's outputs: the BackwardOutputs (grad_xp = [∂r, ∂z, ∂n] [M, T, B, 3H]) and
// grad_hn = ∂n ⊙ r [M, T, B, H], which the kernels fill; finish() adds ∂W_hh and ∂b_hn.
struct GruBackwardOutputs : BackwardOutputs {
  at::Tensor grad_hn;

  GruBackwardOutputs(const RecurrenceShape& s, const at::Tensor& hs, const at::Tensor& h0)
      : BackwardOutputs(s, {s.M, s.T, s.B, 3 * s.H}, hs.options(), h0),
        grad_hn(kernel_output(s, hs.sizes(), hs.options())) {}

  // (grad_xp, grad_w_hh, grad_b_hn, grad_h0, delta_sq, v_sq): ∂W_hh = Σ_t [∂r, ∂z, grad_hn]_tᵀ h_{t-1},
  // its r and z rows from grad_xp and its n rows from grad_hn; ∂b_hn = Σ_{t,b} grad_hn_t.
  GruBackwardResult finish(const RecurrenceShape& s, const at::Tensor& hs, const at::Tensor& h0) const {
    auto grad_w = at::zeros({s.M, 3 * s.H, s.H}, hs.options());
    add_recurrent_weight_grad(grad_w.narrow(1, 0, 2 * s.H), s, grad_xp.narrow(3, 0, 2 * s.H), hs, h0);
    add_recurrent_weight_grad(grad_w.narrow(1, 2 * s.H, s.H), s, grad_hn, hs, h0);
    return {grad_xp, grad_w, grad_hn.sum({1, 2}), grad_h0, delta_sq, v_sq};
  }
};

std::tuple<at::Tensor, at::Tensor> gru_forward_cpu(const at::Tensor& xp, const at::Tensor& w_hh,
                                                   const at::Tensor& b_hn, const at::Tensor& h0,
                                                   const std::optional<at::Tensor>& b) {
  const RecurrenceShape s = check_gru_forward(xp, w_hh, b_hn, h0);
  const at::Tensor bias = bias_or_zeros(b, xp, "[M, 3H]");
  auto hs = empty_output({s.M, s.T, s.B, s.H}, xp.options());
  auto gates = empty_output({s.M, s.T, s.B, 4 * s.H}, xp.options());
  if (hs.numel() == 0) return {hs, gates};
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    const auto& k = cpu::gru_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(make_tiles(s.M, s.B, k.row_block), s.recurrent_work(3), [&](BatchTile tile) {
      k.forward(s, tile, xp.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                b_hn.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(), hs.mutable_data_ptr<scalar_t>(),
                gates.mutable_data_ptr<scalar_t>());
    });
  });
  return {hs, gates};
}

GruBackwardResult gru_backward_cpu(const at::Tensor& grad_hs_given, const at::Tensor& hs, const at::Tensor& gates,
                                   const at::Tensor& h0, const at::Tensor& w_hh) {
  const at::Tensor grad_hs = with_contiguous_rows(grad_hs_given);
  const RecurrenceShape s = check_gru_backward(grad_hs, hs, gates, h0, w_hh);
  GruBackwardOutputs out(s, hs, h0);
  if (has_work(s)) {
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "gru_backward", [&] {
      const auto& k = cpu::gru_kernels<scalar_t>(cpu::selected_isa());
      for_each_tile(make_tiles(s.M, s.B, k.row_block), s.recurrent_work(3), [&](BatchTile tile) {
        k.backward(s, tile, seq_rows<scalar_t>(grad_hs), hs.const_data_ptr<scalar_t>(),
                   gates.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                   out.grad_xp.mutable_data_ptr<scalar_t>(), out.grad_hn.mutable_data_ptr<scalar_t>(),
                   out.grad_h0.mutable_data_ptr<scalar_t>(), out.delta_sq.mutable_data_ptr<scalar_t>(),
                   out.v_sq.mutable_data_ptr<scalar_t>());
      });
    });
  }
  return out.finish(s, hs, h0);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("gru_forward(Tensor xp, Tensor w_hh, Tensor b_hn, Tensor h0, Tensor? b=None) -> (Tensor hs, Tensor gates)");
  m.def(
      "gru_backward(Tensor grad_hs, Tensor hs, Tensor gates, Tensor h0, Tensor w_hh) -> (Tensor grad_xp, "
      "Tensor grad_w_hh, Tensor grad_b_hn, Tensor grad_h0, Tensor delta_sq, Tensor v_sq)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("gru_forward", &gru_forward_cpu);
  m.impl("gru_backward", &gru_backward_cpu);
}

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"gru_forward", "gru_backward"}); }

}  // namespace rnnlab
