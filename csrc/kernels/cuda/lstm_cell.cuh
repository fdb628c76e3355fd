// The LSTM cell update and its backward, for one (unit, batch row), shared by the on-chip and the
// per-step kernels. Formulas in lstm.cuh; the CPU twin is cell_forward/cell_backward in
// kernels/cpu/lstm_impl.h. Gate order (i, f, g, o).
#pragma once

#include "kernels/cuda/activations.cuh"

namespace rnnlab::cuda {

// gate = (σ(z_i), σ(z_f), tanh(z_g), σ(z_o)); c = f c_prev + i g; h = o tanh(c).
template <typename T>
__device__ __forceinline__ void lstm_cell_forward(const T (&z)[4], T c_prev, T (&gate)[4], T& c, T& h) {
  gate[0] = Phi<T>::f(Activation::Sigmoid, z[0]);
  gate[1] = Phi<T>::f(Activation::Sigmoid, z[1]);
  gate[2] = Phi<T>::f(Activation::Tanh, z[2]);
  gate[3] = Phi<T>::f(Activation::Sigmoid, z[3]);
  c = fma(gate[1], c_prev, gate[0] * gate[2]);
  h = gate[3] * Phi<T>::f(Activation::Tanh, c);
}

// Given δ_t (d), ε'_{t+1} + ∂⁺L/∂c_t (e_in), the saved gates, c_t and c_{t-1}: writes ∂z_t into dz
// and returns ε'_t = ε_t f.
template <typename T>
__device__ __forceinline__ T lstm_cell_backward(T d, T e_in, const T (&gate)[4], T c, T c_prev, T (&dz)[4]) {
  const T i = gate[0], f = gate[1], g = gate[2], o = gate[3];
  const T tc = Phi<T>::f(Activation::Tanh, c);
  const T e = fma(d * o, T(1) - tc * tc, e_in);
  dz[0] = e * g * i * (T(1) - i);
  dz[1] = e * c_prev * f * (T(1) - f);
  dz[2] = e * i * (T(1) - g * g);
  dz[3] = d * tc * o * (T(1) - o);
  return e * f;
}

}  // namespace rnnlab::cuda
