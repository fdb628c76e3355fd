// ATen glue for the Elman ops: schemas, input checks, parallel dispatch over batch tiles, and the
// weight-gradient GEMMs that follow the backward kernel. The math lives in csrc/kernels.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "kernels/cpu/elman.h"
#include "torch/checks.h"
#include "torch/elman_glue.h"
#include "torch/tiles.h"

namespace rnnlab {

Activation parse_activation(c10::string_view name) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "relu") return Activation::Relu;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "identity") return Activation::Identity;
  TORCH_CHECK_VALUE(false, "activation must be one of 'tanh', 'relu', 'sigmoid', 'identity', got '", name, "'");
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
      for (int64_t m = m0; m < m1; ++m) {
        double total = 0, valid = 0;
        for (int64_t i = m * n; i < (m + 1) * n; ++i) {
          if (!(d[i] >= scalar_t(kOmegaBound))) continue;  // m_t = 0: r_t = 1 adds nothing
          const double r = double(v[i]) / double(d[i]) - 1.0;
          total += r * r;
          valid += 1;
        }
        nv[m] = static_cast<scalar_t>(valid / B);
        om[m] = valid > 0 ? static_cast<scalar_t>(total / valid) : scalar_t(0);
      }
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

at::Tensor elman_weight_grad(const RecurrenceShape& s, const at::Tensor& grad_xp, const at::Tensor& hs,
                             const at::Tensor& h0, const at::Tensor& reg_v, const std::optional<at::Tensor>& reg_weight,
                             const at::Tensor& n_valid) {
  if (s.T == 0 || s.B == 0) return at::zeros({s.M, s.H, s.H}, hs.options());
  // Σ_t u_tᵀ h_{t-1} in two batched GEMMs (h_0, then h_1 … h_{T-1}) over views: no copies.
  auto grad_w = at::bmm(grad_xp.select(1, 0).transpose(1, 2), h0);
  if (s.T > 1)
    grad_w.baddbmm_(grad_xp.narrow(1, 1, s.T - 1).reshape({s.M, (s.T - 1) * s.B, s.H}).transpose(1, 2),
                    hs.narrow(1, 0, s.T - 1).reshape({s.M, (s.T - 1) * s.B, s.H}));
  if (reg_v.defined()) {
    const auto scale = at::where(n_valid > 0, 4 * *reg_weight / (s.B * n_valid.clamp_min(1e-300)), at::zeros_like(n_valid));
    grad_w.add_(at::bmm(grad_xp.view({s.M, s.T * s.B, s.H}).transpose(1, 2), reg_v.view({s.M, s.T * s.B, s.H})) *
                scale.view({s.M, 1, 1}));
  }
  return grad_w;
}

namespace {

RecurrenceShape check_elman(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0) {
  check_float("xp", xp);
  check_dim("xp", xp, 4, "[M, T, B, H]");
  const RecurrenceShape s{xp.size(0), xp.size(1), xp.size(2), xp.size(3)};
  check_like("w_hh", w_hh, xp, {s.M, s.H, s.H}, "[M, H, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

at::Tensor elman_forward_cpu(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0, c10::string_view activation) {
  const RecurrenceShape s = check_elman(xp, w_hh, h0);
  const Activation act = parse_activation(activation);
  auto hs = at::empty_like(xp, at::MemoryFormat::Contiguous);
  if (hs.numel() == 0) return hs;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "elman_forward", [&] {
    const auto& k = cpu::elman_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(make_tiles(s.M, s.B, k.row_block), [&](BatchTile tile) {
      k.forward(s, tile, act, xp.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(),
                hs.mutable_data_ptr<scalar_t>());
    });
  });
  return hs;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_backward_cpu(
    const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& h0, const at::Tensor& w_hh,
    c10::string_view activation, const std::optional<at::Tensor>& reg_weight) {
  const RecurrenceShape s = check_elman(hs, w_hh, h0);
  check_like("grad_hs", grad_hs, hs, {s.M, s.T, s.B, s.H}, "[M, T, B, H]");
  const Activation act = parse_activation(activation);
  if (reg_weight) check_like("reg_weight", *reg_weight, hs, {s.M}, "[M]");

  auto grad_xp = at::empty_like(hs, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stays 0 when T = 0
  auto delta_sq = at::empty({s.M, s.T, s.B}, hs.options());
  auto v_sq = at::empty({s.M, s.T, s.B}, hs.options());
  auto reg_v = reg_weight ? at::empty_like(hs, at::MemoryFormat::Contiguous) : at::Tensor();
  if (s.T > 0 && s.B > 0 && s.H > 0) {
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "elman_backward", [&] {
      const auto& k = cpu::elman_kernels<scalar_t>(cpu::selected_isa());
      for_each_tile(make_tiles(s.M, s.B, k.row_block), [&](BatchTile tile) {
        k.backward(s, tile, act, grad_hs.const_data_ptr<scalar_t>(), hs.const_data_ptr<scalar_t>(),
                   h0.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(), grad_xp.mutable_data_ptr<scalar_t>(),
                   grad_h0.mutable_data_ptr<scalar_t>(), delta_sq.mutable_data_ptr<scalar_t>(),
                   v_sq.mutable_data_ptr<scalar_t>(), reg_v.defined() ? reg_v.mutable_data_ptr<scalar_t>() : nullptr);
      });
    });
  } else {
    grad_xp.zero_();
    delta_sq.zero_();
    v_sq.zero_();
  }

  auto [omega, n_valid] = omega_from_norms(delta_sq, v_sq);
  auto grad_w = elman_weight_grad(s, grad_xp, hs, h0, reg_v, reg_weight, n_valid);
  return {grad_xp, grad_w, grad_h0, delta_sq, v_sq, omega, n_valid};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("elman_forward(Tensor xp, Tensor w_hh, Tensor h0, str activation) -> Tensor");
  m.def(
      "elman_backward(Tensor grad_hs, Tensor hs, Tensor h0, Tensor w_hh, str activation, Tensor? reg_weight) -> "
      "(Tensor grad_xp, Tensor grad_w_hh, Tensor grad_h0, Tensor delta_sq, Tensor v_sq, Tensor omega, Tensor n_valid)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("elman_forward", &elman_forward_cpu);
  m.impl("elman_backward", &elman_backward_cpu);
}

}  // namespace rnnlab
