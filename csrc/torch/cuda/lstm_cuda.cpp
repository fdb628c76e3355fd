// ATen glue for the CUDA LSTM kernels: the CUDA impls of the ops whose schemas are defined in
// csrc/torch/lstm_ops.cpp, and the choice between the on-chip kernel (float32 H ≤ 64, float64
// H ≤ 32) and the per-step path (batched cuBLAS GEMM + one fused kernel per step;
// RNNLAB_CUDA_PATH=steps forces it). Input checks, outputs and the weight-gradient GEMMs are the
// device-independent glue shared with the CPU impl (torch/recurrence_glue.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "kernels/cuda/lstm.cuh"
#include "torch/cuda/common.h"
#include "torch/recurrence_glue.h"

namespace rnnlab {
namespace {

using cuda_glue::current_stream;

template <typename T>
bool use_onchip(int64_t H) {
  return cuda::lstm_onchip_fits<T>(H) && !cuda_glue::steps_forced();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_forward_cuda(const at::Tensor& xp_given, const at::Tensor& w_hh,
                                                                 const at::Tensor& h0, const at::Tensor& c0,
                                                                 const std::optional<at::Tensor>& b) {
  const RecurrenceShape s = check_lstm(xp_given, w_hh, h0, c0, "xp", cuda_glue::check_float_cuda);
  // the CUDA kernels take no bias: it is added to xp here, in one elementwise pass
  const at::Tensor xp =
      b ? xp_given + bias_or_zeros(b, xp_given, "[M, 4H]").view({s.M, 1, 1, 4 * s.H}) : xp_given;
  const c10::cuda::CUDAGuard guard(xp.device());
  at::Tensor hs, cs, gates;  // not a structured binding: the kernel lambda captures them (C++17)
  std::tie(hs, cs, gates) = lstm_forward_outputs(s, xp);
  if (hs.numel() == 0) return {hs, cs, gates};
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward_cuda", [&] {
    using T = scalar_t;
    if (use_onchip<T>(s.H)) {
      C10_CUDA_CHECK(cuda::lstm_forward_onchip<T>(s, xp.const_data_ptr<T>(), w_hh.const_data_ptr<T>(),
                                                  h0.const_data_ptr<T>(), c0.const_data_ptr<T>(),
                                                  hs.mutable_data_ptr<T>(), cs.mutable_data_ptr<T>(),
                                                  gates.mutable_data_ptr<T>(), current_stream()));
      return;
    }
    cuda_glue::forward_steps<T>(s, h0, hs, w_hh, [&](int64_t t, const T* rec) {
      C10_CUDA_CHECK(cuda::lstm_forward_step<T>(s, t, xp.const_data_ptr<T>(), rec, c0.const_data_ptr<T>(),
                                                hs.mutable_data_ptr<T>(), cs.mutable_data_ptr<T>(),
                                                gates.mutable_data_ptr<T>(), current_stream()));
    });
  });
  return {hs, cs, gates};
}

LstmBackwardResult lstm_backward_cuda(const at::Tensor& grad_hs_given, const std::optional<at::Tensor>& grad_cs_given,
                                      const at::Tensor& hs, const at::Tensor& cs, const at::Tensor& gates,
                                      const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh) {
  // the CUDA kernels read both gradients dense
  const at::Tensor grad_hs = grad_hs_given.contiguous();
  const std::optional<at::Tensor> grad_cs =
      grad_cs_given ? std::optional<at::Tensor>(grad_cs_given->contiguous()) : std::nullopt;
  const RecurrenceShape s =
      check_lstm_backward(grad_hs, grad_cs, hs, cs, gates, h0, c0, w_hh, cuda_glue::check_float_cuda);
  const c10::cuda::CUDAGuard guard(gates.device());
  LstmBackwardOutputs out(s, gates, h0, c0);
  if (has_work(s)) {
    AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward_cuda", [&] {
      using T = scalar_t;
      const T* gc = grad_cs ? grad_cs->const_data_ptr<T>() : nullptr;
      if (use_onchip<T>(s.H)) {
        C10_CUDA_CHECK(cuda::lstm_backward_onchip<T>(
            s, grad_hs.const_data_ptr<T>(), gc, cs.const_data_ptr<T>(), gates.const_data_ptr<T>(),
            c0.const_data_ptr<T>(), w_hh.const_data_ptr<T>(), out.grad_xp.mutable_data_ptr<T>(),
            out.grad_h0.mutable_data_ptr<T>(), out.grad_c0.mutable_data_ptr<T>(), out.delta_sq.mutable_data_ptr<T>(),
            out.v_sq.mutable_data_ptr<T>(), current_stream()));
        return;
      }
      auto dc = at::zeros({s.M, s.B, s.H}, gates.options());  // ε' carried between steps
      cuda_glue::backward_steps<T>(s, out.grad_xp, w_hh, [&](int64_t t, const T* v) {  // v_t = ∂z_t w_hh
        C10_CUDA_CHECK(cuda::lstm_backward_step<T>(
            s, t, v, grad_hs.const_data_ptr<T>(), gc, cs.const_data_ptr<T>(), gates.const_data_ptr<T>(),
            c0.const_data_ptr<T>(), dc.mutable_data_ptr<T>(), out.grad_xp.mutable_data_ptr<T>(),
            out.grad_h0.mutable_data_ptr<T>(), out.grad_c0.mutable_data_ptr<T>(), out.delta_sq.mutable_data_ptr<T>(),
            out.v_sq.mutable_data_ptr<T>(), current_stream()));
      });
    });
  }
  return out.finish(s, hs, h0);
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnlab, CUDA, m) {
  m.impl("lstm_forward", &lstm_forward_cuda);
  m.impl("lstm_backward", &lstm_backward_cuda);
}

}  // namespace rnnlab
