// Small device helpers shared by the CUDA kernels: 16-byte shared-memory loads, warp and block
// sums, dynamic shared memory, and asynchronous global→shared copies (cp.async, sm_80+) that prefetch per-step slabs
// several steps ahead so that global-memory latency stays off a recurrence's critical path.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rnnlab::cuda {

// ---- 16-byte loads: kVec16<T> consecutive elements from a 16-byte aligned address -------------
template <typename T>
constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

__device__ __forceinline__ void load16(const float* p, float (&o)[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  o[0] = v.x, o[1] = v.y, o[2] = v.z, o[3] = v.w;
}

__device__ __forceinline__ void load16(const double* p, double (&o)[2]) {
  const double2 v = *reinterpret_cast<const double2*>(p);
  o[0] = v.x, o[1] = v.y;
}

// ---- reductions ---------------------------------------------------------------------------------
// Sum over the lanes whose indices differ only in the bits From, 2·From, …, < To (powers of two):
// sum_lanes<1, S> sums groups of S consecutive lanes, sum_lanes<S, 32> sums the lanes that share
// lane % S. Every lane of the warp must call it; every lane of a group gets the group's sum.
template <int From, int To, typename T>
__device__ __forceinline__ T sum_lanes(T v) {
#pragma unroll
  for (int offset = From; offset < To; offset *= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sums a and b over the whole block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the totals. Contains __syncthreads, so every thread of the block must call it.
template <typename T>
__device__ __forceinline__ void block_sum2(T& a, T& b) {
  __shared__ T partial[2][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  a = sum_lanes<1, 32>(a);
  b = sum_lanes<1, 32>(b);
  if (lane == 0) partial[0][warp] = a, partial[1][warp] = b;
  __syncthreads();
  a = lane < warps ? partial[0][lane] : T(0);
  b = lane < warps ? partial[1][lane] : T(0);
  __syncthreads();  // partial may be reused by a later call
  a = sum_lanes<1, 32>(a);
  b = sum_lanes<1, 32>(b);
}

// ---- dynamic shared memory and asynchronous copies -------------------------------------------
// Under RNNLAB_CUDA_EMULATION the kernels run on host threads (tests/cuda_emu): the emulator
// provides the block's shared memory and queues each copy until the wait that covers it, the
// latest moment the hardware may complete it. These are the only hardware-specific pieces.
#if defined(RNNLAB_CUDA_EMULATION)
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
  return reinterpret_cast<T*>(rnnlab_emu::dynamic_smem());
}
template <int Bytes>
__device__ __forceinline__ void cp_async(void* dst, const void* src) {
  rnnlab_emu::cp_async(dst, src, Bytes);
}
__device__ __forceinline__ void cp_async_commit() { rnnlab_emu::cp_async_commit(); }
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  rnnlab_emu::cp_async_wait(Pending);
}
#else
// The block's dynamic shared memory (the launch's smem bytes), 16-byte aligned.
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char rnnlab_dynamic_smem[];
  return reinterpret_cast<T*>(rnnlab_dynamic_smem);
}

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

template <int Bytes>
__device__ __forceinline__ void cp_async(void* dst, const void* src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  if constexpr (Bytes == 16)  // .cg: streamed data, skip L1
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(dst)), "l"(src) : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(shared_address(dst)), "l"(src), "n"(Bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `Pending` of this thread's committed groups are still in flight. Other
// threads' copies become visible only after a following __syncthreads.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}
#endif

// Starts copying n contiguous elements src[0, n) to dst[0, n) with all threads of the block, in
// 16-byte pieces when both ends are 16-byte aligned and n is a whole number of them, else element
// by element. Does not commit: the caller groups the copies of one step.
template <typename T>
__device__ __forceinline__ void copy_async(T* dst, const T* src, int n) {
  constexpr int kVec = kVec16<T>;
  const bool whole = ((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) % 16 == 0) && n % kVec == 0;
  if (whole) {
    for (int e = threadIdx.x * kVec; e < n; e += blockDim.x * kVec) cp_async<16>(dst + e, src + e);
  } else {
    for (int e = threadIdx.x; e < n; e += blockDim.x) cp_async<sizeof(T)>(dst + e, src + e);
  }
}

}  // namespace rnnlab::cuda
