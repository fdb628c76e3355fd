// A host-thread emulation of the part of the CUDA device model and runtime that rnnlab's kernels
// use, so that tests can execute csrc/kernels/cuda/*.cu on a machine without a GPU
// (tests/test_cuda_emulated.py). It stands in for <cuda_runtime.h>: compile the .cu files as C++
// with this directory first on the include path and -DRNNLAB_CUDA_EMULATION.
//
// Model:
// * blocks run one after another; the threads of a block run concurrently, one OS thread each;
// * __syncthreads is a barrier of the block's threads;
// * __shfl_xor_sync exchanges values through a barrier of the warp's 32 threads, so every lane
//   must reach every shuffle (as a full mask requires on the hardware; a kernel that diverges
//   around a shuffle deadlocks here instead of silently reading garbage);
// * shared memory (dynamic, and __shared__ variables) is filled with 0xFF bytes — NaN as float
//   and double — before each block, so reads of never-written shared memory poison the result;
// * cp.async copies are queued per thread and land when a cp.async.wait_group covers their group
//   (the latest moment the hardware may complete them), or at issue with RNNLAB_EMU_EAGER_COPIES=1
//   (the earliest): a read before its wait sees stale data in the first mode, and a slot refilled
//   while other threads still read it is caught more often in the second;
// * the device has RNNLAB_EMU_SMS multiprocessors (default 4) holding one block each, which steers
//   the kernels' choice of rows per block.
// Not modelled: timing, warp-synchronous execution between shuffles, register or shared-memory
// limits, the memory model beyond barriers.
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef RNNLAB_CUDA_EMULATION
#error "compile with -DRNNLAB_CUDA_EMULATION"
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace rnnlab_emu {

constexpr size_t kMaxDynamicSmem = 227 * 1024;  // Hopper's per-block limit

struct Warp {
  Warp() : sync(32) {}
  std::barrier<> sync;
  alignas(8) unsigned char slot[32][8];
};

struct Block {
  Block(unsigned threads, size_t smem_bytes) : sync(threads), smem(std::max<size_t>(smem_bytes, 16), 0xFF) {
    for (unsigned w = 0; w < threads / 32; ++w) warps.push_back(std::make_unique<Warp>());
  }
  std::barrier<> sync;
  std::vector<std::unique_ptr<Warp>> warps;
  std::vector<unsigned char, std::allocator<unsigned char>> smem;
};

struct Copy {
  void* dst;
  const void* src;
  int bytes;
};

struct Thread {
  Block* block = nullptr;
  std::deque<std::vector<Copy>> groups;
  std::vector<Copy> open;
};
inline thread_local Thread self;

inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// The 16-byte alignment the kernels rely on: std::vector's storage comes from operator new,
// which aligns to __STDCPP_DEFAULT_NEW_ALIGNMENT__ (16 on x86-64 and aarch64).
static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16);
inline unsigned char* dynamic_smem() { return self.block->smem.data(); }

inline void cp_async(void* dst, const void* src, int bytes) {
  if (env_int("RNNLAB_EMU_EAGER_COPIES", 0)) std::memcpy(dst, src, bytes);
  else self.open.push_back({dst, src, bytes});
}
inline void cp_async_commit() {
  self.groups.push_back(std::move(self.open));
  self.open.clear();
}
inline void cp_async_wait(int pending) {
  while (static_cast<int>(self.groups.size()) > pending) {
    for (const Copy& c : self.groups.front()) std::memcpy(c.dst, c.src, c.bytes);
    self.groups.pop_front();
  }
}

template <typename Tuple, size_t... I>
Tuple unpack(void** args, std::index_sequence<I...>) {
  return Tuple{*static_cast<std::tuple_element_t<I, Tuple>*>(args[I])...};
}

}  // namespace rnnlab_emu

// ---- device functions ----------------------------------------------------------------------------
inline void __syncthreads() { rnnlab_emu::self.block->sync.arrive_and_wait(); }

template <typename T>
T __shfl_xor_sync(unsigned, T v, int offset) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  rnnlab_emu::Warp& w = *rnnlab_emu::self.block->warps[threadIdx.x / 32];
  const unsigned lane = threadIdx.x % 32;
  std::memcpy(w.slot[lane], &v, sizeof(T));
  w.sync.arrive_and_wait();
  T r;
  std::memcpy(&r, w.slot[lane ^ static_cast<unsigned>(offset)], sizeof(T));
  w.sync.arrive_and_wait();
  return r;
}

template <typename T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}

using std::fma;
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }

// ---- runtime API ---------------------------------------------------------------------------------
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr, int) {
  *value = rnnlab_emu::env_int("RNNLAB_EMU_SMS", 4);
  return cudaSuccess;
}
inline cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void*, int, size_t) {
  *blocks = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

template <typename... P>
cudaError_t cudaLaunchKernel(void (*kernel)(P...), dim3 grid, dim3 block, void** args, size_t smem, cudaStream_t) {
  if (block.x == 0 || block.x % 32 != 0 || block.x > 1024 || block.y != 1 || block.z != 1 || grid.y != 1 ||
      grid.z != 1 || smem > rnnlab_emu::kMaxDynamicSmem)
    return cudaErrorInvalidConfiguration;
  using Params = std::tuple<std::decay_t<P>...>;
  const Params params = rnnlab_emu::unpack<Params>(args, std::index_sequence_for<P...>{});
  for (unsigned b = 0; b < grid.x; ++b) {
    rnnlab_emu::Block blk(block.x, smem);
    std::vector<std::thread> threads;
    threads.reserve(block.x);
    for (unsigned t = 0; t < block.x; ++t)
      threads.emplace_back([&, t] {
        threadIdx = dim3(t);
        blockIdx = dim3(b);
        blockDim = block;
        gridDim = grid;
        rnnlab_emu::self = rnnlab_emu::Thread{};
        rnnlab_emu::self.block = &blk;
        std::apply(kernel, params);
        rnnlab_emu::self = rnnlab_emu::Thread{};
      });
    for (std::thread& th : threads) th.join();
  }
  return cudaSuccess;
}
