// The population forward with its read-out for validation (API and math in evaluate.h), written
// once and compiled per ISA by evaluate_<isa>.cpp: W sequences of one model per vector.
#pragma once

#include <algorithm>
#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/evaluate.h"
#include "kernels/cpu/train_step_common.h"  // grow

namespace rnnlab::cpu::RNNLAB_ISA_NS::evaluate {

// A block's working memory, [rows, W] vectors each; per thread, grown to the largest block shape
// the thread has run and reused.
template <typename T>
struct Workspace {
  std::vector<T> xt;   // [I, W] x_t of the block's sequences
  std::vector<T> pre;  // [G·H, W] W_ih x_t + b
  std::vector<T> rec;  // [G·H, W] W_hh h_{t−1}
  std::vector<T> h;    // [H, W] h_t
  std::vector<T> c;    // [H, W] the LSTM's c_t
  std::vector<T> out;  // [O, W] y_t
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

// out[j] = init_j + Σ_{k < n} w[j, k] · in[k] for the rows j0 … j0 + R − 1 of the row-major
// w [·, n], where out[j], in[k] are the vectors at out + j·W, in + k·W and init_j is bias[j]
// (0 without a bias). R rows share each load of in[k]; every lane sums in the order of k.
template <int R, typename T>
inline void matvec_rows(int64_t j0, int64_t n, const T* w, const T* bias, const T* in, T* out) {
  using V = Vec<T>;
  constexpr int64_t W = V::size;
  V acc[R];
  for (int r = 0; r < R; ++r) acc[r] = bias ? V::broadcast(bias[j0 + r]) : V::zero();
  for (int64_t k = 0; k < n; ++k) {
    const V v = V::load(in + k * W);
    for (int r = 0; r < R; ++r) acc[r] = fmadd(V::broadcast(w[(j0 + r) * n + k]), v, acc[r]);
  }
  for (int r = 0; r < R; ++r) acc[r].store(out + (j0 + r) * W);
}

// matvec_rows over all `rows` rows: blocks of 8 (independent FMA chains hide the FMA latency),
// then one row at a time.
template <typename T>
void matvec(int64_t rows, int64_t n, const T* w, const T* bias, const T* in, T* out) {
  int64_t j = 0;
  for (; j + 8 <= rows; j += 8) matvec_rows<8>(j, n, w, bias, in, out);
  for (; j < rows; ++j) matvec_rows<1>(j, n, w, bias, in, out);
}

// The cells' state updates from pre = W_ih x_t + b and rec = W_hh h_{t−1} (rec = 0 at t = 0),
// unit by unit over the block's lanes.
template <typename T, EvalCell C, Activation A>
inline void update_state(int64_t H, const T* pre, const T* rec, const T* b_hn, T* h, T* c) {
  using V = Vec<T>;
  constexpr int64_t W = V::size;
  for (int64_t j = 0; j < H; ++j) {
    auto z = [&](int q) { return V::load(pre + (q * H + j) * W) + V::load(rec + (q * H + j) * W); };
    if constexpr (C == EvalCell::Elman) {
      Act<A, T>::f(z(0)).store(h + j * W);
    } else if constexpr (C == EvalCell::Lstm) {
      const V i = vsigmoid(z(0)), f = vsigmoid(z(1)), g = vtanh(z(2)), o = vsigmoid(z(3));
      const V cj = fmadd(f, V::load(c + j * W), i * g);
      cj.store(c + j * W);
      (o * vtanh(cj)).store(h + j * W);
    } else {
      const V r = vsigmoid(z(0)), u = vsigmoid(z(1));
      const V hn = V::load(rec + (2 * H + j) * W) + V::broadcast(b_hn[j]);
      const V n = vtanh(fmadd(r, hn, V::load(pre + (2 * H + j) * W)));
      fmadd(u, V::load(h + j * W) - n, n).store(h + j * W);  // (1 − z) n + z h_{t−1}
    }
  }
}

template <EvalCell C>
constexpr int64_t gate_blocks() {
  return C == EvalCell::Elman ? 1 : C == EvalCell::Lstm ? 4 : 3;
}

template <typename T, EvalCell C, Activation A>
void run_block(const Evaluate<T>& s, int64_t m, int64_t b0) {
  using V = Vec<T>;
  constexpr int64_t W = V::size;
  const int64_t Tn = s.T_, B = s.B, I = s.I, H = s.H, O = s.O, K = s.K, G = gate_blocks<C>() * H;
  const int n = static_cast<int>(std::min<int64_t>(W, B - b0));
  const T* w_ih = s.params[0] + m * G * I;
  const T* w_hh = s.params[1] + m * G * H;
  const T* bias = s.params[2] + m * G;
  const int out_param = C == EvalCell::Gru ? 4 : 3;
  const T* b_hn = C == EvalCell::Gru ? s.params[3] + m * H : nullptr;
  const T* w_out = s.params[out_param] + m * O * H;
  const T* b_out = s.params[out_param + 1] + m * O;
  Workspace<T>& w = workspace<T>();
  T* xt = train_step::grow(w.xt, I * W);
  T* pre = train_step::grow(w.pre, G * W);
  T* rec = train_step::grow(w.rec, G * W);
  T* h = train_step::grow(w.h, H * W);
  T* c = train_step::grow(w.c, H * W);
  T* out = train_step::grow(w.out, O * W);
  std::fill(xt, xt + I * W, T(0));  // the lanes past the batch's end stay 0
  std::fill(h, h + H * W, T(0));
  std::fill(c, c + H * W, T(0));
  std::fill(rec, rec + G * W, T(0));  // t = 0: h_0 = 0, so no recurrent term (not 0·W_hh)
  for (int64_t t = 0; t < Tn; ++t) {
    const T* xs = s.x + ((m * Tn + t) * B + b0) * I;
    for (int l = 0; l < n; ++l)
      for (int64_t i = 0; i < I; ++i) xt[i * W + l] = xs[l * I + i];
    matvec(G, I, w_ih, bias, xt, pre);
    if (t > 0) matvec<T>(G, H, w_hh, nullptr, h, rec);
    update_state<T, C, A>(H, pre, rec, b_hn, h, c);
    if (t >= Tn - K) {
      matvec(O, H, w_out, b_out, h, out);
      T* ys = s.y + ((m * K + t - (Tn - K)) * B + b0) * O;
      for (int l = 0; l < n; ++l)
        for (int64_t o = 0; o < O; ++o) ys[l * O + o] = out[o * W + l];
    }
  }
}

// One function pointer per dtype: the cell and the Elman activation are template parameters
// inside, picked here.
template <typename T>
void run(const Evaluate<T>& s, int64_t m, int64_t b0) {
  switch (s.cell) {
    case EvalCell::Lstm: return run_block<T, EvalCell::Lstm, Activation::Identity>(s, m, b0);
    case EvalCell::Gru: return run_block<T, EvalCell::Gru, Activation::Identity>(s, m, b0);
    case EvalCell::Elman:
      switch (s.act) {
        case Activation::Tanh: return run_block<T, EvalCell::Elman, Activation::Tanh>(s, m, b0);
        case Activation::Relu: return run_block<T, EvalCell::Elman, Activation::Relu>(s, m, b0);
        case Activation::Sigmoid: return run_block<T, EvalCell::Elman, Activation::Sigmoid>(s, m, b0);
        case Activation::Identity: return run_block<T, EvalCell::Elman, Activation::Identity>(s, m, b0);
      }
  }
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS::evaluate

// Defines the ISA's kernel getter, evaluate_kernel_<isa><T>() (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_EVALUATE(getter)                                                         \
  namespace rnnlab::cpu {                                                                      \
  template <typename T>                                                                        \
  EvaluateKernel<T> getter() {                                                                 \
    return {&RNNLAB_ISA_NS::evaluate::run<T>, RNNLAB_ISA_NS::Vec<T>::size};                    \
  }                                                                                            \
  template EvaluateKernel<float> getter<float>();                                              \
  template EvaluateKernel<double> getter<double>();                                            \
  }
