// The fused LSTM training update, written once and compiled per ISA by lstm_train_step_<isa>.cpp.
// The API, shapes and math are documented in lstm_train_step.h. The cell update itself (forward
// and backward, per vector of units) is the LSTM kernels' (lstm_impl.h), so the fused step and
// the autograd path run the same gate math.
#pragma once

#include <vector>

#include "kernels/cpu/lstm_impl.h"
#include "kernels/cpu/lstm_train_step.h"
#include "kernels/cpu/train_step_common.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {
// A namespace of its own: the Elman step defines its Workspace and run_model in the same ISA
// namespace (another translation unit), and two definitions of one name would break the ODR.
namespace lstm {

// Working memory of the thread that runs a model. It grows to the largest model the thread has
// run and is then reused by every later update, so a warm training loop allocates nothing, and it
// is per thread rather than per model: a model's states live only while its update runs.
template <typename T>
struct Workspace : GemmBuffers<T> {
  std::vector<T> hs;      // [T, B, H] states h_1 … h_T
  std::vector<T> cs;      // [T + 1, B, H] cell states c_0 = 0, c_1 … c_T
  std::vector<T> gates;   // [T, B, 4H] the activated gates i, f, g, o of every step
  std::vector<T> rec;     // [B, 4W] h_{t−1} W_hhᵀ for one gate-interleaved panel of W units
  std::vector<T> v;       // [B, ldv] v_t = ∂z_t W_hh
  std::vector<T> dc;      // [B, H] ε_{t+1} ⊙ f_{t+1}, the cell-state path of the backward
  std::vector<T> gy;      // [K, B, O] ∂L/∂ŷ_t
  std::vector<T> gyt;     // [O, K·B] the same, transposed: ∂W_out = gyt · h_read in one GEMM
  std::vector<T> dz;      // [B, 4H] ∂z_t
  std::vector<T> dzt;     // [4H, T·B] ∂z_t of every step, transposed: ∂W_hh, ∂W_ih in one GEMM each
  std::vector<T> wih_t;   // [I, 4H] W_ihᵀ: x_t W_ihᵀ adds one row per input, vectorized over units
  std::vector<T> grads;   // the five gradients, laid out like the parameters
  std::vector<T> wt, wp;  // W_hhᵀ packed gate-interleaved (gate_panels.h) and W_hh packed
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

template <typename T>
void run_model(const LstmTrainStep<T>& s, int64_t m) {
  using V = Vec<T>;
  constexpr int W = V::size;
  const int64_t Tn = s.T_, B = s.B, I = s.I, H = s.H, G = 4 * H, O = s.O, K = s.K, TB = Tn * B, first_read = Tn - K;
  const int64_t sizes[kLstmTrainParams] = {G * I, G * H, G, O * H, O};
  const T* x = s.x + m * TB * I;
  const T* w_ih = s.params[0] + m * sizes[0];
  const T* w_hh = s.params[1] + m * sizes[1];
  const T* bias = s.params[2] + m * sizes[2];
  const T* w_out = s.params[3] + m * sizes[3];
  const T* b_out = s.params[4] + m * sizes[4];
  Workspace<T>& w = workspace<T>();

  // ---- forward: the recurrence with its input projection, the read-out and the loss ----
  pack_gate_panels<4>(w_hh, H, w.wt);
  T* hs = grow(w.hs, TB * H);
  T* cs = grow(w.cs, (TB + B) * H);
  std::fill(cs, cs + B * H, T(0));
  T* gates = grow(w.gates, TB * G);
  T* rec = grow(w.rec, B * 4 * W);
  T* gy = grow(w.gy, K * B * O);
  T* gyt = grow(w.gyt, O * K * B);
  T* wih_t = grow(w.wih_t, I * G);
  for (int64_t j = 0; j < G; ++j)
    for (int64_t i = 0; i < I; ++i) wih_t[i * G + j] = w_ih[j * I + i];
  double loss_sum = 0;
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * B * H;
    T* c = cs + (t + 1) * B * H;
    T* gt = gates + t * B * G;
    // panels of W units outermost, as lstm_forward_tile: each panel of W_hhᵀ is read once per step
    for (int64_t u0 = 0; u0 < H; u0 += W) {
      const int n = static_cast<int>(std::min<int64_t>(W, H - u0));
      if (t > 0) gemm_gate_panel<T, 4>(B, H, h - B * H, gate_panel<4>(w.wt, H, u0), rec);
      for (int64_t r = 0; r < B; ++r) {
        const T* xr = x + (t * B + r) * I;
        V z[4];
        for (int q = 0; q < 4; ++q) {
          V a = load_n(bias + q * H + u0, n);
          for (int64_t i = 0; i < I; ++i) a = fmadd(V::broadcast(xr[i]), load_n(wih_t + i * G + q * H + u0, n), a);
          z[q] = t > 0 ? a + V::load(rec + (r * 4 + q) * W) : a;
        }
        cell_update(H, n, z[0], z[1], z[2], z[3], c - B * H + r * H + u0, gt + r * G + u0, c + r * H + u0,
                    h + r * H + u0);
      }
    }
    if (t >= first_read) {
      const int64_t k = t - first_read;
      loss_sum += readout(s, m, k, h, w_out, b_out, gy + k * B * O, gyt);
    }
  }
  s.loss[m] = mean_loss(s, loss_sum);

  // ---- backward: δ_t, ∂z_t and ‖δ_t‖² step by step, then every weight gradient as one GEMM ----
  int64_t total = 0;
  for (int64_t p = 0; p < kLstmTrainParams; ++p) total += sizes[p];
  T* grads = grow(w.grads, total);
  T* g_ih = grads;
  T* g_hh = g_ih + sizes[0];
  T* g_b = g_hh + sizes[1];
  T* g_out = g_b + sizes[2];
  T* g_bout = g_out + sizes[3];
  int64_t ldv;
  pack_panels(w_hh, G, H, /*transpose=*/false, w.wp, ldv);
  T* v = grow(w.v, B * ldv);
  T* dc = grow(w.dc, B * H);
  std::fill(dc, dc + B * H, T(0));
  T* dz = grow(w.dz, B * G);
  T* dzt = grow(w.dzt, G * TB);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* c = cs + (t + 1) * B * H;
    const T* gt = gates + t * B * G;
    const T* gyk = t >= first_read ? gy + (t - first_read) * B * O : nullptr;
    for (int64_t r = 0; r < B; ++r) {
      V sq = V::zero();
      for (int64_t j = 0; j < H; j += W) {  // δ_t = ∂⁺L/∂h_t + v_{t+1}, kept in registers
        const int n = static_cast<int>(std::min<int64_t>(W, H - j));
        V d = t < Tn - 1 ? load_n(v + r * ldv + j, n) : V::zero();
        if (gyk)
          for (int64_t o = 0; o < O; ++o) d = fmadd(V::broadcast(gyk[r * O + o]), load_n(w_out + o * H + j, n), d);
        sq = fmadd(d, d, sq);
        T* dcr = dc + r * H + j;
        const GateGrads<T> dz_j = cell_backward_units(H, n, d, load_n(dcr, n), gt + r * G + j, c + r * H + j,
                                                      c - B * H + r * H + j, dcr);
        const V parts[4] = {dz_j.i, dz_j.f, dz_j.g, dz_j.o};
        for (int q = 0; q < 4; ++q) {
          store_n(parts[q], dz + r * G + q * H + j, n);
          // into dzt's column from a full-width copy: reading back the masked store to dz would
          // wait for it to retire (no store forwarding from masked stores)
          alignas(64) T lanes[W];
          parts[q].store(lanes);
          for (int l = 0; l < n; ++l) dzt[(q * H + j + l) * TB + t * B + r] = lanes[l];
        }
      }
      s.delta_sq[(m * Tn + t) * B + r] = hsum(sq);
    }
    // v_t = ∂z_t W_hh: δ_{t−1}'s recurrent part, and at t = 0 only ‖v_0‖² (as lstm_backward)
    gemm_packed<T>(B, G, dz, G, w.wp.data(), ldv, v, ldv);
    for (int64_t r = 0; r < B; ++r) s.v_sq[(m * Tn + t) * B + r] = squared_norm(H, v + r * ldv);
  }
  // ∂W_hh = Σ_{t ≥ 1} ∂z_tᵀ h_{t−1} (h_0 = 0), ∂W_ih = Σ_t ∂z_tᵀ x_t, ∂W_out = Σ_k gy_kᵀ h_{T−K+k}
  if (Tn > 1) gradient_gemm(w, G, (Tn - 1) * B, dzt + B, TB, hs, H, g_hh);
  else std::fill(g_hh, g_hh + sizes[1], T(0));
  gradient_gemm(w, G, TB, dzt, TB, x, I, g_ih);
  gradient_gemm(w, O, K * B, gyt, K * B, hs + first_read * B * H, H, g_out);
  for (int64_t j = 0; j < G; ++j) g_b[j] = row_sum(TB, dzt + j * TB);
  for (int64_t o = 0; o < O; ++o) g_bout[o] = row_sum(K * B, gyt + o * K * B);

  // ---- the global norm, clipping with the safeguard, the optimizer step ----
  clip_and_update(s, m, grads, sizes, /*recurrent=*/1);
}

}  // namespace lstm
}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's kernel getter, lstm_train_step_kernel_<isa><T>() (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_LSTM_TRAIN_STEP(getter)                                                  \
  namespace rnnlab::cpu {                                                                      \
  template <typename T>                                                                        \
  LstmTrainStepFn<T> getter() {                                                                \
    return &RNNLAB_ISA_NS::train_step::lstm::run_model<T>;                                     \
  }                                                                                            \
  template LstmTrainStepFn<float> getter<float>();                                             \
  template LstmTrainStepFn<double> getter<double>();                                           \
  }
