// The fused diagonal (LRU) training step of the ISA selected_isa() names (compiled three times, in
// diag_train_step_<isa>.cpp).
#include "kernels/cpu/diag_train_step.h"

namespace rnnlab::cpu {

#if defined(__x86_64__)
template <typename T> DiagTrainStepFn<T> diag_train_step_avx512();
template <typename T> DiagTrainStepFn<T> diag_train_step_avx2();
#endif
template <typename T> DiagTrainStepFn<T> diag_train_step_portable();

template <typename T>
DiagTrainStepFn<T> diag_train_step_kernel(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return diag_train_step_avx512<T>();
    case Isa::Avx2: return diag_train_step_avx2<T>();
#endif
    default: return diag_train_step_portable<T>();
  }
}

template DiagTrainStepFn<float> diag_train_step_kernel<float>(Isa);
template DiagTrainStepFn<double> diag_train_step_kernel<double>(Isa);

}  // namespace rnnlab::cpu
