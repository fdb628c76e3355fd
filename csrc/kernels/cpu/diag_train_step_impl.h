// The fused diagonal (LRU) training update, written once and compiled per ISA by
// diag_train_step_<isa>.cpp. The API, shapes and math are documented in diag_train_step.h; the
// parts every cell shares (the loss of a read-out, gradient GEMMs, clipping and the optimizer) in
// train_step_common.h.
//
// The recurrence is elementwise per channel, so both passes run column block by column block (one
// vector of the interleaved (re, im) columns) with the time loop inside: λ stays in registers for
// the whole sequence, and in the backward, which runs row by row, so do v_{t+1} and every running
// sum of the row. Only the read-out couples the columns; it runs between the two passes, on the
// stored states of the read-out steps.
#pragma once

#include <vector>

#include "kernels/cpu/diag_train_step.h"
#include "kernels/cpu/train_step_common.h"

// The diagonal cell's own names live in a namespace of their own: the other cells' Workspace,
// workspace() and run_model in train_step are different templates under the same names, and they
// would otherwise be one symbol to the linker.
namespace rnnlab::cpu::RNNLAB_ISA_NS::train_step::diag {

// Working memory of the thread that runs a model; it grows to the largest model the thread has
// run and is reused by every later update (a warm training loop allocates nothing).
template <typename T>
struct Workspace : GemmBuffers<T> {
  std::vector<T> lam_re, lam_im, gamma;  // [N] λ and γ of every channel
  // [Nr] λ as coefficient rows over the interleaved columns, as in diag_impl.h:
  // λ ⊙ z = a ⊙ z + b ⊙ swap(z) and conj(λ) ⊙ z = a ⊙ z − b ⊙ swap(z), a = (λ_re, λ_re), b = (−λ_im, λ_im)
  std::vector<T> lam_a, lam_b;
  std::vector<T> w_in;   // [I, Nr] (γ ⊙ B)ᵀ interleaved: u_t adds one row per input, vectorized over columns
  std::vector<T> w_out;  // [O, Nr] (C_re, −C_im) interleaved: Re(C h) = w_out · h over the real columns
  std::vector<T> hs;     // [T, B, Nr] states h_1 … h_T
  std::vector<T> gy;     // [K, B, O] ∂L/∂ŷ_t
  std::vector<T> gyt;    // [O, K·B] the same, transposed: ∂w_out and ∂D each one GEMM
  std::vector<T> block_sums;  // [2 + I, vector] the backward's sums of one column block (backward())
  std::vector<T> extra_sums;  // [I − kRegisterInputs, vector] one row's sums of the inputs beyond those in registers
  std::vector<T> lam_p, lam_q;  // [Nr] Σ_{t,b} h_{t−1} ⊙ δ_t and h_{t−1} ⊙ swap(δ_t)
  std::vector<T> p_in;          // [I, Nr] P = Σ_{t,b} x_t δ_tᵀ
  std::vector<T> g_read;        // [O, Nr] ∂w_out
  std::vector<T> grads;         // every gradient, laid out like the parameters
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

// λ ⊙ z and conj(λ) ⊙ z over one vector of columns, from the coefficient rows (a, b).
template <typename T, bool Complex>
inline Vec<T> lam_mul(Vec<T> a, Vec<T> b, Vec<T> z) {
  if constexpr (Complex) return fmadd(b, swap_pairs(z), a * z);
  else return a * z;
}
template <typename T, bool Complex>
inline Vec<T> conj_lam_mul(Vec<T> a, Vec<T> b, Vec<T> z) {
  if constexpr (Complex) return a * z - b * swap_pairs(z);
  else return a * z;
}

// λ and γ of every channel from the stored parameters (rnnlab.nn.lru.lru_lam and lru_forward),
// and the coefficient rows, w_in and w_out of the passes.
template <typename T, bool Complex>
void prepare(const TrainStep<T>& s, const DiagVariant& var, int64_t m, Workspace<T>& w) {
  const int64_t N = s.H, I = s.I, O = s.O, Nr = Complex ? 2 * N : N;
  const T* p0 = s.params[0] + m * N;
  const T* p1 = Complex ? s.params[1] + m * N : nullptr;
  T* re = grow(w.lam_re, N);
  T* im = grow(w.lam_im, N);
  T* gamma = grow(w.gamma, N);
  for (int64_t n = 0; n < N; ++n) {
    switch (var.lambda) {
      case DiagLambda::Exp: {
        const T nu = std::exp(-std::exp(p0[n])), theta = std::exp(p1[n]);
        re[n] = nu * std::cos(theta), im[n] = nu * std::sin(theta);
        break;
      }
      case DiagLambda::Polar: re[n] = p0[n] * std::cos(p1[n]), im[n] = p0[n] * std::sin(p1[n]); break;
      case DiagLambda::Plain: re[n] = p0[n], im[n] = p1[n]; break;
      case DiagLambda::Real: re[n] = std::exp(-std::exp(p0[n])), im[n] = T(0); break;
    }
    switch (var.gamma) {
      case DiagGamma::Learned: gamma[n] = std::exp(s.params[var.gamma_param()][m * N + n]); break;
      case DiagGamma::None: gamma[n] = T(1); break;
      case DiagGamma::Fixed: {
        const T r = Complex ? std::hypot(re[n], im[n]) : std::abs(re[n]);
        gamma[n] = std::sqrt(T(1) - r * r + T(1e-6));
        break;
      }
    }
  }
  T* a = grow(w.lam_a, Nr);
  T* b = grow(w.lam_b, Nr);
  T* w_in = grow(w.w_in, I * Nr);
  T* w_out = grow(w.w_out, O * Nr);
  const T* b_re = s.params[var.b_param()] + m * N * I;
  const T* c_re = s.params[var.c_param()] + m * O * N;
  for (int64_t n = 0; n < N; ++n) {
    if constexpr (Complex) {
      a[2 * n] = a[2 * n + 1] = re[n];
      b[2 * n] = -im[n], b[2 * n + 1] = im[n];
      const T* b_im = s.params[var.b_param() + 1] + m * N * I;
      for (int64_t i = 0; i < I; ++i) {
        w_in[i * Nr + 2 * n] = gamma[n] * b_re[n * I + i];
        w_in[i * Nr + 2 * n + 1] = gamma[n] * b_im[n * I + i];
      }
      const T* c_im = s.params[var.c_param() + 1] + m * O * N;
      for (int64_t o = 0; o < O; ++o) {
        w_out[o * Nr + 2 * n] = c_re[o * N + n];
        w_out[o * Nr + 2 * n + 1] = -c_im[o * N + n];
      }
    } else {
      a[n] = re[n], b[n] = T(0);
      for (int64_t i = 0; i < I; ++i) w_in[i * Nr + n] = gamma[n] * b_re[n * I + i];
      for (int64_t o = 0; o < O; ++o) w_out[o * Nr + n] = c_re[o * N + n];
    }
  }
}

// h_t = λ ⊙ h_{t−1} + w_inᵀ x_t for every step and row, into w.hs.
template <typename T, bool Complex>
void forward(const TrainStep<T>& s, const T* x, Workspace<T>& w) {
  using V = Vec<T>;
  const int64_t Tn = s.T_, B = s.B, I = s.I, Nr = Complex ? 2 * s.H : s.H;
  T* hs = grow(w.hs, Tn * B * Nr);
  for (int64_t j = 0; j < Nr; j += V::size) {
    const int n = static_cast<int>(std::min<int64_t>(V::size, Nr - j));
    const V a = load_n(w.lam_a.data() + j, n), b = load_n(w.lam_b.data() + j, n);
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t r = 0; r < B; ++r) {
        V h = t > 0 ? lam_mul<T, Complex>(a, b, load_n(hs + ((t - 1) * B + r) * Nr + j, n)) : V::zero();  // h_0 = 0
        const T* xr = x + (t * B + r) * I;
        for (int64_t i = 0; i < I; ++i) h = fmadd(V::broadcast(xr[i]), load_n(w.w_in.data() + i * Nr + j, n), h);
        store_n(h, hs + (t * B + r) * Nr + j, n);
      }
  }
}

// Inputs whose running sum x_{t,i} δ_t the backward keeps in a register (the tasks have 1–6); the
// others go through memory.
constexpr int kRegisterInputs = 8;

// δ_t, v_t and their squared norms, and the sums of ∂λ and P: column block by column block and in
// a block row by row, the time loop inside, so that v_{t+1} and every running sum of the row stay
// in registers (through memory, their stores were the backward's bottleneck). Each row's sums
// are added to the block's in row order, then stored into lam_p, lam_q and p_in.
template <typename T, bool Complex>
void backward(const TrainStep<T>& s, int64_t m, const T* x, Workspace<T>& w) {
  using V = Vec<T>;
  constexpr int W = V::size;
  const int64_t Tn = s.T_, B = s.B, I = s.I, O = s.O, Nr = Complex ? 2 * s.H : s.H, first_read = Tn - s.K;
  const int64_t R = 2 + I;  // sums per block: h_{t−1} ⊙ δ_t, h_{t−1} ⊙ swap(δ_t), x_{t,i} δ_t
  const T* hs = w.hs.data();
  const T* gy = w.gy.data();
  T* block = grow(w.block_sums, R * W);
  T* extra = grow(w.extra_sums, std::max<int64_t>(I - kRegisterInputs, 0) * W);
  T* lam_p = grow(w.lam_p, Nr);
  T* lam_q = grow(w.lam_q, Nr);
  T* p_in = grow(w.p_in, I * Nr);
  T* delta_sq = s.delta_sq + m * Tn * B;
  T* v_sq = s.v_sq + m * Tn * B;
  for (int64_t j = 0; j < Nr; j += W) {
    const int n = static_cast<int>(std::min<int64_t>(W, Nr - j));
    const V a = load_n(w.lam_a.data() + j, n), b = load_n(w.lam_b.data() + j, n);
    std::fill(block, block + R * W, T(0));
    for (int64_t r = 0; r < B; ++r) {
      V v = V::zero(), sum_p = V::zero(), sum_q = V::zero();  // v_T = 0
      V sum_x[kRegisterInputs];
      for (int i = 0; i < kRegisterInputs; ++i) sum_x[i] = V::zero();
      std::fill(extra, extra + std::max<int64_t>(I - kRegisterInputs, 0) * W, T(0));
      for (int64_t t = Tn - 1; t >= 0; --t) {
        V d = v;  // δ_t = v_{t+1} + ∂⁺L/∂h_t
        if (t >= first_read) {
          const T* g = gy + ((t - first_read) * B + r) * O;
          for (int64_t o = 0; o < O; ++o) d = fmadd(V::broadcast(g[o]), load_n(w.w_out.data() + o * Nr + j, n), d);
        }
        v = conj_lam_mul<T, Complex>(a, b, d);
        // the columns of later blocks add to the first block's sums, in block order
        const T dsq = hsum(d * d), vsq = hsum(v * v);
        delta_sq[t * B + r] = j == 0 ? dsq : delta_sq[t * B + r] + dsq;
        v_sq[t * B + r] = j == 0 ? vsq : v_sq[t * B + r] + vsq;
        if (t > 0) {  // h_0 = 0 adds nothing to ∂λ
          const V hp = load_n(hs + ((t - 1) * B + r) * Nr + j, n);
          sum_p = fmadd(hp, d, sum_p);
          if constexpr (Complex) sum_q = fmadd(hp, swap_pairs(d), sum_q);
        }
        const T* xr = x + (t * B + r) * I;
#pragma GCC unroll 8
        for (int i = 0; i < kRegisterInputs; ++i)
          if (i < I) sum_x[i] = fmadd(V::broadcast(xr[i]), d, sum_x[i]);
        for (int64_t i = kRegisterInputs; i < I; ++i) {
          T* e = extra + (i - kRegisterInputs) * W;
          fmadd(V::broadcast(xr[i]), d, V::load(e)).store(e);
        }
      }
      (V::load(block) + sum_p).store(block);
      (V::load(block + W) + sum_q).store(block + W);
      for (int64_t i = 0; i < I; ++i) {
        const V row = i < kRegisterInputs ? sum_x[i] : V::load(extra + (i - kRegisterInputs) * W);
        (V::load(block + (2 + i) * W) + row).store(block + (2 + i) * W);
      }
    }
    for (int64_t q = 0; q < R; ++q) {
      T* dest = q == 0 ? lam_p : q == 1 ? lam_q : p_in + (q - 2) * Nr;
      store_n(V::load(block + q * W), dest + j, n);
    }
  }
}

// The gradients of the stored parameters from the sums of backward() and the read-out's GEMMs,
// into w.grads laid out like the parameters (sizes[p] entries each).
template <typename T, bool Complex>
void gradients(const TrainStep<T>& s, const DiagVariant& var, int64_t m, const T* x, const int64_t* sizes,
               Workspace<T>& w) {
  const int64_t N = s.H, I = s.I, O = s.O, K = s.K, B = s.B, Nr = Complex ? 2 * N : N, first_read = s.T_ - K;
  T* g[kMaxTrainParams];
  g[0] = w.grads.data();
  for (int p = 1; p < var.n_params(); ++p) g[p] = g[p - 1] + sizes[p - 1];
  const T* re = w.lam_re.data();
  const T* im = w.lam_im.data();
  const T* gamma = w.gamma.data();
  const T* b_re = s.params[var.b_param()] + m * N * I;
  const T* b_im = Complex ? s.params[var.b_param() + 1] + m * N * I : nullptr;
  const T* p0 = s.params[0] + m * N;
  const T* p1 = Complex ? s.params[1] + m * N : nullptr;
  for (int64_t n = 0; n < N; ++n) {
    // ∂L/∂λ = G_a + i·G_b = Σ conj(h_{t−1}) δ_t, from the pair sums (diag_backward)
    T ga = Complex ? w.lam_p[2 * n] + w.lam_p[2 * n + 1] : w.lam_p[n];
    T gb = Complex ? w.lam_q[2 * n] - w.lam_q[2 * n + 1] : T(0);
    // ∂L/∂γ = Σ_i B_re Re P + B_im Im P; ∂B = γ ⊙ P
    T g_gamma = 0;
    for (int64_t i = 0; i < I; ++i) {
      const T pr = w.p_in[i * Nr + (Complex ? 2 * n : n)];
      g[var.b_param()][n * I + i] = gamma[n] * pr;
      g_gamma += b_re[n * I + i] * pr;
      if constexpr (Complex) {
        const T pi = w.p_in[i * Nr + 2 * n + 1];
        g[var.b_param() + 1][n * I + i] = gamma[n] * pi;
        g_gamma += b_im[n * I + i] * pi;
      }
    }
    if (var.gamma == DiagGamma::Learned) g[var.gamma_param()][n] = gamma[n] * g_gamma;  // γ = exp(gamma_log)
    if (var.gamma == DiagGamma::Fixed) {  // ∂γ/∂(λ_re, λ_im) = −(λ_re, λ_im)/γ
      ga -= re[n] / gamma[n] * g_gamma;
      gb -= im[n] / gamma[n] * g_gamma;
    }
    // the chain from λ to its stored parameters: ∂L/∂p = G_a ∂λ_re/∂p + G_b ∂λ_im/∂p
    const T turn = gb * re[n] - ga * im[n];  // ∂L/∂θ of λ = |λ| e^{iθ}
    switch (var.lambda) {
      case DiagLambda::Exp:
        g[0][n] = -std::exp(p0[n]) * (ga * re[n] + gb * im[n]);
        g[1][n] = std::exp(p1[n]) * turn;
        break;
      case DiagLambda::Polar: {
        // ∂λ/∂ν = sgn(λ) = λ/|λ| (0 at λ = 0), as torch.polar's backward has it: e^{iθ} for ν > 0,
        // its negative for ν < 0, outside the parametrization's domain, where a step can take ν
        const T r = std::hypot(re[n], im[n]);
        g[0][n] = r > 0 ? (ga * re[n] + gb * im[n]) / r : T(0);
        g[1][n] = turn;
        break;
      }
      case DiagLambda::Plain: g[0][n] = ga, g[1][n] = gb; break;
      case DiagLambda::Real: g[0][n] = -std::exp(p0[n]) * re[n] * ga; break;
    }
  }
  // ∂w_out = Σ_k gy_kᵀ h_{T−K+k} (C_re's and −C_im's columns interleaved), ∂D = Σ_k gy_kᵀ x_{T−K+k}
  const T* h_read = w.hs.data() + first_read * B * Nr;
  if constexpr (Complex) {
    T* g_read = grow(w.g_read, O * Nr);
    gradient_gemm(w, O, K * B, w.gyt.data(), K * B, h_read, Nr, g_read);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t n = 0; n < N; ++n) {
        g[var.c_param()][o * N + n] = g_read[o * Nr + 2 * n];
        g[var.c_param() + 1][o * N + n] = -g_read[o * Nr + 2 * n + 1];
      }
  } else {
    gradient_gemm(w, O, K * B, w.gyt.data(), K * B, h_read, Nr, g[var.c_param()]);
  }
  gradient_gemm(w, O, K * B, w.gyt.data(), K * B, x + first_read * B * I, I, g[var.d_param()]);
}

template <typename T, bool Complex>
void run(const TrainStep<T>& s, const DiagVariant& var, int64_t m) {
  const int64_t Tn = s.T_, B = s.B, I = s.I, N = s.H, O = s.O, K = s.K, Nr = Complex ? 2 * N : N;
  const int64_t first_read = Tn - K;
  const T* x = s.x + m * Tn * B * I;
  Workspace<T>& w = workspace<T>();
  prepare<T, Complex>(s, var, m, w);
  forward<T, Complex>(s, x, w);

  // ---- the read-out ŷ_t = Re(C h_t) + D x_t and the loss at the read-out steps ----
  T* gy = grow(w.gy, K * B * O);
  T* gyt = grow(w.gyt, O * K * B);
  const T* d_mat = s.params[var.d_param()] + m * O * I;
  double loss_sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t t = first_read + k;
    T* gyk = gy + k * B * O;
    for (int64_t r = 0; r < B; ++r)
      for (int64_t o = 0; o < O; ++o)
        gyk[r * O + o] = dot(Nr, w.hs.data() + (t * B + r) * Nr, w.w_out.data() + o * Nr) +
                         dot(I, x + (t * B + r) * I, d_mat + o * I);
    loss_sum += readout_loss(s, m, k, gyk, gyt);
  }
  s.loss[m] = mean_loss(s, loss_sum);

  // ---- backward, the gradients, the global norm, clipping (no W_hh) and the optimizer step ----
  backward<T, Complex>(s, m, x, w);
  int64_t sizes[kMaxTrainParams];
  int64_t total = 0;
  for (int p = 0; p < var.n_params(); ++p) {  // λ's and γ's [N], B's [N, I], C's [O, N], D [O, I]
    sizes[p] = p < var.b_param() ? N : p < var.c_param() ? N * I : p < var.d_param() ? O * N : O * I;
    total += sizes[p];
  }
  grow(w.grads, total);
  gradients<T, Complex>(s, var, m, x, sizes, w);
  clip_and_update(s, m, w.grads.data(), sizes, /*recurrent=*/-1);
}

template <typename T>
void run_model(const TrainStep<T>& s, const DiagVariant& var, int64_t m) {
  if (var.complex()) run<T, true>(s, var, m);
  else run<T, false>(s, var, m);
}

}  // namespace rnnlab::cpu::RNNLAB_ISA_NS::train_step::diag

// Defines the ISA's kernel getter, diag_train_step_kernel_<isa><T>() (RNNLAB_KERNEL_PER_ISA).
#define RNNLAB_DEFINE_DIAG_TRAIN_STEP(getter)                                                  \
  namespace rnnlab::cpu {                                                                      \
  template <typename T>                                                                        \
  DiagTrainStepFn<T> getter() {                                                                \
    return &RNNLAB_ISA_NS::train_step::diag::run_model<T>;                                     \
  }                                                                                            \
  template DiagTrainStepFn<float> getter<float>();                                             \
  template DiagTrainStepFn<double> getter<double>();                                           \
  }
