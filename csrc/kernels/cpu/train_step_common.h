// What every cell's fused training step shares (API in train_step.h), written once and compiled
// per ISA inside each cell's <cell>_train_step_<isa>.cpp: the read-out and its loss gradient,
// weight gradients as GEMMs, clipping with the safeguard and the optimizer step.
#pragma once

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/gemm_rows.h"
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/train_step.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {

// The buffers gradient_gemm packs into and writes through, kept in a thread's workspace.
template <typename T>
struct GemmBuffers {
  std::vector<T> gemm_out;  // [max(rows), padded width] a weight gradient as the GEMM writes it
  std::vector<T> packed;    // the right operand of a gradient GEMM, packed
};

template <typename T, typename Alloc>
T* grow(std::vector<T, Alloc>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

template <typename T>
inline T row_sum(int64_t n, const T* x) {
  Vec<T> s = Vec<T>::zero();
  for (int64_t j = 0; j < n; j += Vec<T>::size) s = s + load_n(x + j, static_cast<int>(std::min<int64_t>(Vec<T>::size, n - j)));
  return hsum(s);
}

// grad[rows, n] = a[rows, K] (row stride lda) · b[K, n] (dense), through gemm_packed. Weight
// gradients are summed this way after the time loop instead of row by row inside it, where each
// row's masked store and the next row's load of the same accumulator stall store forwarding.
template <typename T>
void gradient_gemm(GemmBuffers<T>& w, int64_t rows, int64_t K, const T* a, int64_t lda, const T* b, int64_t n, T* grad) {
  int64_t ldb;
  pack_panels(b, K, n, /*transpose=*/false, w.packed, ldb);
  T* c = grow(w.gemm_out, rows * ldb);
  gemm_packed<T>(rows, K, a, lda, w.packed.data(), ldb, c, ldb);
  for (int64_t r = 0; r < rows; ++r) copy_row(n, c + r * ldb, grad + r * n);
}

template <typename T>
inline T dot(int64_t n, const T* x, const T* y) {
  Vec<T> s = Vec<T>::zero();
  for (int64_t j = 0; j < n; j += Vec<T>::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec<T>::size, n - j));
    s = fmadd(load_n(x + j, k), load_n(y + j, k), s);
  }
  return hsum(s);
}

// The loss of read-out step k from its outputs ŷ, which gy [B, O] holds on entry: gy ← ∂L/∂ŷ,
// also into gyt's columns k·B … k·B + B − 1. Returns the step's sum of per-row losses
// (cross-entropy) or of squared errors (before the mean and the scale).
template <typename T, Loss L>
double loss_rows(const TrainStep<T>& s, int64_t m, int64_t k, T* gy, T* gyt) {
  const int64_t B = s.B, O = s.O;
  double sum = 0;
  for (int64_t r = 0; r < B; ++r) {
    T* g = gy + r * O;
    if constexpr (L == Loss::CrossEntropy) {
      const int64_t c = s.class_target[(m * s.K + k) * B + r];
      if (c < 0 || c >= O) throw std::invalid_argument("target: class index out of range [0, O) (O = number of outputs)");
      T top = g[0];
      for (int64_t o = 1; o < O; ++o) top = std::max(top, g[o]);
      T z = 0;
      for (int64_t o = 0; o < O; ++o) z += std::exp(g[o] - top);
      const T lse = top + std::log(z);
      sum += lse - g[c];
      const T inv = T(1) / static_cast<T>(s.K * B);  // the mean over K·B rows
      for (int64_t o = 0; o < O; ++o) g[o] = (std::exp(g[o] - lse) - (o == c ? T(1) : T(0))) * inv;
    } else {
      const T* y = s.value_target + ((m * s.K + k) * B + r) * O;
      const T factor = T(2) * s.loss_scale / static_cast<T>(s.K * B * O);
      for (int64_t o = 0; o < O; ++o) {
        const T d = g[o] - y[o];
        sum += static_cast<double>(d) * d;
        g[o] = factor * d;
      }
    }
    for (int64_t o = 0; o < O; ++o) gyt[o * s.K * B + k * B + r] = g[o];
  }
  return sum;
}

// loss_rows for the call's loss: what a cell whose read-out is not W_out h + b_out (the diagonal
// cell's Re(C h) + D x) calls once it has written ŷ into gy.
template <typename T>
double readout_loss(const TrainStep<T>& s, int64_t m, int64_t k, T* gy, T* gyt) {
  return s.loss_kind == Loss::CrossEntropy ? loss_rows<T, Loss::CrossEntropy>(s, m, k, gy, gyt)
                                           : loss_rows<T, Loss::SquaredError>(s, m, k, gy, gyt);
}

// Read-out step k of the linear read-out ŷ = W_out h + b_out (state h [B, H]): ŷ into gy [B, O],
// then readout_loss.
template <typename T>
double readout(const TrainStep<T>& s, int64_t m, int64_t k, const T* h, const T* w_out, const T* b_out, T* gy,
               T* gyt) {
  const int64_t B = s.B, O = s.O, H = s.H;
  for (int64_t r = 0; r < B; ++r)
    for (int64_t o = 0; o < O; ++o) gy[r * O + o] = b_out[o] + dot(H, h + r * H, w_out + o * H);
  return readout_loss(s, m, k, gy, gyt);
}

// p ← p − lr·(optimizer direction) for n entries of one parameter and its slots.
template <typename T, Optimizer P>
void apply_update(const TrainStep<T>& s, int64_t m, T lr, int64_t n, const T* g, T* p, T* s0, T* s1) {
  if constexpr (P == Optimizer::Sgd) {
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * g[i];
  } else if constexpr (P == Optimizer::Momentum) {
    const T mu = s.momentum[m];
    for (int64_t i = 0; i < n; ++i) {
      s0[i] = s0[i] * mu + g[i];
      p[i] -= lr * s0[i];
    }
  } else {
    const T b1 = s.beta1[m], b2 = s.beta2[m];
    const T c1 = T(1) - std::pow(b1, static_cast<T>(s.step)), c2 = T(1) - std::pow(b2, static_cast<T>(s.step));
    for (int64_t i = 0; i < n; ++i) {
      s0[i] = s0[i] * b1 + (T(1) - b1) * g[i];
      s1[i] = s1[i] * b2 + (T(1) - b2) * g[i] * g[i];
      p[i] -= lr * (s0[i] / c1) / (std::sqrt(s1[i] / c2) + s.eps);
    }
  }
}


// The end of every cell's update: the global norm of its n_params gradients (laid out one after
// the other in `grads`, sizes[p] entries each), clipping with the safeguard
// (rnnlab.train.clipping; `recurrent` is the index of W_hh, whose 0.02·W_hh replaces a bad
// gradient, or −1 for a cell without one, whose bad gradient becomes 0, as clip_gradients_ with
// weight_hh=None), the outputs norm/clipped/fallback, and the optimizer step (rnnlab.train.optim,
// rnnlab.train.schedules) on the parameters and slots of model m.
template <typename T>
void clip_and_update(const TrainStep<T>& s, int64_t m, T* grads, const int64_t* sizes, int recurrent) {
  int64_t total = 0, recurrent_offset = 0;
  for (int p = 0; p < s.n_params; ++p) {
    if (p == recurrent) recurrent_offset = total;
    total += sizes[p];
  }
  double sq = 0;
  for (int64_t i = 0; i < total; ++i) sq += static_cast<double>(grads[i]) * grads[i];
  const T norm = static_cast<T>(std::sqrt(sq));
  const bool bad = s.safeguard && (!std::isfinite(norm) || norm > T(1e10));
  const bool clipped = s.has_clip && !bad && norm > s.clip[m];
  if (clipped) {
    const T scale = s.clip[m] / norm;
    for (int64_t i = 0; i < total; ++i) grads[i] *= scale;
  }
  if (bad) {  // the update then decays W_hh by (1 − 0.02·lr) and leaves the rest (SPEC §2.4)
    std::fill(grads, grads + total, T(0));
    if (recurrent >= 0) {
      const T* w_hh = s.params[recurrent] + m * sizes[recurrent];
      for (int64_t i = 0; i < sizes[recurrent]; ++i) grads[recurrent_offset + i] = T(0.02) * w_hh[i];
    }
  }
  s.norm[m] = norm;
  s.clipped[m] = clipped;
  s.fallback[m] = bad;

  const T lr = s.cosine ? s.lr_min[m] + (s.lr[m] - s.lr_min[m]) * static_cast<T>(s.cosine_factor) : s.lr[m];
  const T* g = grads;
  for (int p = 0; p < s.n_params; ++p) {
    const int64_t n = sizes[p], off = m * n;
    T* param = s.params[p] + off;
    T* s0 = s.slots[0][p] ? s.slots[0][p] + off : nullptr;
    T* s1 = s.slots[1][p] ? s.slots[1][p] + off : nullptr;
    switch (s.opt) {
      case Optimizer::Sgd: apply_update<T, Optimizer::Sgd>(s, m, lr, n, g, param, s0, s1); break;
      case Optimizer::Momentum: apply_update<T, Optimizer::Momentum>(s, m, lr, n, g, param, s0, s1); break;
      case Optimizer::Adam: apply_update<T, Optimizer::Adam>(s, m, lr, n, g, param, s0, s1); break;
    }
    g += n;
  }
}

// The loss of model m from the sum readout_loss returned over its K read-out steps.
template <typename T>
T mean_loss(const TrainStep<T>& s, double sum) {
  return s.loss_kind == Loss::CrossEntropy ? static_cast<T>(sum / static_cast<double>(s.K * s.B))
                                           : s.loss_scale * static_cast<T>(sum / static_cast<double>(s.K * s.B * s.O));
}

}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
