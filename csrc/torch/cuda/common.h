// Helpers shared by the CUDA op glue: input checks for CUDA tensors, the current stream, the
// switch that forces the per-step path, and that path's loop of per-step recurrent GEMMs.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdlib>
#include <cstring>

#include "kernels/common.h"
#include "torch/checks.h"

namespace rnnlab::cuda_glue {

// RNNLAB_CUDA_PATH=steps forces the per-step path (batched cuBLAS GEMM + one fused kernel per
// step) even where the on-chip kernel fits, so that tests cover both paths on small sizes.
inline bool steps_forced() {
  const char* v = std::getenv("RNNLAB_CUDA_PATH");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return false;
  TORCH_CHECK_VALUE(std::strcmp(v, "steps") == 0, "RNNLAB_CUDA_PATH must be 'auto' or 'steps', got '", v, "'");
  return true;
}

// dtype float32/float64, contiguous, on a CUDA device.
inline void check_float_cuda(const char* name, const at::Tensor& t) {
  check_float(name, t);  // dtype and contiguity only
  TORCH_CHECK_VALUE(t.is_cuda(), name, " must be a CUDA tensor, got ", t.device());
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// The per-step path's forward: for t = 0 … T−1, rec = h_{t-1} w_hhᵀ [M, B, G] as one batched
// cuBLAS GEMM (h_{-1} = h0 [M, B, H]; w_hh [M, G, H]; hs [M, T, B, H]), then step(t, rec), the
// fused kernel that writes step t (including hs_t, which the next GEMM reads).
template <typename T, typename Step>
void forward_steps(const RecurrenceShape& s, const at::Tensor& h0, const at::Tensor& hs, const at::Tensor& w_hh,
                   Step step) {
  auto rec = at::empty({s.M, s.B, w_hh.size(1)}, hs.options());
  const auto w_t = w_hh.transpose(1, 2);
  for (int64_t t = 0; t < s.T; ++t) {
    at::bmm_out(rec, t == 0 ? h0 : hs.select(1, t - 1), w_t);
    step(t, rec.const_data_ptr<T>());
  }
}

// The per-step path's backward: step(T, nullptr) starts the recursion from δ_{T-1} = ∂⁺L/∂h_{T-1};
// then for t = T−1 … 0, v_t = g_t w_hh [M, B, H] as one batched cuBLAS GEMM (g = grad_xp
// [M, T, B, G], written by the previous step call; w_hh [M, G, H]), then step(t, v_t).
template <typename T, typename Step>
void backward_steps(const RecurrenceShape& s, const at::Tensor& grad_xp, const at::Tensor& w_hh, Step step) {
  auto v = at::empty({s.M, s.B, s.H}, grad_xp.options());
  step(s.T, static_cast<const T*>(nullptr));
  for (int64_t t = s.T - 1; t >= 0; --t) {
    at::bmm_out(v, grad_xp.select(1, t), w_hh);
    step(t, v.const_data_ptr<T>());
  }
}

}  // namespace rnnlab::cuda_glue
