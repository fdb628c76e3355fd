// One whole training update of one Elman model on the CPU: the torch-free kernel API. What every
// cell's fused step shares (loss, clipping, optimizer, shapes of x, targets, slots and outputs) is
// documented in train_step.h; the Elman cell's part:
//
//   a_t = W_ih x_t + b + W_hh h_{t−1},  h_t = φ(a_t)            (input projection inside the step)
//   δ_t = ∂⁺L/∂h_t + v_{t+1},  u_t = δ_t ⊙ φ'(a_t),  v_t = u_t W_hh        (backward, v_T = 0)
//   ∂W_hh = Σ_t u_tᵀ h_{t−1},  ∂W_ih = Σ_t u_tᵀ x_t,  ∂b = Σ_t Σ_b u_t
//
// With Pascanu's regularizer (SPEC §2.5; reg_weight = α ≠ 0 for model m), ∂W_hh gains α·∂⁺Ω/∂W_hh
// before the global norm and clipping, exactly as the elman_backward op adds it on the autograd
// path (elman.h reg_v, recurrence_glue.h ElmanBackwardOutputs::finish):
//
//   c_t = ‖δ_t‖²,  a_t = ‖v_t‖²,  m_t = [c_t ≥ kOmegaBound],  κ_t = m_t (a_t/c_t − 1)/c_t,
//   N = Σ_t mean_b m_t,  ∂W_hh += 4α/(B·N) · Σ_{t ≥ 0} u_tᵀ (κ_t v_t)          (nothing when N = 0)
//
// (v_0 = u_0 W_hh, the gradient of h_0, counts as on the autograd path.) A model with α = 0 takes
// the unregularized update, bit for bit, whatever the other models' α.
//
//   params[0..4]  W_ih [M, H, I], W_hh [M, H, H], b [M, H], W_out [M, O, H], b_out [M, O]
//   reg_weight    [M] α per model, or nullptr: no regularizer for any model
#pragma once

#include <cstdint>

#include "kernels/cpu/train_step.h"

namespace rnnlab::cpu {

constexpr int kElmanTrainParams = 5;  // W_ih, W_hh, b, W_out, b_out

template <typename T>
struct ElmanTrainStep : TrainStep<T> {
  Activation act;
  const T* reg_weight;  // [M] α of Ω, or nullptr
};

// Runs the update of model m. Throws std::invalid_argument on a class target outside [0, O).
template <typename T>
using ElmanTrainStepFn = void (*)(const ElmanTrainStep<T>&, int64_t m);

// The kernel of each ISA (elman_train_step_<isa>.cpp), and elman_train_step_kernel<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(ElmanTrainStepFn<T>, elman_train_step_kernel)

// The same update in the lanes layout (elman_train_step_lanes_impl.h, LanesKernel in train_step.h).
RNNLAB_KERNEL_PER_ISA(LanesKernel<ElmanTrainStep<T>>, elman_train_step_lanes_kernel)

}  // namespace rnnlab::cpu
