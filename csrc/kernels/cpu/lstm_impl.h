// LSTM forward and backward kernels, written once and compiled per ISA by lstm_<isa>.cpp.
// The API, shapes and math are documented in lstm.h.
//
// Forward: w_hhᵀ is packed gate-interleaved (gate_panels.h), so a 4-vector micro-kernel block
// yields the gates i, f, g, o of the same units and the cell update runs on them while they are
// in L1; each panel of w_hhᵀ (4 MB in all at H = 512, float32) is read once per step.
// Backward: one gemm_packed per step, v_t = ∂z_t · w_hh over all rows of the tile, then the cell
// epilogue of step t − 1 row by row.
#pragma once

#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/gate_panels.h"
#include "kernels/cpu/gemm_rows.h"
#include "kernels/cpu/lstm.h"
#include "kernels/cpu/row_ops.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

constexpr int kGateRows = rows_for_width<4>();  // batch rows per forward micro-kernel block

// The cell update for n ≤ W units [u0, u0 + n) of one batch row from their pre-activations
// z_i, z_f, z_g, z_o: gates points at the row's 4H-wide gates, c_prev/c/h at its H-wide states,
// all offset by u0. Shared with the fused training step (lstm_train_step_impl.h), whose z holds
// the input projection computed inside the step.
template <typename T>
inline void cell_update(int64_t H, int n, Vec<T> zi, Vec<T> zf, Vec<T> zg, Vec<T> zo, const T* c_prev, T* gates, T* c,
                        T* h) {
  using V = Vec<T>;
  const V i = vsigmoid(zi), f = vsigmoid(zf), g = vtanh(zg), o = vsigmoid(zo);
  const V cn = fmadd(f, load_n(c_prev, n), i * g);
  store_n(i, gates + 0 * H, n);
  store_n(f, gates + 1 * H, n);
  store_n(g, gates + 2 * H, n);
  store_n(o, gates + 3 * H, n);
  store_n(cn, c, n);
  store_n(o * vtanh(cn), h, n);
}

// cell_update with z = rec + (xp + b): rec holds the four recurrent blocks h_{t-1} w_hhᵀ of the
// units (one gate-interleaved panel row), x and b point at the row's 4H-wide xp and the model's
// bias, offset by u0.
template <typename T>
inline void cell_forward(int64_t H, int n, const T* rec, const T* x, const T* b, const T* c_prev, T* gates, T* c,
                         T* h) {
  using V = Vec<T>;
  constexpr int W = V::size;
  const auto z = [&](int k) { return V::load(rec + k * W) + (load_n(x + k * H, n) + load_n(b + k * H, n)); };
  cell_update(H, n, z(0), z(1), z(2), z(3), c_prev, gates, c, h);
}

template <typename T>
void lstm_forward_tile(const RecurrenceShape& s, BatchTile tile, const T* xp, const T* bias, const T* w_hh, const T* h0,
                       const T* c0, T* hs, T* cs, T* gates) {
  constexpr int W = Vec<T>::size;
  const int64_t H = s.H, m = tile.model, rows = tile.row_end - tile.row_begin;
  const RecurrenceLayout at{s};
  std::vector<T> wt;
  pack_gate_panels<4>(w_hh + m * 4 * H * H, H, wt);
  std::vector<T> rec(static_cast<size_t>(rows * 4 * W));  // one panel of h_{t-1} w_hhᵀ for every row
  const T* bias_m = bias + m * 4 * H;  // the model's b

  for (int64_t t = 0; t < s.T; ++t) {
    const T* h_prev = t == 0 ? h0 + at.state(m, tile.row_begin) : hs + at.seq(m, t - 1, tile.row_begin);
    for (int64_t u0 = 0; u0 < H; u0 += W) {
      gemm_gate_panel<T, 4>(rows, H, h_prev, gate_panel<4>(wt, H, u0), rec.data());
      const int n = static_cast<int>(std::min<int64_t>(W, H - u0));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = tile.row_begin + r;
        const T* c_prev = t == 0 ? c0 + at.state(m, b) : cs + at.seq(m, t - 1, b);
        cell_forward(H, n, rec.data() + r * 4 * W, xp + 4 * at.seq(m, t, b) + u0, bias_m + u0, c_prev + u0,
                     gates + 4 * at.seq(m, t, b) + u0, cs + at.seq(m, t, b) + u0, hs + at.seq(m, t, b) + u0);
      }
    }
  }
}

// ∂z_t of n ≤ W units of one batch row (formulas in lstm.h), in gate order i, f, g, o.
template <typename T>
struct GateGrads {
  Vec<T> i, f, g, o;
};

// The backward cell update of n ≤ W units of one batch row at step t from δ_t (d) and
// ε'_{t+1} + ∂⁺L/∂c_t (e): writes ε'_t into dc and returns ∂z_t, which each caller stores where
// it needs it. gates points at the row's 4H-wide gates, c, c_prev, dc at its H-wide states, all
// offset by the units' first. Shared with the fused training step (lstm_train_step_impl.h).
template <typename T>
inline GateGrads<T> cell_backward_units(int64_t H, int n, Vec<T> d, Vec<T> e, const T* gates, const T* c,
                                        const T* c_prev, T* dc) {
  using V = Vec<T>;
  const V one = V::broadcast(T(1));
  const V i = load_n(gates + 0 * H, n), f = load_n(gates + 1 * H, n);
  const V g = load_n(gates + 2 * H, n), o = load_n(gates + 3 * H, n);
  const V tc = vtanh(load_n(c, n));
  e = fmadd(d * o, one - tc * tc, e);
  store_n(e * f, dc, n);
  return {e * g * i * (one - i), e * load_n(c_prev, n) * f * (one - f), e * i * (one - g * g), d * tc * o * (one - o)};
}

// The backward cell epilogue of one batch row at step t. Reads δ_t's parts (g_h, and
// v = v_{t+1} unless null), ε'_{t+1} from dc, and writes ∂z_t into dz and ε'_t into dc.
// Returns ‖δ_t‖².
template <typename T>
inline T cell_backward(int64_t H, const T* g_h, const T* g_c, const T* v, const T* gates, const T* c, const T* c_prev,
                       T* dc, T* dz) {
  using V = Vec<T>;
  V sq = V::zero();
  for (int64_t j = 0; j < H; j += V::size) {
    const int n = static_cast<int>(std::min<int64_t>(V::size, H - j));
    V d = load_n(g_h + j, n);
    if (v) d = d + load_n(v + j, n);
    sq = fmadd(d, d, sq);
    V e = load_n(dc + j, n);
    if (g_c) e = e + load_n(g_c + j, n);
    const GateGrads<T> dz_j = cell_backward_units(H, n, d, e, gates + j, c + j, c_prev + j, dc + j);
    store_n(dz_j.i, dz + 0 * H + j, n);
    store_n(dz_j.f, dz + 1 * H + j, n);
    store_n(dz_j.g, dz + 2 * H + j, n);
    store_n(dz_j.o, dz + 3 * H + j, n);
  }
  return hsum(sq);
}

template <typename T>
void lstm_backward_tile(const RecurrenceShape& s, BatchTile tile, SeqRows<T> grad_hs, SeqRows<T> grad_cs, const T* cs,
                        const T* gates, const T* c0, const T* w_hh, T* grad_xp, T* grad_h0, T* grad_c0, T* delta_sq,
                        T* v_sq) {
  const int64_t H = s.H, G = 4 * H, m = tile.model, rows = tile.row_end - tile.row_begin;
  const RecurrenceLayout at{s};
  std::vector<T> wp;  // w_hh as is: v_t[j] = Σ_k ∂z_t[k] w_hh[k, j]
  int64_t ldb;
  pack_panels(w_hh + m * G * H, G, H, /*transpose=*/false, wp, ldb);
  std::vector<T> v(static_cast<size_t>(rows * ldb));      // v_{t+1} of every row of the tile
  std::vector<T> dc(static_cast<size_t>(rows * H), T(0));  // ε'_{t+1} of every row

  for (int64_t t = s.T - 1; t >= 0; --t) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = tile.row_begin + r;
      const T* c_prev = t == 0 ? c0 + at.state(m, b) : cs + at.seq(m, t - 1, b);
      delta_sq[at.stat(m, t, b)] =
          cell_backward(H, grad_hs.row(m, t, b), grad_cs.data ? grad_cs.row(m, t, b) : nullptr,
                        t + 1 < s.T ? v.data() + r * ldb : nullptr, gates + 4 * at.seq(m, t, b), cs + at.seq(m, t, b),
                        c_prev, dc.data() + r * H, grad_xp + 4 * at.seq(m, t, b));
    }
    gemm_packed<T>(rows, G, grad_xp + 4 * at.seq(m, t, tile.row_begin), G, wp.data(), ldb, v.data(), ldb);
    for (int64_t r = 0; r < rows; ++r) v_sq[at.stat(m, t, tile.row_begin + r)] = squared_norm(H, v.data() + r * ldb);
  }
  for (int64_t r = 0; r < rows; ++r) {  // ∂L/∂h_0 = v_1 (no direct loss term), ∂L/∂c_0 = ε'_1
    copy_row(H, v.data() + r * ldb, grad_h0 + at.state(m, tile.row_begin + r));
    copy_row(H, dc.data() + r * H, grad_c0 + at.state(m, tile.row_begin + r));
  }
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's kernel tables, lstm_kernels_<isa><T>().
#define RNNLAB_DEFINE_LSTM_KERNELS(getter)                                                                         \
  namespace rnnlab::cpu {                                                                                          \
  template <typename T>                                                                                            \
  const LstmKernels<T>& getter() {                                                                                 \
    static const LstmKernels<T> k{RNNLAB_ISA_NS::kGateRows, &RNNLAB_ISA_NS::lstm_forward_tile<T>,                  \
                                  &RNNLAB_ISA_NS::lstm_backward_tile<T>};                                          \
    return k;                                                                                                      \
  }                                                                                                                \
  template const LstmKernels<float>& getter<float>();                                                              \
  template const LstmKernels<double>& getter<double>();                                                            \
  }
