// The fused Elman training update with one model per vector lane, written once and compiled per
// ISA by elman_train_step_<isa>.cpp (API and math in elman_train_step.h). The layout, its
// padding and everything but the recurrence are every cell's (train_step_lanes.h).
#pragma once

#include "kernels/cpu/elman_train_step.h"
#include "kernels/cpu/train_step_lanes.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {
// A namespace of its own: the GRU's and LSTM's lanes kernels define their Workspace and run_group
// in the same ISA namespace (other translation units), and two definitions of one name would
// break the ODR.
namespace elman_lanes {

using namespace lanes;

// The op takes the lanes layout when H ≤ kMaxHidden (elman_train_step_ops.cpp). Above it the
// row layout is faster: the group's W-fold interleaved matrices (W_hh is W·H²) outgrow L1 and L2
// while the row layout's packed GEMMs reach full vectors. Measured per ISA and dtype
// (benchmarks/bench_sweep.py --layouts, docs/sweeps.md): on AVX-512 the layouts tie at H = 64
// and 96 and the rows win at 128; on AVX2 they tie at 32 and the rows win at 48 (float32) and 64
// (float64); the portable build's lanes are still 2× faster at 64.
#if defined(RNNLAB_ISA_AVX2)
constexpr int64_t kMaxHidden = 32;
#else
constexpr int64_t kMaxHidden = 64;
#endif

template <typename T>
struct Workspace : LaneWorkspace<T> {
  LaneBuffer<T> hs;    // [T, Bp, Hp] states h_1 … h_T
  LaneBuffer<T> u, v;  // [Bp, Hp] u_t, and v_t = u_t W_hh (δ_{t−1}'s recurrent part)
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

// h_t = φ(W_ih|b · (x_t, 1) + W_hh h_{t−1}) for the group's rows (h_0 = 0): the GEMM stores the
// pre-activations into h, then one pass applies φ in place (the same values, so the same bits).
// Not φ in the GEMM's epilogue: GCC hoists the constants of φ out of the block loops, and with
// those held in registers the 4×4 accumulator block no longer fits the register file and spilled
// inside the p loop (a load, FMA and store per accumulator; measured with the exp-based tanh's 18
// constant vectors; the rational tanh has 13, with 16 accumulators still more than 32 registers).
template <typename T, Activation A>
void forward_step(const GroupShape& g, const T* params, const T* x_t, const T* h_prev, T* h) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  const Term<T> terms[2] = {{x_t, g.Ix * W, W, params + g.ih, W, g.Ix * W, g.Ia},
                            {h_prev, Hp * W, W, params + g.hh, W, Hp * W, g.H}};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, Hp, terms, h_prev ? 2 : 1, [](int64_t, int64_t) { return V::zero(); },
                               [&](int64_t r, int64_t j0, const V* a) { store_row<kC>(a, h + (r * Hp + j0) * W); });
  for (int64_t e = 0; e < g.Bp * Hp; ++e) Act<A, T>::f(V::load(h + e * W)).store(h + e * W);
}

// δ_t = ∂⁺L/∂h_t + v_{t+1} (gy_k: read-out step k's ∂L/∂ŷ, or nullptr; v: v_{t+1}, or nullptr
// at t = T − 1), u_t = δ_t ⊙ φ'(a_t), and ‖δ_t‖² per row into sq.
template <typename T, Activation A>
void delta_step(const GroupShape& g, const T* params, const T* gy_k, const T* v, const T* h, T* u, T* sq) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  std::fill(sq, sq + g.Bp * W, T(0));
  delta_gemm(g, params, gy_k, v, [&](int64_t r, int64_t j0, const V* d) {
    V sum = V::zero();  // of the block row's true units, in registers: one update of sq per block row
    for (int c = 0; c < kC; ++c) {
      const int64_t at = (r * Hp + j0 + c) * W;
      if (j0 + c < g.H) sum = fmadd(d[c], d[c], sum);
      (d[c] * Act<A, T>::df_from_h(V::load(h + at))).store(u + at);
    }
    (V::load(sq + r * W) + sum).store(sq + r * W);
  });
}

// The update of models m0 … m0 + n − 1 (n = min(W, M − m0)), one per lane.
template <typename T, Activation A>
void run_group(const ElmanTrainStep<T>& s, int64_t m0) {
  constexpr int64_t W = Vec<T>::size;
  const int64_t n = std::min<int64_t>(W, s.M - m0);
  const GroupShape g(s, W, /*gates=*/1, /*units=*/0);
  const int64_t Tn = g.T, first_read = Tn - g.K, state = g.Bp * g.Hp * W, x_step = g.Bp * g.Ix * W;
  Workspace<T>& w = workspace<T>();
  begin_group(s, g, m0, n, w);
  const T* params = w.params.data();
  T* grads = w.grads.data();
  T* x = w.x.data();
  T* hs = grow(w.hs, Tn * state);
  T* u = grow(w.u, state);
  T* v = grow(w.v, state);
  T* sq = w.sq.data();

  // ---- forward, with the read-out, the loss and ∂W_out, ∂b_out at the read-out steps ----
  double loss_sum[W] = {};
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * state;
    gather_inputs(s, g, m0, n, t, x + t * x_step);
    forward_step<T, A>(g, params, x + t * x_step, t > 0 ? h - state : nullptr, h);
    if (t >= first_read) lane_readout(s, g, m0, n, t - first_read, h, w, loss_sum);
  }

  // ---- backward: δ_t, u_t, ‖δ_t‖², the weight gradients of step t, v_t and ‖v_t‖² ----
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* h = hs + t * state;
    const T* h_prev = t > 0 ? h - state : nullptr;
    const T* gy_k = t >= first_read ? w.gy.data() + (t - first_read) * g.Bp * g.Op * W : nullptr;
    delta_step<T, A>(g, params, gy_k, t < Tn - 1 ? v : nullptr, h, u, sq);
    std::copy(sq, sq + g.B * W, w.delta_sq.data() + t * g.B * W);
    input_weight_gradients(g, u, g.Hp * W, /*row0=*/0, g.Hp, x + t * x_step, grads);
    if (h_prev) recurrent_weight_gradients(g, u, g.Hp * W, /*row0=*/0, g.Hp, h_prev, grads);  // h_0 = 0
    // at t = 0 only ‖v_0‖² for Ω (as elman_backward)
    recurrent_gradient(g, params, u, g.Hp * W, /*init=*/static_cast<const T*>(nullptr), v, sq);
    std::copy(sq, sq + g.B * W, w.v_sq.data() + t * g.B * W);
  }
  end_group(s, g, m0, n, w, loss_sum);
}

template <typename T>
void group_dispatch(const ElmanTrainStep<T>& s, int64_t first_model) {
  switch (s.act) {
    case Activation::Tanh: return run_group<T, Activation::Tanh>(s, first_model);
    case Activation::Relu: return run_group<T, Activation::Relu>(s, first_model);
    case Activation::Sigmoid: return run_group<T, Activation::Sigmoid>(s, first_model);
    case Activation::Identity: return run_group<T, Activation::Identity>(s, first_model);
  }
}

}  // namespace elman_lanes
}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's lanes-layout getter, elman_train_step_lanes_kernel_<isa><T>()
// (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_ELMAN_TRAIN_STEP_LANES(getter)                                                  \
  namespace rnnlab::cpu {                                                                             \
  template <typename T>                                                                               \
  LanesKernel<ElmanTrainStep<T>> getter() {                                                   \
    return {&RNNLAB_ISA_NS::train_step::elman_lanes::group_dispatch<T>, RNNLAB_ISA_NS::Vec<T>::size,  \
            RNNLAB_ISA_NS::train_step::elman_lanes::kMaxHidden};                                      \
  }                                                                                                   \
  template LanesKernel<ElmanTrainStep<float>> getter<float>();                                \
  template LanesKernel<ElmanTrainStep<double>> getter<double>();                              \
  }
