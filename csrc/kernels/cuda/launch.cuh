// Host-side launch helpers shared by the CUDA kernels: device queries cached per device, and the
// opt-in for more than 48 KB of dynamic shared memory.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

namespace rnnlab::cuda {

// kernel<<<grid, block, smem, stream>>>(args...) through cudaLaunchKernel, each argument first
// converted to the kernel's parameter type (so the call is type-checked like a plain call).
// Returns the launch error, and clears it from the runtime's last-error state.
template <typename... P, typename... A>
cudaError_t launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  const cudaError_t e = std::apply(
      [&](auto&... p) {
        void* ptrs[] = {static_cast<void*>(&p)...};
        return cudaLaunchKernel(kernel, grid, block, ptrs, smem, stream);
      },
      params);
  if (e != cudaSuccess) cudaGetLastError();
  return e;
}

// Streaming multiprocessors of the current device.
int multiprocessor_count();

// How many blocks of `kernel` (threads per block, dynamic shared memory bytes) fit on one
// multiprocessor of the current device at once (at least 1). Cached per device and arguments.
int resident_blocks_per_sm(const void* kernel, int threads, size_t smem);

// Raises the kernel's dynamic shared-memory limit when `smem` exceeds the 48 KB default.
cudaError_t allow_dynamic_smem(const void* kernel, size_t smem);

// Of `count` candidate configurations (the same kernel at growing rows per block), the first
// whose blocks for `rows_total` rows all fit on the device at once; the last one if none does.
// Fewer rows per block means less work on each block's per-step critical path (the recurrences
// are latency-bound), as long as the extra blocks still run concurrently.
int pick_rows_per_block(const void* const* kernels, const int* rows_per_block, const size_t* smem, int count,
                        int threads, int64_t models, int64_t rows_per_model);

}  // namespace rnnlab::cuda
