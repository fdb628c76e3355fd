// The fused GRU training update, written once and compiled per ISA by gru_train_step_<isa>.cpp.
// The API, shapes and math are documented in gru_train_step.h; the parts every cell shares
// (read-out and loss gradient, gradient GEMMs, clipping and the optimizer) in train_step_common.h.
#pragma once

#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/gru_train_step.h"
#include "kernels/cpu/train_step_common.h"

// The GRU's own names live in a namespace of their own: the Elman step's Workspace, workspace()
// and run_model in train_step are different templates under the same names, and the two would
// otherwise be one symbol to the linker.
namespace rnnlab::cpu::RNNLAB_ISA_NS::train_step::gru {

// Working memory of the thread that runs a model. It grows to the largest model the thread has
// run and is then reused by every later update, so a warm training loop allocates nothing, and it
// is per thread rather than per model: a model's states live only while its update runs.
template <typename T>
struct Workspace : GemmBuffers<T> {
  std::vector<T> hs;     // [T, B, H] states h_1 … h_T
  std::vector<T> gates;  // [T, B, 4H] r, z, n, hn of every step, for the backward
  std::vector<T> acc;    // [B, padded 3H] h_{t−1} W_hhᵀ
  std::vector<T> v;      // [B, padded H] v_{t+1} on entry to step t's backward, then v_t
  std::vector<T> gy;     // [K, B, O] ∂L/∂ŷ_t
  std::vector<T> gyt;    // [O, K·B] the same, transposed: ∂W_out = gyt · h_read in one GEMM
  std::vector<T> drec;   // [B, 3H] [∂r, ∂z, ∂hn] of step t: v_t's GEMM operand
  // [4H, T·B] ∂r, ∂z, ∂hn, ∂n of every step, transposed, in this row order: the first 3H rows are
  // ∂W_hh's operand for one GEMM, rows r, z and n of ∂W_ih two GEMMs over the small x
  std::vector<T> gt;
  std::vector<T> wih_t;  // [I, 3H] W_ihᵀ: x_t W_ihᵀ adds one row per input, vectorized over units
  std::vector<T> grads;  // the six gradients, laid out like the parameters
  std::vector<T> wt, wp;  // packed W_hhᵀ and W_hh
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

template <typename T>
void run_model(const TrainStep<T>& s, int64_t m) {
  using V = Vec<T>;
  const int64_t Tn = s.T_, B = s.B, I = s.I, H = s.H, O = s.O, K = s.K, TB = Tn * B, first_read = Tn - K;
  const int64_t G = 3 * H;
  const int64_t sizes[kGruTrainParams] = {G * I, G * H, G, H, O * H, O};
  const T* x = s.x + m * TB * I;
  const T* w_ih = s.params[0] + m * sizes[0];
  const T* w_hh = s.params[1] + m * sizes[1];
  const T* bias = s.params[2] + m * sizes[2];
  const T* b_hn = s.params[3] + m * sizes[3];
  const T* w_out = s.params[4] + m * sizes[4];
  const T* b_out = s.params[5] + m * sizes[5];
  Workspace<T>& w = workspace<T>();
  const V one = V::broadcast(T(1));

  // ---- forward: the recurrence with its input projection, the read-out and the loss ----
  int64_t ldf;
  pack_panels(w_hh, H, G, /*transpose=*/true, w.wt, ldf);
  T* hs = grow(w.hs, TB * H);
  T* gates = grow(w.gates, TB * 4 * H);
  T* acc = grow(w.acc, B * ldf);
  T* gy = grow(w.gy, K * B * O);
  T* gyt = grow(w.gyt, O * K * B);
  T* wih_t = grow(w.wih_t, I * G);
  for (int64_t j = 0; j < G; ++j)
    for (int64_t i = 0; i < I; ++i) wih_t[i * G + j] = w_ih[j * I + i];
  double loss_sum = 0;
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * B * H;
    const T* h_prev = t > 0 ? h - B * H : nullptr;  // h_0 = 0
    if (t > 0) gemm_packed<T>(B, H, h_prev, H, w.wt.data(), ldf, acc, ldf);
    for (int64_t r = 0; r < B; ++r) {
      const T* xr = x + (t * B + r) * I;
      T* gr = gates + (t * B + r) * 4 * H;
      for (int64_t j = 0; j < H; j += V::size) {
        const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
        V pr = load_n(bias + j, n), pz = load_n(bias + H + j, n), pn = load_n(bias + 2 * H + j, n);
        for (int64_t i = 0; i < I; ++i) {
          const V xi = V::broadcast(xr[i]);
          const T* wi = wih_t + i * G + j;
          pr = fmadd(xi, load_n(wi, n), pr);
          pz = fmadd(xi, load_n(wi + H, n), pz);
          pn = fmadd(xi, load_n(wi + 2 * H, n), pn);
        }
        V ar = V::zero(), az = V::zero(), an = V::zero(), hp = V::zero();
        if (t > 0) {
          const T* ac = acc + r * ldf + j;
          ar = load_n(ac, n), az = load_n(ac + H, n), an = load_n(ac + 2 * H, n);
          hp = load_n(h_prev + r * H + j, n);
        }
        const V rg = vsigmoid(ar + pr), zg = vsigmoid(az + pz);
        const V hn = an + load_n(b_hn + j, n);
        const V c = vtanh(fmadd(rg, hn, pn));  // the candidate n
        store_n(rg, gr + j, n);
        store_n(zg, gr + H + j, n);
        store_n(c, gr + 2 * H + j, n);
        store_n(hn, gr + 3 * H + j, n);
        store_n(fmadd(zg, hp - c, c), h + r * H + j, n);  // (1 − z) n + z h_{t−1}
      }
    }
    if (t >= first_read) {
      const int64_t k = t - first_read;
      loss_sum += readout(s, m, k, h, w_out, b_out, gy + k * B * O, gyt);
    }
  }
  s.loss[m] = mean_loss(s, loss_sum);

  // ---- backward: δ_t, the gate gradients and ‖δ_t‖² step by step, then the weight gradients as GEMMs ----
  int64_t total = 0;
  for (int64_t p = 0; p < kGruTrainParams; ++p) total += sizes[p];
  T* grads = grow(w.grads, total);
  T* g_ih = grads;
  T* g_hh = g_ih + sizes[0];
  T* g_b = g_hh + sizes[1];
  T* g_bhn = g_b + sizes[2];
  T* g_out = g_bhn + sizes[3];
  T* g_bout = g_out + sizes[4];
  int64_t ldv;
  pack_panels(w_hh, G, H, /*transpose=*/false, w.wp, ldv);
  T* v = grow(w.v, B * ldv);
  T* drec = grow(w.drec, B * G);
  T* gt = grow(w.gt, 4 * H * TB);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* h_prev = t > 0 ? hs + (t - 1) * B * H : nullptr;  // h_0 = 0
    const T* gyk = t >= first_read ? gy + (t - first_read) * B * O : nullptr;
    for (int64_t r = 0; r < B; ++r) {
      const T* gr = gates + (t * B + r) * 4 * H;
      T* dr_row = drec + r * G;
      T* vr = v + r * ldv;
      V sq = V::zero();
      for (int64_t j = 0; j < H; j += V::size) {  // δ_t = ∂⁺L/∂h_t + v_{t+1}, kept in registers
        const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
        V d = t < Tn - 1 ? load_n(vr + j, n) : V::zero();
        if (gyk)
          for (int64_t o = 0; o < O; ++o) d = fmadd(V::broadcast(gyk[r * O + o]), load_n(w_out + o * H + j, n), d);
        sq = fmadd(d, d, sq);
        const V rg = load_n(gr + j, n), zg = load_n(gr + H + j, n);
        const V c = load_n(gr + 2 * H + j, n), hn = load_n(gr + 3 * H + j, n);
        const V hp = t > 0 ? load_n(h_prev + r * H + j, n) : V::zero();
        const V dn = d * (one - zg) * (one - c * c);
        const V dr = dn * hn * rg * (one - rg);
        const V dz = d * (hp - c) * zg * (one - zg);
        const V dh = dn * rg;
        store_n(dr, dr_row + j, n);
        store_n(dz, dr_row + H + j, n);
        store_n(dh, dr_row + 2 * H + j, n);
        store_n(d * zg, vr + j, n);  // v_t's skip part; the GEMM below adds [∂r, ∂z, ∂hn] W_hh
        // into gt's columns from full-width copies: reading back the masked stores to drec would
        // wait for them to retire (no store forwarding from masked stores)
        alignas(64) T lanes[4][V::size];
        dr.store(lanes[0]);
        dz.store(lanes[1]);
        dh.store(lanes[2]);
        dn.store(lanes[3]);
        for (int q = 0; q < 4; ++q)
          for (int i = 0; i < n; ++i) gt[(q * H + j + i) * TB + t * B + r] = lanes[q][i];
      }
      s.delta_sq[(m * Tn + t) * B + r] = hsum(sq);
    }
    // v_t = [∂r, ∂z, ∂hn] W_hh + δ_t ⊙ z: δ_{t−1}'s recurrent part, and at t = 0 only ‖v_0‖² for
    // Ω (as gru_backward)
    gemm_packed<T>(B, G, drec, G, w.wp.data(), ldv, v, ldv, /*accumulate=*/true);
    for (int64_t r = 0; r < B; ++r) s.v_sq[(m * Tn + t) * B + r] = squared_norm(H, v + r * ldv);
  }
  // ∂W_hh = Σ_{t ≥ 1} [∂r, ∂z, ∂hn]_tᵀ h_{t−1} (h_0 = 0), ∂W_ih = Σ_t [∂r, ∂z, ∂n]_tᵀ x_t (its r, z
  // rows and its n rows: ∂hn lies between them in gt), ∂W_out = Σ_k gy_kᵀ h_{T−K+k}
  if (Tn > 1) gradient_gemm(w, G, (Tn - 1) * B, gt + B, TB, hs, H, g_hh);
  else std::fill(g_hh, g_hh + sizes[1], T(0));
  gradient_gemm(w, 2 * H, TB, gt, TB, x, I, g_ih);
  gradient_gemm(w, H, TB, gt + 3 * H * TB, TB, x, I, g_ih + 2 * H * I);
  gradient_gemm(w, O, K * B, gyt, K * B, hs + first_read * B * H, H, g_out);
  for (int64_t j = 0; j < 2 * H; ++j) g_b[j] = row_sum(TB, gt + j * TB);
  for (int64_t j = 0; j < H; ++j) {
    g_b[2 * H + j] = row_sum(TB, gt + (3 * H + j) * TB);
    g_bhn[j] = row_sum(TB, gt + (2 * H + j) * TB);
  }
  for (int64_t o = 0; o < O; ++o) g_bout[o] = row_sum(K * B, gyt + o * K * B);

  // ---- the global norm, clipping with the safeguard, the optimizer step ----
  clip_and_update(s, m, grads, sizes, /*recurrent=*/1);
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS::train_step::gru

// Defines the ISA's kernel getter, gru_train_step_kernel_<isa><T>() (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_GRU_TRAIN_STEP(getter)                                                   \
  namespace rnnlab::cpu {                                                                      \
  template <typename T>                                                                        \
  GruTrainStepFn<T> getter() {                                                                 \
    return &RNNLAB_ISA_NS::train_step::gru::run_model<T>;                                      \
  }                                                                                            \
  template GruTrainStepFn<float> getter<float>();                                              \
  template GruTrainStepFn<double> getter<double>();                                            \
  }
