// The forward recurrent GEMM of the gated cells (LSTM: G = 4 gates, GRU: G = 3), shared by
// lstm_impl.h and gru_impl.h.
//
// w_hh [G·H, H] stacks G gate blocks of H rows (PyTorch's layout). Packed gate-interleaved, panel
// p holds, for the W hidden units [pW, pW + W), the G W-wide column blocks of w_hhᵀ stored
// contiguously as [H, G·W]. A G-vector micro-kernel block then yields every gate of the same W
// units, so the cell update runs on them while they are in L1. Panels are the caller's outer loop
// and batch rows the inner one (gemm_gate_panel), K blocked as in gemm_packed, so each panel of
// w_hhᵀ is read from memory once per step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/gemm_rows.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

// out[(p·H + k)·G·W + g·W + l] = w[(g·H + p·W + l)·H + k], 0 past unit H.
template <int G, typename T>
void pack_gate_panels(const T* w, int64_t H, std::vector<T>& out) {
  constexpr int64_t W = Vec<T>::size;
  const int64_t panels = (H + W - 1) / W;
  out.assign(static_cast<size_t>(panels * H * G * W), T(0));
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t k = 0; k < H; ++k)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t l = 0; l < W && p * W + l < H; ++l) out[((p * H + k) * G + g) * W + l] = w[(g * H + p * W + l) * H + k];
}

// The panel of pack_gate_panels' output that holds units [u0, u0 + W).
template <int G, typename T>
inline const T* gate_panel(const std::vector<T>& packed, int64_t H, int64_t u0) {
  return packed.data() + u0 * H * G;  // panel u0 / W starts at (u0 / W)·H·G·W
}

// rec[r, 0:G·W] = a[r, 0:H] · panel for the rows of a tile (a's rows H apart, rec's G·W apart).
template <typename T, int G>
inline void gemm_gate_panel(int64_t rows, int64_t H, const T* a, const T* panel, T* rec) {
  constexpr int64_t GW = G * Vec<T>::size;
  constexpr int Rows = rows_for_width<G>();  // the kernels' row_block: tiles are whole blocks
  for (int64_t k0 = 0; k0 < H; k0 += kKC) {
    const int64_t kc = std::min(kKC, H - k0);
    for (int64_t r = 0; r < rows; r += Rows) {
      const int n = static_cast<int>(std::min<int64_t>(Rows, rows - r));
      const T* ar = a + r * H + k0;
      if (k0 == 0) gemm_panel<T, G, Rows>(n, kc, ar, H, panel + k0 * GW, GW, rec + r * GW, GW);
      else gemm_panel<T, G, Rows, true>(n, kc, ar, H, panel + k0 * GW, GW, rec + r * GW, GW);
    }
  }
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
