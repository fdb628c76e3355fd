// Elman RNN forward and backward on the CPU: the torch-free kernel API.
//
//   h_t = φ(xp_t + b + h_{t-1} w_hhᵀ),   t = 1 … T                   (forward)
//   δ_t = grad_hs_t + v_{t+1},  u_t = δ_t ⊙ φ'(a_t),  v_t = u_t w_hh  (backward, v_{T+1} = 0)
//
// Notation and the per-step statistics are those of SPEC §1 and §8.1. Each call processes one
// BatchTile (one model, a range of batch rows) for the whole sequence, with the time loop inside
// and w_hh packed once, so a caller parallelizes over tiles and nothing else.
//
// Shapes (dense, row-major except grad_hs; M, T, B, H as in RecurrenceShape):
//   xp        [M, T, B, H]  projected inputs x W_ihᵀ
//   b         [M, H]        bias added at every step (b_ih + b_hh), so that the projection
//                           GEMM writes xp without a bias pass; its gradient is Σ_{t,b} grad_xp
//   w_hh      [M, H, H]     recurrent weights, PyTorch layout (row i = output unit i)
//   h0        [M, B, H]     initial state
//   hs        [M, T, B, H]  states h_1 … h_T (forward output, backward input)
//   grad_hs   [M, T, B, H]  ∂⁺L/∂h_t, the loss gradient arriving directly at each state (any row
//                           strides: SeqRows)
//   grad_xp   [M, T, B, H]  u_t = ∂L/∂a_t (also the gradient of xp)
//   grad_h0   [M, B, H]     v_1 = ∂L/∂h_0
//   delta_sq  [M, T, B]     ‖δ_t‖²  (SPEC §8.1 B1)
//   v_sq      [M, T, B]     ‖v_t‖²  (SPEC §8.1 B2)
//   reg_v     [M, T, B, H]  κ_t v_t with κ_t = m_t (r_t − 1)/c_t (SPEC §2.5), or nullptr to skip.
//                           Σ_t u_tᵀ (κ_t v_t) is the W_hh gradient of Ω up to the factor
//                           4/(B·N), which the caller applies once N is known.
#pragma once

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

template <typename T>
struct ElmanKernels {
  int row_block;  // batch rows per micro-kernel block; tiles are made of whole blocks
  void (*forward)(const RecurrenceShape&, BatchTile, Activation, const T* xp, const T* b, const T* w_hh, const T* h0,
                  T* hs);
  void (*backward)(const RecurrenceShape&, BatchTile, Activation, SeqRows<T> grad_hs, const T* hs, const T* h0,
                   const T* w_hh, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v);
};

// The kernel table of each ISA (elman_<isa>.cpp), and elman_kernels<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(const ElmanKernels<T>&, elman_kernels)

}  // namespace rnnlab::cpu
