// The fused LSTM training step compiled for avx512. Standard headers come first so that only rnnlab's own
// code (in namespace rnnlab::cpu::avx512) is compiled for this ISA; see simd.h.
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
#pragma GCC target("avx512f,avx512dq,avx512vl,avx2,fma,bmi2")
#define RNNLAB_ISA_AVX512
#define RNNLAB_ISA_NS avx512
#include "kernels/cpu/lstm_train_step_impl.h"
#include "kernels/cpu/lstm_train_step_lanes_impl.h"
RNNLAB_DEFINE_LSTM_TRAIN_STEP(lstm_train_step_kernel_avx512)
RNNLAB_DEFINE_LSTM_TRAIN_STEP_LANES(lstm_train_step_lanes_kernel_avx512)
#pragma GCC pop_options
#endif
