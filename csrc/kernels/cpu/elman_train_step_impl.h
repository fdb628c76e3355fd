// The fused Elman training update, written once and compiled per ISA by elman_train_step_<isa>.cpp.
// The API, shapes and math are documented in elman_train_step.h.
#pragma once

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/elman_train_step.h"
#include "kernels/cpu/gemm_rows.h"
#include "kernels/cpu/row_ops.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {

// Working memory of the thread that runs a model. It grows to the largest model the thread has
// run and is then reused by every later update, so a warm training loop allocates nothing, and it
// is per thread rather than per model: a model's states live only while its update runs.
template <typename T>
struct Workspace {
  std::vector<T> hs;     // [T, B, H] states h_1 … h_T
  std::vector<T> acc;    // [B, ldc] h_{t−1} W_hhᵀ in the forward, v_t = u_t W_hh in the backward
  std::vector<T> gy;     // [K, B, O] ∂L/∂ŷ_t
  std::vector<T> gyt;    // [O, K·B] the same, transposed: ∂W_out = gyt · h_read in one GEMM
  std::vector<T> u;      // [B, H] u_t
  std::vector<T> ut;     // [H, T·B] u_t of every step, transposed: ∂W_hh, ∂W_ih in one GEMM each
  std::vector<T> wih_t;  // [I, H] W_ihᵀ: x_t W_ihᵀ adds one row per input, vectorized over H
  std::vector<T> grads;  // the five gradients, laid out like the parameters
  std::vector<T> gemm_out;         // [max(H, O), padded width] a weight gradient as the GEMM writes it
  std::vector<T> wt, wp, packed;   // packed W_hhᵀ, W_hh, and the right operand of a gradient GEMM
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
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
void gradient_gemm(Workspace<T>& w, int64_t rows, int64_t K, const T* a, int64_t lda, const T* b, int64_t n, T* grad) {
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

// Read-out step k (state h [B, H]): ŷ into gy [B, O], then gy ← ∂L/∂ŷ, also into gyt's columns
// k·B … k·B + B − 1. Returns the step's sum of per-row losses (cross-entropy) or of squared errors
// (before the mean and the scale).
template <typename T, Loss L>
double readout_step(const ElmanTrainStep<T>& s, int64_t m, int64_t k, const T* h, const T* w_out, const T* b_out,
                    T* gy, T* gyt) {
  const int64_t B = s.B, O = s.O, H = s.H;
  double sum = 0;
  for (int64_t r = 0; r < B; ++r) {
    T* g = gy + r * O;
    for (int64_t o = 0; o < O; ++o) g[o] = b_out[o] + dot(H, h + r * H, w_out + o * H);
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

// p ← p − lr·(optimizer direction) for n entries of one parameter and its slots.
template <typename T, Optimizer P>
void apply_update(const ElmanTrainStep<T>& s, int64_t m, T lr, int64_t n, const T* g, T* p, T* s0, T* s1) {
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

template <typename T, Activation A>
void run_model(const ElmanTrainStep<T>& s, int64_t m) {
  using V = Vec<T>;
  const int64_t Tn = s.T_, B = s.B, I = s.I, H = s.H, O = s.O, K = s.K, TB = Tn * B, first_read = Tn - K;
  const int64_t sizes[kTrainParams] = {H * I, H * H, H, O * H, O};
  const T* x = s.x + m * TB * I;
  const T* w_ih = s.params[0] + m * sizes[0];
  const T* w_hh = s.params[1] + m * sizes[1];
  const T* bias = s.params[2] + m * sizes[2];
  const T* w_out = s.params[3] + m * sizes[3];
  const T* b_out = s.params[4] + m * sizes[4];
  Workspace<T>& w = workspace<T>();

  // ---- forward: the recurrence with its input projection, the read-out and the loss ----
  int64_t ldb;
  pack_panels(w_hh, H, H, /*transpose=*/true, w.wt, ldb);
  const int64_t ldc = ldb;
  T* hs = grow(w.hs, TB * H);
  T* acc = grow(w.acc, B * ldc);
  T* gy = grow(w.gy, K * B * O);
  T* gyt = grow(w.gyt, O * K * B);
  T* wih_t = grow(w.wih_t, I * H);
  for (int64_t j = 0; j < H; ++j)
    for (int64_t i = 0; i < I; ++i) wih_t[i * H + j] = w_ih[j * I + i];
  double loss_sum = 0;
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * B * H;
    if (t > 0) gemm_packed<T>(B, H, h - B * H, H, w.wt.data(), ldb, acc, ldc);
    for (int64_t r = 0; r < B; ++r) {
      const T* xr = x + (t * B + r) * I;
      for (int64_t j = 0; j < H; j += V::size) {
        const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
        V a = load_n(bias + j, n);
        for (int64_t i = 0; i < I; ++i) a = fmadd(V::broadcast(xr[i]), load_n(wih_t + i * H + j, n), a);
        if (t > 0) a = a + load_n(acc + r * ldc + j, n);
        store_n(Act<A, T>::f(a), h + r * H + j, n);
      }
    }
    if (t >= first_read) {
      const int64_t k = t - first_read;
      loss_sum += s.loss_kind == Loss::CrossEntropy
                      ? readout_step<T, Loss::CrossEntropy>(s, m, k, h, w_out, b_out, gy + k * B * O, gyt)
                      : readout_step<T, Loss::SquaredError>(s, m, k, h, w_out, b_out, gy + k * B * O, gyt);
    }
  }
  s.loss[m] = s.loss_kind == Loss::CrossEntropy ? static_cast<T>(loss_sum / static_cast<double>(K * B))
                                                 : s.loss_scale * static_cast<T>(loss_sum / static_cast<double>(K * B * O));

  // ---- backward: δ_t, u_t and ‖δ_t‖² step by step, then every weight gradient as one GEMM ----
  int64_t total = 0;
  for (int64_t p = 0; p < kTrainParams; ++p) total += sizes[p];
  T* grads = grow(w.grads, total);
  T* g_ih = grads;
  T* g_hh = g_ih + sizes[0];
  T* g_b = g_hh + sizes[1];
  T* g_out = g_b + sizes[2];
  T* g_bout = g_out + sizes[3];
  pack_panels(w_hh, H, H, /*transpose=*/false, w.wp, ldb);
  T* u = grow(w.u, B * H);
  T* ut = grow(w.ut, H * TB);
  T* v = acc;
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* h = hs + t * B * H;
    const T* gyk = t >= first_read ? gy + (t - first_read) * B * O : nullptr;
    for (int64_t r = 0; r < B; ++r) {
      T* ur = u + r * H;
      const T* hr = h + r * H;
      V sq = V::zero();
      for (int64_t j = 0; j < H; j += V::size) {  // δ_t = ∂⁺L/∂h_t + v_{t+1}, kept in registers
        const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
        V d = t < Tn - 1 ? load_n(v + r * ldc + j, n) : V::zero();
        if (gyk)
          for (int64_t o = 0; o < O; ++o) d = fmadd(V::broadcast(gyk[r * O + o]), load_n(w_out + o * H + j, n), d);
        sq = fmadd(d, d, sq);
        const V uj = d * Act<A, T>::df_from_h(load_n(hr + j, n));
        store_n(uj, ur + j, n);
        // into ut's column from a full-width copy: reading back the masked store to ur would
        // wait for it to retire (no store forwarding from masked stores)
        alignas(64) T lanes[V::size];
        uj.store(lanes);
        for (int i = 0; i < n; ++i) ut[(j + i) * TB + t * B + r] = lanes[i];
      }
      s.delta_sq[(m * Tn + t) * B + r] = hsum(sq);
    }
    // v_t = u_t W_hh: δ_{t−1}'s recurrent part, and at t = 0 only ‖v_0‖² for Ω (as elman_backward)
    gemm_packed<T>(B, H, u, H, w.wp.data(), ldb, v, ldc);
    for (int64_t r = 0; r < B; ++r) {
      V sq = V::zero();
      for (int64_t j = 0; j < H; j += V::size) {
        const V vj = load_n(v + r * ldc + j, static_cast<int>(std::min<int64_t>(V::size, H - j)));
        sq = fmadd(vj, vj, sq);
      }
      s.v_sq[(m * Tn + t) * B + r] = hsum(sq);
    }
  }
  // ∂W_hh = Σ_{t ≥ 1} u_tᵀ h_{t−1} (h_0 = 0), ∂W_ih = Σ_t u_tᵀ x_t, ∂W_out = Σ_k gy_kᵀ h_{T−K+k}
  if (Tn > 1) gradient_gemm(w, H, (Tn - 1) * B, ut + B, TB, hs, H, g_hh);
  else std::fill(g_hh, g_hh + sizes[1], T(0));
  gradient_gemm(w, H, TB, ut, TB, x, I, g_ih);
  gradient_gemm(w, O, K * B, gyt, K * B, hs + first_read * B * H, H, g_out);
  for (int64_t j = 0; j < H; ++j) g_b[j] = row_sum(TB, ut + j * TB);
  for (int64_t o = 0; o < O; ++o) g_bout[o] = row_sum(K * B, gyt + o * K * B);

  // ---- the global norm, clipping with the safeguard (rnnlab.train.clipping) ----
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
    for (int64_t i = 0; i < sizes[1]; ++i) g_hh[i] = T(0.02) * w_hh[i];
  }
  s.norm[m] = norm;
  s.clipped[m] = clipped;
  s.fallback[m] = bad;

  // ---- the optimizer step (rnnlab.train.optim, rnnlab.train.schedules) ----
  const T lr = s.cosine ? s.lr_min[m] + (s.lr[m] - s.lr_min[m]) * static_cast<T>(s.cosine_factor) : s.lr[m];
  const T* g = grads;
  for (int64_t p = 0; p < kTrainParams; ++p) {
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

// One function pointer per dtype: the activation is a template parameter inside, picked here.
template <typename T>
void train_step_dispatch(const ElmanTrainStep<T>& s, int64_t m) {
  switch (s.act) {
    case Activation::Tanh: return run_model<T, Activation::Tanh>(s, m);
    case Activation::Relu: return run_model<T, Activation::Relu>(s, m);
    case Activation::Sigmoid: return run_model<T, Activation::Sigmoid>(s, m);
    case Activation::Identity: return run_model<T, Activation::Identity>(s, m);
  }
}

}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's kernel getter, elman_train_step_<isa><T>().
#define RNNLAB_DEFINE_ELMAN_TRAIN_STEP(getter)                                                 \
  namespace rnnlab::cpu {                                                                      \
  template <typename T>                                                                        \
  ElmanTrainStepFn<T> getter() {                                                               \
    return &RNNLAB_ISA_NS::train_step::train_step_dispatch<T>;                                 \
  }                                                                                            \
  template ElmanTrainStepFn<float> getter<float>();                                            \
  template ElmanTrainStepFn<double> getter<double>();                                          \
  }
