// GRU forward and backward kernels, written once and compiled per ISA by gru_<isa>.cpp.
// The API, shapes and math are documented in gru.h.
//
// Forward: w_hhᵀ is packed gate-interleaved (gate_panels.h), so a 3-vector micro-kernel block
// yields a_r, a_z, a_n of the same units and the cell update runs on them while they are in L1.
// Backward: the cell epilogue of step t row by row, which also leaves δ_t ⊙ z (the skip part of
// v_t) in the v buffer, then one accumulating gemm_packed adds [∂r, ∂z, grad_hn] · w_hh to it.
#pragma once

#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/gate_panels.h"
#include "kernels/cpu/gemm_rows.h"
#include "kernels/cpu/gru.h"
#include "kernels/cpu/row_ops.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

constexpr int kGruRows = rows_for_width<3>();  // batch rows per forward micro-kernel block

// The cell update for n ≤ W units [u0, u0 + n) of one batch row. rec holds the three recurrent
// blocks a_r, a_z, a_n of these units (one gate-interleaved panel row); x, b and gates point at
// the row's 3H-wide xp, the model's 3H-wide bias and the row's 4H-wide gates, b_hn, h_prev and h
// at H-wide rows, all offset by u0.
template <typename T>
inline void gru_cell_forward(int64_t H, int n, const T* rec, const T* x, const T* b, const T* b_hn, const T* h_prev,
                             T* gates, T* h) {
  using V = Vec<T>;
  constexpr int W = V::size;
  const auto in = [&](int k) { return load_n(x + k * H, n) + load_n(b + k * H, n); };  // x_t of gate k
  const V r = vsigmoid(V::load(rec + 0 * W) + in(0));
  const V z = vsigmoid(V::load(rec + 1 * W) + in(1));
  const V hn = V::load(rec + 2 * W) + load_n(b_hn, n);
  const V c = vtanh(fmadd(r, hn, in(2)));  // the candidate n
  store_n(r, gates + 0 * H, n);
  store_n(z, gates + 1 * H, n);
  store_n(c, gates + 2 * H, n);
  store_n(hn, gates + 3 * H, n);
  store_n(fmadd(z, load_n(h_prev, n) - c, c), h, n);  // (1 − z) n + z h_{t-1}
}

template <typename T>
void gru_forward_tile(const RecurrenceShape& s, BatchTile tile, const T* xp, const T* bias, const T* w_hh,
                      const T* b_hn, const T* h0, T* hs, T* gates) {
  constexpr int W = Vec<T>::size;
  const int64_t H = s.H, m = tile.model, rows = tile.row_end - tile.row_begin;
  const RecurrenceLayout at{s};
  std::vector<T> wt;
  pack_gate_panels<3>(w_hh + m * 3 * H * H, H, wt);
  std::vector<T> rec(static_cast<size_t>(rows * 3 * W));  // one panel of h_{t-1} w_hhᵀ for every row
  const T* bias_m = bias + m * 3 * H;  // the model's b
  const T* b_hn_m = b_hn + m * H;

  for (int64_t t = 0; t < s.T; ++t) {
    const T* h_prev = t == 0 ? h0 + at.state(m, tile.row_begin) : hs + at.seq(m, t - 1, tile.row_begin);
    for (int64_t u0 = 0; u0 < H; u0 += W) {
      gemm_gate_panel<T, 3>(rows, H, h_prev, gate_panel<3>(wt, H, u0), rec.data());
      const int n = static_cast<int>(std::min<int64_t>(W, H - u0));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = tile.row_begin + r;
        gru_cell_forward(H, n, rec.data() + r * 3 * W, xp + 3 * at.seq(m, t, b) + u0, bias_m + u0, b_hn_m + u0,
                         h_prev + r * H + u0, gates + 4 * at.seq(m, t, b) + u0, hs + at.seq(m, t, b) + u0);
      }
    }
  }
}

// The backward cell epilogue of one batch row at step t (formulas in gru.h). v holds v_{t+1}
// (zeros at t = T) on entry and δ_t ⊙ z on exit; writes grad_xp_t into dx, grad_hn_t into dhn and
// the recurrent gradient [∂r, ∂z, grad_hn_t] into drec. Returns ‖δ_t‖².
template <typename T>
inline T gru_cell_backward(int64_t H, const T* g_h, const T* gates, const T* h_prev, T* v, T* dx, T* dhn, T* drec) {
  using V = Vec<T>;
  const V one = V::broadcast(T(1));
  V sq = V::zero();
  for (int64_t j = 0; j < H; j += V::size) {
    const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
    const V d = load_n(g_h + j, n) + load_n(v + j, n);
    sq = fmadd(d, d, sq);
    const V r = load_n(gates + 0 * H + j, n), z = load_n(gates + 1 * H + j, n);
    const V c = load_n(gates + 2 * H + j, n), hn = load_n(gates + 3 * H + j, n);
    const V dn = d * (one - z) * (one - c * c);
    const V dr = dn * hn * r * (one - r);
    const V dz = d * (load_n(h_prev + j, n) - c) * z * (one - z);
    const V dh = dn * r;
    store_n(dr, dx + 0 * H + j, n);
    store_n(dz, dx + 1 * H + j, n);
    store_n(dn, dx + 2 * H + j, n);
    store_n(dh, dhn + j, n);
    store_n(dr, drec + 0 * H + j, n);
    store_n(dz, drec + 1 * H + j, n);
    store_n(dh, drec + 2 * H + j, n);
    store_n(d * z, v + j, n);
  }
  return hsum(sq);
}

template <typename T>
void gru_backward_tile(const RecurrenceShape& s, BatchTile tile, SeqRows<T> grad_hs, const T* hs, const T* gates,
                       const T* h0, const T* w_hh, T* grad_xp, T* grad_hn, T* grad_h0, T* delta_sq, T* v_sq) {
  const int64_t H = s.H, G = 3 * H, m = tile.model, rows = tile.row_end - tile.row_begin;
  const RecurrenceLayout at{s};
  std::vector<T> wp;  // w_hh as is: v_t[j] = Σ_k drec_t[k] w_hh[k, j] + …
  int64_t ldb;
  pack_panels(w_hh + m * G * H, G, H, /*transpose=*/false, wp, ldb);
  std::vector<T> v(static_cast<size_t>(rows * ldb), T(0));  // v_{t+1} of every row of the tile
  std::vector<T> drec(static_cast<size_t>(rows * G));       // [∂r, ∂z, grad_hn] of step t

  for (int64_t t = s.T - 1; t >= 0; --t) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = tile.row_begin + r;
      const T* h_prev = t == 0 ? h0 + at.state(m, b) : hs + at.seq(m, t - 1, b);
      delta_sq[at.stat(m, t, b)] =
          gru_cell_backward(H, grad_hs.row(m, t, b), gates + 4 * at.seq(m, t, b), h_prev, v.data() + r * ldb,
                            grad_xp + 3 * at.seq(m, t, b), grad_hn + at.seq(m, t, b), drec.data() + r * G);
    }
    gemm_packed<T>(rows, G, drec.data(), G, wp.data(), ldb, v.data(), ldb, /*accumulate=*/true);
    for (int64_t r = 0; r < rows; ++r) v_sq[at.stat(m, t, tile.row_begin + r)] = squared_norm(H, v.data() + r * ldb);
  }
  for (int64_t r = 0; r < rows; ++r) copy_row(H, v.data() + r * ldb, grad_h0 + at.state(m, tile.row_begin + r));
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's kernel tables, gru_kernels_<isa><T>().
#define RNNLAB_DEFINE_GRU_KERNELS(getter)                                                                          \
  namespace rnnlab::cpu {                                                                                          \
  template <typename T>                                                                                            \
  const GruKernels<T>& getter() {                                                                                  \
    static const GruKernels<T> k{RNNLAB_ISA_NS::kGruRows, &RNNLAB_ISA_NS::gru_forward_tile<T>,                     \
                                 &RNNLAB_ISA_NS::gru_backward_tile<T>};                                            \
    return k;                                                                                                      \
  }                                                                                                                \
  template const GruKernels<float>& getter<float>();                                                               \
  template const GruKernels<double>& getter<double>();                                                             \
  }
