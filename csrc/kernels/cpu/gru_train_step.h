// One whole training update of one GRU model on the CPU: the torch-free kernel API. What every
// cell's fused step shares (loss, clipping, optimizer, shapes of x, targets, slots and outputs) is
// documented in train_step.h; the GRU cell's part (PyTorch's cell, gate order r, z, n; gru.h):
//
//   [p_r, p_z, p_n] = W_ih x_t + b                              (input projection inside the step)
//   [a_r, a_z, a_n] = W_hh h_{t−1}
//   r = σ(p_r + a_r),  z = σ(p_z + a_z),  hn = a_n + b_hn,  n = tanh(p_n + r ⊙ hn)
//   h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
//
// b is the input bias with the r and z hidden biases folded in; b_hn cannot be, r multiplies it.
// Backward (v_T = 0, h_0 = 0):
//
//   δ_t = ∂⁺L/∂h_t + v_{t+1}
//   ∂n = δ_t (1 − z)(1 − n²),  ∂r = ∂n ⊙ hn ⊙ r(1 − r),  ∂z = δ_t (h_{t−1} − n) z(1 − z),
//   ∂hn = ∂n ⊙ r,  v_t = [∂r, ∂z, ∂hn] W_hh + δ_t ⊙ z
//   ∂W_ih = Σ_t [∂r, ∂z, ∂n]_tᵀ x_t,  ∂b = Σ_t Σ_b [∂r, ∂z, ∂n]_t,
//   ∂W_hh = Σ_t [∂r, ∂z, ∂hn]_tᵀ h_{t−1},  ∂b_hn = Σ_t Σ_b ∂hn_t
//
// v_t, whose squared norm is v_sq, is the whole contribution of step t to ∂L/∂h_{t−1}, the z ⊙ δ_t
// skip path included, as the autograd path's GRU backward reports it (gru.h).
//
//   params[0..5]  W_ih [M, 3H, I], W_hh [M, 3H, H], b [M, 3H], b_hn [M, H], W_out [M, O, H],
//                 b_out [M, O]
#pragma once

#include <cstdint>

#include "kernels/cpu/train_step.h"

namespace rnnlab::cpu {

constexpr int kGruTrainParams = 6;  // W_ih, W_hh, b, b_hn, W_out, b_out

// Runs the update of model m. Throws std::invalid_argument on a class target outside [0, O).
template <typename T>
using GruTrainStepFn = void (*)(const TrainStep<T>&, int64_t m);

// The kernel of each ISA (gru_train_step_<isa>.cpp), and gru_train_step_kernel<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(GruTrainStepFn<T>, gru_train_step_kernel)

// The same update in the lanes layout (gru_train_step_lanes_impl.h, LanesKernel in train_step.h).
RNNLAB_KERNEL_PER_ISA(LanesKernel<TrainStep<T>>, gru_train_step_lanes_kernel)

}  // namespace rnnlab::cpu
