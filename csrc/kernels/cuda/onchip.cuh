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
// kRing shared-memory slabs with cp.async, kDepth steps ahead.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.cuh"

namespace rnnlab::cuda::onchip {

constexpr int kDepth = 3;          // steps whose inputs are in flight
constexpr int kRing = kDepth + 1;  // + the slab being read
constexpr int kTileRows[] = {1, 2, 4, 8};

template <typename T, int HP, int Out, int InputMul>
struct Geom {
  static constexpr int kVec = kVec16<T>;                      // elements per 16-byte load
  static constexpr int kOut = Out;                            // matrix rows per thread
  static constexpr int kSlice = 128 / sizeof(T) / Out;        // inputs per thread and row
  static constexpr int kInputs = InputMul * HP;               // padded input length
  static constexpr int kSplits = kInputs / kSlice;            // threads per hidden unit
  static constexpr int kThreads = HP * kSplits;
  static constexpr int kSegment = kSlice + kVec;              // padded segment
  static constexpr int kRow = kSplits * kSegment;             // padded input vector in shared memory
  static_assert(kSlice % kVec == 0 && kInputs % kSlice == 0, "slices must be whole 16-byte loads");
  static_assert(32 % kSplits == 0 && kThreads % 32 == 0 && kThreads <= 512, "unsupported padded size");

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

// Launches Kernel<T, HP, BT> (traits with fn(), smem(H) and threads()) over all (model, tile)
// pairs, choosing BT ∈ kTileRows with pick_rows_per_block: the smallest tiles that still let the
// whole grid be resident at once.
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

}  // namespace rnnlab::cuda::onchip
