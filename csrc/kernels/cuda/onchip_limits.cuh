// How large a recurrence the on-chip kernels (onchip.cuh) hold, from their register budget. Host-
// and device-safe: the cells' API headers (elman.cuh, lstm.cuh) and thus the ATen glue include it.
#pragma once

#include <cstdint>

namespace rnnlab::cuda::onchip {

constexpr int kWeightBytesPerThread = 128;  // 32 registers of the recurrent matrix per thread
constexpr int kMaxThreads = 512;            // threads per block
constexpr int kMaxPaddedHidden = 128;       // padded hidden sizes are 32, 64, 128

// The largest padded hidden size HP whose recurrent matrix — rows_per_unit rows per hidden unit
// (1 for the Elman RNN, the 4 gates for the LSTM) of HP inputs — fits in blocks of kMaxThreads
// threads at kWeightBytesPerThread bytes each; 0 if none does.
template <typename T>
constexpr int64_t max_hidden(int64_t rows_per_unit) {
  for (int64_t hp = kMaxPaddedHidden; hp >= 32; hp /= 2)
    if (rows_per_unit * hp * hp * static_cast<int64_t>(sizeof(T)) <= int64_t{kWeightBytesPerThread} * kMaxThreads)
      return hp;
  return 0;
}

template <typename T>
constexpr bool fits(int64_t H, int64_t rows_per_unit) {
  return H >= 1 && H <= max_hidden<T>(rows_per_unit);
}

}  // namespace rnnlab::cuda::onchip
