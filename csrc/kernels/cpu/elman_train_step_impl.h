// The fused Elman training update, written once and compiled per ISA by elman_train_step_<isa>.cpp.
// The API, shapes and math are documented in elman_train_step.h.
#pragma once

#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/elman_train_step.h"
#include "kernels/cpu/train_step_common.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {

// Working memory of the thread that runs a model. It grows to the largest model the thread has
// run and is then reused by every later update, so a warm training loop allocates nothing, and it
// is per thread rather than per model: a model's states live only while its update runs.
template <typename T>
struct Workspace : GemmBuffers<T> {
  std::vector<T> hs;     // [T, B, H] states h_1 … h_T
  std::vector<T> acc;    // [B, ldc] h_{t−1} W_hhᵀ in the forward, v_t = u_t W_hh in the backward
  std::vector<T> gy;     // [K, B, O] ∂L/∂ŷ_t
  std::vector<T> gyt;    // [O, K·B] the same, transposed: ∂W_out = gyt · h_read in one GEMM
  std::vector<T> u;      // [B, H] u_t
  std::vector<T> ut;     // [H, T·B] u_t of every step, transposed: ∂W_hh, ∂W_ih in one GEMM each
  std::vector<T> wih_t;  // [I, H] W_ihᵀ: x_t W_ihᵀ adds one row per input, vectorized over H
  std::vector<T> reg;    // [T·B, H] κ_t v_t, then h_{t−1} + 4α/(B·N)·κ_t v_t (only when α ≠ 0)
  std::vector<T> grads;  // the five gradients, laid out like the parameters
  std::vector<T> wt, wp;  // packed W_hhᵀ and W_hh
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

template <typename T, Activation A>
void run_model(const ElmanTrainStep<T>& s, int64_t m) {
  using V = Vec<T>;
  const int64_t Tn = s.T_, B = s.B, I = s.I, H = s.H, O = s.O, K = s.K, TB = Tn * B, first_read = Tn - K;
  const int64_t sizes[kElmanTrainParams] = {H * I, H * H, H, O * H, O};
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
      loss_sum += readout(s, m, k, h, w_out, b_out, gy + k * B * O, gyt);
    }
  }
  s.loss[m] = mean_loss(s, loss_sum);

  // ---- backward: δ_t, u_t and ‖δ_t‖² step by step, then every weight gradient as one GEMM ----
  int64_t total = 0;
  for (int64_t p = 0; p < kElmanTrainParams; ++p) total += sizes[p];
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
  // Ω's gradient (SPEC §2.5) only for α ≠ 0: a model with α = 0 runs exactly the plain update
  const T alpha = s.reg_weight ? s.reg_weight[m] : T(0);
  T* reg = alpha != T(0) ? grow(w.reg, TB * H) : nullptr;
  int64_t valid = 0;  // Σ_t Σ_b m_t = B·N
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
    // v_t = u_t W_hh: δ_{t−1}'s recurrent part, and at t = 0 only ‖v_0‖² and κ_0 v_0 for Ω (as
    // elman_backward)
    gemm_packed<T>(B, H, u, H, w.wp.data(), ldb, v, ldc);
    for (int64_t r = 0; r < B; ++r) {
      const T* vr = v + r * ldc;
      V sq = V::zero();
      for (int64_t j = 0; j < H; j += V::size) {
        const V vj = load_n(vr + j, static_cast<int>(std::min<int64_t>(V::size, H - j)));
        sq = fmadd(vj, vj, sq);
      }
      const T a = hsum(sq);
      s.v_sq[(m * Tn + t) * B + r] = a;
      if (reg) {  // κ_t v_t with κ_t = m_t (r_t − 1)/c_t, computed as elman_backward does
        const T c = s.delta_sq[(m * Tn + t) * B + r];
        const bool counted = c >= T(kOmegaBound);
        valid += counted;
        const V kappa = V::broadcast(counted ? (a / c - T(1)) / c : T(0));
        T* out = reg + (t * B + r) * H;
        for (int64_t j = 0; j < H; j += V::size) {
          const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
          store_n(kappa * load_n(vr + j, n), out + j, n);
        }
      }
    }
  }
  // ∂W_hh = Σ_{t ≥ 1} u_tᵀ h_{t−1} (h_0 = 0), ∂W_ih = Σ_t u_tᵀ x_t, ∂W_out = Σ_k gy_kᵀ h_{T−K+k}
  if (reg && valid > 0) {
    // With Ω, ∂W_hh = Σ_{t ≥ 0} u_tᵀ (h_{t−1} + ω κ_t v_t), ω = 4α/(B·N) (h_{−1} = 0): the
    // regularizer's rank-B term of every step stacked onto the same rows (SPEC §2.5's fusion
    // note), so one GEMM of K = T·B replaces a second one of the same size. ω is rounded as
    // elman_backward rounds it (N in double, then the op's dtype).
    const T n_valid = static_cast<T>(static_cast<double>(valid) / static_cast<double>(B));
    const V omega = V::broadcast(T(4) * alpha / (static_cast<T>(B) * n_valid));
    for (int64_t i = 0; i < B * H; i += V::size) {  // t = 0: ω κ_0 v_0
      const int n = static_cast<int>(std::min<int64_t>(V::size, B * H - i));
      store_n(omega * load_n(reg + i, n), reg + i, n);
    }
    for (int64_t i = B * H; i < TB * H; i += V::size) {  // t ≥ 1: h_{t−1} + ω κ_t v_t
      const int n = static_cast<int>(std::min<int64_t>(V::size, TB * H - i));
      store_n(fmadd(omega, load_n(reg + i, n), load_n(hs + i - B * H, n)), reg + i, n);
    }
    gradient_gemm(w, H, TB, ut, TB, reg, H, g_hh);
  } else if (Tn > 1) {
    gradient_gemm(w, H, (Tn - 1) * B, ut + B, TB, hs, H, g_hh);
  } else {
    std::fill(g_hh, g_hh + sizes[1], T(0));
  }
  gradient_gemm(w, H, TB, ut, TB, x, I, g_ih);
  gradient_gemm(w, O, K * B, gyt, K * B, hs + first_read * B * H, H, g_out);
  for (int64_t j = 0; j < H; ++j) g_b[j] = row_sum(TB, ut + j * TB);
  for (int64_t o = 0; o < O; ++o) g_bout[o] = row_sum(K * B, gyt + o * K * B);

  // ---- the global norm, clipping with the safeguard, the optimizer step ----
  clip_and_update(s, m, grads, sizes, /*recurrent=*/1);
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

// Defines the ISA's kernel getter, elman_train_step_kernel_<isa><T>() (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_ELMAN_TRAIN_STEP(getter)                                                 \
  namespace rnnlab::cpu {                                                                      \
  template <typename T>                                                                        \
  ElmanTrainStepFn<T> getter() {                                                               \
    return &RNNLAB_ISA_NS::train_step::train_step_dispatch<T>;                                 \
  }                                                                                            \
  template ElmanTrainStepFn<float> getter<float>();                                            \
  template ElmanTrainStepFn<double> getter<double>();                                          \
  }
