// The fused GRU training step compiled for portable. Standard headers come first so that only rnnlab's own
// code (in namespace rnnlab::cpu::portable) is compiled for this ISA; see simd.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <stdexcept>
#include <vector>

#define RNNLAB_ISA_PORTABLE
#define RNNLAB_ISA_NS portable
#include "kernels/cpu/gru_train_step_impl.h"
#include "kernels/cpu/gru_train_step_lanes_impl.h"
RNNLAB_DEFINE_GRU_TRAIN_STEP(gru_train_step_kernel_portable)
RNNLAB_DEFINE_GRU_TRAIN_STEP_LANES(gru_train_step_lanes_kernel_portable)
