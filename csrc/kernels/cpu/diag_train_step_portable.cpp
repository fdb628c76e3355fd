// The fused diagonal (LRU) training step compiled for portable. Standard headers come first so that only rnnlab's own
// code (in namespace rnnlab::cpu::portable) is compiled for this ISA; see simd.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <stdexcept>
#include <vector>

#define RNNLAB_ISA_PORTABLE
#define RNNLAB_ISA_NS portable
#include "kernels/cpu/diag_train_step_impl.h"
RNNLAB_DEFINE_DIAG_TRAIN_STEP(diag_train_step_kernel_portable)
