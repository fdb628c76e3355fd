// φ and φ'(a) written in terms of h = φ(a), on the device (the CUDA twin of cpu/activations.h).
//
// setup.py compiles with --use_fast_math, under which tanhf becomes tanh.approx.f32 (relative
// error ≈ 2^-11, far from the CPU kernels' 1e-7). So float32 spells out the same forms as the CPU
// kernel with explicit intrinsics whose accuracy does not depend on compiler flags: an odd
// polynomial for |x| < 0.55 and (1 − e)/(1 + e), e = e^{−2|x|} ≤ 0.34, beyond (no cancellation
// there). __expf and __fdividef are within a few ulp on these ranges, so tanh and sigmoid stay
// within ≈3e-7 relative. float64 uses the double-precision libm, which fast-math leaves alone.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common.h"

namespace rnnlab::cuda {

__device__ __forceinline__ float tanh_accurate(float x) {
  // |x| clamped at 20 (tanh is 1 in float beyond 9) by a comparison, not fminf, which would
  // turn NaN into 20: NaN must fail `ax > 0.55f` and take the polynomial branch, which propagates it.
  float ax = fabsf(x);
  ax = ax > 20.0f ? 20.0f : ax;
  const float z = x * x;
  float p = -0.006356495898216963f;
  p = fmaf(p, z, 0.021127240732312202f);
  p = fmaf(p, z, -0.05386507883667946f);
  p = fmaf(p, z, 0.13332699239253998f);
  p = fmaf(p, z, -0.33333319425582886f);
  const float small = fmaf(x * z, p, x);
  const float e = __expf(-2.0f * ax);
  const float large = copysignf(__fdividef(1.0f - e, 1.0f + e), x);
  return ax > 0.55f ? large : small;
}

__device__ __forceinline__ float sigmoid_accurate(float x) {
  const float nx = fmaxf(-87.0f, fminf(87.0f, -x));  // fminf/fmaxf drop NaN: restore it below
  const float s = __fdividef(1.0f, 1.0f + __expf(nx));
  return x != x ? x : s;
}

template <typename T>
struct Phi;

template <>
struct Phi<float> {
  static __device__ __forceinline__ float f(Activation a, float x) {
    switch (a) {
      case Activation::Tanh: return tanh_accurate(x);
      case Activation::Relu: return x < 0.0f ? 0.0f : x;  // NaN compares false and propagates, as in torch
      case Activation::Sigmoid: return sigmoid_accurate(x);
      default: return x;
    }
  }
};

template <>
struct Phi<double> {
  static __device__ __forceinline__ double f(Activation a, double x) {
    switch (a) {
      case Activation::Tanh: return tanh(x);
      case Activation::Relu: return x < 0.0 ? 0.0 : x;
      case Activation::Sigmoid: return 1.0 / (1.0 + exp(-x));
      default: return x;
    }
  }
};

// φ'(a) from h = φ(a): tanh 1 − h², relu [h > 0], sigmoid h(1 − h), identity 1 (cpu/activations.h).
template <typename T>
__device__ __forceinline__ T dphi_from_h(Activation a, T h) {
  switch (a) {
    case Activation::Tanh: return T(1) - h * h;
    case Activation::Relu: return h > T(0) ? T(1) : T(0);
    case Activation::Sigmoid: return h * (T(1) - h);
    default: return T(1);
  }
}

}  // namespace rnnlab::cuda
