// GRU forward and backward on the CPU: the torch-free kernel API.
//
// PyTorch's GRU cell, gate order (r, z, n) along the 3H axis, with x_t = xp_t + b, where the
// caller folds the r and z hidden biases into b (b_hn cannot be: r multiplies it):
//
//   [a_r, a_z, a_n] = h_{t-1} w_hhᵀ                  (3H wide)
//   r = σ(x_r + a_r),  z = σ(x_z + a_z),  hn = a_n + b_hn,  n = tanh(x_n + r ⊙ hn)
//   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
//
// Backward, with δ_t = ∂L/∂h_t the total gradient on the state (SPEC §1, §8.1):
//
//   δ_t = grad_hs_t + v_{t+1}                                   (v_{T+1} = 0)
//   ∂n = δ_t (1 − z)(1 − n²),  ∂r = ∂n ⊙ hn ⊙ r(1 − r),  ∂z = δ_t (h_{t-1} − n) z(1 − z)
//   grad_xp_t = [∂r, ∂z, ∂n],   grad_hn_t = ∂n ⊙ r              (∂L/∂hn: gives ∂b_hn and ∂W_hn)
//   v_t = [∂r, ∂z, grad_hn_t] · w_hh + δ_t ⊙ z                  (∂L/∂h_{t-1} minus grad_hs_{t-1})
//
// v_t is the whole contribution of step t to δ_{t-1}, the z ⊙ δ_t skip path included: the GRU has
// one state, so ‖v_t‖/‖δ_t‖ is the per-step gain, as for the Elman cell (unlike the LSTM, whose
// v_t leaves out the cell path). The weight gradients are sums over steps the caller forms from
// grad_xp and grad_hn: ∂w_hh = Σ_t [∂r, ∂z, grad_hn]_tᵀ h_{t-1}, ∂b_hn = Σ_{t,b} grad_hn_t.
// Each call processes one BatchTile (one model, a range of batch rows) for the whole sequence,
// time loop inside, w_hh packed once.
//
// Shapes (dense, row-major except grad_hs; H is the hidden size, the gate axis is 3H):
//   xp        [M, T, B, 3H]  projected inputs x W_ihᵀ
//   b         [M, 3H]        bias added at every step, b_ih + [b_hr, b_hz, 0] (its gradient is
//                            Σ_{t,b} grad_xp)
//   w_hh      [M, 3H, H]     recurrent weights, PyTorch layout (weight_hh_l0)
//   b_hn      [M, H]         the n-gate hidden bias (bias_hh_l0[2H:])
//   h0        [M, B, H]      initial state
//   hs        [M, T, B, H]   h_1 … h_T
//   gates     [M, T, B, 4H]  (r, z, n, hn) per step, saved for the backward pass
//   grad_hs   [M, T, B, H]   ∂⁺L/∂h_t, the loss gradient arriving directly at each state (any row
//                            strides: SeqRows)
//   grad_xp   [M, T, B, 3H]  [∂r, ∂z, ∂n]
//   grad_hn   [M, T, B, H]   ∂n ⊙ r
//   grad_h0   [M, B, H]      v_1 = ∂L/∂h_0
//   delta_sq, v_sq [M, T, B] ‖δ_t‖² (SPEC §8.1 B1), ‖v_t‖² (B2)
#pragma once

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

template <typename T>
struct GruKernels {
  int row_block;  // batch rows per micro-kernel block; tiles are made of whole blocks
  void (*forward)(const RecurrenceShape&, BatchTile, const T* xp, const T* b, const T* w_hh, const T* b_hn,
                  const T* h0, T* hs, T* gates);
  void (*backward)(const RecurrenceShape&, BatchTile, SeqRows<T> grad_hs, const T* hs, const T* gates, const T* h0,
                   const T* w_hh, T* grad_xp, T* grad_hn, T* grad_h0, T* delta_sq, T* v_sq);
};

// The kernel table of each ISA (gru_<isa>.cpp), and gru_kernels<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(const GruKernels<T>&, gru_kernels)

}  // namespace rnnlab::cpu
