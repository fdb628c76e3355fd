// Vectorized activation functions φ and their derivatives written in terms of h = φ(a).
//
// glibc's tanhf is scalar and made a whole Elman step 8.6× slower (DESIGN §7), so float32 uses
// the rational and exp forms below; their maximum relative error against float64 tanh/sigmoid
// over float inputs in [-20, 20] (tests/test_elman_ops.py) is 3.6e-7 for tanh (6 ulp) and ≈ 1.5e-7
// for sigmoid.
// float64 goes lane by lane through libm: it is the accuracy reference, not the speed path.
#pragma once

#include "kernels/common.h"
#include "kernels/cpu/simd.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {

// e^x for x in [-87, 87]: x = n ln2 + r with |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial
// (truncation error r^8/8! < 5e-9), then scaled by 2^n exactly (ldexp).
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
  return ldexp(p, n);
}

// tanh as one rational function, x·P(x²)/Q(x²) with P of degree 6 and Q of degree 3 in x² (a
// weighted least-squares fit for relative error on [0, 9], 7e-9 before float rounding), on x
// clamped to [-9, 9], where tanh is 1 in float beyond. 19 vector operations for W values, about
// half of the exp-based form (1 − e^{−2|x|})/(1 + e^{−2|x|}) with a polynomial near 0 that both
// had to be computed for every lane. Its float32 rounding is 6 ulp at most (near |x| ≈ 7, where
// numerator and denominator are large) and 0.43 ulp on average over every float in [2^-20, 20]
// (docs/performance.md, "A cheaper tanh"). The result is clamped to [-1, 1], as torch.tanh's is.
inline Vec<float> tanh_f32(Vec<float> x) {
  using V = Vec<float>;
  // Operand order matters: x86 min/max return the second operand when one is NaN, and NaN must
  // propagate as it does in PyTorch.
  const V xc = min(V::broadcast(9.0f), max(V::broadcast(-9.0f), x));
  const V z = xc * xc;
  V p = V::broadcast(-8.56161387e-14f);
  p = fmadd(p, z, V::broadcast(5.3092919e-11f));
  p = fmadd(p, z, V::broadcast(-2.02968007e-08f));
  p = fmadd(p, z, V::broadcast(1.11734134e-05f));
  p = fmadd(p, z, V::broadcast(0.00310587883f));
  p = fmadd(p, z, V::broadcast(0.130857646f));
  p = fmadd(p, z, V::broadcast(1.0f));
  V q = V::broadcast(0.000254888553f);
  q = fmadd(q, z, V::broadcast(0.0245029349f));
  q = fmadd(q, z, V::broadcast(0.46419093f));
  q = fmadd(q, z, V::broadcast(1.0f));
  return min(V::broadcast(1.0f), max(V::broadcast(-1.0f), fast_div(xc * p, q)));
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
