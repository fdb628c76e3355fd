// The fused Elman training step of the ISA selected_isa() names, in either layout (compiled three
// times, in elman_train_step_<isa>.cpp).
#include "kernels/cpu/elman_train_step.h"

namespace rnnlab::cpu {

#if defined(__x86_64__)
template <typename T> ElmanTrainStepFn<T> elman_train_step_avx512();
template <typename T> ElmanTrainStepFn<T> elman_train_step_avx2();
template <typename T> LanesKernel<ElmanTrainStep<T>> elman_train_step_avx512_lanes();
template <typename T> LanesKernel<ElmanTrainStep<T>> elman_train_step_avx2_lanes();
#endif
template <typename T> ElmanTrainStepFn<T> elman_train_step_portable();
template <typename T> LanesKernel<ElmanTrainStep<T>> elman_train_step_portable_lanes();

template <typename T>
ElmanTrainStepFn<T> elman_train_step_kernel(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return elman_train_step_avx512<T>();
    case Isa::Avx2: return elman_train_step_avx2<T>();
#endif
    default: return elman_train_step_portable<T>();
  }
}

template <typename T>
LanesKernel<ElmanTrainStep<T>> elman_train_step_lanes_kernel(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return elman_train_step_avx512_lanes<T>();
    case Isa::Avx2: return elman_train_step_avx2_lanes<T>();
#endif
    default: return elman_train_step_portable_lanes<T>();
  }
}

template ElmanTrainStepFn<float> elman_train_step_kernel<float>(Isa);
template ElmanTrainStepFn<double> elman_train_step_kernel<double>(Isa);
template LanesKernel<ElmanTrainStep<float>> elman_train_step_lanes_kernel<float>(Isa);
template LanesKernel<ElmanTrainStep<double>> elman_train_step_lanes_kernel<double>(Isa);

}  // namespace rnnlab::cpu
