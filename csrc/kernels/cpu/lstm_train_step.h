// One whole training update of one LSTM model on the CPU: the torch-free kernel API. What every
// cell's fused step shares (loss, clipping, optimizer, shapes of x, targets, slots and outputs) is
// documented in train_step.h; the LSTM cell's part (PyTorch's cell, gate order i, f, g, o along
// the 4H axis, one bias per gate row; h_0 = c_0 = 0):
//
//   z_t = W_ih x_t + b + W_hh h_{t−1}                             (input projection inside the step)
//   i = σ(z_i), f = σ(z_f), g = tanh(z_g), o = σ(z_o),  c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)
//
//   δ_t = ∂⁺L/∂h_t + v_{t+1},  ε_t = ε_{t+1} ⊙ f_{t+1} + δ_t ⊙ o ⊙ (1 − tanh²c_t)   (v_T = 0, ε_T = 0)
//   ∂z_t = [ε_t g i(1−i), ε_t c_{t−1} f(1−f), ε_t i (1−g²), δ_t tanh(c_t) o(1−o)],  v_t = ∂z_t W_hh
//   ∂W_hh = Σ_t ∂z_tᵀ h_{t−1},  ∂W_ih = Σ_t ∂z_tᵀ x_t,  ∂b = Σ_t Σ_b ∂z_t
//
// delta_sq and v_sq are ‖δ_t‖² and ‖v_t‖² of the hidden state, as the LSTM's backward kernel
// reports them (lstm.h): the cell-state path ε is not part of v_t.
//
//   params[0..4]  W_ih [M, 4H, I], W_hh [M, 4H, H], b [M, 4H], W_out [M, O, H], b_out [M, O]
#pragma once

#include <cstdint>

#include "kernels/cpu/train_step.h"

namespace rnnlab::cpu {

constexpr int kLstmTrainParams = 5;  // W_ih, W_hh, b, W_out, b_out

template <typename T>
using LstmTrainStep = TrainStep<T>;  // the cell has no options of its own

// Runs the update of model m. Throws std::invalid_argument on a class target outside [0, O).
template <typename T>
using LstmTrainStepFn = void (*)(const LstmTrainStep<T>&, int64_t m);

// The kernel of each ISA (lstm_train_step_<isa>.cpp), and lstm_train_step_kernel<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(LstmTrainStepFn<T>, lstm_train_step_kernel)

// The same update in the lanes layout (lstm_train_step_lanes_impl.h, LanesKernel in train_step.h).
RNNLAB_KERNEL_PER_ISA(LanesKernel<LstmTrainStep<T>>, lstm_train_step_lanes_kernel)

}  // namespace rnnlab::cpu
