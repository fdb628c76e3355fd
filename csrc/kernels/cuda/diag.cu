// Diagonal linear recurrence kernels (API, math and slot layout in diag.cuh; the CPU twin is
// kernels/cpu/diag_impl.h).
#include <algorithm>

#include "kernels/cuda/diag.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.cuh"

namespace rnnlab::cuda {

namespace {

constexpr int kThreads = 256;

// W consecutive real columns of one row, loaded and stored as one W·sizeof(T)-byte access.
template <typename T, int W>
struct Lanes {
  T v[W];

  static __device__ __forceinline__ Lanes zero() {
    Lanes x;
#pragma unroll
    for (int k = 0; k < W; ++k) x.v[k] = T(0);
    return x;
  }
  static __device__ __forceinline__ Lanes load(const T* p) {
    Lanes x;
    if constexpr (W * sizeof(T) == 16 && sizeof(T) == 4) {
      const float4 a = *reinterpret_cast<const float4*>(p);
      x.v[0] = a.x, x.v[1] = a.y, x.v[2] = a.z, x.v[3] = a.w;
    } else if constexpr (W * sizeof(T) == 16) {
      const double2 a = *reinterpret_cast<const double2*>(p);
      x.v[0] = a.x, x.v[1] = a.y;
    } else if constexpr (W * sizeof(T) == 8 && sizeof(T) == 4) {
      const float2 a = *reinterpret_cast<const float2*>(p);
      x.v[0] = a.x, x.v[1] = a.y;
    } else {
      static_assert(W == 1, "unsupported lane width");
      x.v[0] = *p;
    }
    return x;
  }
  __device__ __forceinline__ void store(T* p) const {
    if constexpr (W * sizeof(T) == 16 && sizeof(T) == 4) {
      *reinterpret_cast<float4*>(p) = float4{v[0], v[1], v[2], v[3]};
    } else if constexpr (W * sizeof(T) == 16) {
      *reinterpret_cast<double2*>(p) = double2{v[0], v[1]};
    } else if constexpr (W * sizeof(T) == 8 && sizeof(T) == 4) {
      *reinterpret_cast<float2*>(p) = float2{v[0], v[1]};
    } else {
      *p = v[0];
    }
  }
  __device__ __forceinline__ Lanes operator+(const Lanes& o) const {
    Lanes x;
#pragma unroll
    for (int k = 0; k < W; ++k) x.v[k] = v[k] + o.v[k];
    return x;
  }
  // Σ_k v_k², the lanes' share of a squared norm.
  __device__ __forceinline__ T sum_sq() const {
    T a = T(0);
#pragma unroll
    for (int k = 0; k < W; ++k) a = fma(v[k], v[k], a);
    return a;
  }
  // this += a ⊙ b (lane-wise), and with b's (re, im) pairs swapped.
  __device__ __forceinline__ void add_product(const Lanes& a, const Lanes& b) {
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = fma(a.v[k], b.v[k], v[k]);
  }
  __device__ __forceinline__ void add_product_swapped(const Lanes& a, const Lanes& b) {
#pragma unroll
    for (int k = 0; k < W; k += 2) {
      v[k] = fma(a.v[k], b.v[k + 1], v[k]);
      v[k + 1] = fma(a.v[k + 1], b.v[k], v[k + 1]);
    }
  }
  __device__ __forceinline__ void add_squares(const Lanes& a) { add_product(a, a); }
};

// λ ⊙ z (Conj: conj(λ) ⊙ z), lane-wise for real λ, pair-wise complex products for complex λ.
template <bool Complex, bool Conj, typename T, int W>
__device__ __forceinline__ Lanes<T, W> times(const Lanes<T, W>& lam, const Lanes<T, W>& z) {
  Lanes<T, W> x;
  if constexpr (Complex) {
    constexpr T s = Conj ? T(-1) : T(1);  // sign of λ_im
#pragma unroll
    for (int k = 0; k < W; k += 2) {
      const T a = lam.v[k], b = s * lam.v[k + 1];
      x.v[k] = fma(a, z.v[k], -b * z.v[k + 1]);
      x.v[k + 1] = fma(a, z.v[k + 1], b * z.v[k]);
    }
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) x.v[k] = lam.v[k] * z.v[k];
  }
  return x;
}

// The thread's work item: model m, batch rows b0 … b0 + rows − 1 (tile = row slot), columns
// col … col + W − 1 (group g). `valid` is false for padding threads, which only take part in
// the warp's shuffles.
struct Item {
  int64_t m, tile, b0, g, col;
  int rows;
  bool valid;

  template <int W>
  __device__ static Item of_thread(const DiagShape& s, const DiagPlan& p) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    const int64_t g = i % p.padded_groups, rest = i / p.padded_groups, tile = rest % p.R, m = rest / p.R;
    const int64_t b0 = tile * kDiagRows;
    const int rows = static_cast<int>(s.B - b0 < kDiagRows ? s.B - b0 : kDiagRows);
    return {m, tile, b0, g, g * W, rows, m < s.M && g < p.groups};
  }
  __device__ int64_t seq(const DiagShape& s, int64_t t, int r) const { return ((m * s.T + t) * s.B + b0 + r) * s.Nr + col; }
  __device__ int64_t state(const DiagShape& s, int r) const { return (m * s.B + b0 + r) * s.Nr + col; }
};

template <typename T, bool Complex, int W, bool Stats>
__global__ void __launch_bounds__(kThreads)
    diag_forward_kernel(DiagShape s, DiagPlan p, const T* __restrict__ u, const T* __restrict__ lam,
                        const T* __restrict__ h0, T* __restrict__ hs, T* __restrict__ h_sq, T* __restrict__ s_sq) {
  using L = Lanes<T, W>;
  const Item it = Item::of_thread<W>(s, p);
  if (!it.valid) return;  // no shuffles in the forward pass
  const L lv = L::load(lam + it.m * s.Nr + it.col);
  L h[kDiagRows], sens[kDiagRows], next[kDiagRows];
#pragma unroll
  for (int r = 0; r < kDiagRows; ++r) {
    h[r] = r < it.rows ? L::load(h0 + it.state(s, r)) : L::zero();
    sens[r] = L::zero();
    next[r] = r < it.rows ? L::load(u + it.seq(s, 0, r)) : L::zero();
  }
  for (int64_t t = 0; t < s.T; ++t) {
    L x[kDiagRows];
#pragma unroll
    for (int r = 0; r < kDiagRows; ++r) {  // u_t in hand; u_{t+1} on its way
      x[r] = next[r];
      if (r < it.rows && t + 1 < s.T) next[r] = L::load(u + it.seq(s, t + 1, r));
    }
    L sum_h = L::zero(), sum_s = L::zero();
#pragma unroll
    for (int r = 0; r < kDiagRows; ++r) {
      if (r < it.rows) {
        const L prev = h[r];
        h[r] = times<Complex, false>(lv, prev) + x[r];
        h[r].store(hs + it.seq(s, t, r));
        if constexpr (Stats) {
          sens[r] = times<Complex, false>(lv, sens[r]) + prev;  // s_t = λ s_{t-1} + h_{t-1}
          sum_h.add_squares(h[r]);
          sum_s.add_squares(sens[r]);
        }
      }
    }
    if constexpr (Stats) {
      const int64_t at = ((it.tile * s.M + it.m) * s.T + t) * s.Nr + it.col;
      sum_h.store(h_sq + at);
      sum_s.store(s_sq + at);
    }
  }
}

// Sum over the `width` consecutive lanes of a segment (a power of two ≤ 32); every lane of the
// warp must call it.
template <typename T>
__device__ __forceinline__ T segment_sum(T v, int width) {
  for (int offset = 1; offset < width; offset *= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T, bool Complex, int W>
__global__ void __launch_bounds__(kThreads)
    diag_backward_kernel(DiagShape s, DiagPlan p, const T* __restrict__ grad_hs, const T* __restrict__ hs,
                         const T* __restrict__ h0, const T* __restrict__ lam, T* __restrict__ grad_u,
                         T* __restrict__ grad_h0, T* __restrict__ lam_p, T* __restrict__ lam_q,
                         T* __restrict__ delta_sq, T* __restrict__ v_sq) {
  using L = Lanes<T, W>;
  const Item it = Item::of_thread<W>(s, p);
  const int width = p.padded_groups < 32 ? static_cast<int>(p.padded_groups) : 32;  // lanes of one row segment
  const bool leader = threadIdx.x % width == 0 && it.m < s.M;
  const int64_t slot = p.padded_groups < 32 ? 0 : it.g / 32;  // column slot of the norms
  const L lv = it.valid ? L::load(lam + it.m * s.Nr + it.col) : L::zero();

  auto load_step = [&](int64_t t, L (&g)[kDiagRows], L (&prev)[kDiagRows]) {  // grad_hs_t and h_{t-1}
#pragma unroll
    for (int r = 0; r < kDiagRows; ++r) {
      const bool here = it.valid && r < it.rows;
      g[r] = here ? L::load(grad_hs + it.seq(s, t, r)) : L::zero();
      prev[r] = here ? L::load(t > 0 ? hs + it.seq(s, t - 1, r) : h0 + it.state(s, r)) : L::zero();
    }
  };
  L v[kDiagRows], g_next[kDiagRows], prev_next[kDiagRows];
#pragma unroll
  for (int r = 0; r < kDiagRows; ++r) v[r] = L::zero();  // v_{T+1} = 0
  load_step(s.T - 1, g_next, prev_next);
  L p_sum = L::zero(), q_sum = L::zero();

  for (int64_t t = s.T - 1; t >= 0; --t) {
    L g[kDiagRows], prev[kDiagRows];
#pragma unroll
    for (int r = 0; r < kDiagRows; ++r) g[r] = g_next[r], prev[r] = prev_next[r];
    if (t > 0) load_step(t - 1, g_next, prev_next);
    L p_step = L::zero(), q_step = L::zero();  // Σ over this step's rows first, as the CPU kernel
#pragma unroll
    for (int r = 0; r < kDiagRows; ++r) {
      const L d = g[r] + v[r];  // δ_t = ∂⁺L/∂h_t + v_{t+1}
      v[r] = times<Complex, true>(lv, d);
      const bool here = it.valid && r < it.rows;
      if (here) {
        d.store(grad_u + it.seq(s, t, r));
        if (t == 0) v[r].store(grad_h0 + it.state(s, r));
      }
      p_step.add_product(prev[r], d);
      if constexpr (Complex) q_step.add_product_swapped(prev[r], d);
      const T dsq = segment_sum(d.sum_sq(), width), vsq = segment_sum(v[r].sum_sq(), width);
      if (leader && r < it.rows) {
        const int64_t at = ((slot * s.M + it.m) * s.T + t) * s.B + it.b0 + r;
        delta_sq[at] = dsq;
        v_sq[at] = vsq;
      }
    }
    p_sum = p_sum + p_step;
    if constexpr (Complex) q_sum = q_sum + q_step;
  }
  if (it.valid) {
    const int64_t at = (it.tile * s.M + it.m) * s.Nr + it.col;
    p_sum.store(lam_p + at);
    if constexpr (Complex) q_sum.store(lam_q + at);
  }
}

template <typename T, bool Complex, int W>
cudaError_t forward_as(const DiagShape& s, const DiagPlan& p, dim3 grid, cudaStream_t stream, const T* u, const T* lam,
                       const T* h0, T* hs, T* h_sq, T* s_sq) {
  if (h_sq)
    return launch(&diag_forward_kernel<T, Complex, W, true>, grid, dim3(kThreads), 0, stream, s, p, u, lam, h0, hs, h_sq,
                  s_sq);
  return launch(&diag_forward_kernel<T, Complex, W, false>, grid, dim3(kThreads), 0, stream, s, p, u, lam, h0, hs, h_sq,
                s_sq);
}

template <typename T, bool Complex, int W, typename... Args>
cudaError_t backward_as(dim3 grid, cudaStream_t stream, Args... args) {
  return launch(&diag_backward_kernel<T, Complex, W>, grid, dim3(kThreads), 0, stream, args...);
}

// Blocks covering M·R·padded_groups threads (a whole number of warps: every warp complete for the shuffles).
dim3 grid_of(const DiagShape& s, const DiagPlan& p, cudaError_t& err) {
  const int64_t threads = s.M * p.R * p.padded_groups;
  const int64_t blocks = (threads + kThreads - 1) / kThreads;
  err = blocks > 0x7fffffff ? cudaErrorInvalidConfiguration : cudaSuccess;
  return dim3(static_cast<unsigned>(std::min<int64_t>(blocks, 0x7fffffff)));
}

constexpr int kWide(int size) { return 16 / size; }

}  // namespace

template <typename T>
DiagPlan diag_plan(const DiagShape& s, bool aligned16) {
  const int narrow = s.complex ? 2 : 1;
  const int lanes = aligned16 && s.Nr % kWide(sizeof(T)) == 0 ? kWide(sizeof(T)) : narrow;
  const int64_t groups = (s.Nr + lanes - 1) / lanes;
  int64_t padded = 1;
  while (padded < groups && padded < 32) padded *= 2;
  if (groups > 32) padded = (groups + 31) / 32 * 32;
  return {lanes, groups, padded, (s.B + kDiagRows - 1) / kDiagRows, padded <= 32 ? 1 : padded / 32};
}

template <typename T>
cudaError_t diag_forward(const DiagShape& s, const DiagPlan& p, const T* u, const T* lam, const T* h0, T* hs, T* h_sq,
                         T* s_sq, cudaStream_t stream) {
  if (s.M < 1 || s.T < 1 || s.B < 1 || s.Nr < 1 || (h_sq == nullptr) != (s_sq == nullptr)) return cudaErrorInvalidValue;
  cudaError_t err;
  const dim3 grid = grid_of(s, p, err);
  if (err != cudaSuccess) return err;
  if constexpr (sizeof(T) == 4) {
    if (p.lanes == 4) {
      if (s.complex) return forward_as<T, true, 4>(s, p, grid, stream, u, lam, h0, hs, h_sq, s_sq);
      return forward_as<T, false, 4>(s, p, grid, stream, u, lam, h0, hs, h_sq, s_sq);
    }
  }
  if (s.complex) return forward_as<T, true, 2>(s, p, grid, stream, u, lam, h0, hs, h_sq, s_sq);
  if (p.lanes == 2) return forward_as<T, false, 2>(s, p, grid, stream, u, lam, h0, hs, h_sq, s_sq);
  return forward_as<T, false, 1>(s, p, grid, stream, u, lam, h0, hs, h_sq, s_sq);
}

template <typename T>
cudaError_t diag_backward(const DiagShape& s, const DiagPlan& p, const T* grad_hs, const T* hs, const T* h0,
                          const T* lam, T* grad_u, T* grad_h0, T* lam_p, T* lam_q, T* delta_sq, T* v_sq,
                          cudaStream_t stream) {
  if (s.M < 1 || s.T < 1 || s.B < 1 || s.Nr < 1 || (lam_q == nullptr) == s.complex) return cudaErrorInvalidValue;
  cudaError_t err;
  const dim3 grid = grid_of(s, p, err);
  if (err != cudaSuccess) return err;
#define RNNLAB_ARGS s, p, grad_hs, hs, h0, lam, grad_u, grad_h0, lam_p, lam_q, delta_sq, v_sq
  if constexpr (sizeof(T) == 4) {
    if (p.lanes == 4) {
      if (s.complex) return backward_as<T, true, 4>(grid, stream, RNNLAB_ARGS);
      return backward_as<T, false, 4>(grid, stream, RNNLAB_ARGS);
    }
  }
  if (s.complex) return backward_as<T, true, 2>(grid, stream, RNNLAB_ARGS);
  if (p.lanes == 2) return backward_as<T, false, 2>(grid, stream, RNNLAB_ARGS);
  return backward_as<T, false, 1>(grid, stream, RNNLAB_ARGS);
#undef RNNLAB_ARGS
}

#define RNNLAB_INSTANTIATE(T)                                                                                        \
  template DiagPlan diag_plan<T>(const DiagShape&, bool);                                                           \
  template cudaError_t diag_forward<T>(const DiagShape&, const DiagPlan&, const T*, const T*, const T*, T*, T*, T*, \
                                       cudaStream_t);                                                               \
  template cudaError_t diag_backward<T>(const DiagShape&, const DiagPlan&, const T*, const T*, const T*, const T*,  \
                                        T*, T*, T*, T*, T*, T*, cudaStream_t);
RNNLAB_INSTANTIATE(float)
RNNLAB_INSTANTIATE(double)
#undef RNNLAB_INSTANTIATE

}  // namespace rnnlab::cuda
