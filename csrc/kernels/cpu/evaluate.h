// The forward pass of a population with its read-out and nothing kept, for validation and test
// sets (thousands of sequences per model, no gradient): the torch-free kernel API.
//
// For model m and each of its B sequences (h_0 = 0, c_0 = 0), the cell's recurrence with the input
// projection inside the step, and at the last K steps t = T−K … T−1 the read-out
//   y_t = W_out h_t + b_out.
// The cells and their parameters (PyTorch's gate order and bias conventions):
//   Elman  h_t = φ(W_ih x_t + b + W_hh h_{t−1})                           params W_ih [M, H, I], W_hh [M, H, H], b [M, H]
//   LSTM   z = W_ih x_t + b + W_hh h_{t−1}; i, f, o = σ(z_i, z_f, z_o), g = tanh(z_g);
//          c_t = f c_{t−1} + i g, h_t = o tanh(c_t)                       params W_ih [M, 4H, I], W_hh [M, 4H, H], b [M, 4H]
//   GRU    r, z = σ(W_ih x_t + b + W_hh h_{t−1}) (rows r, z); n = tanh(W_in x_t + b_n + r (W_hn h_{t−1} + b_hn));
//          h_t = (1 − z) n + z h_{t−1}                                    params W_ih [M, 3H, I], W_hh [M, 3H, H], b [M, 3H], b_hn [M, H]
// each followed by W_out [M, O, H], b_out [M, O].
//
// Why a kernel of its own: the training kernels vectorize a model over its units and keep every
// state for the backward pass, so at H = 8 a validation of 1,000 sequences ran on half-empty
// vectors and wrote [T, B, G·H] of states it never read again. Here a vector holds W sequences of
// one model (a block): W_hh h_{t−1} is a sum of broadcast weights times state vectors, full at any
// H, and a block's state [G·H, W] stays in L1. Every lane runs the same scalar algorithm in a fixed
// order that depends only on the shapes, so a sequence's outputs are bitwise the same in any lane,
// block, population and thread count. They are not bitwise those of the training kernels (whose
// GEMMs sum in another order).
//
// Shapes (dense, row-major): x [M, T, B, I]; params as above; y [M, K, B, O].
#pragma once

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace rnnlab::cpu {

enum class EvalCell : int { Elman = 0, Lstm = 1, Gru = 2 };

constexpr int kMaxEvalParams = 6;

template <typename T>
struct Evaluate {
  int64_t M, T_, B, I, H, O, K;  // T_: the steps (T names the scalar type)
  EvalCell cell;
  Activation act;  // the Elman cell's φ
  const T* x;
  const T* params[kMaxEvalParams];  // the cell's parameters in the order above
  T* y;
};

// Runs the sequences b0 … b0 + W − 1 of model m (a block; fewer at the end of the batch), W the
// kernel's `lanes`.
template <typename T>
struct EvaluateKernel {
  void (*run)(const Evaluate<T>&, int64_t m, int64_t b0);
  int64_t lanes;
};

// The kernel of each ISA (evaluate_<isa>.cpp), and evaluate_kernel<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(EvaluateKernel<T>, evaluate_kernel)

}  // namespace rnnlab::cpu
