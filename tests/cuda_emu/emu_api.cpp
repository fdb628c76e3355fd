// A C ABI over the emulated CUDA kernels for ctypes (tests/test_cuda_emulated.py). Each entry
// mirrors what the ATen glue (csrc/torch/cuda/*.cpp) does around the kernels, with host loops in
// place of the batched cuBLAS GEMMs of the per-step paths. dtype: 0 = float32, 1 = float64.
// path: 0 = on chip, 1 = per step. Returns the cudaError_t of the first failing call.
#include <cstdint>
#include <vector>

#include "kernels/cuda/diag.cuh"
#include "kernels/cuda/elman.cuh"
#include "kernels/cuda/lstm.cuh"

namespace {

using rnnlab::Activation;
using rnnlab::RecurrenceShape;
namespace cu = rnnlab::cuda;

// out[m, b, :] = x[m, b, :] · w[m] with x rows of K at stride x_stride_m per model and w[m] of
// shape [K, N] (transpose_w: w[m] is [N, K] and is used transposed), out [M, B, N].
template <typename T>
void batched_rows_times(const RecurrenceShape& s, int64_t K, int64_t N, const T* x, int64_t x_stride_m, const T* w,
                        bool transpose_w, T* out) {
  for (int64_t m = 0; m < s.M; ++m)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t j = 0; j < N; ++j) {
        T acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += x[m * x_stride_m + b * K + k] * (transpose_w ? w[(m * N + j) * K + k] : w[(m * K + k) * N + j]);
        out[(m * s.B + b) * N + j] = acc;
      }
}

template <typename T>
int elman_forward(int path, const RecurrenceShape& s, Activation act, const T* xp, const T* w, const T* h0, T* hs) {
  if (path == 0) return cu::elman_forward_onchip<T>(s, act, xp, w, h0, hs, nullptr);
  std::vector<T> rec(static_cast<size_t>(s.M * s.B * s.H));
  for (int64_t t = 0; t < s.T; ++t) {
    if (t == 0) batched_rows_times(s, s.H, s.H, h0, s.B * s.H, w, true, rec.data());
    else batched_rows_times(s, s.H, s.H, hs + (t - 1) * s.B * s.H, s.T * s.B * s.H, w, true, rec.data());
    if (int e = cu::elman_forward_step<T>(s, t, act, xp, rec.data(), hs, nullptr)) return e;
  }
  return 0;
}

template <typename T>
int elman_backward(int path, const RecurrenceShape& s, Activation act, const T* grad_hs, const T* hs, const T* w,
                   T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v) {
  if (path == 0)
    return cu::elman_backward_onchip<T>(s, act, grad_hs, hs, w, grad_xp, grad_h0, delta_sq, v_sq, reg_v, nullptr);
  std::vector<T> v(static_cast<size_t>(s.M * s.B * s.H));
  if (int e = cu::elman_backward_step<T>(s, s.T, act, nullptr, grad_hs, hs, grad_xp, grad_h0, delta_sq, v_sq, reg_v,
                                         nullptr))
    return e;
  for (int64_t t = s.T - 1; t >= 0; --t) {
    batched_rows_times(s, s.H, s.H, grad_xp + t * s.B * s.H, s.T * s.B * s.H, w, false, v.data());
    if (int e = cu::elman_backward_step<T>(s, t, act, v.data(), grad_hs, hs, grad_xp, grad_h0, delta_sq, v_sq, reg_v,
                                           nullptr))
      return e;
  }
  return 0;
}

template <typename T>
int lstm_forward(int path, const RecurrenceShape& s, const T* xp, const T* w, const T* h0, const T* c0, T* hs, T* cs,
                 T* gates) {
  if (path == 0) return cu::lstm_forward_onchip<T>(s, xp, w, h0, c0, hs, cs, gates, nullptr);
  const int64_t H = s.H;
  std::vector<T> rec(static_cast<size_t>(s.M * s.B * 4 * H));
  for (int64_t t = 0; t < s.T; ++t) {
    if (t == 0) batched_rows_times(s, H, 4 * H, h0, s.B * H, w, true, rec.data());
    else batched_rows_times(s, H, 4 * H, hs + (t - 1) * s.B * H, s.T * s.B * H, w, true, rec.data());
    if (int e = cu::lstm_forward_step<T>(s, t, xp, rec.data(), c0, hs, cs, gates, nullptr)) return e;
  }
  return 0;
}

template <typename T>
int lstm_backward(int path, const RecurrenceShape& s, const T* grad_hs, const T* grad_cs, const T* cs, const T* gates,
                  const T* c0, const T* w, T* grad_xp, T* grad_h0, T* grad_c0, T* delta_sq, T* v_sq) {
  if (path == 0)
    return cu::lstm_backward_onchip<T>(s, grad_hs, grad_cs, cs, gates, c0, w, grad_xp, grad_h0, grad_c0, delta_sq,
                                       v_sq, nullptr);
  const int64_t H = s.H;
  std::vector<T> v(static_cast<size_t>(s.M * s.B * H)), dc(v.size(), T(0));
  auto step = [&](int64_t t, const T* vt) {
    return cu::lstm_backward_step<T>(s, t, vt, grad_hs, grad_cs, cs, gates, c0, dc.data(), grad_xp, grad_h0, grad_c0,
                                     delta_sq, v_sq, nullptr);
  };
  if (int e = step(s.T, nullptr)) return e;
  for (int64_t t = s.T - 1; t >= 0; --t) {
    batched_rows_times(s, 4 * H, H, grad_xp + t * s.B * 4 * H, s.T * s.B * 4 * H, w, false, v.data());
    if (int e = step(t, v.data())) return e;
  }
  return 0;
}

}  // namespace

extern "C" {

int emu_elman_forward(int dtype, int path, int64_t M, int64_t T, int64_t B, int64_t H, int act, const void* xp,
                      const void* w, const void* h0, void* hs) {
  const RecurrenceShape s{M, T, B, H};
  const auto a = static_cast<Activation>(act);
  if (dtype == 0)
    return elman_forward<float>(path, s, a, static_cast<const float*>(xp), static_cast<const float*>(w),
                                static_cast<const float*>(h0), static_cast<float*>(hs));
  return elman_forward<double>(path, s, a, static_cast<const double*>(xp), static_cast<const double*>(w),
                               static_cast<const double*>(h0), static_cast<double*>(hs));
}

int emu_elman_backward(int dtype, int path, int64_t M, int64_t T, int64_t B, int64_t H, int act, const void* grad_hs,
                       const void* hs, const void* w, void* grad_xp, void* grad_h0, void* delta_sq, void* v_sq,
                       void* reg_v) {
  const RecurrenceShape s{M, T, B, H};
  const auto a = static_cast<Activation>(act);
  if (dtype == 0)
    return elman_backward<float>(path, s, a, static_cast<const float*>(grad_hs), static_cast<const float*>(hs),
                                 static_cast<const float*>(w), static_cast<float*>(grad_xp),
                                 static_cast<float*>(grad_h0), static_cast<float*>(delta_sq),
                                 static_cast<float*>(v_sq), static_cast<float*>(reg_v));
  return elman_backward<double>(path, s, a, static_cast<const double*>(grad_hs), static_cast<const double*>(hs),
                                static_cast<const double*>(w), static_cast<double*>(grad_xp),
                                static_cast<double*>(grad_h0), static_cast<double*>(delta_sq),
                                static_cast<double*>(v_sq), static_cast<double*>(reg_v));
}

int emu_lstm_forward(int dtype, int path, int64_t M, int64_t T, int64_t B, int64_t H, const void* xp, const void* w,
                     const void* h0, const void* c0, void* hs, void* cs, void* gates) {
  const RecurrenceShape s{M, T, B, H};
  if (dtype == 0)
    return lstm_forward<float>(path, s, static_cast<const float*>(xp), static_cast<const float*>(w),
                               static_cast<const float*>(h0), static_cast<const float*>(c0), static_cast<float*>(hs),
                               static_cast<float*>(cs), static_cast<float*>(gates));
  return lstm_forward<double>(path, s, static_cast<const double*>(xp), static_cast<const double*>(w),
                              static_cast<const double*>(h0), static_cast<const double*>(c0),
                              static_cast<double*>(hs), static_cast<double*>(cs), static_cast<double*>(gates));
}

int emu_lstm_backward(int dtype, int path, int64_t M, int64_t T, int64_t B, int64_t H, const void* grad_hs,
                      const void* grad_cs, const void* cs, const void* gates, const void* c0, const void* w,
                      void* grad_xp, void* grad_h0, void* grad_c0, void* delta_sq, void* v_sq) {
  const RecurrenceShape s{M, T, B, H};
  if (dtype == 0)
    return lstm_backward<float>(path, s, static_cast<const float*>(grad_hs), static_cast<const float*>(grad_cs),
                                static_cast<const float*>(cs), static_cast<const float*>(gates),
                                static_cast<const float*>(c0), static_cast<const float*>(w),
                                static_cast<float*>(grad_xp), static_cast<float*>(grad_h0),
                                static_cast<float*>(grad_c0), static_cast<float*>(delta_sq), static_cast<float*>(v_sq));
  return lstm_backward<double>(path, s, static_cast<const double*>(grad_hs), static_cast<const double*>(grad_cs),
                               static_cast<const double*>(cs), static_cast<const double*>(gates),
                               static_cast<const double*>(c0), static_cast<const double*>(w),
                               static_cast<double*>(grad_xp), static_cast<double*>(grad_h0),
                               static_cast<double*>(grad_c0), static_cast<double*>(delta_sq),
                               static_cast<double*>(v_sq));
}

// Diagonal recurrence: Nr real columns (complex: interleaved pairs). plan_out receives
// {lanes, R, C} so that the caller can size the partial-sum slots: call with run = 0 first.
int emu_diag_plan(int dtype, int64_t M, int64_t T, int64_t B, int64_t Nr, int complex, int aligned16, int64_t* plan_out) {
  const cu::DiagShape s{M, T, B, Nr, complex != 0};
  const cu::DiagPlan p = dtype == 0 ? cu::diag_plan<float>(s, aligned16 != 0) : cu::diag_plan<double>(s, aligned16 != 0);
  plan_out[0] = p.lanes, plan_out[1] = p.R, plan_out[2] = p.C;
  return 0;
}

int emu_diag_forward(int dtype, int64_t M, int64_t T, int64_t B, int64_t Nr, int complex, int aligned16, const void* u,
                     const void* lam, const void* h0, void* hs, void* h_sq, void* s_sq) {
  const cu::DiagShape s{M, T, B, Nr, complex != 0};
  if (dtype == 0)
    return cu::diag_forward<float>(s, cu::diag_plan<float>(s, aligned16 != 0), static_cast<const float*>(u),
                                   static_cast<const float*>(lam), static_cast<const float*>(h0),
                                   static_cast<float*>(hs), static_cast<float*>(h_sq), static_cast<float*>(s_sq),
                                   nullptr);
  return cu::diag_forward<double>(s, cu::diag_plan<double>(s, aligned16 != 0), static_cast<const double*>(u),
                                  static_cast<const double*>(lam), static_cast<const double*>(h0),
                                  static_cast<double*>(hs), static_cast<double*>(h_sq), static_cast<double*>(s_sq),
                                  nullptr);
}

int emu_diag_backward(int dtype, int64_t M, int64_t T, int64_t B, int64_t Nr, int complex, int aligned16,
                      const void* grad_hs, const void* hs, const void* h0, const void* lam, void* grad_u, void* grad_h0,
                      void* lam_p, void* lam_q, void* delta_sq, void* v_sq) {
  const cu::DiagShape s{M, T, B, Nr, complex != 0};
  if (dtype == 0)
    return cu::diag_backward<float>(
        s, cu::diag_plan<float>(s, aligned16 != 0), static_cast<const float*>(grad_hs), static_cast<const float*>(hs),
        static_cast<const float*>(h0), static_cast<const float*>(lam), static_cast<float*>(grad_u),
        static_cast<float*>(grad_h0), static_cast<float*>(lam_p), static_cast<float*>(lam_q),
        static_cast<float*>(delta_sq), static_cast<float*>(v_sq), nullptr);
  return cu::diag_backward<double>(
      s, cu::diag_plan<double>(s, aligned16 != 0), static_cast<const double*>(grad_hs), static_cast<const double*>(hs),
      static_cast<const double*>(h0), static_cast<const double*>(lam), static_cast<double*>(grad_u),
      static_cast<double*>(grad_h0), static_cast<double*>(lam_p), static_cast<double*>(lam_q),
      static_cast<double*>(delta_sq), static_cast<double*>(v_sq), nullptr);
}

}  // extern "C"
