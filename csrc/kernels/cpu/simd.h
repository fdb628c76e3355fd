// A minimal SIMD vector type, one specialization per ISA, so each kernel is written once.
//
// Included by a per-ISA translation unit (elman_avx512.cpp, ...) after it has defined exactly one
// of RNNLAB_ISA_AVX512 / RNNLAB_ISA_AVX2 / RNNLAB_ISA_PORTABLE and opened the matching
// `#pragma GCC target`. Everything here lives in that TU's ISA namespace (RNNLAB_ISA_NS), so the
// three compilations of the same template never collide at link time.
//
// Vec<T> exposes only what the kernels need (operations are free functions, not hidden friends:
// GCC does not apply `#pragma GCC target` to friends defined inside a class): (partial) load/store, a strided gather, broadcast, fma, a few
// arithmetic ops, a horizontal sum, and lane-wise select. Partial loads/stores touch exactly
// `n` lanes, which is how the kernels handle a hidden size that is not a multiple of the width.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(RNNLAB_ISA_AVX512) || defined(RNNLAB_ISA_AVX2)
#include <immintrin.h>
#endif

namespace rnnlab::cpu::RNNLAB_ISA_NS {

template <typename T>
struct Vec;

#if defined(RNNLAB_ISA_AVX512)

template <>
struct Vec<float> {
  static constexpr int size = 16;
  __m512 v;
  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec broadcast(float x) { return {_mm512_set1_ps(x)}; }
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec load(const float* p, int n) { return {_mm512_maskz_loadu_ps(mask(n), p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store(float* p, int n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  // Lane i < n reads p[i·stride] (a gather), the others are 0; stride·(size − 1) must fit in int32.
  static Vec gather(const float* p, int stride, int n) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_set1_epi32(stride), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return {_mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask(n), idx, p, 4)};
  }
  // Lane-wise (a > b) ? x : y
  // 2^n for integer-valued n in [-126, 127]
};

inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec<float> operator/(Vec<float> a, Vec<float> b) { return {_mm512_div_ps(a.v, b.v)}; }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return {_mm512_min_ps(a.v, b.v)}; }
inline Vec<float> max(Vec<float> a, Vec<float> b) { return {_mm512_max_ps(a.v, b.v)}; }
inline float hsum(Vec<float> a) { return _mm512_reduce_add_ps(a.v); }
inline Vec<float> select_gt(Vec<float> a, Vec<float> b, Vec<float> x, Vec<float> y) {
  return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ), y.v, x.v)};
}
inline Vec<float> round(Vec<float> a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// p · 2^n for integral n in [-126, 127], exact: one vscalefps.
inline Vec<float> ldexp(Vec<float> p, Vec<float> n) { return {_mm512_scalef_ps(p.v, n.v)}; }
// a / b with rcp14 refined by one Newton step (≤ 2 ulp): vdivps has ~4× its throughput cost.
inline Vec<float> fast_div(Vec<float> a, Vec<float> b) {
  const __m512 r = _mm512_rcp14_ps(b.v);
  const __m512 r2 = _mm512_fmadd_ps(_mm512_fnmadd_ps(b.v, r, _mm512_set1_ps(1.0f)), r, r);
  return {_mm512_mul_ps(a.v, r2)};
}

template <>
struct Vec<double> {
  static constexpr int size = 8;
  __m512d v;
  static Vec zero() { return {_mm512_setzero_pd()}; }
  static Vec broadcast(double x) { return {_mm512_set1_pd(x)}; }
  static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static Vec load(const double* p, int n) { return {_mm512_maskz_loadu_pd(mask(n), p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void store(double* p, int n) const { _mm512_mask_storeu_pd(p, mask(n), v); }
  static __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  // Lane i < n reads p[i·stride] (a gather), the others are 0; stride·(size − 1) must fit in int32.
  static Vec gather(const double* p, int stride, int n) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_set1_epi32(stride), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return {_mm512_mask_i32gather_pd(_mm512_setzero_pd(), mask(n), idx, p, 8)};
  }
};

inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {_mm512_add_pd(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return {_mm512_max_pd(a.v, b.v)}; }
inline double hsum(Vec<double> a) { return _mm512_reduce_add_pd(a.v); }
inline Vec<double> select_gt(Vec<double> a, Vec<double> b, Vec<double> x, Vec<double> y) {
  return {_mm512_mask_blend_pd(_mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ), y.v, x.v)};
}
// Swaps adjacent lanes (0↔1, 2↔3, …): complex arithmetic on interleaved (re, im) pairs.
inline Vec<float> swap_pairs(Vec<float> a) { return {_mm512_permute_ps(a.v, 0xB1)}; }
inline Vec<double> swap_pairs(Vec<double> a) { return {_mm512_permute_pd(a.v, 0x55)}; }

#elif defined(RNNLAB_ISA_AVX2)

template <>
struct Vec<float> {
  static constexpr int size = 8;
  __m256 v;
  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec broadcast(float x) { return {_mm256_set1_ps(x)}; }
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec load(const float* p, int n) { return {_mm256_maskload_ps(p, mask(n))}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store(float* p, int n) const { _mm256_maskstore_ps(p, mask(n), v); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // Lane i < n reads p[i·stride] (a gather), the others are 0; stride·(size − 1) must fit in int32.
  static Vec gather(const float* p, int stride, int n) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_set1_epi32(stride), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return {_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, idx, _mm256_castsi256_ps(mask(n)), 4)};
  }
};

inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline Vec<float> operator/(Vec<float> a, Vec<float> b) { return {_mm256_div_ps(a.v, b.v)}; }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return {_mm256_min_ps(a.v, b.v)}; }
inline Vec<float> max(Vec<float> a, Vec<float> b) { return {_mm256_max_ps(a.v, b.v)}; }
inline float hsum(Vec<float> a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec<float> select_gt(Vec<float> a, Vec<float> b, Vec<float> x, Vec<float> y) { return {_mm256_blendv_ps(y.v, x.v, _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ))}; }
inline Vec<float> round(Vec<float> a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// p · 2^n for integral n in [-126, 127], exact: 2^n built in the exponent bits.
inline Vec<float> ldexp(Vec<float> p, Vec<float> n) {
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23);
  return {_mm256_mul_ps(p.v, _mm256_castsi256_ps(e))};
}

template <>
struct Vec<double> {
  static constexpr int size = 4;
  __m256d v;
  static Vec zero() { return {_mm256_setzero_pd()}; }
  static Vec broadcast(double x) { return {_mm256_set1_pd(x)}; }
  static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static Vec load(const double* p, int n) { return {_mm256_maskload_pd(p, mask(n))}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void store(double* p, int n) const { _mm256_maskstore_pd(p, mask(n), v); }
  static __m256i mask(int n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
  // Lane i < n reads p[i·stride] (a gather), the others are 0; stride·(size − 1) must fit in int32.
  static Vec gather(const double* p, int stride, int n) {
    const __m128i idx = _mm_mullo_epi32(_mm_set1_epi32(stride), _mm_setr_epi32(0, 1, 2, 3));
    return {_mm256_mask_i32gather_pd(_mm256_setzero_pd(), p, idx, _mm256_castsi256_pd(mask(n)), 8)};
  }
};

inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {_mm256_add_pd(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {_mm256_sub_pd(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return {_mm256_max_pd(a.v, b.v)}; }
inline double hsum(Vec<double> a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
inline Vec<double> select_gt(Vec<double> a, Vec<double> b, Vec<double> x, Vec<double> y) { return {_mm256_blendv_pd(y.v, x.v, _mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ))}; }
inline Vec<float> swap_pairs(Vec<float> a) { return {_mm256_permute_ps(a.v, 0xB1)}; }
inline Vec<double> swap_pairs(Vec<double> a) { return {_mm256_permute_pd(a.v, 0x5)}; }

#else  // portable: a fixed-width array the compiler may auto-vectorize

template <typename T>
struct Vec {
  static constexpr int size = 4;
  T v[size];
  static Vec zero() { return broadcast(T(0)); }
  static Vec broadcast(T x) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = x;
    return r;
  }
  static Vec load(const T* p) { return load(p, size); }
  static Vec load(const T* p, int n) {
    Vec r = zero();
    for (int i = 0; i < n; ++i) r.v[i] = p[i];
    return r;
  }
  void store(T* p) const { store(p, size); }
  void store(T* p, int n) const {
    for (int i = 0; i < n; ++i) p[i] = v[i];
  }
  // Lane i < n reads p[i·stride] (a gather), the others are 0; stride·(size − 1) must fit in int32.
  static Vec gather(const T* p, int stride, int n) {
    Vec r = zero();
    for (int i = 0; i < n; ++i) r.v[i] = p[static_cast<int64_t>(i) * stride];
    return r;
  }
};

// Portable lane-wise operations: one loop each, over Vec<T>::size lanes.
#define RNNLAB_LANEWISE(signature, expr)                  \
  template <typename T>                                   \
  inline Vec<T> signature {                               \
    Vec<T> r;                                             \
    for (int i = 0; i < Vec<T>::size; ++i) r.v[i] = expr; \
    return r;                                             \
  }
RNNLAB_LANEWISE(operator+(Vec<T> a, Vec<T> b), a.v[i] + b.v[i])
RNNLAB_LANEWISE(operator-(Vec<T> a, Vec<T> b), a.v[i] - b.v[i])
RNNLAB_LANEWISE(operator*(Vec<T> a, Vec<T> b), a.v[i] * b.v[i])
RNNLAB_LANEWISE(operator/(Vec<T> a, Vec<T> b), a.v[i] / b.v[i])
RNNLAB_LANEWISE(min(Vec<T> a, Vec<T> b), a.v[i] < b.v[i] ? a.v[i] : b.v[i])
RNNLAB_LANEWISE(max(Vec<T> a, Vec<T> b), a.v[i] > b.v[i] ? a.v[i] : b.v[i])
RNNLAB_LANEWISE(fmadd(Vec<T> a, Vec<T> b, Vec<T> c), a.v[i] * b.v[i] + c.v[i])
RNNLAB_LANEWISE(select_gt(Vec<T> a, Vec<T> b, Vec<T> x, Vec<T> y), a.v[i] > b.v[i] ? x.v[i] : y.v[i])
RNNLAB_LANEWISE(round(Vec<T> a), std::nearbyint(a.v[i]))
RNNLAB_LANEWISE(ldexp(Vec<T> p, Vec<T> n), std::ldexp(p.v[i], static_cast<int>(n.v[i])))
RNNLAB_LANEWISE(swap_pairs(Vec<T> a), a.v[i ^ 1])
#undef RNNLAB_LANEWISE

template <typename T>
inline T hsum(Vec<T> a) {
  T s = 0;
  for (int i = 0; i < Vec<T>::size; ++i) s += a.v[i];
  return s;
}

#endif

#if !defined(RNNLAB_ISA_AVX512)
inline Vec<float> fast_div(Vec<float> a, Vec<float> b) { return a / b; }
#endif

// Applies a scalar function to every lane. Used for float64, where accuracy (≈1e-15) matters
// more than speed and libm's tanh/exp are the reference.
template <typename T, typename F>
inline Vec<T> lanewise(Vec<T> x, F f) {
  alignas(64) T buf[Vec<T>::size];
  x.store(buf);
  for (int i = 0; i < Vec<T>::size; ++i) buf[i] = f(buf[i]);
  return Vec<T>::load(buf);
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
