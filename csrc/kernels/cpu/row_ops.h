// Small vectorized operations on one row of n values, shared by the CPU kernels.
// Rows need not be a multiple of the vector width: the tail goes through a partial load/store.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/common.h"
#include "kernels/cpu/simd.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

// Offsets into a recurrence's dense tensors: sequences [M, T, B, H] (a k-gate-wide one, e.g.
// xp [M, T, B, kH], at k · seq), states [M, B, H] and per-step statistics [M, T, B].
struct RecurrenceLayout {
  const RecurrenceShape& s;
  int64_t seq(int64_t m, int64_t t, int64_t b) const { return ((m * s.T + t) * s.B + b) * s.H; }
  int64_t state(int64_t m, int64_t b) const { return (m * s.B + b) * s.H; }
  int64_t stat(int64_t m, int64_t t, int64_t b) const { return (m * s.T + t) * s.B + b; }
};

// A full-width load when n covers the whole vector (the common case), a masked one otherwise.
template <typename T>
inline Vec<T> load_n(const T* p, int n) {
  return n == Vec<T>::size ? Vec<T>::load(p) : Vec<T>::load(p, n);
}

template <typename T>
inline void store_n(Vec<T> x, T* p, int n) {
  if (n == Vec<T>::size) x.store(p);
  else x.store(p, n);
}

// Σ_j x_j²
template <typename T>
inline T squared_norm(int64_t n, const T* x) {
  using V = Vec<T>;
  V sq = V::zero();
  for (int64_t j = 0; j < n; j += V::size) {
    const V a = load_n(x + j, static_cast<int>(std::min<int64_t>(V::size, n - j)));
    sq = fmadd(a, a, sq);
  }
  return hsum(sq);
}

template <typename T>
inline void copy_row(int64_t n, const T* x, T* out) {
  for (int64_t j = 0; j < n; j += Vec<T>::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec<T>::size, n - j));
    store_n(load_n(x + j, k), out + j, k);
  }
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
