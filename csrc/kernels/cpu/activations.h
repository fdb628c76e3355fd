// Vectorized activation functions φ and their derivatives written in terms of h = φ(a).
//
// glibc's tanhf is scalar and made a whole Elman step 8.6× slower (DESIGN §7), so float32 uses
// the polynomial/exp forms below; their maximum relative error against float64 tanh/sigmoid,
// measured over all float inputs in [-20, 20] by tests/test_activations.py, is ≈1.5e-7 (2 ulp).
// float64 goes lane by lane through libm: it is the accuracy reference, not the speed path.
#pragma once

#include "kernels/common.h"
#include "kernels/cpu/simd.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

// e^x for x in [-87, 87]: x = n ln2 + r with |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial
// (truncation error r^8/8! < 5e-9), then scaled by 2^n through the exponent bits.
inline Vec<float> exp_f32(Vec<float> x) {
  using V = Vec<float>;
  const V n = round(x * V::broadcast(1.44269504088896341f));
  V r = fmadd(n, V::broadcast(-0.693145751953125f), x);  // ln2 split in a hi part exact in float ...
  r = fmadd(n, V::broadcast(-1.428606765330187045e-06f), r);  // ... and the rest
  V p = V::broadcast(1.0f / 5040);
  p = fmadd(p, r, V::broadcast(1.0f / 720));
  p = fmadd(p, r, V::broadcast(1.0f / 120));
  p = fmadd(p, r, V::broadcast(1.0f / 24));
  p = fmadd(p, r, V::broadcast(1.0f / 6));
  p = fmadd(p, r, V::broadcast(0.5f));
  p = fmadd(p, r, V::broadcast(1.0f));
  p = fmadd(p, r, V::broadcast(1.0f));
  return p * pow2i(n);
}

// tanh: for |x| < 0.55 an odd polynomial x + x³P(x²) (least-squares fit for relative error,
// 6.2e-8 max in float); beyond, (1 − e)/(1 + e) with e = e^{−2|x|} ≤ 0.34, which has no
// cancellation there. |x| is clamped at 20, where tanh is 1 in float.
inline Vec<float> tanh_f32(Vec<float> x) {
  using V = Vec<float>;
  // Operand order matters: x86 min/max return the second operand when one is NaN, and NaN must
  // propagate as it does in PyTorch.
  const V ax = min(V::broadcast(20.0f), abs(x));
  const V z = x * x;
  V p = V::broadcast(-0.006356495898216963f);
  p = fmadd(p, z, V::broadcast(0.021127240732312202f));
  p = fmadd(p, z, V::broadcast(-0.05386507883667946f));
  p = fmadd(p, z, V::broadcast(0.13332699239253998f));
  p = fmadd(p, z, V::broadcast(-0.33333319425582886f));
  const V small = fmadd(x * z, p, x);
  const V e = exp_f32(V::broadcast(-2.0f) * ax);
  const V large = copysign(fast_div(V::broadcast(1.0f) - e, V::broadcast(1.0f) + e), x);
  return select_gt(ax, V::broadcast(0.55f), large, small);
}

inline Vec<float> sigmoid_f32(Vec<float> x) {
  using V = Vec<float>;
  const V nx = max(V::broadcast(-87.0f), min(V::broadcast(87.0f), V::zero() - x));
  return fast_div(V::broadcast(1.0f), V::broadcast(1.0f) + exp_f32(nx));
}

template <Activation A, typename T>
struct Act;

template <typename T>
struct Act<Activation::Tanh, T> {
  static Vec<T> f(Vec<T> a) {
    if constexpr (std::is_same_v<T, float>) return tanh_f32(a);
    else return lanewise(a, [](T x) { return std::tanh(x); });
  }
  static Vec<T> df_from_h(Vec<T> h) { return Vec<T>::broadcast(T(1)) - h * h; }
};

template <typename T>
struct Act<Activation::Relu, T> {
  static Vec<T> f(Vec<T> a) { return max(Vec<T>::zero(), a); }  // NaN-propagating order
  static Vec<T> df_from_h(Vec<T> h) { return select_gt(h, Vec<T>::zero(), Vec<T>::broadcast(T(1)), Vec<T>::zero()); }
};

template <typename T>
struct Act<Activation::Sigmoid, T> {
  static Vec<T> f(Vec<T> a) {
    if constexpr (std::is_same_v<T, float>) return sigmoid_f32(a);
    else return lanewise(a, [](T x) { return T(1) / (T(1) + std::exp(-x)); });
  }
  static Vec<T> df_from_h(Vec<T> h) { return h * (Vec<T>::broadcast(T(1)) - h); }
};

template <typename T>
struct Act<Activation::Identity, T> {
  static Vec<T> f(Vec<T> a) { return a; }
  static Vec<T> df_from_h(Vec<T>) { return Vec<T>::broadcast(T(1)); }
};

// σ and tanh by name, for the gated cells.
template <typename T>
inline Vec<T> vsigmoid(Vec<T> x) { return Act<Activation::Sigmoid, T>::f(x); }
template <typename T>
inline Vec<T> vtanh(Vec<T> x) { return Act<Activation::Tanh, T>::f(x); }

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
