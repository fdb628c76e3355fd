// ATen glue for the CUDA Elman kernels: the CUDA impls of the ops whose schemas are defined in
// csrc/torch/elman_ops.cpp, input checks, the choice between the on-chip kernel and the per-step
// path (kernels/cuda/elman.cuh); the weight gradient and Ω come from the device-independent code
// shared with the CPU impl (torch/elman_glue.h).
//
// Path choice: the on-chip kernel whenever w_hh fits (float32 H ≤ 128, float64 H ≤ 64), else
// per step: a batched cuBLAS GEMM (at::bmm_out) plus one fused pointwise kernel
// (RNNLAB_CUDA_PATH=steps forces it). The per-step GEMMs follow torch's TF32 setting; the on-chip
// kernel is always full fp32.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "kernels/cuda/elman.cuh"
#include "torch/cuda/common.h"
#include "torch/elman_glue.h"

namespace rnnlab {
namespace {

using cuda_glue::current_stream;

template <typename T>
bool use_onchip(int64_t H) {
  return cuda::elman_onchip_fits<T>(H) && !cuda_glue::steps_forced();
}

RecurrenceShape check_elman_cuda(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0) {
  cuda_glue::check_float_cuda("xp", xp);
  check_dim("xp", xp, 4, "[M, T, B, H]");
  const RecurrenceShape s{xp.size(0), xp.size(1), xp.size(2), xp.size(3)};
  check_like("w_hh", w_hh, xp, {s.M, s.H, s.H}, "[M, H, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

at::Tensor elman_forward_cuda(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0,
                              c10::string_view activation) {
  const RecurrenceShape s = check_elman_cuda(xp, w_hh, h0);
  const Activation act = parse_activation(activation);
  const c10::cuda::CUDAGuard guard(xp.device());
  auto hs = at::empty_like(xp, at::MemoryFormat::Contiguous);
  if (hs.numel() == 0) return hs;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "elman_forward_cuda", [&] {
    using T = scalar_t;
    if (use_onchip<T>(s.H)) {
      C10_CUDA_CHECK(cuda::elman_forward_onchip<T>(s, act, xp.const_data_ptr<T>(), w_hh.const_data_ptr<T>(),
                                                   h0.const_data_ptr<T>(), hs.mutable_data_ptr<T>(), current_stream()));
      return;
    }
    auto rec = at::empty({s.M, s.B, s.H}, xp.options());  // h_{t-1} w_hhᵀ
    const auto w_t = w_hh.transpose(1, 2);
    for (int64_t t = 0; t < s.T; ++t) {
      at::bmm_out(rec, t == 0 ? h0 : hs.select(1, t - 1), w_t);
      C10_CUDA_CHECK(cuda::elman_forward_step<T>(s, t, act, xp.const_data_ptr<T>(), rec.const_data_ptr<T>(),
                                                 hs.mutable_data_ptr<T>(), current_stream()));
    }
  });
  return hs;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_backward_cuda(
    const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& h0, const at::Tensor& w_hh,
    c10::string_view activation, const std::optional<at::Tensor>& reg_weight) {
  const RecurrenceShape s = check_elman_cuda(hs, w_hh, h0);
  check_like("grad_hs", grad_hs, hs, {s.M, s.T, s.B, s.H}, "[M, T, B, H]");
  const Activation act = parse_activation(activation);
  if (reg_weight) check_like("reg_weight", *reg_weight, hs, {s.M}, "[M]");
  const c10::cuda::CUDAGuard guard(hs.device());

  auto grad_xp = at::empty_like(hs, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stays 0 when T = 0
  auto delta_sq = at::empty({s.M, s.T, s.B}, hs.options());
  auto v_sq = at::empty({s.M, s.T, s.B}, hs.options());
  auto reg_v = reg_weight ? at::empty_like(hs, at::MemoryFormat::Contiguous) : at::Tensor();
  if (s.M > 0 && s.T > 0 && s.B > 0 && s.H > 0) {
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "elman_backward_cuda", [&] {
      using T = scalar_t;
      T* reg = reg_v.defined() ? reg_v.mutable_data_ptr<T>() : nullptr;
      if (use_onchip<T>(s.H)) {
        C10_CUDA_CHECK(cuda::elman_backward_onchip<T>(
            s, act, grad_hs.const_data_ptr<T>(), hs.const_data_ptr<T>(), w_hh.const_data_ptr<T>(),
            grad_xp.mutable_data_ptr<T>(), grad_h0.mutable_data_ptr<T>(), delta_sq.mutable_data_ptr<T>(),
            v_sq.mutable_data_ptr<T>(), reg, current_stream()));
        return;
      }
      auto v = at::empty({s.M, s.B, s.H}, hs.options());  // v_t = u_t w_hh
      auto step = [&](int64_t t, const T* vt) {
        C10_CUDA_CHECK(cuda::elman_backward_step<T>(s, t, act, vt, grad_hs.const_data_ptr<T>(), hs.const_data_ptr<T>(),
                                                    grad_xp.mutable_data_ptr<T>(), grad_h0.mutable_data_ptr<T>(),
                                                    delta_sq.mutable_data_ptr<T>(), v_sq.mutable_data_ptr<T>(), reg,
                                                    current_stream()));
      };
      step(s.T, nullptr);  // δ_{T-1} = ∂⁺L/∂h_{T-1}
      for (int64_t t = s.T - 1; t >= 0; --t) {
        at::bmm_out(v, grad_xp.select(1, t), w_hh);
        step(t, v.const_data_ptr<T>());
      }
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

TORCH_LIBRARY_IMPL(rnnlab, CUDA, m) {
  m.impl("elman_forward", &elman_forward_cuda);
  m.impl("elman_backward", &elman_backward_cuda);
}

}  // namespace rnnlab
