// Elman forward and backward kernels, written once and compiled per ISA by elman_<isa>.cpp.
// The API, shapes and math are documented in elman.h.
#pragma once

#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/elman.h"
#include "kernels/cpu/gemm_rows.h"
#include "kernels/cpu/row_ops.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

// The backward epilogues run over n contiguous values: a dense block of batch rows, or one row
// when the GEMM output is padded (see dense_stride) or grad_hs's rows are not dense.

// h = φ((x + b) + c) for one row of H values.
template <typename T, Activation A>
inline void activate(int64_t H, const T* x, const T* b, const T* c, T* h) {
  for (int64_t j = 0; j < H; j += Vec<T>::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec<T>::size, H - j));
    store_n(Act<A, T>::f(load_n(x + j, k) + load_n(b + j, k) + load_n(c + j, k)), h + j, k);
  }
}

// d = g (+ v) into d_out; u = d ⊙ φ'(h) into u_out.
template <typename T, Activation A>
inline void delta_to_u(int64_t n, const T* g, const T* v, const T* h, T* d_out, T* u_out) {
  for (int64_t i = 0; i < n; i += Vec<T>::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec<T>::size, n - i));
    Vec<T> d = load_n(g + i, k);
    if (v) d = d + load_n(v + i, k);
    store_n(d, d_out + i, k);
    store_n(d * Act<A, T>::df_from_h(load_n(h + i, k)), u_out + i, k);
  }
}

// out = k·v
template <typename T>
inline void scale_copy(int64_t n, T k, const T* v, T* out) {
  for (int64_t i = 0; i < n; i += Vec<T>::size) {
    const int r = static_cast<int>(std::min<int64_t>(Vec<T>::size, n - i));
    store_n(Vec<T>::broadcast(k) * load_n(v + i, r), out + i, r);
  }
}

// out[r] = ‖x_r‖² for rows of length H stored one after the other.
template <typename T>
inline void row_squared_norms(int64_t rows, int64_t H, const T* x, T* out) {
  for (int64_t r = 0; r < rows; ++r) out[r] = squared_norm(H, x + r * H);
}

template <typename T, Activation A>
void elman_forward_tile(const RecurrenceShape& s, BatchTile tile, const T* xp, const T* bias, const T* w_hh, const T* h0,
                        T* hs) {
  const int64_t H = s.H, m = tile.model;
  const RecurrenceLayout at{s};
  std::vector<T> wt;  // w_hhᵀ in column panels: panel p holds wt[k, j] = w_hh[j, k] for its columns j
  int64_t ldb;
  pack_panels(w_hh + m * H * H, H, H, /*transpose=*/true, wt, ldb);
  const int64_t rows = tile.row_end - tile.row_begin;
  const int64_t ldc = dense_stride<T>(H, H, ldb);
  std::vector<T> acc(static_cast<size_t>(rows * ldc + ldb));  // h_{t-1} w_hhᵀ for the tile's rows
  const T* bias_m = bias + m * H;  // the model's b

  for (int64_t t = 0; t < s.T; ++t) {
    const T* h_prev = t == 0 ? h0 + at.state(m, tile.row_begin) : hs + at.seq(m, t - 1, tile.row_begin);
    gemm_packed<T>(rows, H, h_prev, H, wt.data(), ldb, acc.data(), ldc);
    const T* x = xp + at.seq(m, t, tile.row_begin);  // the tile's rows are contiguous in xp and hs
    T* h = hs + at.seq(m, t, tile.row_begin);
    for (int64_t r = 0; r < rows; ++r) activate<T, A>(H, x + r * H, bias_m, acc.data() + r * ldc, h + r * H);
  }
}

template <typename T, Activation A>
void elman_backward_tile(const RecurrenceShape& s, BatchTile tile, SeqRows<T> grad_hs, const T* hs, const T* h0,
                         const T* w_hh, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v) {
  const int64_t H = s.H, m = tile.model, last = s.T - 1, b0 = tile.row_begin;
  const RecurrenceLayout at{s};
  std::vector<T> wp;  // w_hh in column panels, as is: v_t[j] = Σ_i u_t[i] w_hh[i, j]
  int64_t ldb;
  pack_panels(w_hh + m * H * H, H, H, /*transpose=*/false, wp, ldb);
  const int64_t rows = tile.row_end - b0;
  const int64_t ldc = dense_stride<T>(H, H, ldb);
  // rows the epilogue treats as one flat array: all of them when v_t and the rows of grad_hs are
  // both dense (a broadcast grad_hs, b_stride 0, is read row by row)
  const int64_t block = ldc == H && grad_hs.b_stride == H ? rows : 1;
  std::vector<T> acc(static_cast<size_t>(rows * ldc + ldb));  // v_t = u_t w_hh for the tile's rows
  std::vector<T> delta(static_cast<size_t>(rows * H));      // δ_{t-1} of the tile's rows

  // δ_T = ∂⁺L/∂h_T
  for (int64_t r = 0; r < rows; r += block)
    delta_to_u<T, A>(block * H, grad_hs.row(m, last, b0 + r), nullptr, hs + at.seq(m, last, b0 + r),
                      delta.data() + r * H, grad_xp + at.seq(m, last, b0 + r));
  row_squared_norms(rows, H, delta.data(), delta_sq + at.stat(m, last, b0));

  for (int64_t t = last; t >= 0; --t) {
    gemm_packed<T>(rows, H, grad_xp + at.seq(m, t, b0), H, wp.data(), ldb, acc.data(), ldc);
    for (int64_t r = 0; r < rows; r += block) {
      const T* v = acc.data() + r * ldc;  // `block` rows of v_t, dense
      const int64_t b = b0 + r;
      row_squared_norms(block, H, v, v_sq + at.stat(m, t, b));
      if (reg_v) {  // κ_t = m_t (r_t − 1)/c_t, SPEC §2.5
        for (int64_t i = 0; i < block; ++i) {
          const T a = v_sq[at.stat(m, t, b + i)], c = delta_sq[at.stat(m, t, b + i)];
          const T kappa = c >= T(kOmegaBound) ? (a / c - T(1)) / c : T(0);
          scale_copy(H, kappa, v + i * H, reg_v + at.seq(m, t, b + i));
        }
      }
      if (t > 0) {
        delta_to_u<T, A>(block * H, grad_hs.row(m, t - 1, b), v, hs + at.seq(m, t - 1, b), delta.data(),
                          grad_xp + at.seq(m, t - 1, b));
        row_squared_norms(block, H, delta.data(), delta_sq + at.stat(m, t - 1, b));
      } else {
        copy_row(block * H, v, grad_h0 + at.state(m, b));
      }
    }
  }
}

// One function pointer per dtype: the activation is a template parameter inside, picked here.
template <typename T>
void forward_dispatch(const RecurrenceShape& s, BatchTile tile, Activation act, const T* xp, const T* b, const T* w,
                      const T* h0, T* hs) {
  switch (act) {
    case Activation::Tanh: return elman_forward_tile<T, Activation::Tanh>(s, tile, xp, b, w, h0, hs);
    case Activation::Relu: return elman_forward_tile<T, Activation::Relu>(s, tile, xp, b, w, h0, hs);
    case Activation::Sigmoid: return elman_forward_tile<T, Activation::Sigmoid>(s, tile, xp, b, w, h0, hs);
    case Activation::Identity: return elman_forward_tile<T, Activation::Identity>(s, tile, xp, b, w, h0, hs);
  }
}

template <typename T>
void backward_dispatch(const RecurrenceShape& s, BatchTile tile, Activation act, SeqRows<T> g, const T* hs, const T* h0,
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
