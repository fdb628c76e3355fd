// Input checks shared by the op glue. Each names the argument and what was expected, so a bad
// call from Python raises a clear exception instead of reaching a kernel.
#pragma once

#include <ATen/ATen.h>

namespace rnnlab {

inline void check_float(const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

inline void check_dim(const char* name, const at::Tensor& t, int64_t dim, const char* shape) {
  TORCH_CHECK_VALUE(t.dim() == dim, name, " must have shape ", shape, ", got ", t.sizes());
}

// Same dtype and device as `like`, and exactly `sizes`; any strides.
inline void check_like_strided(const char* name, const at::Tensor& t, const at::Tensor& like, at::IntArrayRef sizes,
                               const char* shape) {
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), name, " must have dtype ", like.scalar_type(), ", got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == like.device(), name, " must be on ", like.device(), ", got ", t.device());
  TORCH_CHECK_VALUE(t.sizes() == sizes, name, " must have shape ", shape, " = ", sizes, ", got ", t.sizes());
}

// Same dtype and device as `like`, contiguous, and exactly `sizes`.
inline void check_like(const char* name, const at::Tensor& t, const at::Tensor& like, at::IntArrayRef sizes,
                       const char* shape) {
  check_like_strided(name, t, like, sizes, shape);
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

}  // namespace rnnlab
