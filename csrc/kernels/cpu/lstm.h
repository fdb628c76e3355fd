// LSTM forward and backward on the CPU: the torch-free kernel API.
//
// PyTorch's LSTM cell, gate order (i, f, g, o) along the 4H axis:
//
//   z_t = xp_t + b + h_{t-1} w_hhᵀ                   (z_t = [z_i, z_f, z_g, z_o], 4H wide)
//   i = σ(z_i), f = σ(z_f), g = tanh(z_g), o = σ(z_o)
//   c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
//
// Backward, with δ_t = ∂L/∂h_t the total gradient on the hidden state (SPEC §1, §8.1):
//
//   δ_t = grad_hs_t + v_{t+1}                          (v_{T+1} = 0)
//   ε_t = ε'_{t+1} + grad_cs_t + δ_t ⊙ o ⊙ (1 − tanh²c_t)   (total gradient on c_t)
//   ∂z = [ε_t g i(1−i), ε_t c_{t-1} f(1−f), ε_t i (1−g²), δ_t tanh(c_t) o(1−o)]   (= grad_xp_t)
//   ε'_t = ε_t ⊙ f,   v_t = ∂z_t · w_hh                 (the part of δ_{t-1} that came through w_hh)
//
// so ‖δ_t‖² (B1) and ‖v_t‖² (B2) are the hidden-state quantities of SPEC §8.1; the cell path is
// not part of v_t. Each call processes one BatchTile (one model, a range of batch rows) for the
// whole sequence, time loop inside, w_hh packed once.
//
// Shapes (dense, row-major except grad_hs and grad_cs; H is the hidden size, the gate axis is 4H):
//   xp        [M, T, B, 4H]  projected inputs x W_ihᵀ
//   b         [M, 4H]        bias added at every step (b_ih + b_hh; its gradient is Σ_{t,b} grad_xp)
//   w_hh      [M, 4H, H]     recurrent weights, PyTorch layout (weight_hh_l0)
//   h0, c0    [M, B, H]      initial states
//   hs, cs    [M, T, B, H]   h_1 … h_T and c_1 … c_T
//   gates     [M, T, B, 4H]  the activated gates (i, f, g, o), saved for the backward pass
//   grad_hs   [M, T, B, H]   ∂⁺L/∂h_t;  grad_cs [M, T, B, H] ∂⁺L/∂c_t, or a null data pointer (all
//                            zero); both with any row strides (SeqRows)
//   grad_xp   [M, T, B, 4H]  ∂L/∂z_t
//   grad_h0, grad_c0 [M, B, H]
//   delta_sq, v_sq   [M, T, B]
#pragma once

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

template <typename T>
struct LstmKernels {
  int row_block;  // batch rows per micro-kernel block; tiles are made of whole blocks
  void (*forward)(const RecurrenceShape&, BatchTile, const T* xp, const T* b, const T* w_hh, const T* h0, const T* c0,
                  T* hs, T* cs, T* gates);
  void (*backward)(const RecurrenceShape&, BatchTile, SeqRows<T> grad_hs, SeqRows<T> grad_cs, const T* cs, const T* gates,
                   const T* c0, const T* w_hh, T* grad_xp, T* grad_h0, T* grad_c0, T* delta_sq, T* v_sq);
};

// The kernel table of each ISA (lstm_<isa>.cpp), and lstm_kernels<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(const LstmKernels<T>&, lstm_kernels)

}  // namespace rnnlab::cpu
