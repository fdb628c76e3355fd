// The fused LSTM training update with one model per vector lane, written once and compiled per
// ISA by lstm_train_step_<isa>.cpp (API and math in lstm_train_step.h). The layout, its padding
// and everything but the recurrence are every cell's (train_step_lanes.h); the cell update,
// forward and backward, is the LSTM kernels' (lstm_impl.h cell_update, cell_backward_units) on
// vectors of W models, so all three paths run the same gate math.
#pragma once

#include "kernels/cpu/lstm_impl.h"
#include "kernels/cpu/lstm_train_step.h"
#include "kernels/cpu/train_step_lanes.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {
// A namespace of its own: the other cells' lanes kernels define their Workspace and run_group in
// the same ISA namespace (other translation units), and two definitions of one name would break
// the ODR.
namespace lstm_lanes {

using namespace lanes;

// The lanes layout's bound on H, measured for the GRU and the LSTM alike (train_step_lanes.h).
template <typename T>
constexpr int64_t kMaxHidden = kGatedMaxHidden<T>;

// Gate blocks of the interleaved W_ih, W_hh, of z_t and of ∂z_t: i, f, g, o.
constexpr int64_t kGates = 4;

template <typename T>
struct Workspace : LaneWorkspace<T> {
  LaneBuffer<T> hs;     // [T, Bp, Hp] states h_1 … h_T
  LaneBuffer<T> cs;     // [T + 1, Bp, Hp] cell states c_0 = 0, c_1 … c_T
  LaneBuffer<T> gates;  // [T, Bp, 4Hp] the activated gates i, f, g, o of every step
  LaneBuffer<T> z;      // [Bp, 4Hp] z_t, then ∂z_t
  LaneBuffer<T> v;      // [Bp, Hp] v_{t+1} on entry to step t's backward, then v_t
  LaneBuffer<T> dc;     // [Bp, Hp] ε_{t+1} ⊙ f_{t+1}, the cell-state path of the backward
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

// z_t = W_ih|b (x_t, 1) + W_hh h_{t−1} into z [Bp, 4Hp] (h_prev nullptr at t = 0: h_0 = 0), then
// the cell update of every row and unit (padding included, on zeros, so that every state the
// GEMMs read is finite): gates, c_t and h_t.
template <typename T>
void forward_step(const GroupShape& g, const T* params, const T* x_t, const T* h_prev, const T* c_prev, T* z,
                  T* gates, T* c, T* h) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp, P = kGates * Hp;
  const Term<T> terms[2] = {{x_t, g.Ix * W, W, params + g.ih, W, g.Ix * W, g.Ia},
                            {h_prev, Hp * W, W, params + g.hh, W, Hp * W, g.H}};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, P, terms, h_prev ? 2 : 1, [](int64_t, int64_t) { return V::zero(); },
                               [&](int64_t r, int64_t j0, const V* a) { store_row<kC>(a, z + (r * P + j0) * W); });
  for (int64_t r = 0; r < g.Bp; ++r)
    for (int64_t j = 0; j < Hp; ++j) {
      const T* zr = z + (r * P + j) * W;
      const int64_t at = (r * Hp + j) * W;
      cell_update(Hp * W, static_cast<int>(W), V::load(zr), V::load(zr + Hp * W), V::load(zr + 2 * Hp * W),
                  V::load(zr + 3 * Hp * W), c_prev + at, gates + (r * P + j) * W, c + at, h + at);
    }
}

// δ_t = ∂⁺L/∂h_t + v_{t+1} (delta_gemm), ‖δ_t‖² per row into sq, and through the cell's backward
// ∂z_t into dz [Bp, 4Hp] and ε'_t into dc.
template <typename T>
void delta_step(const GroupShape& g, const T* params, const T* gy_k, const T* v, const T* gates, const T* c,
                const T* c_prev, T* dc, T* dz, T* sq) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp, P = kGates * Hp;
  std::fill(sq, sq + g.Bp * W, T(0));
  delta_gemm(g, params, gy_k, v, [&](int64_t r, int64_t j0, const V* d) {
    V sum = V::zero();
    for (int col = 0; col < kC; ++col) {
      const int64_t j = j0 + col, at = (r * Hp + j) * W;
      if (j < g.H) sum = fmadd(d[col], d[col], sum);
      const GateGrads<T> dz_j = cell_backward_units(Hp * W, static_cast<int>(W), d[col], V::load(dc + at),
                                                    gates + (r * P + j) * W, c + at, c_prev + at, dc + at);
      T* out = dz + (r * P + j) * W;
      dz_j.i.store(out);
      dz_j.f.store(out + Hp * W);
      dz_j.g.store(out + 2 * Hp * W);
      dz_j.o.store(out + 3 * Hp * W);
    }
    (V::load(sq + r * W) + sum).store(sq + r * W);
  });
}

// The update of models m0 … m0 + n − 1 (n = min(W, M − m0)), one per lane.
template <typename T>
void run_group(const LstmTrainStep<T>& s, int64_t m0) {
  constexpr int64_t W = Vec<T>::size;
  const int64_t n = std::min<int64_t>(W, s.M - m0);
  const GroupShape g(s, W, kGates, /*units=*/0);
  const int64_t Tn = g.T, first_read = Tn - g.K, Hp = g.Hp, P = kGates * Hp;
  const int64_t state = g.Bp * Hp * W, step_gates = g.Bp * P * W, x_step = g.Bp * g.Ix * W;
  Workspace<T>& w = workspace<T>();
  begin_group(s, g, m0, n, w);
  const T* params = w.params.data();
  T* grads = w.grads.data();
  T* x = w.x.data();
  T* hs = grow(w.hs, Tn * state);
  T* cs = grow(w.cs, (Tn + 1) * state);
  std::fill(cs, cs + state, T(0));
  T* gates = grow(w.gates, Tn * step_gates);
  T* z = grow(w.z, step_gates);
  T* v = grow(w.v, state);
  T* dc = grow(w.dc, state);
  std::fill(dc, dc + state, T(0));
  T* sq = w.sq.data();

  // ---- forward, with the read-out, the loss and ∂W_out, ∂b_out at the read-out steps ----
  double loss_sum[W] = {};
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * state;
    gather_inputs(s, g, m0, n, t, x + t * x_step);
    forward_step(g, params, x + t * x_step, t > 0 ? h - state : nullptr, cs + t * state, z, gates + t * step_gates,
                 cs + (t + 1) * state, h);
    if (t >= first_read) lane_readout(s, g, m0, n, t - first_read, h, w, loss_sum);
  }

  // ---- backward: δ_t, ∂z_t, ‖δ_t‖², the weight gradients of step t, v_t = ∂z_t W_hh, ‖v_t‖² ----
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* h_prev = t > 0 ? hs + (t - 1) * state : nullptr;
    const T* gy_k = t >= first_read ? w.gy.data() + (t - first_read) * g.Bp * g.Op * W : nullptr;
    delta_step(g, params, gy_k, t < Tn - 1 ? v : nullptr, gates + t * step_gates, cs + (t + 1) * state, cs + t * state,
               dc, z, sq);
    std::copy(sq, sq + g.B * W, w.delta_sq.data() + t * g.B * W);
    input_weight_gradients(g, z, P * W, /*row0=*/0, P, x + t * x_step, grads);
    if (h_prev) recurrent_weight_gradients(g, z, P * W, /*row0=*/0, P, h_prev, grads);  // h_0 = 0
    // at t = 0 only ‖v_0‖² (as lstm_backward)
    recurrent_gradient(g, params, z, P * W, /*init=*/static_cast<const T*>(nullptr), v, sq);
    std::copy(sq, sq + g.B * W, w.v_sq.data() + t * g.B * W);
  }
  end_group(s, g, m0, n, w, loss_sum);
}

}  // namespace lstm_lanes
}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's lanes-layout getter, lstm_train_step_lanes_kernel_<isa><T>()
// (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_LSTM_TRAIN_STEP_LANES(getter)                                                   \
  namespace rnnlab::cpu {                                                                             \
  template <typename T>                                                                               \
  LanesKernel<LstmTrainStep<T>> getter() {                                                    \
    return {&RNNLAB_ISA_NS::train_step::lstm_lanes::run_group<T>, RNNLAB_ISA_NS::Vec<T>::size,        \
            RNNLAB_ISA_NS::train_step::lstm_lanes::kMaxHidden<T>};                                       \
  }                                                                                                   \
  template LanesKernel<LstmTrainStep<float>> getter<float>();                                 \
  template LanesKernel<LstmTrainStep<double>> getter<double>();                               \
  }
