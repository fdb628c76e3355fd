// Elman RNN forward and backward on CUDA: the torch-free kernel API (host functions; include it
// from C++ or CUDA). Same math, shapes and outputs as the CPU kernels (kernels/cpu/elman.h):
//
//   h_t = φ(xp_t + h_{t-1} w_hhᵀ)                                              (forward)
//   δ_t = grad_hs_t + v_{t+1},  u_t = δ_t ⊙ φ'(a_t),  v_t = u_t w_hh,  v_{T+1} = 0  (backward)
//
// Shapes (dense, row-major; M, T, B, H of RecurrenceShape):
//   xp, hs, grad_hs, grad_xp, reg_v [M, T, B, H]   w_hh [M, H, H]   h0, grad_h0 [M, B, H]
//   delta_sq, v_sq [M, T, B]   (‖δ_t‖², ‖v_t‖²: SPEC §8.1 B1, B2)
//   reg_v = κ_t v_t with κ_t = m_t (r_t − 1)/c_t (SPEC §2.5), or nullptr to skip.
//
// Two ways to run a call, chosen by the caller (the ATen glue) with elman_onchip_fits():
//
// * On chip (elman_*_onchip): one kernel launch per call. One thread block per (model, tile of
//   1–8 batch rows) runs the whole time loop with its slice of w_hh held in registers (32
//   registers per thread: a block of H·H/32 threads holds all of w_hh), the state of the tile in
//   shared memory and the next steps' inputs prefetched with cp.async; one __syncthreads per
//   step, no grid-wide synchronization. Fits float32 H ≤ 128 (≤ 512 threads) and float64 H ≤ 64.
// * Per step (elman_*_step), for larger H: the caller runs the recurrent product of each step as
//   a batched cuBLAS GEMM and these kernels do the rest of the step in one fused pointwise pass.
//
// All math is in the storage type: float32 math and accumulation for float32, float64 for
// float64 (slow but exact enough for gradcheck). Every function enqueues on `stream` and returns
// the launch error (cudaSuccess when the launch was accepted).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda/onchip_limits.cuh"

namespace rnnlab::cuda {

// Largest hidden size the on-chip kernels hold: H·H weights at 32 registers per thread in
// blocks of at most 512 threads: 128 in float32, 64 in float64 (two registers per weight).
template <typename T>
constexpr int64_t kElmanOnchipMaxHidden = onchip::max_hidden<T>(/*rows_per_unit=*/1);

template <typename T>
constexpr bool elman_onchip_fits(int64_t H) {
  return onchip::fits<T>(H, /*rows_per_unit=*/1);
}

// Requires s.T, s.B ≥ 1 and elman_onchip_fits<T>(s.H).
template <typename T>
cudaError_t elman_forward_onchip(const RecurrenceShape& s, Activation act, const T* xp, const T* w_hh, const T* h0,
                                 T* hs, cudaStream_t stream);

template <typename T>
cudaError_t elman_backward_onchip(const RecurrenceShape& s, Activation act, const T* grad_hs, const T* hs,
                                  const T* w_hh, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v,
                                  cudaStream_t stream);

// Per-step path, forward step t: hs_t = φ(xp_t + rec) where rec [M, B, H] = h_{t-1} w_hhᵀ.
template <typename T>
cudaError_t elman_forward_step(const RecurrenceShape& s, int64_t t, Activation act, const T* xp, const T* rec, T* hs,
                               cudaStream_t stream);

// Per-step path, backward step t ∈ [0, T] (0-based indices into the T axis), run for t = T, T−1,
// …, 0 in order. v = v_t = u_t w_hh [M, B, H], or nullptr for t = T, where the recursion starts
// (no step T exists: δ_{T-1} = grad_hs_{T-1}).
// Given v_t it writes v_sq_t and reg_v_t (κ_t reads delta_sq_t, written by the step-(t+1) call);
// then for t ≥ 1 δ_{t-1} = grad_hs_{t-1} + v_t, delta_sq_{t-1} and u_{t-1} = grad_xp_{t-1}, and
// for t = 0 grad_h0 = v_0.
template <typename T>
cudaError_t elman_backward_step(const RecurrenceShape& s, int64_t t, Activation act, const T* v, const T* grad_hs,
                                const T* hs, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v,
                                cudaStream_t stream);

}  // namespace rnnlab::cuda
