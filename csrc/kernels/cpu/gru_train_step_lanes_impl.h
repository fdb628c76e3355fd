// The fused GRU training update with one model per vector lane, written once and compiled per
// ISA by gru_train_step_<isa>.cpp (API and math in gru_train_step.h). The layout, its padding
// and everything but the recurrence are every cell's (train_step_lanes.h); the gate math is the
// row layout's (gru_train_step_impl.h), lane by lane.
#pragma once

#include "kernels/cpu/gru_train_step.h"
#include "kernels/cpu/train_step_lanes.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {
// A namespace of its own: the other cells' lanes kernels define their Workspace and run_group in
// the same ISA namespace (other translation units), and two definitions of one name would break
// the ODR.
namespace gru_lanes {

using namespace lanes;

// The lanes layout's bound on H, measured for the GRU and the LSTM alike (train_step_lanes.h).
template <typename T>
constexpr int64_t kMaxHidden = kGatedMaxHidden<T>;

// Gate blocks of the interleaved W_ih, W_hh (r, z, n) and of the per-step buffers below.
constexpr int64_t kGates = 3;

template <typename T>
struct Workspace : LaneWorkspace<T> {
  LaneBuffer<T> hs;     // [T, Bp, Hp] states h_1 … h_T
  LaneBuffer<T> gates;  // [T, Bp, 4Hp] r, z, n, hn of every step, for the backward
  LaneBuffer<T> pre;    // [Bp, 4Hp] p_r + a_r, p_z + a_z, p_n, a_n of the step
  LaneBuffer<T> v;      // [Bp, Hp] v_{t+1} on entry to step t's backward, then v_t
  LaneBuffer<T> d;      // [Bp, 4Hp] ∂r, ∂z, ∂hn, ∂n of the step
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

// The step's gate pre-activations into pre [Bp, 4Hp]: r and z from (x_t, 1) and h_{t−1} summed,
// the candidate's input part p_n = W_in|b_n (x_t, 1) and hidden part a_n = W_hn h_{t−1} apart
// (r multiplies a_n + b_hn). h_prev: h_{t−1}, or nullptr at t = 0 (h_0 = 0: a = 0).
template <typename T>
void preactivations(const GroupShape& g, const T* params, const T* x_t, const T* h_prev, T* pre) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp, Ix = g.Ix, P = 4 * Hp;
  const auto zero = [](int64_t, int64_t) { return V::zero(); };
  const auto store_at = [&](int64_t col0) {
    return [=](int64_t r, int64_t j0, const V* a) { store_row<kC>(a, pre + (r * P + col0 + j0) * W); };
  };
  const Term<T> rz[2] = {{x_t, Ix * W, W, params + g.ih, W, Ix * W, g.Ia},
                         {h_prev, Hp * W, W, params + g.hh, W, Hp * W, g.H}};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, 2 * Hp, rz, h_prev ? 2 : 1, zero, store_at(0));
  const Term<T> pn{x_t, Ix * W, W, params + g.ih + 2 * Hp * Ix * W, W, Ix * W, g.Ia};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, Hp, &pn, 1, zero, store_at(2 * Hp));
  const Term<T> an{h_prev, Hp * W, W, params + g.hh + 2 * Hp * Hp * W, W, Hp * W, g.H};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, Hp, &an, h_prev ? 1 : 0, zero, store_at(3 * Hp));
}

// r = σ(p_r + a_r), z = σ(p_z + a_z), hn = a_n + b_hn, n = tanh(p_n + r ⊙ hn),
// h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}, for every row and unit of the group (padding included, on
// zeros, so that every state the GEMMs read is finite); r, z, n, hn into gates [Bp, 4Hp].
template <typename T>
void cell_step(const GroupShape& g, const T* params, const T* pre, const T* h_prev, T* gates, T* h) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp, P = 4 * Hp;
  const T* b_hn = params + g.unit;
  for (int64_t r = 0; r < g.Bp; ++r)
    for (int64_t j = 0; j < Hp; ++j) {
      const T* p = pre + (r * P + j) * W;
      T* gr = gates + (r * P + j) * W;
      const V rg = vsigmoid(V::load(p)), zg = vsigmoid(V::load(p + Hp * W));
      const V hn = V::load(p + 3 * Hp * W) + V::load(b_hn + j * W);
      const V c = vtanh(fmadd(rg, hn, V::load(p + 2 * Hp * W)));  // the candidate n
      const V hp = h_prev ? V::load(h_prev + (r * Hp + j) * W) : V::zero();
      rg.store(gr);
      zg.store(gr + Hp * W);
      c.store(gr + 2 * Hp * W);
      hn.store(gr + 3 * Hp * W);
      fmadd(zg, hp - c, c).store(h + (r * Hp + j) * W);  // (1 − z) n + z h_{t−1}
    }
}

// δ_t = ∂⁺L/∂h_t + v_{t+1} (delta_gemm), ‖δ_t‖² per row into sq, the gate gradients
// ∂n = δ (1 − z)(1 − n²), ∂r = ∂n ⊙ hn ⊙ r(1 − r), ∂z = δ (h_{t−1} − n) z(1 − z), ∂hn = ∂n ⊙ r
// into d [Bp, 4Hp] (order r, z, hn, n), and v's skip part δ ⊙ z into v.
template <typename T>
void delta_step(const GroupShape& g, const T* params, const T* gy_k, T* v, bool has_next, const T* gates,
                const T* h_prev, T* d, T* sq) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp, P = 4 * Hp;
  const V one = V::broadcast(T(1));
  std::fill(sq, sq + g.Bp * W, T(0));
  delta_gemm(g, params, gy_k, has_next ? v : nullptr, [&](int64_t r, int64_t j0, const V* acc) {
    V sum = V::zero();
    for (int c = 0; c < kC; ++c) {
      const int64_t j = j0 + c;
      const V dl = acc[c];
      if (j < g.H) sum = fmadd(dl, dl, sum);
      const T* gr = gates + (r * P + j) * W;
      const V rg = V::load(gr), zg = V::load(gr + Hp * W), cn = V::load(gr + 2 * Hp * W), hn = V::load(gr + 3 * Hp * W);
      const V hp = h_prev ? V::load(h_prev + (r * Hp + j) * W) : V::zero();
      const V dn = dl * (one - zg) * (one - cn * cn);
      T* dr = d + (r * P + j) * W;
      (dn * hn * rg * (one - rg)).store(dr);
      (dl * (hp - cn) * zg * (one - zg)).store(dr + Hp * W);
      (dn * rg).store(dr + 2 * Hp * W);
      dn.store(dr + 3 * Hp * W);
      (dl * zg).store(v + (r * Hp + j) * W);
    }
    (V::load(sq + r * W) + sum).store(sq + r * W);
  });
}

// The update of models m0 … m0 + n − 1 (n = min(W, M − m0)), one per lane.
template <typename T>
void run_group(const TrainStep<T>& s, int64_t m0) {
  using V = Vec<T>;
  constexpr int64_t W = V::size;
  const int64_t n = std::min<int64_t>(W, s.M - m0);
  const GroupShape g(s, W, kGates, /*units=*/1);
  const int64_t Tn = g.T, first_read = Tn - g.K, Hp = g.Hp, P = 4 * Hp;
  const int64_t state = g.Bp * Hp * W, step_gates = g.Bp * P * W, x_step = g.Bp * g.Ix * W;
  Workspace<T>& w = workspace<T>();
  begin_group(s, g, m0, n, w);
  const T* params = w.params.data();
  T* grads = w.grads.data();
  T* x = w.x.data();
  T* hs = grow(w.hs, Tn * state);
  T* gates = grow(w.gates, Tn * step_gates);
  T* pre = grow(w.pre, step_gates);
  T* v = grow(w.v, state);
  T* d = grow(w.d, step_gates);
  T* sq = w.sq.data();

  // ---- forward, with the read-out, the loss and ∂W_out, ∂b_out at the read-out steps ----
  double loss_sum[W] = {};
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * state;
    const T* h_prev = t > 0 ? h - state : nullptr;
    gather_inputs(s, g, m0, n, t, x + t * x_step);
    preactivations(g, params, x + t * x_step, h_prev, pre);
    cell_step(g, params, pre, h_prev, gates + t * step_gates, h);
    if (t >= first_read) lane_readout(s, g, m0, n, t - first_read, h, w, loss_sum);
  }

  // ---- backward: δ_t, the gate gradients, ‖δ_t‖², the weight gradients of step t, v_t, ‖v_t‖² ----
  T* g_bhn = grads + g.unit;
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* h_prev = t > 0 ? hs + (t - 1) * state : nullptr;
    const T* gy_k = t >= first_read ? w.gy.data() + (t - first_read) * g.Bp * g.Op * W : nullptr;
    delta_step(g, params, gy_k, v, t < Tn - 1, gates + t * step_gates, h_prev, d, sq);
    std::copy(sq, sq + g.B * W, w.delta_sq.data() + t * g.B * W);
    // ∂W_ih|b: rows r, z from ∂r, ∂z, rows n from ∂n; ∂W_hh from ∂r, ∂z, ∂hn (t ≥ 1: h_0 = 0)
    input_weight_gradients(g, d, P * W, /*row0=*/0, 2 * Hp, x + t * x_step, grads);
    input_weight_gradients(g, d + 3 * Hp * W, P * W, /*row0=*/2 * Hp, Hp, x + t * x_step, grads);
    if (h_prev) recurrent_weight_gradients(g, d, P * W, /*row0=*/0, 3 * Hp, h_prev, grads);
    for (int64_t j = 0; j < Hp; ++j) {  // ∂b_hn += Σ_rows ∂hn
      V sum = V::load(g_bhn + j * W);
      for (int64_t r = 0; r < g.B; ++r) sum = sum + V::load(d + (r * P + 2 * Hp + j) * W);
      sum.store(g_bhn + j * W);
    }
    // v_t = [∂r, ∂z, ∂hn] W_hh + δ_t ⊙ z (at t = 0 only ‖v_0‖² for Ω, as gru_backward)
    recurrent_gradient(g, params, d, P * W, /*init=*/v, v, sq);
    std::copy(sq, sq + g.B * W, w.v_sq.data() + t * g.B * W);
  }
  end_group(s, g, m0, n, w, loss_sum);
}

}  // namespace gru_lanes
}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's lanes-layout getter, gru_train_step_lanes_kernel_<isa><T>()
// (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_GRU_TRAIN_STEP_LANES(getter)                                                    \
  namespace rnnlab::cpu {                                                                             \
  template <typename T>                                                                               \
  LanesKernel<TrainStep<T>> getter() {                                                        \
    return {&RNNLAB_ISA_NS::train_step::gru_lanes::run_group<T>, RNNLAB_ISA_NS::Vec<T>::size,         \
            RNNLAB_ISA_NS::train_step::gru_lanes::kMaxHidden<T>};                                        \
  }                                                                                                   \
  template LanesKernel<TrainStep<float>> getter<float>();                                     \
  template LanesKernel<TrainStep<double>> getter<double>();                                   \
  }
