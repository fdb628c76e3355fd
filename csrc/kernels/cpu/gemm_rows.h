// The register-blocked GEMM behind every recurrent step on the CPU:
//
//   C[r, :] = A[r, 0:K] · B[0:K, :]      for the rows of a batch tile (gemm_packed)
//
// B is a weight matrix packed once per call into column panels (pack_panels), zero-padded to a
// multiple of the vector width, so the inner loop needs no masks; C has the same padded width.
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

// Packs a row-major [K, N] matrix (or the transpose of a row-major [N, K] one) into column panels
// of kNV vectors, each stored contiguously as [K, width] and zero-padded past column N only up to
// the vector width (the last panel may be narrower, so H = 32 does no work on padding):
// out[p·K·kNV·W + k·width_p + j] = w[k, p·kNV·W + j]. A panel read row by row is then one
// sequential stream, instead of K short pieces at a large stride that map onto a few L1 sets and
// evict each other (with [K, ldb] packing, ldb = 512 floats puts a 64-column panel in 8 of 64 sets).
template <typename T>
void pack_panels(const T* w, int64_t K, int64_t N, bool transpose, std::vector<T>& out, int64_t& padded_n) {
  constexpr int64_t PW = kNV * Vec<T>::size;
  padded_n = padded_width<T>(N);
  out.assign(static_cast<size_t>(K * padded_n), T(0));
  for (int64_t p0 = 0; p0 < padded_n; p0 += PW) {
    const int64_t width = std::min(PW, padded_n - p0);
    T* panel = out.data() + p0 * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = p0; j < std::min(N, p0 + width); ++j)
        panel[k * width + j - p0] = transpose ? w[j * K + k] : w[k * N + j];
  }
}

// How many independent accumulator sets a block keeps, each over every KS-th k: a block of one or
// two batch rows (B = 1 is latency-bound: each step waits for the previous one) has only MR·NV
// FMA chains, too few to hide the FMA latency; KS·MR·NV ≈ 16 chains do, if they fit in registers.
template <int MR, int NV>
constexpr int k_splits() {
  int ks = std::max(1, std::min(4, 16 / (MR * NV)));
  while (ks > 1 && ks * MR * NV + NV + 1 > kVecRegs) --ks;
  return ks;
}

// MR×NV accumulators (times k_splits) kept in registers across the K loop; Acc adds to C instead
// of overwriting it.
template <typename T, int MR, int NV, bool Acc = false>
inline void gemm_block(int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C, int64_t ldc) {
  using V = Vec<T>;
  constexpr int KS = k_splits<MR, NV>();
  V acc[KS][MR][NV];
  for (int s = 0; s < KS; ++s)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[s][r][v] = Acc && s == 0 ? V::load(C + r * ldc + v * V::size) : V::zero();
  for (int64_t k0 = 0; k0 < K; k0 += KS) {
    for (int s = 0; s < KS && k0 + s < K; ++s) {  // the K tail goes through the first sets
      const int64_t k = k0 + s;
      V b[NV];
      for (int v = 0; v < NV; ++v) b[v] = V::load(Bp + k * ldb + v * V::size);
      for (int r = 0; r < MR; ++r) {
        const V a = V::broadcast(A[r * lda + k]);
        for (int v = 0; v < NV; ++v) acc[s][r][v] = fmadd(a, b[v], acc[s][r][v]);
      }
    }
  }
  for (int s = 1; s < KS; ++s)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[0][r][v] = acc[0][r][v] + acc[s][r][v];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[0][r][v].store(C + r * ldc + v * V::size);
}

// C[rows, NV·W] (+)= A[rows, K] · Bp[K, NV·W] for one column panel of Bp, any rows ≤ MaxRows.
template <typename T, int NV, int MaxRows, bool Acc = false, int R = 1>
inline void gemm_panel(int rows, int64_t K, const T* A, int64_t lda, const T* Bp, int64_t ldb, T* C, int64_t ldc) {
  if constexpr (R < MaxRows) {
    if (rows != R) return gemm_panel<T, NV, MaxRows, Acc, R + 1>(rows, K, A, lda, Bp, ldb, C, ldc);
  }
  gemm_block<T, R, NV, Acc>(K, A, lda, Bp, ldb, C, ldc);
}

// Depth of the K blocks of gemm_packed: a [kKC, kNV·W] slice of a panel (32 KiB in float32 on
// AVX-512) stays in L1 while every row block of the tile runs over it.
constexpr int64_t kKC = 128;

// One K block of one panel for every row block of the tile; NV = the panel's width in vectors.
template <typename T, int NV>
inline void gemm_panel_rows(int64_t rows, int64_t kc, bool accumulate, const T* A, int64_t lda, const T* panel,
                            T* C, int64_t ldc) {
  for (int64_t r = 0; r < rows; r += kMR) {
    const int n = static_cast<int>(std::min<int64_t>(kMR, rows - r));
    if (accumulate) gemm_panel<T, NV, kMR, true>(n, kc, A + r * lda, lda, panel, NV * Vec<T>::size, C + r * ldc, ldc);
    else gemm_panel<T, NV, kMR>(n, kc, A + r * lda, lda, panel, NV * Vec<T>::size, C + r * ldc, ldc);
  }
}

// C[rows, padded_n] = A[rows, K] · B (C += A · B with accumulate) for B packed by pack_panels and
// any number of rows: panels outermost, then K blocks, then row blocks, so each piece of B is read
// from memory once per call and from L1 by every row block, and A's rows are re-read from L1/L2.
template <typename T>
inline void gemm_packed(int64_t rows, int64_t K, const T* A, int64_t lda, const T* Bpk, int64_t padded_n, T* C,
                        int64_t ldc, bool accumulate = false) {
  constexpr int64_t W = Vec<T>::size, PW = kNV * W;
  for (int64_t p0 = 0; p0 < padded_n; p0 += PW) {
    const int64_t width = std::min(PW, padded_n - p0);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0);
      const T* panel = Bpk + p0 * K + k0 * width;
      const T* a = A + k0;
      T* c = C + p0;
      const bool acc = accumulate || k0 > 0;
      switch (width / W) {  // only the last panel can be narrower than kNV vectors
        case 1: gemm_panel_rows<T, 1>(rows, kc, acc, a, lda, panel, c, ldc); break;
        case 2: gemm_panel_rows<T, 2>(rows, kc, acc, a, lda, panel, c, ldc); break;
#if defined(RNNLAB_ISA_AVX512)
        case 3: gemm_panel_rows<T, 3>(rows, kc, acc, a, lda, panel, c, ldc); break;
        case 4: gemm_panel_rows<T, 4>(rows, kc, acc, a, lda, panel, c, ldc); break;
#endif
      }
    }
  }
}

// Row stride for gemm_packed's output that leaves no padding between rows: N itself when B is one
// panel and one K block (N ≤ kNV·W, K ≤ kKC), else the padded width. Dense rows work because
// gemm_block stores whole vectors row after row in ascending order: the zero columns a row's
// store writes past N are overwritten by the next row's store (B's padding columns are zero, so
// they hold exactly 0). The caller leaves padded_n − N elements of slack after the last row.
// Dense rows let an elementwise epilogue run over rows × N values as one flat array: with
// N = 8 and 16-lane vectors, a per-row epilogue would spend half of every vector on padding.
template <typename T>
constexpr int64_t dense_stride(int64_t K, int64_t N, int64_t padded_n) {
  return padded_n <= kNV * Vec<T>::size && K <= kKC ? N : padded_n;
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
