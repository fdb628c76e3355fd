// ATen glue for the CUDA diagonal-recurrence kernels: the CUDA impls of the ops whose schemas are
// defined in csrc/torch/diag_ops.cpp, input checks, and the reduction of the kernels' partial-sum
// slots (same layout as the CPU kernels', so the same reduction).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/diag.cuh"
#include "torch/cuda/common.h"

namespace rnnlab {
namespace {

using cuda_glue::current_stream;

// Checks u (or hs) [M, T, B, N] (float or complex, CUDA), lam [M, N], h0 [M, B, N].
cuda::DiagShape check_diag_cuda(const at::Tensor& u, const at::Tensor& lam, const at::Tensor& h0, const char* u_name) {
  const auto st = u.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kComplexFloat || st == at::kComplexDouble, u_name,
                   " must be float32, float64, complex64 or complex128, got ", st);
  TORCH_CHECK_VALUE(u.is_contiguous(), u_name, " must be contiguous");
  TORCH_CHECK_VALUE(u.is_cuda(), u_name, " must be a CUDA tensor, got ", u.device());
  check_dim(u_name, u, 4, "[M, T, B, N]");
  const int64_t M = u.size(0), T = u.size(1), B = u.size(2), N = u.size(3);
  check_like("lam", lam, u, {M, N}, "[M, N]");
  check_like("h0", h0, u, {M, B, N}, "[M, B, N]");
  return {M, T, B, N * (u.is_complex() ? 2 : 1), u.is_complex()};
}

bool aligned16(std::initializer_list<const at::Tensor*> ts) {
  for (const at::Tensor* t : ts)
    if (reinterpret_cast<uintptr_t>(t->const_data_ptr()) % 16 != 0) return false;
  return true;
}

template <typename T>
const T* real_ptr(const at::Tensor& t) { return static_cast<const T*>(t.const_data_ptr()); }
template <typename T>
T* real_ptr(at::Tensor& t) { return static_cast<T*>(t.mutable_data_ptr()); }

// [R, M, ..., Nr] per-slot sums of squared lanes -> [M, ..., N] mean over the B batch rows of |·|².
at::Tensor mean_abs_sq(const at::Tensor& part, const cuda::DiagShape& s) {
  auto total = part.sum(0);
  if (s.complex) total = total.unflatten(-1, {s.Nr / 2, 2}).sum(-1);
  return total / static_cast<double>(s.B);
}

bool empty(const cuda::DiagShape& s) { return s.M == 0 || s.T == 0 || s.B == 0 || s.Nr == 0; }

std::tuple<at::Tensor, at::Tensor, at::Tensor> diag_forward_cuda(const at::Tensor& u, const at::Tensor& lam,
                                                                 const at::Tensor& h0, bool stats) {
  const cuda::DiagShape s = check_diag_cuda(u, lam, h0, "u");
  const c10::cuda::CUDAGuard guard(u.device());
  const auto real = u.options().dtype(c10::toRealValueType(u.scalar_type()));
  const int64_t N = u.size(3);
  auto hs = at::empty_like(u, at::MemoryFormat::Contiguous);
  if (empty(s)) {
    const int64_t T = stats ? s.T : 0;
    return {hs, at::zeros({s.M, T, N}, real), at::zeros({s.M, T, N}, real)};
  }
  at::Tensor h_part, s_part;
  AT_DISPATCH_FLOATING_TYPES(c10::toRealValueType(u.scalar_type()), "diag_forward_cuda", [&] {
    using T = scalar_t;
    const auto plan = cuda::diag_plan<T>(s, aligned16({&u, &lam, &h0, &hs}));
    h_part = at::empty({stats ? plan.R : 0, s.M, s.T, s.Nr}, real);
    s_part = at::empty({stats ? plan.R : 0, s.M, s.T, s.Nr}, real);
    C10_CUDA_CHECK(cuda::diag_forward<T>(s, plan, real_ptr<T>(u), real_ptr<T>(lam), real_ptr<T>(h0), real_ptr<T>(hs),
                                         stats ? real_ptr<T>(h_part) : nullptr, stats ? real_ptr<T>(s_part) : nullptr,
                                         current_stream()));
  });
  if (!stats) return {hs, at::empty({s.M, 0, N}, real), at::empty({s.M, 0, N}, real)};
  return {hs, mean_abs_sq(h_part, s), mean_abs_sq(s_part, s)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> diag_backward_cuda(
    const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& h0, const at::Tensor& lam) {
  const cuda::DiagShape s = check_diag_cuda(hs, lam, h0, "hs");
  check_like("grad_hs", grad_hs, hs, hs.sizes(), "[M, T, B, N]");
  const c10::cuda::CUDAGuard guard(hs.device());
  const auto real = hs.options().dtype(c10::toRealValueType(hs.scalar_type()));
  auto grad_u = at::empty_like(hs, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stays 0 when T = 0
  if (empty(s)) {
    grad_u.zero_();
    return {grad_u, at::zeros_like(lam), grad_h0, at::zeros({s.M, s.T, s.B}, real), at::zeros({s.M, s.T, s.B}, real)};
  }
  at::Tensor lam_p, lam_q, dsq_part, vsq_part;
  AT_DISPATCH_FLOATING_TYPES(c10::toRealValueType(hs.scalar_type()), "diag_backward_cuda", [&] {
    using T = scalar_t;
    const auto plan = cuda::diag_plan<T>(s, aligned16({&grad_hs, &hs, &h0, &lam, &grad_u, &grad_h0}));
    lam_p = at::empty({plan.R, s.M, s.Nr}, real);
    lam_q = at::empty({s.complex ? plan.R : 0, s.M, s.Nr}, real);
    dsq_part = at::empty({plan.C, s.M, s.T, s.B}, real);
    vsq_part = at::empty({plan.C, s.M, s.T, s.B}, real);
    C10_CUDA_CHECK(cuda::diag_backward<T>(s, plan, real_ptr<T>(grad_hs), real_ptr<T>(hs), real_ptr<T>(h0),
                                          real_ptr<T>(lam), real_ptr<T>(grad_u), real_ptr<T>(grad_h0),
                                          real_ptr<T>(lam_p), s.complex ? real_ptr<T>(lam_q) : nullptr,
                                          real_ptr<T>(dsq_part), real_ptr<T>(vsq_part), current_stream()));
  });
  // grad_λ = Σ conj(h_{t-1}) δ_t: re = Σ (h_re δ_re + h_im δ_im), im = Σ (h_re δ_im − h_im δ_re).
  at::Tensor grad_lam = lam_p.sum(0);
  if (s.complex) {
    const auto p = grad_lam.unflatten(-1, {s.Nr / 2, 2}), q = lam_q.sum(0).unflatten(-1, {s.Nr / 2, 2});
    grad_lam = at::complex(p.select(-1, 0) + p.select(-1, 1), q.select(-1, 0) - q.select(-1, 1));
  }
  return {grad_u, grad_lam, grad_h0, dsq_part.sum(0), vsq_part.sum(0)};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnlab, CUDA, m) {
  m.impl("diag_forward", &diag_forward_cuda);
  m.impl("diag_backward", &diag_backward_cuda);
}

}  // namespace rnnlab
