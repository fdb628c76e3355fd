// Definitions of the shared glue declared in recurrence_glue.h: the activation names, Ω and N
// from the per-step norms (and the omega_from_norms op), and the backward ops' weight gradients.
#include "torch/recurrence_glue.h"

#include <ATen/Parallel.h>
#include <torch/library.h>

#include "kernels/cpu/omega_of_norms.h"
#include "torch/no_derivative.h"

namespace rnnlab {

Activation parse_activation(c10::string_view name) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "relu") return Activation::Relu;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "identity") return Activation::Identity;
  TORCH_CHECK_VALUE(false, "activation must be one of 'tanh', 'relu', 'sigmoid', 'identity', got '", name, "'");
}

at::Tensor with_contiguous_rows(const at::Tensor& g) {
  if (g.dim() != 4 || g.size(3) <= 1 || g.stride(3) == 1) return g;
  at::Tensor compact = g;
  for (int64_t d = 0; d < 3; ++d)
    if (g.stride(d) == 0) compact = compact.narrow(d, 0, std::min<int64_t>(1, g.size(d)));
  return compact.contiguous().expand(g.sizes());
}

namespace {

// omega_from_norms in one pass per model (the ATen expression below makes eight passes and five
// temporaries over [M, T, B], which cost as much as the forward kernel of a small population);
// sums in double.
std::tuple<at::Tensor, at::Tensor> omega_from_norms_cpu(const at::Tensor& delta_sq, const at::Tensor& v_sq) {
  const int64_t M = delta_sq.size(0), n = delta_sq.size(1) * delta_sq.size(2), B = delta_sq.size(2);
  auto omega = at::empty({M}, delta_sq.options()), n_valid = at::empty({M}, delta_sq.options());
  AT_DISPATCH_FLOATING_TYPES(delta_sq.scalar_type(), "omega_from_norms", [&] {
    const scalar_t* d = delta_sq.const_data_ptr<scalar_t>();
    const scalar_t* v = v_sq.const_data_ptr<scalar_t>();
    scalar_t* om = omega.mutable_data_ptr<scalar_t>();
    scalar_t* nv = n_valid.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, M, 1, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) cpu::omega_of_norms(d + m * n, v + m * n, n, B, om + m, nv + m);
    });
  });
  return {omega, n_valid};
}

}  // namespace

// (Ω, N) of SPEC §2.5 from the per-step squared norms [M, T, B]; N = Σ_t mean_b m_t.
std::tuple<at::Tensor, at::Tensor> omega_from_norms(const at::Tensor& delta_sq, const at::Tensor& v_sq) {
  const int64_t B = delta_sq.size(2);
  if (B == 0 || delta_sq.size(1) == 0) {
    auto zero = delta_sq.new_zeros({delta_sq.size(0)});
    return {zero, zero.clone()};
  }
  if (delta_sq.is_cpu()) return omega_from_norms_cpu(delta_sq.contiguous(), v_sq.contiguous());
  const auto mask = delta_sq >= kOmegaBound;
  const auto r = at::where(mask, v_sq / at::where(mask, delta_sq, at::ones_like(delta_sq)), at::ones_like(v_sq));
  const auto n_valid = mask.to(delta_sq.scalar_type()).sum({1, 2}) / B;
  const auto total = (r - 1).square().sum({1, 2}) / B;
  const auto omega = at::where(n_valid > 0, total / n_valid.clamp_min(1e-300), at::zeros_like(total));
  return {omega, n_valid};
}

namespace {

// The omega_from_norms op, for the sinks of the cells whose backward op does not return Ω (the
// LSTM, GRU and diagonal recurrence). Ω has one implementation per device, the function above, for
// every cell: the Elman backward op needs it in C++ anyway (N scales the regularizer's gradient),
// and on the CPU its one pass is much cheaper than the same expression in torch ops.
std::tuple<at::Tensor, at::Tensor> omega_from_norms_op(const at::Tensor& delta_sq, const at::Tensor& v_sq) {
  check_float("delta_sq", delta_sq);
  check_dim("delta_sq", delta_sq, 3, "[M, T, B]");
  check_like("v_sq", v_sq, delta_sq, delta_sq.sizes(), "[M, T, B] like delta_sq");
  return omega_from_norms(delta_sq, v_sq);
}

}  // namespace

ElmanBackwardResult ElmanBackwardOutputs::finish(const RecurrenceShape& s, const at::Tensor& hs, const at::Tensor& h0,
                                                 const std::optional<at::Tensor>& reg_weight) const {
  auto [omega, n_valid] = omega_from_norms(delta_sq, v_sq);
  auto grad_w = at::zeros({s.M, s.H, s.H}, hs.options());
  add_recurrent_weight_grad(grad_w, s, grad_xp, hs, h0);
  if (reg_v.defined() && s.T > 0 && s.B > 0) {
    const auto scale = at::where(n_valid > 0, 4 * *reg_weight / (s.B * n_valid.clamp_min(1e-300)), at::zeros_like(n_valid));
    grad_w.add_(at::bmm(grad_xp.view({s.M, s.T * s.B, s.H}).transpose(1, 2), reg_v.view({s.M, s.T * s.B, s.H})) *
                scale.view({s.M, 1, 1}));
  }
  return {grad_xp, grad_w, grad_h0, delta_sq, v_sq, omega, n_valid};
}

LstmBackwardResult LstmBackwardOutputs::finish(const RecurrenceShape& s, const at::Tensor& hs,
                                               const at::Tensor& h0) const {
  auto grad_w = at::zeros({s.M, 4 * s.H, s.H}, hs.options());
  add_recurrent_weight_grad(grad_w, s, grad_xp, hs, h0);
  return {grad_xp, grad_w, grad_h0, grad_c0, delta_sq, v_sq};
}

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("omega_from_norms(Tensor delta_sq, Tensor v_sq) -> (Tensor omega, Tensor n_valid)");
}

// The function runs on either device (a CPU loop, an ATen expression elsewhere).
TORCH_LIBRARY_IMPL(rnnlab, CPU, m) { m.impl("omega_from_norms", &omega_from_norms_op); }
TORCH_LIBRARY_IMPL(rnnlab, CUDA, m) { m.impl("omega_from_norms", &omega_from_norms_op); }
TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"omega_from_norms"}); }

}  // namespace rnnlab
