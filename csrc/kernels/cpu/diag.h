// Diagonal linear recurrences on the CPU: the torch-free kernel API.
//
//   h_t = λ ⊙ h_{t-1} + u_t,   t = 1 … T                               (forward)
//   δ_t = grad_hs_t + v_{t+1},  v_t = conj(λ) ⊙ δ_t,  grad_u_t = δ_t    (backward, v_{T+1} = 0)
//   grad_λ = Σ_{t,b} conj(h_{t-1}) ⊙ δ_t,  grad_h0 = v_1
//
// λ is per model and channel, real or complex. Complex gradients follow PyTorch's convention
// (the conjugate Wirtinger derivative of a real loss), so they plug into autograd unchanged.
// ‖δ_t‖² and ‖v_t‖² are SPEC §8.1 B1/B2. The optional forward accumulators are SPEC §8.2 F4:
// s_t = λ ⊙ s_{t-1} + h_{t-1} (s_0 = 0) is ∂h_t/∂λ, and the kernel sums |h_t|² and |s_t|² over
// the batch rows of a tile for every (t, channel).
//
// Complex tensors are interleaved (re, im) pairs, and the kernels see them as real arrays with
// twice as many columns: "column" below means a real column, Nr = N·(complex ? 2 : 1).
//
// The work is split into tiles of (model, batch rows, columns), each run for the whole sequence,
// time loop inside. Per-tile partial sums go to separate slots so that tiles never share an
// output: the caller adds the R row slots (grad_λ, statistics) and C column slots (norms).
//
// Shapes (dense, row-major, real view):
//   u, hs, grad_hs, grad_u   [M, T, B, Nr]
//   lam                      [M, Nr]
//   h0, grad_h0              [M, B, Nr]
//   h_sq, s_sq               [R, M, T, Nr]   per-slot Σ_b of the squared lanes (re², im² apart)
//   lam_p, lam_q             [R, M, Nr]      per-slot Σ_{t,b} h_{t-1} ⊙ δ_t and h_{t-1} ⊙ swap(δ_t),
//                                            swap exchanging re and im (complex only: lam_q)
//   delta_sq, v_sq           [C, M, T, B]    per-slot Σ over the tile's columns
#pragma once

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

struct DiagShape {
  int64_t M, T, B, Nr;  // Nr: real columns per row
  bool complex;
  int64_t R, C;         // row and column slots of the partial outputs
};

struct DiagTile {
  int64_t model;
  int64_t row_begin, row_end;  // batch rows
  int64_t col_begin, col_end;  // real columns; even when complex
  int64_t row_slot, col_slot;  // where this tile's partial sums go
};

template <typename T>
struct DiagKernels {
  // h_sq, s_sq may be null (no statistics).
  void (*forward)(const DiagShape&, const DiagTile&, const T* u, const T* lam, const T* h0, T* hs, T* h_sq, T* s_sq);
  void (*backward)(const DiagShape&, const DiagTile&, const T* grad_hs, const T* hs, const T* h0, const T* lam,
                   T* grad_u, T* grad_h0, T* lam_p, T* lam_q, T* delta_sq, T* v_sq);
};

// The kernel table of each ISA (diag_<isa>.cpp), and diag_kernels<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(const DiagKernels<T>&, diag_kernels)

}  // namespace rnnlab::cpu
