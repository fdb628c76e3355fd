// Helpers shared by the CUDA op glue: input checks for CUDA tensors, the current stream, and the
// switch that forces the per-step path.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdlib>
#include <cstring>

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

}  // namespace rnnlab::cuda_glue
