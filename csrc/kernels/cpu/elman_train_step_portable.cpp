// The fused Elman training step compiled for portable. Standard headers come first so that only rnnlab's own
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
#include "kernels/cpu/elman_train_step_impl.h"
#include "kernels/cpu/elman_train_step_lanes_impl.h"
RNNLAB_DEFINE_ELMAN_TRAIN_STEP(elman_train_step_kernel_portable)
RNNLAB_DEFINE_ELMAN_TRAIN_STEP_LANES(elman_train_step_lanes_kernel_portable)
