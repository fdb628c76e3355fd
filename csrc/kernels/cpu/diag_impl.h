// Diagonal linear recurrence kernels, written once and compiled per ISA by diag_<isa>.cpp.
// The API, shapes and math are documented in diag.h.
//
// The recurrence is elementwise, so the kernel is bandwidth-bound: each step streams one slab of
// u in and one of h out, vectorized over the tile's columns. Complex numbers stay interleaved;
// λ·z is a ⊙ z + b ⊙ swap(z) with a = (λ_re, λ_re), b = (−λ_im, λ_im) per pair, two FMAs.
#pragma once

#include <vector>

#include "kernels/cpu/diag.h"
#include "kernels/cpu/row_ops.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

struct DiagLayout {  // offsets into the dense tensors of diag.h (real view)
  const DiagShape& s;
  int64_t seq(int64_t m, int64_t t, int64_t b) const { return ((m * s.T + t) * s.B + b) * s.Nr; }
  int64_t state(int64_t m, int64_t b) const { return (m * s.B + b) * s.Nr; }
  int64_t stats(int64_t slot, int64_t m, int64_t t) const { return ((slot * s.M + m) * s.T + t) * s.Nr; }
  int64_t lam(int64_t slot, int64_t m) const { return (slot * s.M + m) * s.Nr; }
  int64_t norm(int64_t slot, int64_t m, int64_t t, int64_t b) const { return ((slot * s.M + m) * s.T + t) * s.B + b; }
};

// λ over a tile's columns as the coefficient rows (a, b) above; b is unused for real λ.
template <typename T, bool Complex>
struct Lambda {
  std::vector<T> a, b;
  Lambda(const T* lam, int64_t cols) : a(lam, lam + cols), b(Complex ? cols : 0) {
    if constexpr (Complex) {
      for (int64_t j = 0; j < cols; j += 2) {
        a[j + 1] = a[j];
        b[j] = -lam[j + 1];
        b[j + 1] = lam[j + 1];
      }
    }
  }
  // λ ⊙ z, or conj(λ) ⊙ z, on the columns [j, j + n) of the tile.
  Vec<T> mul(int64_t j, int n, Vec<T> z) const {
    if constexpr (Complex) return fmadd(load_n(b.data() + j, n), swap_pairs(z), load_n(a.data() + j, n) * z);
    else return load_n(a.data() + j, n) * z;
  }
  Vec<T> conj_mul(int64_t j, int n, Vec<T> z) const {
    if constexpr (Complex) return load_n(a.data() + j, n) * z - load_n(b.data() + j, n) * swap_pairs(z);
    else return load_n(a.data() + j, n) * z;
  }
};

// Adds src to dst over n columns.
template <typename T>
inline void add_row(int64_t n, const T* src, T* dst) {
  for (int64_t j = 0; j < n; j += Vec<T>::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec<T>::size, n - j));
    store_n(load_n(dst + j, k) + load_n(src + j, k), dst + j, k);
  }
}

template <typename T, bool Complex, bool Stats>
void diag_forward_tile(const DiagShape& s, const DiagTile& tile, const T* u, const T* lam, const T* h0, T* hs, T* h_sq,
                       T* s_sq) {
  using V = Vec<T>;
  const int64_t m = tile.model, c0 = tile.col_begin, cols = tile.col_end - c0, rows = tile.row_end - tile.row_begin;
  const DiagLayout at{s};
  const Lambda<T, Complex> lambda(lam + m * s.Nr + c0, cols);
  std::vector<T> sens(Stats ? rows * cols : 0, T(0));  // F4 state s_t = ∂h_t/∂λ of every row

  for (int64_t t = 0; t < s.T; ++t) {
    // This step's Σ_b |h_t|², Σ_b |s_t|² per column, accumulated in place: the first row stores.
    T* sum_h = Stats ? h_sq + at.stats(tile.row_slot, m, t) + c0 : nullptr;
    T* sum_s = Stats ? s_sq + at.stats(tile.row_slot, m, t) + c0 : nullptr;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = tile.row_begin + r;
      const T* prev = (t == 0 ? h0 + at.state(m, b) : hs + at.seq(m, t - 1, b)) + c0;
      const T* x = u + at.seq(m, t, b) + c0;
      T* h = hs + at.seq(m, t, b) + c0;
      for (int64_t j = 0; j < cols; j += V::size) {
        const int n = static_cast<int>(std::min<int64_t>(V::size, cols - j));
        const V p = load_n(prev + j, n);
        const V hn = lambda.mul(j, n, p) + load_n(x + j, n);
        store_n(hn, h + j, n);
        if constexpr (Stats) {
          T* sr = sens.data() + r * cols + j;
          const V sn = lambda.mul(j, n, load_n(sr, n)) + p;  // s_t = λ s_{t-1} + h_{t-1}
          store_n(sn, sr, n);
          store_n(r == 0 ? hn * hn : fmadd(hn, hn, load_n(sum_h + j, n)), sum_h + j, n);
          store_n(r == 0 ? sn * sn : fmadd(sn, sn, load_n(sum_s + j, n)), sum_s + j, n);
        }
      }
    }
  }
}

template <typename T, bool Complex>
void diag_backward_tile(const DiagShape& s, const DiagTile& tile, const T* grad_hs, const T* hs, const T* h0,
                        const T* lam, T* grad_u, T* grad_h0, T* lam_p, T* lam_q, T* delta_sq, T* v_sq) {
  using V = Vec<T>;
  const int64_t m = tile.model, c0 = tile.col_begin, cols = tile.col_end - c0, rows = tile.row_end - tile.row_begin;
  const DiagLayout at{s};
  const Lambda<T, Complex> lambda(lam + m * s.Nr + c0, cols);
  // grad_λ terms, summed over the rows of one step first and then over steps: (B + T) rounding
  // steps per sum instead of B·T, which matters in float32 for long sequences.
  std::vector<T> p_step(cols), q_step(Complex ? cols : 0), p_sum(cols, T(0)), q_sum(Complex ? cols : 0, T(0));

  for (int64_t t = s.T - 1; t >= 0; --t) {
    std::fill(p_step.begin(), p_step.end(), T(0));
    std::fill(q_step.begin(), q_step.end(), T(0));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = tile.row_begin + r;
      const T* g = grad_hs + at.seq(m, t, b) + c0;
      const T* next = t + 1 < s.T ? grad_u + at.seq(m, t + 1, b) + c0 : nullptr;  // δ_{t+1}
      const T* prev = (t == 0 ? h0 + at.state(m, b) : hs + at.seq(m, t - 1, b)) + c0;
      T* d_out = grad_u + at.seq(m, t, b) + c0;
      V dsq = V::zero(), vsq = V::zero();
      for (int64_t j = 0; j < cols; j += V::size) {
        const int n = static_cast<int>(std::min<int64_t>(V::size, cols - j));
        V d = load_n(g + j, n);
        if (next) d = d + lambda.conj_mul(j, n, load_n(next + j, n));
        store_n(d, d_out + j, n);
        dsq = fmadd(d, d, dsq);
        const V v = lambda.conj_mul(j, n, d);
        vsq = fmadd(v, v, vsq);
        if (t == 0) store_n(v, grad_h0 + at.state(m, b) + c0 + j, n);
        const V p = load_n(prev + j, n);
        store_n(fmadd(p, d, load_n(p_step.data() + j, n)), p_step.data() + j, n);
        if constexpr (Complex) store_n(fmadd(p, swap_pairs(d), load_n(q_step.data() + j, n)), q_step.data() + j, n);
      }
      delta_sq[at.norm(tile.col_slot, m, t, b)] = hsum(dsq);
      v_sq[at.norm(tile.col_slot, m, t, b)] = hsum(vsq);
    }
    add_row(cols, p_step.data(), p_sum.data());
    if constexpr (Complex) add_row(cols, q_step.data(), q_sum.data());
  }
  copy_row(cols, p_sum.data(), lam_p + at.lam(tile.row_slot, m) + c0);
  if constexpr (Complex) copy_row(cols, q_sum.data(), lam_q + at.lam(tile.row_slot, m) + c0);
}

// One function pointer per dtype: complex-ness and statistics are template parameters inside.
template <typename T>
void diag_forward_dispatch(const DiagShape& s, const DiagTile& tile, const T* u, const T* lam, const T* h0, T* hs,
                           T* h_sq, T* s_sq) {
  if (s.complex) {
    if (h_sq) return diag_forward_tile<T, true, true>(s, tile, u, lam, h0, hs, h_sq, s_sq);
    return diag_forward_tile<T, true, false>(s, tile, u, lam, h0, hs, h_sq, s_sq);
  }
  if (h_sq) return diag_forward_tile<T, false, true>(s, tile, u, lam, h0, hs, h_sq, s_sq);
  return diag_forward_tile<T, false, false>(s, tile, u, lam, h0, hs, h_sq, s_sq);
}

template <typename T>
void diag_backward_dispatch(const DiagShape& s, const DiagTile& tile, const T* g, const T* hs, const T* h0, const T* lam,
                            T* gu, T* gh0, T* lp, T* lq, T* dsq, T* vsq) {
  if (s.complex) return diag_backward_tile<T, true>(s, tile, g, hs, h0, lam, gu, gh0, lp, lq, dsq, vsq);
  return diag_backward_tile<T, false>(s, tile, g, hs, h0, lam, gu, gh0, lp, lq, dsq, vsq);
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's kernel tables, diag_kernels_<isa><T>().
#define RNNLAB_DEFINE_DIAG_KERNELS(getter)                                                                         \
  namespace rnnlab::cpu {                                                                                          \
  template <typename T>                                                                                            \
  const DiagKernels<T>& getter() {                                                                                 \
    static const DiagKernels<T> k{&RNNLAB_ISA_NS::diag_forward_dispatch<T>, &RNNLAB_ISA_NS::diag_backward_dispatch<T>}; \
    return k;                                                                                                      \
  }                                                                                                                \
  template const DiagKernels<float>& getter<float>();                                                              \
  template const DiagKernels<double>& getter<double>();                                                            \
  }
