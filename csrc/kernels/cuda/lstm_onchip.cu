// LSTM forward and backward with w_hh resident in registers for the whole sequence: one thread
// block per (model, tile of BT batch rows), the time loop inside, one launch per call. API and
// math in lstm.cuh; layout and shared machinery in onchip.cuh; the CPU twin is
// kernels/cpu/lstm_impl.h.
//
// Forward: each thread holds the 4 gate rows of its unit times kSlice inputs (Geom with kOut = 4),
// so after the shuffle sums every thread of a unit has the unit's four pre-activations and the
// lane that finishes a row updates the cell right away; c_t stays in that lane's registers.
// Backward: each thread holds one unit of v times kSlice of the 4·HP gate gradients (kOut = 1,
// inputs 4·HP, each gate's block padded to HP). Both layouts use the same number of threads.
#include "kernels/cuda/lstm.cuh"
#include "kernels/cuda/lstm_cell.cuh"
#include "kernels/cuda/onchip.cuh"

namespace rnnlab::cuda {

namespace {

using namespace onchip;

template <typename T, int HP>
using GF = Geom<T, HP, /*Out=*/4, /*InputMul=*/1>;  // forward: z (4 gates) = h_{t-1} w_hhᵀ
template <typename T, int HP>
using GB = Geom<T, HP, /*Out=*/1, /*InputMul=*/4>;  // backward: v = ∂z w_hh

template <typename T, int HP, int BT>
size_t forward_smem(int H) {
  return sizeof(T) * (2 * BT * GF<T, HP>::kRow + kRing * slab_elems<T>(BT, 4 * H));
}

template <typename T, int HP, int BT>
__global__ void __launch_bounds__(GF<T, HP>::kThreads)
    lstm_forward_kernel(RecurrenceShape s, const T* __restrict__ xp, const T* __restrict__ w_hh,
                        const T* __restrict__ h0, const T* __restrict__ c0, T* __restrict__ hs, T* __restrict__ cs,
                        T* __restrict__ gates) {
  using G = GF<T, HP>;
  constexpr int kMine = kOwn<G, BT>;
  const int H = static_cast<int>(s.H), H4 = 4 * H;
  const int slab = slab_elems<T>(BT, H4);
  T* state = dynamic_smem<T>();        // [2][BT][kRow]: h_{t-1} in buffer t & 1
  T* ring = state + 2 * BT * G::kRow;  // [kRing][slab]: xp_t of the tile
  const Tile tile = Tile::of_block<BT>(s);
  const int unit = threadIdx.x / G::kSplits, split = threadIdx.x % G::kSplits;
  const bool live = unit < H;

  T w[4][G::kSlice];  // w[g][q] = w_hh[g·H + unit, split·kSlice + q]
  const T* wm = w_hh + tile.m * 4 * s.H * s.H;
#pragma unroll
  for (int g = 0; g < 4; ++g)
#pragma unroll
    for (int q = 0; q < G::kSlice; ++q) {
      const int k = split * G::kSlice + q;
      w[g][q] = live && k < H ? wm[(g * H + unit) * H + k] : T(0);
    }

  init_state<G, BT>(state, h0, s, tile);
  T c[kMine];  // c_{t-1} of the rows this thread finishes
#pragma unroll
  for (int o = 0; o < kMine; ++o) {
    const int r = o * G::kSplits + split;
    c[o] = r < tile.rows && live ? c0[tile.state(s, r, H) + unit] : T(0);
  }

  auto prefetch = [&](int64_t t) {
    if (t < s.T) copy_async(ring + (t % kRing) * slab, xp + tile.seq(s, t, 0, H4), tile.rows * H4);
    cp_async_commit();
  };
  fill_ring(prefetch);

  for (int64_t t = 0; t < s.T; ++t) {
    prefetch(t + kDepth);
    T z[BT][4];
    matvec_rows<G, BT>(w, state + (t & 1) * BT * G::kRow + split * G::kSegment, z);
    const T* x = ring + (t % kRing) * slab;
    T* next = state + ((t + 1) & 1) * BT * G::kRow;
#pragma unroll
    for (int r = 0; r < BT; ++r) {
      if (r % G::kSplits == split && r < tile.rows && live) {
        T zr[4], gate[4], h;
#pragma unroll
        for (int g = 0; g < 4; ++g) zr[g] = x[r * H4 + g * H + unit] + z[r][g];
        T& cr = c[r / G::kSplits];
        lstm_cell_forward(zr, cr, gate, cr, h);
        T* gout = gates + tile.seq(s, t, r, H4) + unit;
#pragma unroll
        for (int g = 0; g < 4; ++g) gout[g * H] = gate[g];
        cs[tile.seq(s, t, r, H) + unit] = cr;
        hs[tile.seq(s, t, r, H) + unit] = h;
        next[r * G::kRow + G::pos(unit)] = h;
      }
    }
    end_step();
  }
}

// Backward. Iteration n handles step t = last − n in two halves around one barrier:
//   pre:  the cell backward of the rows this thread finishes, from δ_t = grad_hs_t + v_{t+1} and
//         ε'_{t+1} (both kept in its registers) and the step's saved tensors (prefetched slab);
//         ∂z_t goes to global memory and to a shared buffer (double-buffered by n & 1);
//   post: v_t = ∂z_t w_hh, kept in registers for the next iteration.
// Row norms go through shared-memory slots (step & 3) of per-warp partials (store_row_partials):
// ‖δ_t‖² is stored in pre of iteration n, ‖v_t‖² in post of iteration n, and both are summed and
// written out in post of iteration n + 1.
template <typename T, int HP, int BT>
size_t backward_smem(int H) {
  using G = GB<T, HP>;
  return sizeof(T) * (2 * BT * G::kRow + kRing * (3 * slab_elems<T>(BT, H) + slab_elems<T>(BT, 4 * H)) +
                      2 * 4 * kPartials<G, BT>);
}

template <typename T, int HP, int BT>
__global__ void __launch_bounds__(GB<T, HP>::kThreads)
    lstm_backward_kernel(RecurrenceShape s, const T* __restrict__ grad_hs, const T* __restrict__ grad_cs,
                         const T* __restrict__ cs, const T* __restrict__ gates, const T* __restrict__ c0,
                         const T* __restrict__ w_hh, T* __restrict__ grad_xp, T* __restrict__ grad_h0,
                         T* __restrict__ grad_c0, T* __restrict__ delta_sq, T* __restrict__ v_sq) {
  using G = GB<T, HP>;
  constexpr int kMine = kOwn<G, BT>;
  const int H = static_cast<int>(s.H), H4 = 4 * H;
  const int slab = slab_elems<T>(BT, H), slab4 = slab_elems<T>(BT, H4);
  T* dzbuf = dynamic_smem<T>();            // [2][BT][kRow]: ∂z_t, gate g of unit j at input g·HP + j
  T* ring_gh = dzbuf + 2 * BT * G::kRow;   // [kRing][slab]: grad_hs_t
  T* ring_gc = ring_gh + kRing * slab;     // [kRing][slab]: grad_cs_t (unused when grad_cs is null)
  T* ring_cp = ring_gc + kRing * slab;     // [kRing][slab]: c_{t-1} (cs_{t-1}, or c0 at t = 0)
  T* ring_gt = ring_cp + kRing * slab;     // [kRing][slab4]: gates_t
  constexpr int kSlot = kPartials<G, BT>;
  T* vnorm = ring_gt + kRing * slab4;      // [4][kSlot]: warp partials of ‖v_x‖² in slot x & 3
  T* dnorm = vnorm + 4 * kSlot;            // [4][kSlot]: warp partials of ‖δ_x‖²
  const Tile tile = Tile::of_block<BT>(s);
  const int unit = threadIdx.x / G::kSplits, split = threadIdx.x % G::kSplits;
  const bool live = unit < H;
  const int64_t last = s.T - 1;

  T w[1][G::kSlice];  // w[0][q] = w_hh[g·H + i, unit] for input g·HP + i = split·kSlice + q
  const T* wm = w_hh + tile.m * 4 * s.H * s.H;
#pragma unroll
  for (int q = 0; q < G::kSlice; ++q) {
    const int k = split * G::kSlice + q, g = k / HP, i = k % HP;
    w[0][q] = live && i < H ? wm[(g * H + i) * H + unit] : T(0);
  }
  zero_state<G, BT>(dzbuf);

  T c[kMine], dc[kMine], v[kMine];  // c_t, ε'_{t+1}, v_{t+1} of the rows this thread finishes
#pragma unroll
  for (int o = 0; o < kMine; ++o) {
    const int r = o * G::kSplits + split;
    c[o] = r < tile.rows && live ? cs[tile.seq(s, last, r, H) + unit] : T(0);
    dc[o] = v[o] = T(0);
  }

  auto prefetch = [&](int64_t n) {  // the saved tensors of step last − n
    const int64_t t = last - n;
    if (t >= 0) {
      const int slot = static_cast<int>(n % kRing);
      copy_async(ring_gh + slot * slab, grad_hs + tile.seq(s, t, 0, H), tile.rows * H);
      if (grad_cs) copy_async(ring_gc + slot * slab, grad_cs + tile.seq(s, t, 0, H), tile.rows * H);
      copy_async(ring_cp + slot * slab, t > 0 ? cs + tile.seq(s, t - 1, 0, H) : c0 + tile.state(s, 0, H),
                 tile.rows * H);
      copy_async(ring_gt + slot * slab4, gates + tile.seq(s, t, 0, H4), tile.rows * H4);
    }
    cp_async_commit();
  };
  fill_ring(prefetch);

  auto finish = [&](int64_t x) {  // all warps' partials of step x are stored
    write_row_norms<G, BT>(s, tile, x, vnorm + (x & 3) * kSlot, dnorm + (x & 3) * kSlot, v_sq, delta_sq);
  };

  for (int64_t n = 0; n < s.T; ++n) {
    const int64_t t = last - n;
    prefetch(n + kDepth);  // into the slot read in pre of iteration n − 1

    const int slot = static_cast<int>(n % kRing);
    T* dz_out = dzbuf + (n & 1) * BT * G::kRow;
    T dsq[kMine];
#pragma unroll
    for (int o = 0; o < kMine; ++o) {
      const int r = o * G::kSplits + split;
      dsq[o] = T(0);
      if (r < tile.rows && live) {
        const int at = r * H + unit;
        const T* gt = ring_gt + slot * slab4 + r * H4 + unit;
        const T gate[4] = {gt[0], gt[H], gt[2 * H], gt[3 * H]};
        const T c_prev = ring_cp[slot * slab + at];
        const T d = ring_gh[slot * slab + at] + v[o];
        const T e_in = dc[o] + (grad_cs ? ring_gc[slot * slab + at] : T(0));
        T dz[4];
        dc[o] = lstm_cell_backward(d, e_in, gate, c[o], c_prev, dz);
        c[o] = c_prev;
        dsq[o] = d * d;
        T* gout = grad_xp + tile.seq(s, t, r, H4) + unit;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          gout[g * H] = dz[g];
          dz_out[r * G::kRow + G::pos(g * HP + unit)] = dz[g];
        }
      }
    }
    store_row_partials<G, BT>(dsq, dnorm + (t & 3) * kSlot, tile.rows);
    end_step();  // ∂z_t and the next step's slab are visible; norms of step t + 1 complete

    T vt[BT][1];
    matvec_rows<G, BT>(w, dz_out + split * G::kSegment, vt);
    T vsq[kMine];
    pick_own_rows<G, BT>(vt, split, v);
#pragma unroll
    for (int o = 0; o < kMine; ++o) {
      const int r = o * G::kSplits + split;
      vsq[o] = r < tile.rows && live ? v[o] * v[o] : T(0);
    }
    store_row_partials<G, BT>(vsq, vnorm + (t & 3) * kSlot, tile.rows);
    if (n > 0) finish(t + 1);
  }
  __syncthreads();
  finish(0);
#pragma unroll
  for (int o = 0; o < kMine; ++o) {  // ∂L/∂h_0 = v_0 (no direct loss term), ∂L/∂c_0 = ε'_0
    const int r = o * G::kSplits + split;
    if (r < tile.rows && live) {
      grad_h0[tile.state(s, r, H) + unit] = v[o];
      grad_c0[tile.state(s, r, H) + unit] = dc[o];
    }
  }
}

// ---- launch -------------------------------------------------------------------------------------

template <typename T, int HP, int BT>
using ForwardKernel = KernelOf<GF<T, HP>, &lstm_forward_kernel<T, HP, BT>, &forward_smem<T, HP, BT>>;

template <typename T, int HP, int BT>
using BackwardKernel = KernelOf<GB<T, HP>, &lstm_backward_kernel<T, HP, BT>, &backward_smem<T, HP, BT>>;

}  // namespace

template <typename T>
cudaError_t lstm_forward_onchip(const RecurrenceShape& s, const T* xp, const T* w_hh, const T* h0, const T* c0, T* hs,
                                T* cs, T* gates, cudaStream_t stream) {
  return launch_onchip<T, kLstmOnchipMaxHidden<T>, ForwardKernel>(s, stream, xp, w_hh, h0, c0, hs, cs, gates);
}

template <typename T>
cudaError_t lstm_backward_onchip(const RecurrenceShape& s, const T* grad_hs, const T* grad_cs, const T* cs,
                                 const T* gates, const T* c0, const T* w_hh, T* grad_xp, T* grad_h0, T* grad_c0,
                                 T* delta_sq, T* v_sq, cudaStream_t stream) {
  return launch_onchip<T, kLstmOnchipMaxHidden<T>, BackwardKernel>(s, stream, grad_hs, grad_cs, cs, gates, c0, w_hh,
                                                                   grad_xp, grad_h0, grad_c0, delta_sq, v_sq);
}

#define RNNLAB_INSTANTIATE(T)                                                                                     \
  template cudaError_t lstm_forward_onchip<T>(const RecurrenceShape&, const T*, const T*, const T*, const T*, T*, \
                                              T*, T*, cudaStream_t);                                              \
  template cudaError_t lstm_backward_onchip<T>(const RecurrenceShape&, const T*, const T*, const T*, const T*,    \
                                               const T*, const T*, T*, T*, T*, T*, T*, cudaStream_t);
RNNLAB_INSTANTIATE(float)
RNNLAB_INSTANTIATE(double)
#undef RNNLAB_INSTANTIATE

}  // namespace rnnlab::cuda
