// Host-side launch helpers (see launch.cuh).
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/launch.cuh"

namespace rnnlab::cuda {

namespace {

int current_device() {
  int device = 0;
  cudaGetDevice(&device);
  return device;
}

}  // namespace

int multiprocessor_count() {
  static std::mutex lock;
  static std::map<int, int> cache;
  const int device = current_device();
  std::lock_guard<std::mutex> guard(lock);
  auto it = cache.find(device);
  if (it != cache.end()) return it->second;
  int count = 1;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count < 1) count = 1;
  cache[device] = count;
  return count;
}

cudaError_t allow_dynamic_smem(const void* kernel, size_t smem) {
  if (smem <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
}

int resident_blocks_per_sm(const void* kernel, int threads, size_t smem) {
  static std::mutex lock;
  static std::map<std::tuple<int, const void*, int, size_t>, int> cache;
  const auto key = std::make_tuple(current_device(), kernel, threads, smem);
  std::lock_guard<std::mutex> guard(lock);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int blocks = 0;
  if (allow_dynamic_smem(kernel, smem) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, smem) != cudaSuccess || blocks < 1) {
    cudaGetLastError();  // a failed query must not surface as the next launch's error
    blocks = 1;
  }
  cache[key] = blocks;
  return blocks;
}

int pick_rows_per_block(const void* const* kernels, const int* rows_per_block, const size_t* smem, int count,
                        int threads, int64_t models, int64_t rows_per_model) {
  const int64_t sms = multiprocessor_count();
  for (int c = 0; c < count; ++c) {
    const int64_t blocks = models * ((rows_per_model + rows_per_block[c] - 1) / rows_per_block[c]);
    if (blocks <= sms * resident_blocks_per_sm(kernels[c], threads, smem[c])) return c;
  }
  return count - 1;
}

}  // namespace rnnlab::cuda
