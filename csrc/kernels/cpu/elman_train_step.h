// One whole training update of one Elman model on the CPU: the torch-free kernel API.
//
// For model m (SPEC §2.3–2.4), with h_0 = 0 and the K read-out steps t = T−K … T−1:
//
//   a_t = W_ih x_t + b + W_hh h_{t−1},  h_t = φ(a_t)            (input projection inside the step)
//   ŷ_t = W_out h_t + b_out                                       (read-out steps only)
//   L   = mean over the K·B rows of CE(ŷ_t, c_t), or scale · mean over K·B·O of (ŷ_t − y_t)²
//   δ_t = ∂⁺L/∂h_t + v_{t+1},  u_t = δ_t ⊙ φ'(a_t),  v_t = u_t W_hh        (backward, v_T = 0)
//   ∂W_hh = Σ_t u_tᵀ h_{t−1},  ∂W_ih = Σ_t u_tᵀ x_t,  ∂b = Σ_t Σ_b u_t
//   g ← clip(g) with the safeguard (rnnlab.train.clipping), then one optimizer step in place
//   (rnnlab.train.optim).
//
// Everything of one model runs on one thread, in a fixed order that depends only on that model's
// sizes: a model's update is bitwise the same alone, inside any population and at any thread
// count. The caller runs models in parallel and nothing else.
//
// Shapes (dense, row-major; M models, T steps, B batch rows, I inputs, H units, O outputs, K
// read-out steps):
//   x             [M, T, B, I]
//   class_target  [M, K, B]     int64 classes in [0, O) (cross-entropy), else nullptr
//   value_target  [M, K, B, O]  regression targets (squared error), else nullptr
//   params[0..4]  W_ih [M, H, I], W_hh [M, H, H], b [M, H], W_out [M, O, H], b_out [M, O]
//                 (updated in place)
//   slots[s][p]   optimizer state of params[p], shaped like it: momentum's buffer (s = 0), Adam's
//                 m (s = 0) and v (s = 1); unused slots are nullptr
//   lr, lr_min, momentum, beta1, beta2, clip   [M] per-model hyper-parameters (lr_min only read
//                 under a cosine schedule, clip only when has_clip; clip = inf: no clipping)
//   loss, norm    [M]  the model's loss and pre-clipping global gradient norm
//   clipped, fallback  [M]  clipping rescaled the gradient / the safeguard fired
//   delta_sq      [M, T, B]  ‖δ_t‖² (SPEC §8.1 B1)
//   v_sq          [M, T, B]  ‖v_t‖² (SPEC §8.1 B2; with delta_sq, Ω of SPEC §2.5 as a diagnostic)
#pragma once

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

enum class Loss : int { CrossEntropy = 0, SquaredError = 1 };
enum class Optimizer : int { Sgd = 0, Momentum = 1, Adam = 2 };

constexpr int kTrainParams = 5;  // W_ih, W_hh, b, W_out, b_out

template <typename T>
struct ElmanTrainStep {
  int64_t M, T_, B, I, H, O, K;  // T_: the steps (T names the scalar type)
  Activation act;
  Loss loss_kind;
  T loss_scale;  // the squared error's factor (½ for system identification)
  Optimizer opt;
  const T* x;
  const int64_t* class_target;
  const T* value_target;
  T* params[kTrainParams];
  T* slots[2][kTrainParams];
  const T *lr, *lr_min, *momentum, *beta1, *beta2, *clip;
  bool cosine;    // lr_t = lr_min + (lr − lr_min)·cosine_factor, else lr_t = lr
  double cosine_factor;
  bool has_clip;
  bool safeguard;  // SPEC §2.4: NaN/Inf/> 1e10 norms replace the gradient by (0.02 W_hh, 0, …)
  T eps;           // Adam's ε
  int64_t step;    // 1-based update number (Adam's bias correction)
  T* loss;
  T* norm;
  bool* clipped;
  bool* fallback;
  T* delta_sq;
  T* v_sq;
};

// Runs the update of model m. Throws std::invalid_argument on a class target outside [0, O).
template <typename T>
using ElmanTrainStepFn = void (*)(const ElmanTrainStep<T>&, int64_t m);

// The kernel for one ISA (defined in elman_train_step_<isa>.cpp).
template <typename T>
ElmanTrainStepFn<T> elman_train_step_kernel(Isa isa);

}  // namespace rnnlab::cpu
