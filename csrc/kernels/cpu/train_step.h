// What every fused training step shares, whatever its cell: the torch-free kernel API of one whole
// training update of one model (the cells' own parts: elman_train_step.h, gru_train_step.h, …).
//
// For model m (SPEC §2.3–2.4), with h_0 = 0 and the K read-out steps t = T−K … T−1:
//   ŷ_t = W_out h_t + b_out    (read-out steps only; the diagonal cell's own: diag_train_step.h)
//   L   = mean over the K·B rows of CE(ŷ_t, c_t), or scale · mean over K·B·O of (ŷ_t − y_t)²
//   the cell's backward gives every gradient; g ← clip(g) with the safeguard
//   (rnnlab.train.clipping), then one optimizer step in place (rnnlab.train.optim).
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
//   params[p]     the cell's parameters in its own order, each [M, …] (updated in place); the
//                 read-out W_out [M, O, H], b_out [M, O] are the last two (the diagonal cell's
//                 read-out is C and D instead, diag_train_step.h)
//   slots[s][p]   optimizer state of params[p], shaped like it: momentum's buffer (s = 0), Adam's
//                 m (s = 0) and v (s = 1); unused slots are nullptr
//   lr, lr_min, momentum, beta1, beta2, clip   [M] per-model hyper-parameters (lr_min only read
//                 under a cosine schedule, clip only when has_clip; clip = inf: no clipping)
//   loss, norm    [M]  the model's loss and pre-clipping global gradient norm
//   clipped, fallback  [M]  clipping rescaled the gradient / the safeguard fired
//   delta_sq      [M, T, B]  ‖δ_t‖² = ‖∂L/∂h_t‖² (SPEC §8.1 B1)
//   v_sq          [M, T, B]  ‖v_t‖², v_t the part of ∂L/∂h_{t−1} through the recurrence (SPEC §8.1
//                 B2; with delta_sq, Ω of SPEC §2.5)
#pragma once

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

enum class Loss : int { CrossEntropy = 0, SquaredError = 1 };
enum class Optimizer : int { Sgd = 0, Momentum = 1, Adam = 2 };

constexpr int kMaxTrainParams = 8;

template <typename T>
struct TrainStep {
  int64_t M, T_, B, I, H, O, K;  // T_: the steps (T names the scalar type)
  Loss loss_kind;
  T loss_scale;  // the squared error's factor (½ for system identification)
  Optimizer opt;
  const T* x;
  const int64_t* class_target;
  const T* value_target;
  int n_params;
  T* params[kMaxTrainParams];
  T* slots[2][kMaxTrainParams];
  const T *lr, *lr_min, *momentum, *beta1, *beta2, *clip;
  bool cosine;    // lr_t = lr_min + (lr − lr_min)·cosine_factor, else lr_t = lr
  double cosine_factor;
  bool has_clip;
  bool safeguard;  // SPEC §2.4: NaN/Inf/> 1e10 norms replace the gradient by (0.02 W_hh, 0, …), or by 0 without W_hh
  T eps;           // Adam's ε
  int64_t step;    // 1-based update number (Adam's bias correction)
  T* loss;
  T* norm;
  bool* clipped;
  bool* fallback;
  T* delta_sq;
  T* v_sq;
};

// A cell's update in the lanes layout (train_step_lanes.h): one model per vector lane, a group of
// `lanes` models at a time; run(s, m0) updates models m0 … min(M, m0 + lanes) − 1. Each model's
// result is bitwise the same whatever group it is in. The op takes this layout when
// H ≤ max_hidden (measured per cell, ISA and dtype), a choice by shape alone.
template <typename Step>
struct LanesKernel {
  void (*run)(const Step&, int64_t first_model);
  int64_t lanes;
  int64_t max_hidden;
};

}  // namespace rnnlab::cpu
