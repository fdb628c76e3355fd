// The fused LSTM training step compiled for avx2. Standard headers come first so that only rnnlab's own
// code (in namespace rnnlab::cpu::avx2) is compiled for this ISA; see simd.h.
#if defined(__x86_64__)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <stdexcept>
#include <vector>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define RNNLAB_ISA_AVX2
#define RNNLAB_ISA_NS avx2
#include "kernels/cpu/lstm_train_step_impl.h"
#include "kernels/cpu/lstm_train_step_lanes_impl.h"
RNNLAB_DEFINE_LSTM_TRAIN_STEP(lstm_train_step_kernel_avx2)
RNNLAB_DEFINE_LSTM_TRAIN_STEP_LANES(lstm_train_step_lanes_kernel_avx2)
#pragma GCC pop_options
#endif
