// ATen glue for the CUDA Elman kernels: the CUDA impls of the ops whose schemas are defined in
// csrc/torch/elman_ops.cpp, and the choice between the on-chip kernel and the per-step path
// (kernels/cuda/elman.cuh). Input checks, outputs, the weight gradient and Ω are the
// device-independent glue shared with the CPU impl (torch/recurrence_glue.h).
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
#include "torch/recurrence_glue.h"

namespace rnnlab {
namespace {

using cuda_glue::current_stream;

template <typename T>
bool use_onchip(int64_t H) {
  return cuda::elman_onchip_fits<T>(H) && !cuda_glue::steps_forced();
}

at::Tensor elman_forward_cuda(const at::Tensor& xp_given, const at::Tensor& w_hh, const at::Tensor& h0,
                              c10::string_view activation, const std::optional<at::Tensor>& b) {
  const RecurrenceShape s = check_elman(xp_given, w_hh, h0, cuda_glue::check_float_cuda);
  // the CUDA kernels take no bias: it is added to xp here, in one elementwise pass
  const at::Tensor xp = b ? xp_given + bias_or_zeros(b, xp_given, "[M, H]").view({s.M, 1, 1, s.H}) : xp_given;
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
    cuda_glue::forward_steps<T>(s, h0, hs, w_hh, [&](int64_t t, const T* rec) {
      C10_CUDA_CHECK(cuda::elman_forward_step<T>(s, t, act, xp.const_data_ptr<T>(), rec, hs.mutable_data_ptr<T>(),
                                                 current_stream()));
    });
  });
  return hs;
}

ElmanBackwardResult elman_backward_cuda(const at::Tensor& grad_hs_given, const at::Tensor& hs, const at::Tensor& h0,
                                        const at::Tensor& w_hh, c10::string_view activation,
                                        const std::optional<at::Tensor>& reg_weight) {
  const at::Tensor grad_hs = grad_hs_given.contiguous();  // the CUDA kernels read it dense
  const RecurrenceShape s = check_elman_backward(grad_hs, hs, h0, w_hh, reg_weight, cuda_glue::check_float_cuda);
  const Activation act = parse_activation(activation);
  const c10::cuda::CUDAGuard guard(hs.device());
  ElmanBackwardOutputs out(s, hs, h0, reg_weight.has_value());
  if (has_work(s)) {
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "elman_backward_cuda", [&] {
      using T = scalar_t;
      T* reg = out.reg_v.defined() ? out.reg_v.mutable_data_ptr<T>() : nullptr;
      if (use_onchip<T>(s.H)) {
        C10_CUDA_CHECK(cuda::elman_backward_onchip<T>(
            s, act, grad_hs.const_data_ptr<T>(), hs.const_data_ptr<T>(), w_hh.const_data_ptr<T>(),
            out.grad_xp.mutable_data_ptr<T>(), out.grad_h0.mutable_data_ptr<T>(), out.delta_sq.mutable_data_ptr<T>(),
            out.v_sq.mutable_data_ptr<T>(), reg, current_stream()));
        return;
      }
      cuda_glue::backward_steps<T>(s, out.grad_xp, w_hh, [&](int64_t t, const T* v) {  // v_t = u_t w_hh
        C10_CUDA_CHECK(cuda::elman_backward_step<T>(
            s, t, act, v, grad_hs.const_data_ptr<T>(), hs.const_data_ptr<T>(), out.grad_xp.mutable_data_ptr<T>(),
            out.grad_h0.mutable_data_ptr<T>(), out.delta_sq.mutable_data_ptr<T>(), out.v_sq.mutable_data_ptr<T>(), reg,
            current_stream()));
      });
    });
  }
  return out.finish(s, hs, h0, reg_weight);
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnlab, CUDA, m) {
  m.impl("elman_forward", &elman_forward_cuda);
  m.impl("elman_backward", &elman_backward_cuda);
}

}  // namespace rnnlab
