// Diagonal linear recurrences on CUDA: the torch-free kernel API (host functions). Same math,
// real view and partial-sum slots as the CPU kernels (kernels/cpu/diag.h):
//
//   h_t = λ ⊙ h_{t-1} + u_t                                             (forward)
//   δ_t = grad_hs_t + v_{t+1},  v_t = conj(λ) ⊙ δ_t,  grad_u_t = δ_t    (backward, v_{T+1} = 0)
//   grad_λ = Σ_{t,b} conj(h_{t-1}) ⊙ δ_t,  grad_h0 = v_1
//   F4 (SPEC §8.2): s_t = λ ⊙ s_{t-1} + h_{t-1}, s_0 = 0; per-slot Σ_b of |h_t|² and |s_t|² lanes
//
// Complex tensors are interleaved (re, im) pairs seen as real arrays of Nr = 2N columns.
//
// Parallel over (model, batch rows, columns), sequential in time: each thread runs the whole
// sequence for kDiagRows batch rows of one model and one group of `lanes` real columns (16 bytes
// when the tensors allow it), with the state in registers and the next step's inputs loaded one
// step ahead. The recurrence is elementwise, so the kernels are bandwidth-bound: the forward
// streams u in and hs out once, the backward grad_hs and hs in and grad_u out once.
//
// Partial sums go to slots that exactly one thread writes, so results are deterministic and the
// caller reduces them as for the CPU kernels: row slot = the thread's tile of kDiagRows batch
// rows (R = ⌈B / kDiagRows⌉ of them); column slot = the warp, when a row's column groups span
// several warps (C of them).
//   h_sq, s_sq  [R, M, T, Nr]   lam_p, lam_q [R, M, Nr] (lam_q complex only)   delta_sq, v_sq [C, M, T, B]
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common.h"

namespace rnnlab::cuda {

constexpr int kDiagRows = 4;

struct DiagShape {
  int64_t M, T, B, Nr;  // Nr: real columns per row
  bool complex;
};

// How a call is split (diag_plan): real columns per thread, column groups per row (padded so that
// a warp never mixes rows of different lengths), and the slot counts of the partial outputs.
struct DiagPlan {
  int lanes;
  int64_t groups, padded_groups;
  int64_t R, C;
};

// aligned16: every tensor's data pointer is 16-byte aligned (then wide lanes are used when Nr allows).
template <typename T>
DiagPlan diag_plan(const DiagShape& s, bool aligned16);

// Require s.M, s.T, s.B, s.Nr ≥ 1 and the plan of diag_plan for the same shape. h_sq and s_sq may
// both be null (no statistics); lam_q is null for real λ.
template <typename T>
cudaError_t diag_forward(const DiagShape& s, const DiagPlan& plan, const T* u, const T* lam, const T* h0, T* hs,
                         T* h_sq, T* s_sq, cudaStream_t stream);

template <typename T>
cudaError_t diag_backward(const DiagShape& s, const DiagPlan& plan, const T* grad_hs, const T* hs, const T* h0,
                          const T* lam, T* grad_u, T* grad_h0, T* lam_p, T* lam_q, T* delta_sq, T* v_sq,
                          cudaStream_t stream);

}  // namespace rnnlab::cuda
