// The register-blocked micro-kernel behind every recurrent step on the CPU:
//
//   C[r, :] = A[r, 0:K] · Bp[0:K, :]      for the r < rows rows of a batch tile
//
// Bp is a weight matrix packed once per call into [K, ldb] with ldb a multiple of the vector width
// and zero-padded columns, so the inner loop needs no masks. C has the same padded width.
// MR×NV accumulators (MR batch rows × NV vectors of columns) stay in registers across the K loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/simd.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

// Register blocking per ISA: MR·NV accumulators + NV weight vectors + 1 broadcast must fit in
// the register file (32 zmm on AVX-512, 16 ymm on AVX2).
#if defined(RNNLAB_ISA_AVX512)
constexpr int kMR = 6, kNV = 4, kVecRegs = 32;
#elif defined(RNNLAB_ISA_AVX2)
constexpr int kMR = 6, kNV = 2, kVecRegs = 16;
#else
constexpr int kMR = 4, kNV = 2, kVecRegs = 16;
#endif

// Rows per block when a block must be NV vectors wide (the LSTM needs its 4 gates of the same
// units together): the most rows whose accumulators still fit in registers, at most 6.
template <int NV>
constexpr int rows_for_width() {
  return std::min(6, (kVecRegs - NV - 1) / NV);
}

template <typename T>
constexpr int64_t padded_width(int64_t n) {
  return (n + Vec<T>::size - 1) / Vec<T>::size * Vec<T>::size;
}

// Packs a row-major [K, N] matrix (or the transpose of a row-major [N, K] one) into [K, ldb].
template <typename T>
void pack_weights(const T* w, int64_t K, int64_t N, bool transpose, std::vector<T>& out, int64_t& ldb) {
  ldb = padded_width<T>(N);
  out.assign(static_cast<size_t>(K * ldb), T(0));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j) out[k * ldb + j] = transpose ? w[j * K + k] : w[k * N + j];
}

template <typename T, int MR, int NV>
inline void gemm_block(int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C, int64_t ldc) {
  using V = Vec<T>;
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = V::load(Bp + k * ldb + v * V::size);
    for (int r = 0; r < MR; ++r) {
      const V a = V::broadcast(A[r * lda + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = fmadd(a, b[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v].store(C + r * ldc + v * V::size);
}

template <typename T, int MR>
inline void gemm_row_block(int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C) {
  constexpr int64_t W = Vec<T>::size;
  int64_t col = 0;
  for (; col + kNV * W <= ldb; col += kNV * W) gemm_block<T, MR, kNV>(K, A, lda, Bp + col, ldb, C + col, ldb);
  // Column tail: fewer than kNV vectors left, taken two and then one at a time.
  for (; col + 2 * W <= ldb; col += 2 * W) gemm_block<T, MR, 2>(K, A, lda, Bp + col, ldb, C + col, ldb);
  if (col < ldb) gemm_block<T, MR, 1>(K, A, lda, Bp + col, ldb, C + col, ldb);
}

// C[rows, NV·W] = A[rows, K] · Bp[K, NV·W] for one column panel of Bp, any rows ≤ MaxRows.
template <typename T, int NV, int MaxRows, int R = 1>
inline void gemm_panel(int rows, int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C, int64_t ldc) {
  if constexpr (R < MaxRows) {
    if (rows != R) return gemm_panel<T, NV, MaxRows, R + 1>(rows, K, A, lda, Bp, ldb, C, ldc);
  }
  gemm_block<T, R, NV>(K, A, lda, Bp, ldb, C, ldc);
}

template <typename T, int NV>
inline void gemm_column_panel(int64_t rows, int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C,
                              int64_t ldc) {
  for (int64_t r = 0; r < rows; r += kMR)
    gemm_panel<T, NV, kMR>(static_cast<int>(std::min<int64_t>(kMR, rows - r)), K, A + r * lda, lda, Bp, ldb, C + r * ldc,
                           ldc);
}

// C[rows, ldb] = A[rows, K] · Bp[K, ldb] for any number of rows, column panels outermost: each
// panel of Bp (K × kNV vectors) is then read from memory once and reused from L2 by every row
// block, which is what matters once the whole packed matrix no longer fits in L2 (LSTM, H ≥ 256).
// (No lambdas here: GCC does not apply `#pragma GCC target` to them, see simd.h.)
template <typename T>
inline void gemm_tile(int64_t rows, int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C, int64_t ldc) {
  constexpr int64_t W = Vec<T>::size;
  int64_t col = 0;
  for (; col + kNV * W <= ldb; col += kNV * W) gemm_column_panel<T, kNV>(rows, K, A, lda, Bp + col, ldb, C + col, ldc);
  for (; col + 2 * W <= ldb; col += 2 * W) gemm_column_panel<T, 2>(rows, K, A, lda, Bp + col, ldb, C + col, ldc);
  if (col < ldb) gemm_column_panel<T, 1>(rows, K, A, lda, Bp + col, ldb, C + col, ldc);
}

// C[rows, ldb] = A[rows, K] · Bp[K, ldb], rows ≤ kMR.
template <typename T>
inline void gemm_rows(int rows, int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C) {
  switch (rows) {
    case 1: return gemm_row_block<T, 1>(K, A, lda, Bp, ldb, C);
    case 2: return gemm_row_block<T, 2>(K, A, lda, Bp, ldb, C);
    case 3: return gemm_row_block<T, 3>(K, A, lda, Bp, ldb, C);
    case 4: return gemm_row_block<T, 4>(K, A, lda, Bp, ldb, C);
#if defined(RNNLAB_ISA_AVX512) || defined(RNNLAB_ISA_AVX2)
    case 5: return gemm_row_block<T, 5>(K, A, lda, Bp, ldb, C);
    case 6: return gemm_row_block<T, 6>(K, A, lda, Bp, ldb, C);
#endif
  }
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
