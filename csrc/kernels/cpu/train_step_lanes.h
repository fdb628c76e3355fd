// The lanes layout of the fused training steps (one model per vector lane), the part every cell
// shares: written once, compiled per ISA inside each cell's <cell>_train_step_<isa>.cpp. A cell's
// lanes kernel (elman_train_step_lanes_impl.h, gru_…, lstm_…) adds only its recurrence.
//
// Why: the row layout vectorizes each model over H, so at H = 8 a 16-lane float vector is half
// idle, and its per-row work (input projection, activations, δ_t) and the packing of small GEMMs
// cost more than the H×H products. Here W = Vec<T>::size models (a group, the unit of parallel
// work) share every vector: lane l holds model m0 + l. The group's parameters are interleaved
// into the thread's workspace ([rows, cols, W]: entry (j, k) of the W models is one vector),
// states are [B, H, W], and every operation is the row layout's scalar algorithm applied lane by
// lane (a[b][j] += W_hh[j][k]·h[b][k] is one FMA of a weight vector from L1 and a state vector),
// with no operation across lanes. A model's result therefore depends only on its own data and on
// the shapes (which fix every summation order): it is bitwise the same in any lane of any group,
// alone or in any population, at any thread count. Empty lanes of the last group hold zeros
// (parameters, inputs, targets), compute finite values and are never written back.
//
// Parameters: a cell's W_ih [G·H, I], W_hh [G·H, H], b [G·H] are G gate blocks of H rows (G = 1
// Elman, 3 GRU, 4 LSTM), interleaved gate by gate with each block padded to Hp rows, so gate q of
// unit j is row q·Hp + j. b becomes W_ih's column I (x_t carries a constant 1 there). A cell's
// own per-unit vectors (the GRU's b_hn) follow W_hh, then W_out [Op, Hp] and b_out [Op].
//
// Padding: every matrix dimension that a register block tiles as an output (batch rows, H, O)
// is padded to a multiple of kLanePad with zeros, the inputs (with the bias' constant one) to an
// even count; sums run over the true extents only, so what a padded row or column holds never
// reaches a true one.
#pragma once

#include <new>
#include <vector>

#include "kernels/cpu/activations.h"
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

// The working memory every cell's group uses, in the thread's workspace (a cell's own workspace
// derives from it), grown to the largest group the thread has run and reused. Sizes in vectors
// of W lanes; Bp, Op are padded.
template <typename T>
struct LaneWorkspace {
  LaneBuffer<T> params;  // the interleaved parameters (GroupShape's offsets)
  LaneBuffer<T> grads;   // their gradients, laid out alike
  LaneBuffer<T> x;       // [T, Bp, Ix]: x_t with a constant 1 in column I for the true rows (the bias' input)
  LaneBuffer<T> gy;      // [K, Bp, Op] ŷ, then ∂L/∂ŷ
  LaneBuffer<T> sq;      // [Bp] ‖δ_t‖² or ‖v_t‖² per row
  LaneBuffer<T> delta_sq, v_sq;  // [T, B] those of every step, written to the outputs at the end
  LaneBuffer<T> lane;    // [Op] one row's scratch (targets, squared errors)
  std::vector<T> model_grads;  // one model's gradients, de-interleaved for clip_and_update
};

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
  int64_t gates, Gp;    // gate blocks G, and their padded rows G·Hp
  int64_t units;        // the cell's own per-unit parameter vectors (params[3 …])
  int64_t ih, hh, unit, out, bout, total;
  template <typename Step>
  GroupShape(const Step& s, int64_t W_, int64_t gates_, int64_t units_)
      : T(s.T_), B(s.B), I(s.I), H(s.H), O(s.O), K(s.K), W(W_), Bp(padded(s.B)), Hp(padded(s.H)), Op(padded(s.O)),
        Ia(s.I + 1), Ix((s.I + 2) / 2 * 2), gates(gates_), Gp(gates_ * padded(s.H)), units(units_) {
    ih = 0;
    hh = ih + Gp * Ix * W;
    unit = hh + Gp * Hp * W;
    out = unit + units * Hp * W;
    bout = out + Op * Hp * W;
    total = bout + Op * W;
  }
  int64_t n_params() const { return 5 + units; }
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
void lane_loss(const TrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, int64_t k, T* gy,
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
void interleave_params(const TrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, LaneWorkspace<T>& w) {
  const int64_t W = g.W, I = g.I, H = g.H, O = g.O, G = g.gates * H, Ix = g.Ix, Hp = g.Hp;
  T* p = grow(w.params, g.total);
  std::fill(p, p + g.total, T(0));
  for (int64_t l = 0; l < n; ++l) {
    const int64_t m = m0 + l;
    const T* w_ih = s.params[0] + m * G * I;
    const T* w_hh = s.params[1] + m * G * H;
    const T* bias = s.params[2] + m * G;
    const T* w_out = s.params[3 + g.units] + m * O * H;
    const T* b_out = s.params[4 + g.units] + m * O;
    for (int64_t q = 0; q < g.gates; ++q)
      for (int64_t j = 0; j < H; ++j) {
        const int64_t row = q * Hp + j, src = q * H + j;
        for (int64_t i = 0; i < I; ++i) p[g.ih + (row * Ix + i) * W + l] = w_ih[src * I + i];
        p[g.ih + (row * Ix + I) * W + l] = bias[src];
        for (int64_t k = 0; k < H; ++k) p[g.hh + (row * Hp + k) * W + l] = w_hh[src * H + k];
      }
    for (int64_t u = 0; u < g.units; ++u)
      for (int64_t j = 0; j < H; ++j) p[g.unit + (u * Hp + j) * W + l] = s.params[3 + u][m * H + j];
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
void gather_inputs(const TrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, int64_t t, T* x_t) {
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

// Read-out step k at state h [Bp, Hp]: ŷ = W_out h + b_out into gy_k, the loss and ∂L/∂ŷ
// (lane_loss), then ∂W_out += gy_kᵀ h and ∂b_out += Σ_rows gy_k.
template <typename T>
void lane_readout(const TrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, int64_t k, const T* h,
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

// δ_t's read-out part and v_{t+1}: acc = v_{t+1} (v, or nullptr at t = T − 1) + gy_k W_out (gy_k:
// read-out step k's ∂L/∂ŷ, or nullptr) for the group's rows and units, handed to the cell's
// epi(r, j0, acc) as lane_gemm's epilogue.
template <typename T, typename Epi>
void delta_gemm(const GroupShape& g, const T* params, const T* gy_k, const T* v, Epi epi) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  const Term<T> term{gy_k, g.Op * W, W, params + g.out, Hp * W, W, g.O};
  lane_gemm<Form::AB, kR, kC>(
      g.Bp, Hp, &term, gy_k ? 1 : 0, [&](int64_t r, int64_t j) { return v ? V::load(v + (r * Hp + j) * W) : V::zero(); },
      epi);
}

// ∂W_ih|b rows [row0, row0 + rows) += dᵀ (x_t, 1): d is [Bp, ·] with row stride d_stride, its
// column 0 at the first of those rows; sums over the true batch rows.
template <typename T>
void input_weight_gradients(const GroupShape& g, const T* d, int64_t d_stride, int64_t row0, int64_t rows,
                            const T* x_t, T* grads) {
  using V = Vec<T>;
  const int64_t W = g.W, Ix = g.Ix;
  const Term<T> ih{d, W, d_stride, x_t, Ix * W, W, g.B};
  T* g_ih = grads + g.ih + row0 * Ix * W;
  lane_gemm<Form::AtB, kR, 2>(rows, Ix, &ih, 1, [&](int64_t j, int64_t i) { return V::load(g_ih + (j * Ix + i) * W); },
                              [&](int64_t j, int64_t i0, const V* a) { store_row<2>(a, g_ih + (j * Ix + i0) * W); });
}

// ∂W_hh rows [row0, row0 + rows) += dᵀ h_{t−1}, d as for input_weight_gradients.
template <typename T>
void recurrent_weight_gradients(const GroupShape& g, const T* d, int64_t d_stride, int64_t row0, int64_t rows,
                                const T* h_prev, T* grads) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  const Term<T> hh{d, W, d_stride, h_prev, Hp * W, W, g.B};
  T* g_hh = grads + g.hh + row0 * Hp * W;
  lane_gemm<Form::AtB, kR, kC>(rows, Hp, &hh, 1, [&](int64_t j, int64_t k) { return V::load(g_hh + (j * Hp + k) * W); },
                               [&](int64_t j, int64_t k0, const V* a) { store_row<kC>(a, g_hh + (j * Hp + k0) * W); });
}

// v_t = Σ over the gates q of d_q W_hh,q (d: [Bp, ·] with row stride d_stride, gate q's units at
// column q·Hp), plus `init` (or 0), into v [Bp, Hp], and ‖v_t‖² per row of the true units into sq.
template <typename T>
void recurrent_gradient(const GroupShape& g, const T* params, const T* d, int64_t d_stride, const T* init, T* v, T* sq) {
  using V = Vec<T>;
  const int64_t W = g.W, Hp = g.Hp;
  std::fill(sq, sq + g.Bp * W, T(0));
  Term<T> terms[4];
  for (int64_t q = 0; q < g.gates; ++q)
    terms[q] = {d + q * Hp * W, d_stride, W, params + g.hh + q * Hp * Hp * W, Hp * W, W, g.H};
  lane_gemm<Form::AB, kR, kC>(g.Bp, Hp, terms, static_cast<int>(g.gates),
                              [&](int64_t r, int64_t k) { return init ? V::load(init + (r * Hp + k) * W) : V::zero(); },
                              [&](int64_t r, int64_t k0, const V* a) {
                                V sum = V::zero();
                                for (int c = 0; c < kC; ++c) {
                                  if (k0 + c < g.H) sum = fmadd(a[c], a[c], sum);
                                  a[c].store(v + (r * Hp + k0 + c) * W);
                                }
                                (V::load(sq + r * W) + sum).store(sq + r * W);
                              });
}

// The start of a group's update: its parameters interleaved, its gradients zeroed, the shared
// buffers grown.
template <typename T>
void begin_group(const TrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, LaneWorkspace<T>& w) {
  const int64_t W = g.W;
  interleave_params(s, g, m0, n, w);
  T* grads = grow(w.grads, g.total);
  std::fill(grads, grads + g.total, T(0));
  grow(w.x, g.T * g.Bp * g.Ix * W);
  grow(w.gy, g.K * g.Bp * g.Op * W);
  grow(w.sq, g.Bp * W);
  grow(w.delta_sq, g.T * g.B * W);
  grow(w.v_sq, g.T * g.B * W);
}

// The end of a group's update: ‖δ_t‖², ‖v_t‖² written out, and per model the loss, its
// gradients de-interleaved, clipping and the optimizer step (clip_and_update).
template <typename T>
void end_group(const TrainStep<T>& s, const GroupShape& g, int64_t m0, int64_t n, LaneWorkspace<T>& w,
               const double* loss_sum) {
  write_rows(g, m0, n, w.delta_sq.data(), s.delta_sq);
  write_rows(g, m0, n, w.v_sq.data(), s.v_sq);
  const int64_t W = g.W, H = g.H, I = g.I, O = g.O, G = g.gates * H, Ix = g.Ix, Hp = g.Hp;
  int64_t sizes[kMaxTrainParams] = {G * I, G * H, G};
  for (int64_t u = 0; u < g.units; ++u) sizes[3 + u] = H;
  sizes[3 + g.units] = O * H;
  sizes[4 + g.units] = O;
  int64_t total = 0;
  for (int64_t p = 0; p < g.n_params(); ++p) total += sizes[p];
  T* mg = grow(w.model_grads, total);
  const T* grads = w.grads.data();
  for (int64_t l = 0; l < n; ++l) {
    const int64_t m = m0 + l;
    s.loss[m] = mean_loss(s, loss_sum[l]);
    T* g_ih = mg;
    T* g_hh = g_ih + sizes[0];
    T* g_b = g_hh + sizes[1];
    T* g_unit = g_b + sizes[2];
    T* g_out = g_unit + g.units * H;
    T* g_bout = g_out + sizes[3 + g.units];
    for (int64_t q = 0; q < g.gates; ++q)
      for (int64_t j = 0; j < H; ++j) {
        const int64_t row = q * Hp + j, dst = q * H + j;
        for (int64_t i = 0; i < I; ++i) g_ih[dst * I + i] = grads[g.ih + (row * Ix + i) * W + l];
        g_b[dst] = grads[g.ih + (row * Ix + I) * W + l];
        for (int64_t k = 0; k < H; ++k) g_hh[dst * H + k] = grads[g.hh + (row * Hp + k) * W + l];
      }
    for (int64_t u = 0; u < g.units; ++u)
      for (int64_t j = 0; j < H; ++j) g_unit[u * H + j] = grads[g.unit + (u * Hp + j) * W + l];
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t j = 0; j < H; ++j) g_out[o * H + j] = grads[g.out + (o * Hp + j) * W + l];
      g_bout[o] = grads[g.bout + o * W + l];
    }
    clip_and_update(s, m, mg, sizes, /*recurrent=*/1);
  }
}

// The GRU and LSTM ops take the lanes layout when H ≤ kGatedMaxHidden<T>, measured per
// ISA and dtype with benchmarks/bench_layouts.py (docs/sweeps.md "Two layouts"), the same for
// both cells. float32 on AVX-512: the lanes are 2.3–2.8× the rows at H = 8, 1.4× at 16, 1.2–1.3× at
// 32 and 0.9–1.0× at 64; on AVX2 (8 lanes) 1.3× at 8, 1.1× at 16, 0.9–1.0× at 32. float64 on
// AVX-512: 0.98× at 8, 0.9× at 32, 0.85× at 64 (the rows already fill 8-lane vectors at H = 8,
// and libm's activations dominate both), on AVX2 0.9× at 8 and 16, so never. The portable
// build's lanes are 1.3–2.4× its rows at H = 8 … 64 (float32; its Vec<double> has as many
// lanes, taken alike).
#if defined(RNNLAB_ISA_AVX512)
template <typename T>
constexpr int64_t kGatedMaxHidden = std::is_same_v<T, float> ? 32 : 0;
#elif defined(RNNLAB_ISA_AVX2)
template <typename T>
constexpr int64_t kGatedMaxHidden = std::is_same_v<T, float> ? 16 : 0;
#else
template <typename T>
constexpr int64_t kGatedMaxHidden = 64;
#endif

}  // namespace lanes
}  // namespace train_step
}  // namespace rnnlab::cpu::RNNLAB_ISA_NS
