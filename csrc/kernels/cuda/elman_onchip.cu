// Elman forward and backward with w_hh resident in registers for the whole sequence: one thread
// block per (model, tile of BT batch rows), the time loop inside, one launch per call. The API and
// the math are in elman.cuh; the layout and the shared machinery in onchip.cuh; the CPU twin
// (kernels/cpu/elman_impl.h) is the reference for what is written where.
//
// Each thread holds 32 registers of w_hh: one output unit times kSlice inputs (32 floats or 16
// doubles), so a block of HP·HP/kSlice threads holds all of it: HP ≤ 128 (512 threads) in
// float32, HP ≤ 64 (256 threads) in float64. A step is one matvec (16-byte shared-memory loads of
// the previous state, FMAs, shuffle sums), the pointwise epilogue of the rows this thread
// finishes, and one __syncthreads that publishes the new state and the next prefetched slab.
#include "kernels/cuda/activations.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/elman.cuh"
#include "kernels/cuda/onchip.cuh"

namespace rnnlab::cuda {

namespace {

using namespace onchip;

template <typename T, int HP>
using G1 = Geom<T, HP, /*Out=*/1, /*InputMul=*/1>;

template <typename T, int HP, int BT>
size_t forward_smem(int H) {
  return sizeof(T) * (2 * BT * G1<T, HP>::kRow + kRing * slab_elems<T>(BT, H));
}

template <typename T, int HP, int BT>
__global__ void __launch_bounds__(G1<T, HP>::kThreads)
    elman_forward_kernel(RecurrenceShape s, Activation act, const T* __restrict__ xp, const T* __restrict__ w_hh,
                         const T* __restrict__ h0, T* __restrict__ hs) {
  using G = G1<T, HP>;
  const int H = static_cast<int>(s.H);
  const int slab = slab_elems<T>(BT, H);
  T* state = dynamic_smem<T>();        // [2][BT][kRow]: h_{t-1} in buffer t & 1, h_t goes to the other
  T* ring = state + 2 * BT * G::kRow;  // [kRing][slab]: xp_t of the tile in slot t % kRing
  const Tile tile = Tile::of_block<BT>(s);
  const int unit = threadIdx.x / G::kSplits, split = threadIdx.x % G::kSplits;

  T w[1][G::kSlice];  // w[0][q] = w_hh[unit, split·kSlice + q]
  const T* wm = w_hh + tile.m * s.H * s.H;
#pragma unroll
  for (int q = 0; q < G::kSlice; ++q) {
    const int k = split * G::kSlice + q;
    w[0][q] = unit < H && k < H ? wm[unit * H + k] : T(0);
  }

  init_state<G, BT>(state, h0, s, tile);

  auto prefetch = [&](int64_t t) {  // xp_t of the tile → slot t % kRing
    if (t < s.T) copy_async(ring + (t % kRing) * slab, xp + tile.seq(s, t, 0, H), tile.rows * H);
    cp_async_commit();  // one group per step, empty or not, keeps the wait count uniform
  };
  fill_ring(prefetch);

  for (int64_t t = 0; t < s.T; ++t) {
    prefetch(t + kDepth);  // into the slot read at step t − 1, free since its closing barrier
    T sum[BT][1];
    matvec_rows<G, BT>(w, state + (t & 1) * BT * G::kRow + split * G::kSegment, sum);
    const T* x = ring + (t % kRing) * slab;
    T* next = state + ((t + 1) & 1) * BT * G::kRow;
    T* out = hs + tile.seq(s, t, 0, H);
#pragma unroll
    for (int r = 0; r < BT; ++r) {
      if (r % G::kSplits == split && r < tile.rows && unit < H) {
        const T h = Phi<T>::f(act, x[r * H + unit] + sum[r][0]);
        next[r * G::kRow + G::pos(unit)] = h;
        out[r * H + unit] = h;
      }
    }
    end_step();  // step t + 1's slab and h_t are visible
  }
}

// Backward. Thread (unit j, split) holds w[0][q] = w_hh[split·kSlice + q, j], so the same matvec
// gives v_t[j] = Σ_i u_t[i] w_hh[i, j]. The row norms ‖v_t‖² and ‖δ_t‖² need a sum over all units,
// i.e. over the whole block: each warp stores its share (store_row_partials) and the totals are
// read after the next barrier. So the statistics of step t — delta_sq_t, v_sq_t and the
// regularizer row κ_t v_t, which needs both — are written one step late (during step t − 1, or
// after the loop for t = 0), each thread keeping its v_t values in registers.
//
// Partial slots are indexed by step & 3: the slot of step x is written during steps x + 1 (δ_x)
// and x (v_x) and read during step x − 1, while step t touches the slots of t + 1, t and t − 1.
template <typename T, int HP, int BT>
size_t backward_smem(int H) {
  using G = G1<T, HP>;
  return sizeof(T) * (2 * BT * G::kRow + 2 * kRing * slab_elems<T>(BT, H) + 2 * 4 * kPartials<G, BT>);
}

template <typename T, int HP, int BT>
__global__ void __launch_bounds__(G1<T, HP>::kThreads)
    elman_backward_kernel(RecurrenceShape s, Activation act, const T* __restrict__ grad_hs, const T* __restrict__ hs,
                          const T* __restrict__ w_hh, T* __restrict__ grad_xp, T* __restrict__ grad_h0,
                          T* __restrict__ delta_sq, T* __restrict__ v_sq, T* __restrict__ reg_v) {
  using G = G1<T, HP>;
  constexpr int kMine = kOwn<G, BT>;  // rows r = o·kSplits + split this thread finishes
  const int H = static_cast<int>(s.H);
  const int slab = slab_elems<T>(BT, H);
  T* ubuf = dynamic_smem<T>();             // [2][BT][kRow]: u_t in buffer t & 1
  T* ring_g = ubuf + 2 * BT * G::kRow;     // [kRing][slab]: grad_hs_{t-1} of the tile
  T* ring_h = ring_g + kRing * slab;       // [kRing][slab]: hs_{t-1} of the tile
  constexpr int kSlot = kPartials<G, BT>;
  T* vnorm = ring_h + kRing * slab;        // [4][kSlot]: warp partials of ‖v_x‖² in slot x & 3
  T* dnorm = vnorm + 4 * kSlot;            // [4][kSlot]: warp partials of ‖δ_x‖²
  const Tile tile = Tile::of_block<BT>(s);
  const int unit = threadIdx.x / G::kSplits, split = threadIdx.x % G::kSplits;
  const bool live = unit < H;
  const int64_t last = s.T - 1;

  T w[1][G::kSlice];  // w[0][q] = w_hh[split·kSlice + q, unit]
  const T* wm = w_hh + tile.m * s.H * s.H;
#pragma unroll
  for (int q = 0; q < G::kSlice; ++q) {
    const int i = split * G::kSlice + q;
    w[0][q] = live && i < H ? wm[i * H + unit] : T(0);
  }
  zero_state<G, BT>(ubuf);
  __syncthreads();

  {  // δ_{T-1} = ∂⁺L/∂h_{T-1}: the recursion starts from the loss gradient alone
    T dsq[kMine];
#pragma unroll
    for (int o = 0; o < kMine; ++o) {
      const int r = o * G::kSplits + split;
      dsq[o] = T(0);
      if (r < tile.rows && live) {
        const int64_t at = tile.seq(s, last, r, H) + unit;
        const T d = grad_hs[at];
        const T u = d * dphi_from_h(act, hs[at]);
        ubuf[(last & 1) * BT * G::kRow + r * G::kRow + G::pos(unit)] = u;
        grad_xp[at] = u;
        dsq[o] = d * d;
      }
    }
    store_row_partials<G, BT>(dsq, dnorm + (last & 3) * kSlot, tile.rows);
  }

  // Iteration n handles step t = last − n and reads grad_hs and hs of step t − 1 = last − 1 − n.
  auto prefetch = [&](int64_t n) {
    const int64_t step = last - 1 - n;
    if (step >= 0) {
      const int64_t at = tile.seq(s, step, 0, H);
      copy_async(ring_g + (n % kRing) * slab, grad_hs + at, tile.rows * H);
      copy_async(ring_h + (n % kRing) * slab, hs + at, tile.rows * H);
    }
    cp_async_commit();
  };
  fill_ring(prefetch);

  T keep[kMine];  // v_{t+1} of the rows this thread finishes, for the regularizer row written late
  // Writes delta_sq_x, v_sq_x and reg_v_x = κ_x v_x once both norms of step x are complete.
  auto finish = [&](int64_t x) {
    const T* a = vnorm + (x & 3) * kSlot;
    const T* c = dnorm + (x & 3) * kSlot;
    write_row_norms<G, BT>(s, tile, x, a, c, v_sq, delta_sq);
    if (reg_v == nullptr) return;
#pragma unroll
    for (int o = 0; o < kMine; ++o) {
      const int r = o * G::kSplits + split;
      if (r < tile.rows && live) {  // κ = m (r − 1)/c, SPEC §2.5 (same sums, same order: same κ in every lane)
        const T ar = row_total<G, BT>(a, r), cr = row_total<G, BT>(c, r);
        const T kappa = cr >= T(kOmegaBound) ? (ar / cr - T(1)) / cr : T(0);
        reg_v[tile.seq(s, x, r, H) + unit] = kappa * keep[o];
      }
    }
  };

  for (int64_t n = 0; n < s.T; ++n) {
    const int64_t t = last - n;
    prefetch(n + kDepth);  // into the slot read at iteration n − 1, free since its closing barrier

    T v[BT][1];
    matvec_rows<G, BT>(w, ubuf + (t & 1) * BT * G::kRow + split * G::kSegment, v);
    T mine[kMine], vsq[kMine], dsq[kMine];
#pragma unroll
    for (int o = 0; o < kMine; ++o) mine[o] = vsq[o] = dsq[o] = T(0);
    pick_own_rows<G, BT>(v, split, mine);

    const T* g = ring_g + (n % kRing) * slab;
    const T* h = ring_h + (n % kRing) * slab;
    T* unext = ubuf + ((t + 1) & 1) * BT * G::kRow;  // buffer of u_{t-1}: (t − 1) & 1 = (t + 1) & 1
#pragma unroll
    for (int o = 0; o < kMine; ++o) {
      const int r = o * G::kSplits + split;
      if (r < tile.rows && live) {
        const T vv = mine[o];
        vsq[o] = vv * vv;
        if (t > 0) {  // δ_{t-1} = ∂⁺L/∂h_{t-1} + v_t, u_{t-1} = δ_{t-1} ⊙ φ'(a_{t-1})
          const T d = g[r * H + unit] + vv;
          dsq[o] = d * d;
          const T u = d * dphi_from_h(act, h[r * H + unit]);
          unext[r * G::kRow + G::pos(unit)] = u;
          grad_xp[tile.seq(s, t - 1, r, H) + unit] = u;
        } else {
          grad_h0[tile.state(s, r, H) + unit] = vv;
        }
      }
    }
    store_row_partials<G, BT>(vsq, vnorm + (t & 3) * kSlot, tile.rows);
    if (t > 0) store_row_partials<G, BT>(dsq, dnorm + ((t - 1) & 3) * kSlot, tile.rows);
    if (t < last) finish(t + 1);  // its norms were completed before the previous barrier
#pragma unroll
    for (int o = 0; o < kMine; ++o) keep[o] = mine[o];
    end_step();
  }
  finish(0);
}

// ---- launch -------------------------------------------------------------------------------------

template <typename T, int HP, int BT>
using ForwardKernel = KernelOf<G1<T, HP>, &elman_forward_kernel<T, HP, BT>, &forward_smem<T, HP, BT>>;

template <typename T, int HP, int BT>
using BackwardKernel = KernelOf<G1<T, HP>, &elman_backward_kernel<T, HP, BT>, &backward_smem<T, HP, BT>>;

}  // namespace

template <typename T>
cudaError_t elman_forward_onchip(const RecurrenceShape& s, Activation act, const T* xp, const T* w_hh, const T* h0,
                                 T* hs, cudaStream_t stream) {
  return launch_onchip<T, kElmanOnchipMaxHidden<T>, ForwardKernel>(s, stream, act, xp, w_hh, h0, hs);
}

template <typename T>
cudaError_t elman_backward_onchip(const RecurrenceShape& s, Activation act, const T* grad_hs, const T* hs,
                                  const T* w_hh, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v,
                                  cudaStream_t stream) {
  return launch_onchip<T, kElmanOnchipMaxHidden<T>, BackwardKernel>(s, stream, act, grad_hs, hs, w_hh, grad_xp, grad_h0,
                                                                     delta_sq, v_sq, reg_v);
}

template cudaError_t elman_forward_onchip<float>(const RecurrenceShape&, Activation, const float*, const float*,
                                                 const float*, float*, cudaStream_t);
template cudaError_t elman_forward_onchip<double>(const RecurrenceShape&, Activation, const double*, const double*,
                                                  const double*, double*, cudaStream_t);
template cudaError_t elman_backward_onchip<float>(const RecurrenceShape&, Activation, const float*, const float*,
                                                  const float*, float*, float*, float*, float*, float*, cudaStream_t);
template cudaError_t elman_backward_onchip<double>(const RecurrenceShape&, Activation, const double*, const double*,
                                                   const double*, double*, double*, double*, double*, double*,
                                                   cudaStream_t);

}  // namespace rnnlab::cuda
