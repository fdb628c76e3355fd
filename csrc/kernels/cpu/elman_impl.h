// Elman forward and backward kernels, written once and compiled per ISA by elman_<isa>.cpp.
// The API, shapes and math are documented in elman.h.
#pragma once

#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/elman.h"
#include "kernels/cpu/gemm_rows.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

template <typename T>
struct Layout {  // offsets into the dense [M, T, B, H] / [M, B, H] / [M, T, B] tensors
  const RecurrenceShape& s;
  int64_t seq(int64_t m, int64_t t, int64_t b) const { return ((m * s.T + t) * s.B + b) * s.H; }
  int64_t state(int64_t m, int64_t b) const { return (m * s.B + b) * s.H; }
  int64_t stat(int64_t m, int64_t t, int64_t b) const { return (m * s.T + t) * s.B + b; }
};

template <typename T, Activation A>
void elman_forward_tile(const RecurrenceShape& s, BatchTile tile, const T* xp, const T* w_hh, const T* h0, T* hs) {
  using V = Vec<T>;
  const int64_t H = s.H, m = tile.model;
  const Layout<T> at{s};
  std::vector<T> wt;  // w_hhᵀ in column panels: panel p holds wt[k, j] = w_hh[j, k] for its columns j
  int64_t ldc;
  pack_panels(w_hh + m * H * H, H, H, /*transpose=*/true, wt, ldc);
  const int64_t rows = tile.row_end - tile.row_begin;
  std::vector<T> acc(static_cast<size_t>(rows * ldc));  // h_{t-1} w_hhᵀ for the tile's rows

  for (int64_t t = 0; t < s.T; ++t) {
    const T* h_prev = t == 0 ? h0 + at.state(m, tile.row_begin) : hs + at.seq(m, t - 1, tile.row_begin);
    gemm_packed<T>(rows, H, h_prev, H, wt.data(), ldc, acc.data(), ldc);
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = xp + at.seq(m, t, tile.row_begin + r);
      T* h = hs + at.seq(m, t, tile.row_begin + r);
      const T* c = acc.data() + r * ldc;
      int64_t j = 0;
      for (; j + V::size <= H; j += V::size) Act<A, T>::f(V::load(x + j) + V::load(c + j)).store(h + j);
      if (j < H) {
        const int n = static_cast<int>(H - j);
        Act<A, T>::f(V::load(x + j, n) + V::load(c + j, n)).store(h + j, n);
      }
    }
  }
}

// Row-wise epilogue of a backward step, given v_t = u_t w_hh for one batch row (padded buffer).
// Writes ‖v_t‖², the regularizer row κ_t v_t, and either δ_{t-1}, u_{t-1} (t > 0) or ∂L/∂h_0.
template <typename T, Activation A>
struct BackwardRow {
  // δ = g (+ v), returns ‖δ‖², stores u = δ ⊙ φ'(h) into u_out.
  static T delta_to_u(int64_t H, const T* g, const T* v, const T* h, T* u_out) {
    using V = Vec<T>;
    V sq = V::zero();
    int64_t j = 0;
    auto step = [&](int n) {
      V d = V::load(g + j, n);
      if (v) d = d + V::load(v + j, n);
      sq = fmadd(d, d, sq);
      (d * Act<A, T>::df_from_h(V::load(h + j, n))).store(u_out + j, n);
    };
    for (; j + V::size <= H; j += V::size) step(V::size);
    if (j < H) step(static_cast<int>(H - j));
    return hsum(sq);
  }

  static T squared_norm(int64_t H, const T* v) {
    using V = Vec<T>;
    V sq = V::zero();
    int64_t j = 0;
    for (; j + V::size <= H; j += V::size) { const V x = V::load(v + j); sq = fmadd(x, x, sq); }
    if (j < H) { const V x = V::load(v + j, static_cast<int>(H - j)); sq = fmadd(x, x, sq); }
    return hsum(sq);
  }

  static void scale_copy(int64_t H, T k, const T* v, T* out) {
    using V = Vec<T>;
    const V kv = V::broadcast(k);
    int64_t j = 0;
    for (; j + V::size <= H; j += V::size) (kv * V::load(v + j)).store(out + j);
    if (j < H) { const int n = static_cast<int>(H - j); (kv * V::load(v + j, n)).store(out + j, n); }
  }
};

template <typename T, Activation A>
void elman_backward_tile(const RecurrenceShape& s, BatchTile tile, const T* grad_hs, const T* hs, const T* h0,
                         const T* w_hh, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v) {
  using Row = BackwardRow<T, A>;
  const int64_t H = s.H, m = tile.model, last = s.T - 1;
  const Layout<T> at{s};
  std::vector<T> wp;  // w_hh in column panels, as is: v_t[j] = Σ_i u_t[i] w_hh[i, j]
  int64_t ldc;
  pack_panels(w_hh + m * H * H, H, H, /*transpose=*/false, wp, ldc);
  const int64_t rows = tile.row_end - tile.row_begin;
  std::vector<T> acc(static_cast<size_t>(rows * ldc));  // v_t = u_t w_hh for the tile's rows

  for (int64_t b = tile.row_begin; b < tile.row_end; ++b)  // δ_T = ∂⁺L/∂h_T
    delta_sq[at.stat(m, last, b)] =
        Row::delta_to_u(H, grad_hs + at.seq(m, last, b), nullptr, hs + at.seq(m, last, b), grad_xp + at.seq(m, last, b));

  for (int64_t t = last; t >= 0; --t) {
    gemm_packed<T>(rows, H, grad_xp + at.seq(m, t, tile.row_begin), H, wp.data(), ldc, acc.data(), ldc);
    for (int64_t b = tile.row_begin; b < tile.row_end; ++b) {
      const T* v = acc.data() + (b - tile.row_begin) * ldc;
      const T a = Row::squared_norm(H, v);
      v_sq[at.stat(m, t, b)] = a;
      if (reg_v) {  // κ_t = m_t (r_t − 1)/c_t, SPEC §2.5
        const T c = delta_sq[at.stat(m, t, b)];
        const T kappa = c >= T(kOmegaBound) ? (a / c - T(1)) / c : T(0);
        Row::scale_copy(H, kappa, v, reg_v + at.seq(m, t, b));
      }
      if (t > 0) {
        delta_sq[at.stat(m, t - 1, b)] = Row::delta_to_u(H, grad_hs + at.seq(m, t - 1, b), v, hs + at.seq(m, t - 1, b),
                                                         grad_xp + at.seq(m, t - 1, b));
      } else {
        Row::scale_copy(H, T(1), v, grad_h0 + at.state(m, b));
      }
    }
  }
}

// One function pointer per dtype: the activation is a template parameter inside, picked here.
template <typename T>
void forward_dispatch(const RecurrenceShape& s, BatchTile tile, Activation act, const T* xp, const T* w, const T* h0, T* hs) {
  switch (act) {
    case Activation::Tanh: return elman_forward_tile<T, Activation::Tanh>(s, tile, xp, w, h0, hs);
    case Activation::Relu: return elman_forward_tile<T, Activation::Relu>(s, tile, xp, w, h0, hs);
    case Activation::Sigmoid: return elman_forward_tile<T, Activation::Sigmoid>(s, tile, xp, w, h0, hs);
    case Activation::Identity: return elman_forward_tile<T, Activation::Identity>(s, tile, xp, w, h0, hs);
  }
}

template <typename T>
void backward_dispatch(const RecurrenceShape& s, BatchTile tile, Activation act, const T* g, const T* hs, const T* h0,
                       const T* w, T* gx, T* gh0, T* dsq, T* vsq, T* reg) {
  switch (act) {
    case Activation::Tanh: return elman_backward_tile<T, Activation::Tanh>(s, tile, g, hs, h0, w, gx, gh0, dsq, vsq, reg);
    case Activation::Relu: return elman_backward_tile<T, Activation::Relu>(s, tile, g, hs, h0, w, gx, gh0, dsq, vsq, reg);
    case Activation::Sigmoid: return elman_backward_tile<T, Activation::Sigmoid>(s, tile, g, hs, h0, w, gx, gh0, dsq, vsq, reg);
    case Activation::Identity: return elman_backward_tile<T, Activation::Identity>(s, tile, g, hs, h0, w, gx, gh0, dsq, vsq, reg);
  }
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's kernel tables, elman_kernels_<isa><T>().
#define RNNLAB_DEFINE_ELMAN_KERNELS(getter)                                                              \
  namespace rnnlab::cpu {                                                                                \
  template <typename T>                                                                                  \
  const ElmanKernels<T>& getter() {                                                                      \
    static const ElmanKernels<T> k{RNNLAB_ISA_NS::kMR, &RNNLAB_ISA_NS::forward_dispatch<T>, &RNNLAB_ISA_NS::backward_dispatch<T>}; \
    return k;                                                                                            \
  }                                                                                                      \
  template const ElmanKernels<float>& getter<float>();                                                   \
  template const ElmanKernels<double>& getter<double>();                                                 \
  }
