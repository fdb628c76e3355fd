// The fused Elman training update with one model per vector lane, written once and compiled per
// ISA by elman_train_step_<isa>.cpp (API and math in elman_train_step.h).
//
// Why: the row layout (elman_train_step_impl.h) vectorizes each model over H, so at H = 8 a
// 16-lane float vector is half idle, and its per-row work (input projection, activation, δ_t)
// and the packing of small GEMMs cost more than the H×H products. Here W = Vec<T>::size models
// (a group, the unit of parallel work) share every vector: lane l holds model m0 + l. The group's
// parameters are interleaved into the thread's workspace ([H, H, W] for W_hh: entry (j, k) of
// the W models is one vector), states are [B, H, W], and every operation is the row layout's
// scalar algorithm applied lane by lane (a[b][j] += W_hh[j][k]·h[b][k] is one FMA of a weight
// vector from L1 and a state vector), with no operation across lanes. A model's result therefore
// depends only on its own data and on the shapes (which fix every summation order): it is
// bitwise the same in any lane of any group, alone or in any population, at any thread count.
// Empty lanes of the last group hold zeros (parameters, inputs, targets), compute finite values
// and are never written back.
//
// Padding: every matrix dimension that a register block tiles as an output (batch rows, H, O)
// is padded to a multiple of kLanePad with zeros, the inputs (with the bias' constant one) to an
// even count; sums run over the true extents only, so what a padded row or column holds never
// reaches a true one.
#pragma once

#include <new>
#include <vector>

#include "kernels/cpu/activations.h"
#include "kernels/cpu/elman_train_step.h"
#include "kernels/cpu/train_step_common.h"

namespace rnnlab::cpu::RNNLAB_ISA_NS {
namespace train_step {
namespace lanes {

// Register blocks: R rows × C columns of accumulator vectors, plus C operand vectors and one
// more must fit the register file (32 zmm, 16 ymm; the portable Vec is an array of 4).
#if defined(RNNLAB_ISA_AVX512)
constexpr int kR = 4, kC = 4;
#else
constexpr int kR = 2, kC = 4;
#endif
constexpr int64_t kLanePad = 4;  // a multiple of kR and kC
static_assert(kLanePad % kR == 0 && kLanePad % kC == 0);

// The op takes the lanes layout when H ≤ kMaxHidden (elman_train_step_ops.cpp). Above it the
// row layout is faster: the group's W-fold interleaved matrices (W_hh is W·H²) outgrow L1 and L2
// while the row layout's packed GEMMs reach full vectors. Measured per ISA and dtype
// (benchmarks/bench_sweep.py --layouts, docs/sweeps.md): on AVX-512 the layouts tie at H = 64
// and 96 and the rows win at 128; on AVX2 they tie at 32 and the rows win at 48 (float32) and 64
// (float64); the portable build's lanes are still 2× faster at 64.
#if defined(RNNLAB_ISA_AVX2)
constexpr int64_t kMaxHidden = 32;
#else
constexpr int64_t kMaxHidden = 64;
#endif

inline int64_t padded(int64_t n) { return (n + kLanePad - 1) / kLanePad * kLanePad; }

// 64-byte aligned storage: every vector load of the interleaved buffers is one cache line.
template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const Aligned64<U>&) const { return true; }
};
template <typename T>
using LaneBuffer = std::vector<T, Aligned64<T>>;

// Working memory of the thread that runs a group, grown to the largest group it has run and
// reused (as the row layout's Workspace). Sizes in vectors of W lanes; Hp, Bp, Op are padded.
template <typename T>
struct LaneWorkspace {
  LaneBuffer<T> params;  // W_ih|b [Hp, Ix] (b as input column I), W_hh [Hp, Hp], W_out [Op, Hp], b_out [Op]
  LaneBuffer<T> grads;   // their gradients, laid out alike
  LaneBuffer<T> x;       // [T, Bp, Ix]: x_t with a constant 1 in column I for the true rows (the bias' input)
  LaneBuffer<T> hs;      // [T, Bp, Hp] states h_1 … h_T
  LaneBuffer<T> gy;      // [K, Bp, Op] ŷ, then ∂L/∂ŷ
  LaneBuffer<T> u, v;    // [Bp, Hp] u_t, and v_t = u_t W_hh (δ_{t−1}'s recurrent part)
  LaneBuffer<T> sq;      // [Bp] ‖δ_t‖² or ‖v_t‖² per row
  LaneBuffer<T> delta_sq, v_sq;  // [T, B] those of every step, written to the outputs at the end
  LaneBuffer<T> lane;    // [Op] one row's scratch (targets, squared errors)
  std::vector<T> model_grads;  // one model's gradients, de-interleaved for clip_and_update
};

template <typename T>
LaneWorkspace<T>& lane_workspace() {
  thread_local LaneWorkspace<T> w;
  return w;
}

// The three shapes of product the update needs, by which strides are one vector (W scalars):
// A·Bᵀ (ap = bp = W: dot products along rows of both, as h_{t−1} W_hhᵀ), A·B (ap = bn = W: as
// u_t W_hh) and Aᵀ·B (am = bn = W: sums of outer products over batch rows, as u_tᵀ h_{t−1}).
// Known at compile time, those strides become immediate offsets, which leaves GCC enough
// registers for the others (with every stride at run time it spilled offsets inside the loop).
enum class Form { ABt, AB, AtB };

// One operand pair of a lane GEMM: Σ_{p < P} A(m, p)·B(p, n), where A(m, p) is the vector at
// a + m·am + p·ap and B(p, n) the one at b + p·bp + n·bn (strides in scalars; those the Form
// fixes to W are not read).
template <typename T>
struct Term {
  const T* a;
  int64_t am, ap;
  const T* b;
  int64_t bp, bn;
  int64_t P;
};

// For every m < rows, n < cols (multiples of R, C): acc(m, n) = init(m, n) + Σ over `terms`, then
// epi(m, n0, acc) for each row m of a block with the C entries acc(m, n0 … n0 + C − 1). An R×C
// block of accumulators stays in registers across every term's p loop; blocks run row block by
// row block, n ascending.
template <Form F, int R, int C, typename T, typename Init, typename Epi>
void lane_gemm(int64_t rows, int64_t cols, const Term<T>* terms, int n_terms, Init init, Epi epi) {
  using V = Vec<T>;
  constexpr int64_t W = V::size;
  for (int64_t m0 = 0; m0 < rows; m0 += R) {
    for (int64_t n0 = 0; n0 < cols; n0 += C) {
      V acc[R][C];
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = init(m0 + r, n0 + c);
      for (int q = 0; q < n_terms; ++q) {
        const Term<T>& t = terms[q];
        const int64_t am = F == Form::AtB ? W : t.am, ap = F == Form::AtB ? t.ap : W;
        const int64_t bp = F == Form::ABt ? W : t.bp, bn = F == Form::ABt ? t.bn : W;
        const T* a = t.a + m0 * am;
        const T* b = t.b + n0 * bn;
        for (int64_t p = 0; p < t.P; ++p, a += ap, b += bp) {
          V bv[C];
          for (int c = 0; c < C; ++c) bv[c] = V::load(b + c * bn);
          for (int r = 0; r < R; ++r) {
            const V av = V::load(a + r * am);
            for (int c = 0; c < C; ++c) acc[r][c] = fmadd(av, bv[c], acc[r][c]);
          }
        }
      }
      for (int r = 0; r < R; ++r) epi(m0 + r, n0, acc[r]);
    }
  }
}

// Stores C consecutive vectors.
template <int C, typename T>
inline void store_row(const Vec<T>* a, T* p) {
  for (int c = 0; c < C; ++c) a[c].store(p + c * Vec<T>::size);
}

// The group's sizes and where each interleaved parameter starts (offsets in scalars).
struct GroupShape {
  int64_t T, B, I, H, O, K, W;
  int64_t Bp, Hp, Op;  // padded rows, units, outputs
  int64_t Ia, Ix;       // Ia = I + 1 inputs (the bias' column), Ix: Ia padded to even (∂W_ih's blocks are 2 wide)
  int64_t ih, hh, out, bout, total;
  GroupShape(int64_t T_, int64_t B_, int64_t I_, int64_t H_, int64_t O_, int64_t K_, int64_t W_)
      : T(T_), B(B_), I(I_), H(H_), O(O_), K(K_), W(W_), Bp(padded(B_)), Hp(padded(H_)), Op(padded(O_)), Ia(I_ + 1),
        Ix((I_ + 2) / 2 * 2) {
    ih = 0;
    hh = ih + Hp * Ix * W;
    out = hh + Hp * Hp * W;
    bout = out + Op * Hp * W;
    total = bout + Op * W;
  }
};

// e^x lane by lane for x ≤ 0 (cross-entropy's exponents): float through exp_f32 (its range
// starts at −87, below which e^x flushes to 0 anyway), float64 through libm as the accuracy path.
template <typename T>
inline Vec<T> exp_nonpositive(Vec<T> x) {
  if constexpr (std::is_same_v<T, float>) return exp_f32(max(Vec<float>::broadcast(-87.0f), x));  // NaN-propagating order
  else return lanewise(x, [](T v) { return std::exp(v); });
}

// The loss of read-out step k and its gradient: gy [Bp, Op] holds ŷ on entry and ∂L/∂ŷ on
// return (true rows and outputs); each lane's loss terms are summed into loss_sum[l] in double,
// in the row layout's order (rows, then outputs).
template <typename T, Loss L>
void lane_loss(const ElmanTrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, int64_t k, T* gy,
               LaneWorkspace<T>& w, double* loss_sum) {
  using V = Vec<T>;
  const int64_t W = g.W, B = g.B, O = g.O, K = g.K;
  T* lane = grow(w.lane, g.Op * W);
  for (int64_t r = 0; r < B; ++r) {
    T* row = gy + r * g.Op * W;
    if constexpr (L == Loss::CrossEntropy) {
      V top = V::load(row);
      for (int64_t o = 1; o < O; ++o) top = max(top, V::load(row + o * W));
      V z = V::zero();
      for (int64_t o = 0; o < O; ++o) z = z + exp_nonpositive(V::load(row + o * W) - top);
      const V lse = top + lanewise(z, [](T v) { return std::log(v); });
      alignas(64) T lse_l[V::size];
      lse.store(lse_l);
      int64_t cls[V::size];
      for (int64_t l = 0; l < n; ++l) {
        const int64_t c = s.class_target[((m0 + l) * K + k) * B + r];
        if (c < 0 || c >= O) throw std::invalid_argument("target: class index out of range [0, O) (O = number of outputs)");
        cls[l] = c;
        loss_sum[l] += lse_l[l] - row[c * W + l];
      }
      for (int64_t o = 0; o < O; ++o) (exp_nonpositive(V::load(row + o * W) - lse)).store(row + o * W);
      for (int64_t l = 0; l < n; ++l) row[cls[l] * W + l] -= T(1);
      const V inv = V::broadcast(T(1) / static_cast<T>(K * B));  // the mean over K·B rows
      for (int64_t o = 0; o < O; ++o) (V::load(row + o * W) * inv).store(row + o * W);
    } else {
      std::fill(lane, lane + O * W, T(0));  // empty lanes: target 0
      for (int64_t l = 0; l < n; ++l) {
        const T* y = s.value_target + (((m0 + l) * K + k) * B + r) * O;
        for (int64_t o = 0; o < O; ++o) lane[o * W + l] = y[o];
      }
      const V factor = V::broadcast(T(2) * s.loss_scale / static_cast<T>(K * B * O));
      for (int64_t o = 0; o < O; ++o) {
        const V d = V::load(row + o * W) - V::load(lane + o * W);
        (factor * d).store(row + o * W);
        d.store(lane + o * W);
        for (int64_t l = 0; l < n; ++l) loss_sum[l] += static_cast<double>(lane[o * W + l]) * lane[o * W + l];
      }
    }
  }
}

// Copies the group's parameters into w.params, interleaved and zero-padded; empty lanes stay zero.
template <typename T>
void interleave_params(const ElmanTrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, LaneWorkspace<T>& w) {
  const int64_t W = g.W, I = g.I, H = g.H, O = g.O, Ix = g.Ix, Hp = g.Hp;
  T* p = grow(w.params, g.total);
  std::fill(p, p + g.total, T(0));
  for (int64_t l = 0; l < n; ++l) {
    const int64_t m = m0 + l;
    const T* w_ih = s.params[0] + m * H * I;
    const T* w_hh = s.params[1] + m * H * H;
    const T* bias = s.params[2] + m * H;
    const T* w_out = s.params[3] + m * O * H;
    const T* b_out = s.params[4] + m * O;
    for (int64_t j = 0; j < H; ++j) {
      for (int64_t i = 0; i < I; ++i) p[g.ih + (j * Ix + i) * W + l] = w_ih[j * I + i];
      p[g.ih + (j * Ix + I) * W + l] = bias[j];
      for (int64_t k = 0; k < H; ++k) p[g.hh + (j * Hp + k) * W + l] = w_hh[j * H + k];
    }
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t j = 0; j < H; ++j) p[g.out + (o * Hp + j) * W + l] = w_out[o * H + j];
      p[g.bout + o * W + l] = b_out[o];
    }
  }
}

// x_t of the group's models into x_t [Bp, Ix], with the bias' constant input and zeros in the
// padding. Lane l's x_t is at l·T·B·I past model m0's: one gather per input (the op checked that
// these offsets fit the gather's 32-bit indices). Done step by step inside the forward, where
// the gathers overlap the step's arithmetic (an explicit prefetch of x_{t+1} measured no faster).
template <typename T>
void gather_inputs(const ElmanTrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, int64_t t, T* x_t) {
  const int64_t W = g.W, T_ = g.T, B = g.B, I = g.I, Ix = g.Ix;
  const int stride = static_cast<int>(T_ * B * I);
  for (int64_t r = 0; r < B; ++r) {
    const T* src = s.x + ((m0 * T_ + t) * B + r) * I;
    T* row = x_t + r * Ix * W;
    for (int64_t i = 0; i < I; ++i) Vec<T>::gather(src + i, stride, static_cast<int>(n)).store(row + i * W);
    Vec<T>::broadcast(T(1)).store(row + I * W);
    std::fill(row + (I + 1) * W, row + Ix * W, T(0));
  }
  std::fill(x_t + B * Ix * W, x_t + g.Bp * Ix * W, T(0));
}

// Writes the per-row sums of squares of every step, all [T, B, W], to out [M, T, B] for the
// group's models: lane l's T·B values, W at a time, by one gather each.
template <typename T>
void write_rows(const GroupShape& g, int64_t m0, int64_t n, const T* all, T* out) {
  const int64_t W = g.W, TB = g.T * g.B;
  for (int64_t l = 0; l < n; ++l)
    for (int64_t e = 0; e < TB; e += W) {
      const int count = static_cast<int>(std::min(W, TB - e));
      Vec<T>::gather(all + e * W + l, static_cast<int>(W), count).store(out + (m0 + l) * TB + e, count);
    }
}

// h_t = φ(W_ih|b · (x_t, 1) + W_hh h_{t−1}) for the group's rows (h_0 = 0).
template <typename T, Activation A>
void forward_step(const GroupShape& g, const T* params, const T* x_t, const T* h_prev, T* h) {
  const int64_t W = g.W, Hp = g.Hp;
  const Term<T> terms[2] = {{x_t, g.Ix * W, W, params + g.ih, W, g.Ix * W, g.Ia},
                            {h_prev, Hp * W, W, params + g.hh, W, Hp * W, g.H}};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, Hp, terms, h_prev ? 2 : 1, [](int64_t, int64_t) { return Vec<T>::zero(); },
                               [&](int64_t r, int64_t j0, const Vec<T>* a) {
                                 for (int c = 0; c < kC; ++c) Act<A, T>::f(a[c]).store(h + (r * Hp + j0 + c) * W);
                               });
}

// δ_t = ∂⁺L/∂h_t + v_{t+1} (gy_k: read-out step k's ∂L/∂ŷ, or nullptr; v: v_{t+1}, or nullptr
// at t = T − 1), u_t = δ_t ⊙ φ'(a_t), and ‖δ_t‖² per row into sq.
template <typename T, Activation A>
void delta_step(const GroupShape& g, const T* params, const T* gy_k, const T* v, const T* h, T* u, T* sq) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  std::fill(sq, sq + g.Bp * W, T(0));
  const Term<T> term{gy_k, g.Op * W, W, params + g.out, Hp * W, W, g.O};
  lane_gemm<Form::AB, kR, kC>(
      g.Bp, Hp, &term, gy_k ? 1 : 0, [&](int64_t r, int64_t j) { return v ? V::load(v + (r * Hp + j) * W) : V::zero(); },
      [&](int64_t r, int64_t j0, const V* d) {
        V sum = V::zero();  // of the block row's true units, in registers: one update of sq per block row
        for (int c = 0; c < kC; ++c) {
          const int64_t at = (r * Hp + j0 + c) * W;
          if (j0 + c < g.H) sum = fmadd(d[c], d[c], sum);
          (d[c] * Act<A, T>::df_from_h(V::load(h + at))).store(u + at);
        }
        (V::load(sq + r * W) + sum).store(sq + r * W);
      });
}

// ∂W_ih|b += u_tᵀ (x_t, 1) and, for t ≥ 1, ∂W_hh += u_tᵀ h_{t−1}: sums over the true rows.
template <typename T>
void weight_gradients_step(const GroupShape& g, const T* u, const T* x_t, const T* h_prev, T* grads) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  const Term<T> ih{u, W, Hp * W, x_t, g.Ix * W, W, g.B};
  T* g_ih = grads + g.ih;
  lane_gemm<Form::AtB, kR, 2>(Hp, g.Ix, &ih, 1, [&](int64_t j, int64_t i) { return V::load(g_ih + (j * g.Ix + i) * W); },
                              [&](int64_t j, int64_t i0, const V* a) { store_row<2>(a, g_ih + (j * g.Ix + i0) * W); });
  if (!h_prev) return;
  const Term<T> hh{u, W, Hp * W, h_prev, Hp * W, W, g.B};
  T* g_hh = grads + g.hh;
  lane_gemm<Form::AtB, kR, kC>(Hp, Hp, &hh, 1, [&](int64_t j, int64_t k) { return V::load(g_hh + (j * Hp + k) * W); },
                    [&](int64_t j, int64_t k0, const V* a) { store_row<kC>(a, g_hh + (j * Hp + k0) * W); });
}

// v_t = u_t W_hh and ‖v_t‖² per row into sq.
template <typename T>
void recurrent_gradient_step(const GroupShape& g, const T* params, const T* u, T* v, T* sq) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  std::fill(sq, sq + g.Bp * W, T(0));
  const Term<T> term{u, Hp * W, W, params + g.hh, Hp * W, W, g.H};
  lane_gemm<Form::AB, kR, kC>(g.Bp, Hp, &term, 1, [](int64_t, int64_t) { return V::zero(); },
                              [&](int64_t r, int64_t k0, const V* a) {
                                V sum = V::zero();
                                for (int c = 0; c < kC; ++c) {
                                  if (k0 + c < g.H) sum = fmadd(a[c], a[c], sum);
                                  a[c].store(v + (r * Hp + k0 + c) * W);
                                }
                                (V::load(sq + r * W) + sum).store(sq + r * W);
                              });
}

// Read-out step k at state h: ŷ = W_out h + b_out into gy_k, the loss and ∂L/∂ŷ (lane_loss),
// then ∂W_out += gy_kᵀ h and ∂b_out += Σ_rows gy_k.
template <typename T>
void lane_readout(const ElmanTrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, int64_t k, const T* h,
                  LaneWorkspace<T>& w, double* loss_sum) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp, Op = g.Op;
  const T* params = w.params.data();
  T* grads = w.grads.data();
  T* gy_k = w.gy.data() + k * g.Bp * Op * W;
  const Term<T> out{h, Hp * W, W, params + g.out, W, Hp * W, g.H};
  lane_gemm<Form::ABt, kR, kC>(g.Bp, Op, &out, 1, [&](int64_t, int64_t o) { return V::load(params + g.bout + o * W); },
                    [&](int64_t r, int64_t o0, const V* a) { store_row<kC>(a, gy_k + (r * Op + o0) * W); });
  if (s.loss_kind == Loss::CrossEntropy) lane_loss<T, Loss::CrossEntropy>(s, g, m0, n, k, gy_k, w, loss_sum);
  else lane_loss<T, Loss::SquaredError>(s, g, m0, n, k, gy_k, w, loss_sum);
  const Term<T> gout{gy_k, W, Op * W, h, Hp * W, W, g.B};
  T* g_out = grads + g.out;
  lane_gemm<Form::AtB, kR, kC>(Op, Hp, &gout, 1, [&](int64_t o, int64_t j) { return V::load(g_out + (o * Hp + j) * W); },
                    [&](int64_t o, int64_t j0, const V* a) { store_row<kC>(a, g_out + (o * Hp + j0) * W); });
  for (int64_t o = 0; o < g.O; ++o) {
    V sum = V::load(grads + g.bout + o * W);
    for (int64_t r = 0; r < g.B; ++r) sum = sum + V::load(gy_k + (r * Op + o) * W);
    sum.store(grads + g.bout + o * W);
  }
}

// The update of models m0 … m0 + n − 1 (n = min(W, M − m0)), one per lane.
template <typename T, Activation A>
void run_group(const ElmanTrainStep<T>& s, int64_t m0) {
  constexpr int64_t W = Vec<T>::size;
  const int64_t n = std::min<int64_t>(W, s.M - m0);
  const GroupShape g(s.T_, s.B, s.I, s.H, s.O, s.K, W);
  const int64_t Tn = g.T, first_read = Tn - g.K, state = g.Bp * g.Hp * W, x_step = g.Bp * g.Ix * W;
  LaneWorkspace<T>& w = lane_workspace<T>();
  interleave_params(s, g, m0, n, w);
  T* grads = grow(w.grads, g.total);
  std::fill(grads, grads + g.total, T(0));
  const T* params = w.params.data();
  T* x = grow(w.x, Tn * x_step);
  T* hs = grow(w.hs, Tn * state);
  grow(w.gy, g.K * g.Bp * g.Op * W);
  T* u = grow(w.u, state);
  T* v = grow(w.v, state);
  T* sq = grow(w.sq, g.Bp * W);
  T* delta_sq = grow(w.delta_sq, Tn * g.B * W);
  T* v_sq = grow(w.v_sq, Tn * g.B * W);

  // ---- forward, with the read-out, the loss and ∂W_out, ∂b_out at the read-out steps ----
  double loss_sum[W] = {};
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hs + t * state;
    gather_inputs(s, g, m0, n, t, x + t * x_step);
    forward_step<T, A>(g, params, x + t * x_step, t > 0 ? h - state : nullptr, h);
    if (t >= first_read) lane_readout(s, g, m0, n, t - first_read, h, w, loss_sum);
  }

  // ---- backward: δ_t, u_t, ‖δ_t‖², the weight gradients of step t, v_t and ‖v_t‖² ----
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* h = hs + t * state;
    const T* h_prev = t > 0 ? h - state : nullptr;
    const T* gy_k = t >= first_read ? w.gy.data() + (t - first_read) * g.Bp * g.Op * W : nullptr;
    delta_step<T, A>(g, params, gy_k, t < Tn - 1 ? v : nullptr, h, u, sq);
    std::copy(sq, sq + g.B * W, delta_sq + t * g.B * W);
    weight_gradients_step(g, u, x + t * x_step, h_prev, grads);
    recurrent_gradient_step(g, params, u, v, sq);  // at t = 0 only ‖v_0‖² for Ω (as elman_backward)
    std::copy(sq, sq + g.B * W, v_sq + t * g.B * W);
  }
  write_rows(g, m0, n, delta_sq, s.delta_sq);
  write_rows(g, m0, n, v_sq, s.v_sq);

  // ---- per model: the loss, its gradients de-interleaved, clipping and the optimizer step ----
  const int64_t H = g.H, I = g.I, O = g.O, Ix = g.Ix, Hp = g.Hp;
  const int64_t sizes[kElmanTrainParams] = {H * I, H * H, H, O * H, O};
  T* mg = grow(w.model_grads, H * I + H * H + H + O * H + O);
  for (int64_t l = 0; l < n; ++l) {
    const int64_t m = m0 + l;
    s.loss[m] = mean_loss(s, loss_sum[l]);
    T* g_ih = mg;
    T* g_hh = g_ih + sizes[0];
    T* g_b = g_hh + sizes[1];
    T* g_out = g_b + sizes[2];
    T* g_bout = g_out + sizes[3];
    for (int64_t j = 0; j < H; ++j) {
      for (int64_t i = 0; i < I; ++i) g_ih[j * I + i] = grads[g.ih + (j * Ix + i) * W + l];
      g_b[j] = grads[g.ih + (j * Ix + I) * W + l];
      for (int64_t k = 0; k < H; ++k) g_hh[j * H + k] = grads[g.hh + (j * Hp + k) * W + l];
    }
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t j = 0; j < H; ++j) g_out[o * H + j] = grads[g.out + (o * Hp + j) * W + l];
      g_bout[o] = grads[g.bout + o * W + l];
    }
    clip_and_update(s, m, mg, sizes, /*recurrent=*/1);
  }
}

template <typename T>
void group_dispatch(const ElmanTrainStep<T>& s, int64_t first_model) {
  switch (s.act) {
    case Activation::Tanh: return run_group<T, Activation::Tanh>(s, first_model);
    case Activation::Relu: return run_group<T, Activation::Relu>(s, first_model);
    case Activation::Sigmoid: return run_group<T, Activation::Sigmoid>(s, first_model);
    case Activation::Identity: return run_group<T, Activation::Identity>(s, first_model);
  }
}

}  // namespace lanes
}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS

// Defines the ISA's lanes-layout getter, <getter>_lanes<T>() (getter as for
// RNNLAB_DEFINE_ELMAN_TRAIN_STEP).
#define RNNLAB_DEFINE_ELMAN_TRAIN_STEP_LANES(getter)                                                  \
  namespace rnnlab::cpu {                                                                             \
  template <typename T>                                                                               \
  ElmanLanesKernel<T> getter##_lanes() {                                                              \
    return {&RNNLAB_ISA_NS::train_step::lanes::group_dispatch<T>, RNNLAB_ISA_NS::Vec<T>::size,        \
            RNNLAB_ISA_NS::train_step::lanes::kMaxHidden};                                            \
  }                                                                                                   \
  template ElmanLanesKernel<float> getter##_lanes<float>();                                           \
  template ElmanLanesKernel<double> getter##_lanes<double>();                                         \
  }
