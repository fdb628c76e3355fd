// LSTM forward and backward on CUDA: the torch-free kernel API (host functions; include it from
// C++ or CUDA). Same math, shapes and outputs as the CPU kernels (kernels/cpu/lstm.h), PyTorch's
// cell with gate order (i, f, g, o) along the 4H axis:
//
//   z_t = xp_t + h_{t-1} w_hhᵀ,  i, f, o = σ(z_i, z_f, z_o),  g = tanh(z_g)
//   c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
//   δ_t = grad_hs_t + v_{t+1},  ε_t = ε'_{t+1} + grad_cs_t + δ_t ⊙ o ⊙ (1 − tanh²c_t)
//   ∂z_t = [ε g i(1−i), ε c_{t-1} f(1−f), ε i(1−g²), δ tanh(c_t) o(1−o)],  ε'_t = ε_t ⊙ f,  v_t = ∂z_t w_hh
//
// Shapes (dense, row-major):
//   xp, gates, grad_xp [M, T, B, 4H]   w_hh [M, 4H, H]   h0, c0, grad_h0, grad_c0 [M, B, H]
//   hs, cs, grad_hs, grad_cs [M, T, B, H]   delta_sq, v_sq [M, T, B] (SPEC §8.1 B1, B2)
//   grad_cs may be nullptr (all zero).
//
// As for the Elman RNN (elman.cuh) a call runs either on chip — one launch, one block per (model,
// tile of batch rows), w_hh in registers (4H·H weights at 32 registers per thread: float32
// H ≤ 64 in 512 threads, float64 H ≤ 32) — or per step, where the caller runs each step's
// recurrent product as a batched cuBLAS GEMM and these kernels do the rest of the step in one
// fused pass. Math in the storage type; every function enqueues on `stream` and returns the
// launch error.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda/onchip_limits.cuh"

namespace rnnlab::cuda {

// Largest hidden size the on-chip kernels hold: 64 in float32, 32 in float64 (4H·H weights).
template <typename T>
constexpr int64_t kLstmOnchipMaxHidden = onchip::max_hidden<T>(/*rows_per_unit=*/4);

template <typename T>
constexpr bool lstm_onchip_fits(int64_t H) {
  return onchip::fits<T>(H, /*rows_per_unit=*/4);
}

// Require s.T, s.B, s.M ≥ 1 and lstm_onchip_fits<T>(s.H) (s.H is the hidden size, not 4H).
template <typename T>
cudaError_t lstm_forward_onchip(const RecurrenceShape& s, const T* xp, const T* w_hh, const T* h0, const T* c0, T* hs,
                                T* cs, T* gates, cudaStream_t stream);

template <typename T>
cudaError_t lstm_backward_onchip(const RecurrenceShape& s, const T* grad_hs, const T* grad_cs, const T* cs,
                                 const T* gates, const T* c0, const T* w_hh, T* grad_xp, T* grad_h0, T* grad_c0,
                                 T* delta_sq, T* v_sq, cudaStream_t stream);

// Per-step path, forward step t, given rec [M, B, 4H] = h_{t-1} w_hhᵀ: gates_t, cs_t, hs_t.
template <typename T>
cudaError_t lstm_forward_step(const RecurrenceShape& s, int64_t t, const T* xp, const T* rec, const T* c0, T* hs,
                              T* cs, T* gates, cudaStream_t stream);

// Per-step path, backward step t ∈ [0, T] (0-based), run for t = T, T−1, …, 0 in order, with
// v = v_t = ∂z_t w_hh [M, B, H] (nullptr for t = T) and dc [M, B, H] carrying ε' between calls
// (zero before the first). Writes v_sq_t (given v); for t ≥ 1 the cell step t − 1: grad_xp_{t-1}
// = ∂z_{t-1}, delta_sq_{t-1}, and ε'_{t-1} into dc; for t = 0 grad_h0 = v_0 and grad_c0 = dc.
template <typename T>
cudaError_t lstm_backward_step(const RecurrenceShape& s, int64_t t, const T* v, const T* grad_hs, const T* grad_cs,
                               const T* cs, const T* gates, const T* c0, T* dc, T* grad_xp, T* grad_h0, T* grad_c0,
                               T* delta_sq, T* v_sq, cudaStream_t stream);

}  // namespace rnnlab::cuda
