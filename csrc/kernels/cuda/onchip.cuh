// Shared machinery of the on-chip recurrent kernels (Elman, LSTM): one thread block per (model,
// tile of BT batch rows) runs the whole time loop with its recurrent matrix held in registers.
//
// Register layout. The hidden size is padded to HP. Each thread holds, for one hidden unit, kOut
// matrix rows (the unit's kOut outputs: 1 for Elman, the 4 gates for the LSTM forward) times a
// slice of kSlice consecutive inputs, 128 bytes of weights in all (32 registers). The input vector
// (kInputs = HP or 4·HP long) is cut into kSplits slices; the kSplits threads of a unit are
// adjacent lanes and their partial dot products are summed with shuffles, so each of them ends
// with the full sums. Lane `split` then finishes the batch rows r ≡ split (mod kSplits).
//
// Shared-memory layout of an input vector: kSplits segments of kSlice elements, each padded by
// one 16-byte vector, so the kSplits distinct 16-byte loads of a warp (one per split; the lanes
// of a split read the same address, a broadcast) fall in distinct banks. Padding entries are
// zero and never written, and so are the weights of padded units and inputs.
//
// Inputs of each step (xp_t, or the backward pass's saved tensors) are prefetched into a ring of
// kRing shared-memory slabs with cp.async, kDepth steps ahead. The staging below (state buffers,
// ring, row norms) and the launch are the same for every on-chip kernel; what a kernel adds is
// its weights, its step's epilogue and which tensors it prefetches.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/onchip_limits.cuh"

namespace rnnlab::cuda::onchip {

constexpr int kDepth = 3;          // steps whose inputs are in flight
constexpr int kRing = kDepth + 1;  // + the slab being read
constexpr int kTileRows[] = {1, 2, 4, 8};

template <typename T, int HP, int Out, int InputMul>
struct Geom {
  static constexpr int kVec = kVec16<T>;                      // elements per 16-byte load
  static constexpr int kOut = Out;                            // matrix rows per thread
  static constexpr int kSlice = kWeightBytesPerThread / sizeof(T) / Out;  // inputs per thread and row
  static constexpr int kInputs = InputMul * HP;               // padded input length
  static constexpr int kSplits = kInputs / kSlice;            // threads per hidden unit
  static constexpr int kThreads = HP * kSplits;
  static constexpr int kSegment = kSlice + kVec;              // padded segment
  static constexpr int kRow = kSplits * kSegment;             // padded input vector in shared memory
  static_assert(kSlice % kVec == 0 && kInputs % kSlice == 0, "slices must be whole 16-byte loads");
  static_assert(32 % kSplits == 0 && kThreads % 32 == 0 && kThreads <= kMaxThreads, "unsupported padded size");

  // Shared-memory position of (padded) input k.
  static __device__ __forceinline__ int pos(int k) { return (k / kSlice) * kSegment + k % kSlice; }
};

// Elements of a shared-memory slab holding `rows` rows of `width`, rounded to whole 16-byte
// pieces so that every slab of a ring starts 16-byte aligned.
template <typename T>
__host__ __device__ inline int slab_elems(int rows, int width) {
  return (rows * width + kVec16<T> - 1) / kVec16<T> * kVec16<T>;
}

// out[r][o] = Σ_q w[o][q] · x[r, split·kSlice + q] summed over the unit's kSplits threads (each gets
// the total), for the BT rows of a padded input buffer; x points at this thread's segment of row
// 0. Up to four independent accumulator chains per output keep the FMA pipeline busy.
template <typename G, int BT, typename T>
__device__ __forceinline__ void matvec_rows(const T (&w)[G::kOut][G::kSlice], const T* x, T (&out)[BT][G::kOut]) {
  constexpr int kChains = BT * G::kOut >= 4 ? 1 : 4 / (BT * G::kOut);
  T acc[BT][G::kOut][kChains];
#pragma unroll
  for (int r = 0; r < BT; ++r)
#pragma unroll
    for (int o = 0; o < G::kOut; ++o)
#pragma unroll
      for (int c = 0; c < kChains; ++c) acc[r][o][c] = T(0);
#pragma unroll
  for (int q = 0; q < G::kSlice; q += G::kVec) {
#pragma unroll
    for (int r = 0; r < BT; ++r) {
      T xv[G::kVec];
      load16(x + r * G::kRow + q, xv);
#pragma unroll
      for (int o = 0; o < G::kOut; ++o)
#pragma unroll
        for (int e = 0; e < G::kVec; ++e) {
          T& a = acc[r][o][(q + e) % kChains];
          a = fma(w[o][q + e], xv[e], a);
        }
    }
  }
#pragma unroll
  for (int r = 0; r < BT; ++r)
#pragma unroll
    for (int o = 0; o < G::kOut; ++o) {
      T sum = acc[r][o][0];
#pragma unroll
      for (int c = 1; c < kChains; ++c) sum += acc[r][o][c];
      out[r][o] = sum_lanes<1, G::kSplits>(sum);
    }
}

// This block's tile: model m, batch rows b0 … b0 + rows − 1.
struct Tile {
  int64_t m, b0;
  int rows;
  template <int BT>
  __device__ static Tile of_block(const RecurrenceShape& s) {
    const int64_t tiles = (s.B + BT - 1) / BT;
    const int64_t m = blockIdx.x / tiles, b0 = (blockIdx.x % tiles) * BT;
    return {m, b0, static_cast<int>(s.B - b0 < BT ? s.B - b0 : BT)};
  }
  // Offset of row r of this tile at step t in an [M, T, B, width] tensor, in [M, B, width], in [M, T, B].
  __device__ int64_t seq(const RecurrenceShape& s, int64_t t, int r, int64_t width) const {
    return ((m * s.T + t) * s.B + b0 + r) * width;
  }
  __device__ int64_t state(const RecurrenceShape& s, int r, int64_t width) const { return (m * s.B + b0 + r) * width; }
  __device__ int64_t stat(const RecurrenceShape& s, int64_t t, int r) const { return (m * s.T + t) * s.B + b0 + r; }
};

// The rows this thread finishes: r = o·kSplits + split for o < kOwn.
template <typename G, int BT>
constexpr int kOwn = (BT + G::kSplits - 1) / G::kSplits;

// mine[o] = v[o·kSplits + split]: picks this thread's rows out of a per-row array (compile-time
// indices only, so both stay in registers).
template <typename G, int BT, typename T>
__device__ __forceinline__ void pick_own_rows(const T (&v)[BT][1], int split, T (&mine)[kOwn<G, BT>]) {
#pragma unroll
  for (int r = 0; r < BT; ++r)
    if (r % G::kSplits == split) mine[r / G::kSplits] = v[r][0];
}

// Row sums of squares over the whole block, without atomics (so deterministic): each warp stores
// its share of row r in partial[warp·BT + r], and row_total sums the warps in a fixed order after
// a barrier. part[o] belongs to row o·kSplits + split; lanes sharing `split` own the same rows,
// so the warp first sums over them and lanes 0 … kSplits − 1 (split = lane there) store. Every
// row < rows of every warp is stored, so a slot needs no clearing. Every lane must call it.
template <typename G, int BT, typename T>
__device__ __forceinline__ void store_row_partials(const T (&part)[kOwn<G, BT>], T* partial, int rows) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int o = 0; o < kOwn<G, BT>; ++o) {
    const T total = sum_lanes<G::kSplits, 32>(part[o]);
    const int r = o * G::kSplits + lane;
    if (lane < G::kSplits && r < rows) partial[warp * BT + r] = total;
  }
}

template <typename G, int BT, typename T>
__device__ __forceinline__ T row_total(const T* partial, int r) {
  T total = T(0);
#pragma unroll
  for (int w = 0; w < G::kThreads / 32; ++w) total += partial[w * BT + r];
  return total;
}

// Shared-memory elements of one slot of row partials.
template <typename G, int BT>
constexpr int kPartials = G::kThreads / 32 * BT;

// ---- staging: state buffers, the prefetch ring, row norms ----------------------------------------

// Zeroes a double-buffered state [2][BT][kRow] (its padding must read as zero).
template <typename G, int BT, typename T>
__device__ __forceinline__ void zero_state(T* state) {
  for (int e = threadIdx.x; e < 2 * BT * G::kRow; e += blockDim.x) state[e] = T(0);
}

// Zeroes the state, then (after a barrier) writes the tile's rows of h0 [M, B, H] into buffer 0 at
// their padded positions.
template <typename G, int BT, typename T>
__device__ __forceinline__ void init_state(T* state, const T* h0, const RecurrenceShape& s, const Tile& tile) {
  const int H = static_cast<int>(s.H);
  zero_state<G, BT>(state);
  __syncthreads();
  for (int e = threadIdx.x; e < tile.rows * H; e += blockDim.x)
    state[(e / H) * G::kRow + G::pos(e % H)] = h0[tile.state(s, 0, H) + e];
}

// The end of a step: this thread's copies for the next step have landed, and after the barrier
// everyone's — and everything written to shared memory during the step — are visible.
__device__ __forceinline__ void end_step() {
  cp_async_wait<kDepth - 1>();
  __syncthreads();
}

// Fills the ring before the time loop: prefetch(n) for the first kDepth steps (each commits one
// cp.async group, empty or not), then end_step() so that step 0's slab is visible.
template <typename Prefetch>
__device__ __forceinline__ void fill_ring(Prefetch& prefetch) {
  for (int d = 0; d < kDepth; ++d) prefetch(d);
  end_step();
}

// Writes v_sq and delta_sq of step x for the tile's rows: the totals of the warp partials in
// vpart and dpart (slots complete since a barrier). Thread r writes row r.
template <typename G, int BT, typename T>
__device__ __forceinline__ void write_row_norms(const RecurrenceShape& s, const Tile& tile, int64_t x, const T* vpart,
                                                const T* dpart, T* v_sq, T* delta_sq) {
  if (threadIdx.x < tile.rows) {
    v_sq[tile.stat(s, x, threadIdx.x)] = row_total<G, BT>(vpart, threadIdx.x);
    delta_sq[tile.stat(s, x, threadIdx.x)] = row_total<G, BT>(dpart, threadIdx.x);
  }
}

// ---- launch -------------------------------------------------------------------------------------

// What launch_tiles needs of one kernel instantiation: its function, threads per block (those of
// its geometry G) and dynamic shared memory for hidden size H.
template <typename G, auto Fn, size_t (*Smem)(int)>
struct KernelOf {
  static constexpr int threads() { return G::kThreads; }
  static auto fn() { return Fn; }
  static size_t smem(int H) { return Smem(H); }
};

// Launches Kernel<T, HP, BT> (a KernelOf) over all (model, tile) pairs, choosing BT ∈ kTileRows
// with pick_rows_per_block: the smallest tiles that still let the whole grid be resident at once.
template <typename T, int HP, template <typename, int, int> class Kernel, typename... Args>
cudaError_t launch_tiles(const RecurrenceShape& s, cudaStream_t stream, Args... args) {
  const int H = static_cast<int>(s.H);
  const decltype(Kernel<T, HP, 1>::fn()) fns[] = {Kernel<T, HP, 1>::fn(), Kernel<T, HP, 2>::fn(),
                                                   Kernel<T, HP, 4>::fn(), Kernel<T, HP, 8>::fn()};
  const void* ptrs[] = {reinterpret_cast<const void*>(fns[0]), reinterpret_cast<const void*>(fns[1]),
                        reinterpret_cast<const void*>(fns[2]), reinterpret_cast<const void*>(fns[3])};
  const size_t smem[] = {Kernel<T, HP, 1>::smem(H), Kernel<T, HP, 2>::smem(H), Kernel<T, HP, 4>::smem(H),
                         Kernel<T, HP, 8>::smem(H)};
  constexpr int threads = Kernel<T, HP, 1>::threads();
  const int pick = pick_rows_per_block(ptrs, kTileRows, smem, 4, threads, s.M, s.B);
  const int64_t blocks = s.M * ((s.B + kTileRows[pick] - 1) / kTileRows[pick]);
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  if (cudaError_t e = allow_dynamic_smem(ptrs[pick], smem[pick]); e != cudaSuccess) return e;
  return launch(fns[pick], dim3(static_cast<unsigned>(blocks)), dim3(threads), smem[pick], stream, s, args...);
}

// Launches Kernel at the smallest padded size HP ∈ {32, 64, 128} ≥ s.H; MaxHidden is the cell's
// on-chip bound for T (only the sizes up to it are instantiated). Requires s.M, s.T, s.B ≥ 1.
template <typename T, int64_t MaxHidden, template <typename, int, int> class Kernel, typename... Args>
cudaError_t launch_onchip(const RecurrenceShape& s, cudaStream_t stream, Args... args) {
  if (s.H < 1 || s.H > MaxHidden || s.T < 1 || s.B < 1 || s.M < 1) return cudaErrorInvalidValue;
  if (s.H <= 32) return launch_tiles<T, 32, Kernel>(s, stream, args...);
  if constexpr (MaxHidden >= 64) {
    if (s.H <= 64) return launch_tiles<T, 64, Kernel>(s, stream, args...);
  }
  if constexpr (MaxHidden >= 128) return launch_tiles<T, 128, Kernel>(s, stream, args...);
  return cudaErrorInvalidValue;
}

}  // namespace rnnlab::cuda::onchip
